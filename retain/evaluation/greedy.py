"""Greedy decoding with a KV cache that drops finished rows from the batch.

`transformers`' `generate` keeps every row of a batch in every decoding step until the longest row has
finished: a batch whose answers run 5 to 60 tokens pays for 60 full-batch steps. Here a row leaves
the batch (its cache rows, encoder states and attention mask with it) as soon as it emits EOS, so each
step costs only the rows still writing. The tokens produced are those of greedy `generate` with a
fresh greedy config (tests compare the two on seq2seq and decoder-only models).

Models whose cache cannot drop rows (no `batch_select_indices`) or that return no cache fall back to
`generate`, which gives the same tokens without the saving.
"""

from __future__ import annotations

import inspect

import torch


def eos_ids(lm) -> set[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation-config EOS ids."""
    ids = set()
    for value in (lm.tokenizer.eos_token_id, getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def _cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: `cache` (transformers >= 5.2x), `past_key_values` before."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wrappers take **kwargs
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def _cache_of(result):
    cache = getattr(result, "cache", None)
    return cache if cache is not None else getattr(result, "past_key_values", None)


def encode(model, ids: torch.Tensor, mask: torch.Tensor, spread: float = 0.85) -> torch.Tensor:
    """Encoder states of a right-padded batch, computed in chunks of similar length.

    A batch padded to its longest prompt makes the encoder (the bulk of a seq2seq model's evaluation
    cost) work on padding. Rows are grouped, longest first, into chunks whose shortest row has at least
    `spread` times the tokens of its longest, each chunk is encoded at its own width, and the states
    are laid back into one batch (zeros where padded: the attention mask hides them from the decoder).
    """
    lengths = mask.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    chunks, current = [], []
    for i in order:
        if current and lengths[i] < spread * lengths[current[0]]:
            chunks.append(current)
            current = []
        current.append(i)
    chunks.append(current)
    encoder = model.get_encoder()
    if len(chunks) == 1:
        return encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    states = None
    for chunk in chunks:
        index = torch.tensor(chunk, device=ids.device)
        width = int(lengths[chunk[0]])
        part = encoder(input_ids=ids[index, :width], attention_mask=mask[index, :width]).last_hidden_state
        if states is None:
            states = part.new_zeros((ids.shape[0], ids.shape[1], part.shape[-1]))
        states[index, :width] = part
    return states


def _select(cache, keep: torch.Tensor) -> bool:
    select = getattr(cache, "batch_select_indices", None)
    if select is None:
        return False
    select(keep)
    return True


@torch.no_grad()  # not inference_mode: it would turn off autocast's weight cache (see engine._precision)
def greedy_decode(lm, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int) -> list[list[int]] | None:
    """New tokens (EOS excluded) for each row of a padded batch, or None if this model needs `generate`.

    Args:
        lm: the loaded model (`retain.models.loading.LoadedModel`).
        ids, mask: prompt ids and attention mask on the model's device; right-padded for seq2seq models,
            left-padded for decoder-only ones.
        max_new_tokens: most tokens generated per row.
    """
    model, n = lm.model, ids.shape[0]
    kw = _cache_kwarg(model)
    stop = torch.tensor(sorted(eos_ids(lm)), device=ids.device)
    rows = torch.arange(n, device=ids.device)  # which original row each live row is
    out: list[list[int]] = [[] for _ in range(n)]
    if lm.is_seq2seq:
        start = model.config.decoder_start_token_id
        if start is None:
            return None
        from transformers.modeling_outputs import BaseModelOutput

        states = encode(model, ids, mask)
        step_input = torch.full((n, 1), start, dtype=torch.long, device=ids.device)
        past = None
    else:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        result = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        past = _cache_of(result)
        positions = positions[:, -1:]
    for step in range(max_new_tokens):
        if lm.is_seq2seq:
            result = model(encoder_outputs=BaseModelOutput(last_hidden_state=states), attention_mask=mask,
                           decoder_input_ids=step_input, use_cache=True, **{kw: past})
            past = _cache_of(result)
        elif step > 0:
            positions = positions + 1
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            result = model(input_ids=step_input, attention_mask=mask, position_ids=positions,
                           use_cache=True, **{kw: past})
            past = _cache_of(result)
        if past is None:
            return None
        token = result.logits[:, -1].argmax(-1)
        finished = torch.isin(token, stop)
        for row, t, done in zip(rows.tolist(), token.tolist(), finished.tolist()):
            if not done:
                out[row].append(t)
        if bool(finished.all()):
            break
        if bool(finished.any()):
            keep = (~finished).nonzero().squeeze(1)
            if not _select(past, keep):
                return None
            rows, token, mask = rows[keep], token[keep], mask[keep]
            if lm.is_seq2seq:
                states = states[keep]
            else:
                positions = positions[keep]
        step_input = token[:, None]
    return out
