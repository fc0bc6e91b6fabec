"""The evaluation engine: batched greedy generation and batched log-likelihood scoring.

Two request kinds, as in lm-evaluation-harness:

- `generate`: greedy decoding, batched, prompts sorted by length (longest first, so batches hold
  similar lengths and the first batch shows the worst-case memory), stopping at EOS, with the KV cache
  on; rows leave the batch as they finish (`retain.evaluation.greedy`). Decoder-only models are
  left-padded so every prompt ends where generation starts.
- `loglikelihood`: the summed log-probability of a continuation given a context, in batched forward
  passes without generation. Requests that differ only in their last token share one row (every
  single-token option of a `choice` task: k options cost one row, not k), as lm-evaluation-harness's
  logits cache does; for encoder-decoder models each distinct context is also encoded once. A
  decoder-only model's LM head projects only the positions that predict a continuation token
  (`retain.models.heads.LabelPositionsHead`): over a long few-shot prompt, logits over the whole
  vocabulary at every prompt position were most of the cost.

Results come back in the order of the requests. Batching does not change results beyond float
rounding (tests check that batched equals unbatched). Launched as several processes, each runs its
share of these same batches (`retain.evaluation.distributed`): results equal one process's exactly.

Models run in their `LoadedModel.precision`: on a CPU with native bf16, `dtype: auto` gives fp32
weights under bf16 autocast for scoring, entered once around all batches, and fp32 for greedy
generation (`retain.models.device.Precision.generation`).

Few-shot prompts arrive as the task prompt plus its solved examples (`shots`), formatted by
`retain.models.formatting.format_prompt`. A decoder-only input longer than the model's context
(`config.max_position_embeddings`: the prompt plus `max_new_tokens` when generating, context plus
continuation when scoring) is cut from the left, keeping a leading BOS token: the end of the prompt,
where the question and the generation prompt are, survives, as in training. The indices of the cut
inputs are reported through `truncated`. Encoder-decoder inputs are not cut (T5-style relative
positions have no fixed context).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch

from retain.errors import UserError
from retain.evaluation.distributed import run_batches
from retain.evaluation.greedy import encode, greedy_decode
from retain.models.formatting import Shot, completion_prefix, format_prompt
from retain.models.heads import Fp32Head, LabelPositionsHead
from retain.models.loading import LoadedModel

Progress = Callable[[int], None] | None
Shots = Sequence[Sequence[Shot]] | None  # per prompt (or request): its solved examples


def context_length(lm: LoadedModel) -> int | None:
    """Most tokens a decoder-only model can attend to (None: seq2seq, or the config does not say)."""
    if lm.is_seq2seq:
        return None
    value = getattr(lm.model.config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def _truncate_left(ids: list[int], keep: int, bos: int | None) -> list[int]:
    """The last `keep` tokens of `ids`, with its leading BOS token kept in front when it has one."""
    if len(ids) <= keep:
        return ids
    if bos is not None and ids and ids[0] == bos and keep > 1:
        return [bos] + ids[len(ids) - keep + 1:]
    return ids[len(ids) - keep:]


def _encode(tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]


def _pad(rows: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if left:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        else:
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
    return ids, mask


def _precision(lm, generation: bool = False):
    """Run `lm` in its precision: under bf16 autocast when it has one (`LoadedModel.precision`).

    `generation`: the precision greedy generation runs in (`Precision.generation`: fp32 under `auto`).
    Autocast caches each weight's bf16 copy for the whole region, but not under `inference_mode`
    (it then re-casts every weight at every forward pass, slower than fp32), so an autocast region
    runs under `no_grad` instead.
    """
    precision = getattr(lm, "precision", None)
    if precision is not None and generation:
        precision = precision.generation
    if precision is None or precision.autocast is None:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.no_grad())
    stack.enter_context(precision.context(lm.device))
    return stack


@contextlib.contextmanager
def _scoring_head(lm):
    """The LM head hooks of one log-likelihood call; yields the row selection (None: full logits).

    Decoder-only models that take `logits_to_keep` get `LabelPositionsHead`, inert until a batch sets
    its mask. Under autocast the head also runs in fp32 (`Fp32Head`: bf16 logits tie near-equal
    options), registered after the row selection so its matmul runs on the kept rows only. Generation
    keeps the plain head: the hooks are removed on the way out.
    """
    positions = None if lm.is_seq2seq else LabelPositionsHead.attach(lm.model)
    fp32 = None
    try:
        fp32 = Fp32Head.attach(lm.model) if getattr(lm, "autocast", None) is not None else None
        yield positions
    finally:
        for hook in (fp32, positions):
            if hook is not None:
                hook.remove()


def _batches(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def _greedy_config(lm: LoadedModel, max_new_tokens: int):
    from transformers import GenerationConfig

    tok = lm.tokenizer
    # A fresh config: a checkpoint's own generation_config (sampling, beams, length penalties) must
    # not leak into greedy evaluation.
    return GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, use_cache=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=getattr(lm.model.config, "decoder_start_token_id", None),
    )


@torch.inference_mode()
def generate(lm: LoadedModel, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 16,
             chat: str = "auto", progress: Progress = None, shots: Shots = None,
             truncated: list[int] | None = None) -> list[str]:
    """Greedy completions of `prompts`, in order.

    Args:
        lm: the loaded model.
        prompts: task prompts (chat formatting is applied here when the model has a template).
        max_new_tokens: generation length limit.
        batch_size: prompts per forward pass.
        chat: `auto`, `on` or `off` (see `retain.models.formatting`).
        progress: called with the number of prompts finished after each batch.
        shots: for each prompt, the solved examples placed before it (few-shot); None: zero-shot.
        truncated: when given, the indices of prompts cut from the left to fit the context are appended.

    Raises:
        UserError: `max_new_tokens` leaves no room for a prompt in the model's context.
    """
    if not prompts:
        return []
    tok, model = lm.tokenizer, lm.model
    texts = [format_prompt(tok, p, lm.is_seq2seq, chat, shots[i] if shots else ()) for i, p in enumerate(prompts)]
    # Chat templates already contain the BOS/special tokens they need.
    encoded = _encode(tok, texts, add_special_tokens=True)
    limit = context_length(lm)
    if limit is not None:
        room = limit - max_new_tokens  # prompt tokens that fit with the answer in the context
        if room < 1:
            raise UserError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt in the model's "
                            f"context of {limit} tokens")
        for i, ids in enumerate(encoded):
            if len(ids) > room:
                encoded[i] = _truncate_left(ids, room, tok.bos_token_id)
                if truncated is not None:
                    truncated.append(i)
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
    config = _greedy_config(lm, max_new_tokens)
    out: list[str] = [""] * len(texts)
    # One autocast region for all batches: its cache casts each weight to bf16 once, not every step.
    with _precision(lm, generation=True):
        def run(batch):
            ids, mask = _pad([encoded[i] for i in batch], tok.pad_token_id, left=not lm.is_seq2seq)
            ids, mask = ids.to(lm.device), mask.to(lm.device)
            generated = greedy_decode(lm, ids, mask, max_new_tokens)
            if generated is None:  # a model whose cache cannot drop finished rows
                generated = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
                if not lm.is_seq2seq:
                    generated = generated[:, ids.shape[1]:]
            for i, text in zip(batch, tok.batch_decode(generated, skip_special_tokens=True)):
                out[i] = text.strip()
            if progress:
                progress(len(batch))
        run_batches(_batches(order, batch_size), run, "prompts", out, lambda batch: batch, progress)
    return out


@torch.inference_mode()
def loglikelihood(lm: LoadedModel, requests: Sequence[tuple[str, str]], batch_size: int = 32,
                  chat: str = "auto", progress: Progress = None, shots: Shots = None,
                  truncated: list[int] | None = None) -> list[float]:
    """Summed log-probability (nats) of each continuation given its context, in order.

    Only the continuation is scored: with few-shot contexts, the shots' answers are context.

    Args:
        lm: the loaded model.
        requests: (context, continuation) pairs; the context is a task prompt.
        batch_size: contexts (seq2seq) or sequences (decoder-only) per forward pass.
        chat: chat-template mode for the context.
        progress: called with the number of requests finished after each batch.
        shots: for each request, the solved examples placed before its context; None: zero-shot.
        truncated: when given, the indices of requests cut from the left to fit the context are appended.
    """
    if not requests:
        return []
    contexts = [format_prompt(lm.tokenizer, c, lm.is_seq2seq, chat, shots[i] if shots else ())
                for i, (c, _) in enumerate(requests)]
    formatted = [(ctx, cont) for ctx, (_, cont) in zip(contexts, requests)]
    with _precision(lm), _scoring_head(lm) as positions:
        if lm.is_seq2seq:
            return _loglikelihood_seq2seq(lm, formatted, batch_size, progress)
        return _loglikelihood_causal(lm, formatted, batch_size, progress, truncated, positions)


def _loglikelihood_seq2seq(lm, requests, batch_size, progress) -> list[float]:
    """`requests` hold formatted contexts."""
    from transformers.modeling_outputs import BaseModelOutput

    tok, model = lm.tokenizer, lm.model
    contexts = sorted({c for c, _ in requests})
    ctx_ids = dict(zip(contexts, _encode(tok, contexts)))
    # Continuations score the answer tokens only, without EOS (as lm-evaluation-harness does).
    cont_ids = _encode(tok, [cont for _, cont in requests], add_special_tokens=False)
    by_context: dict[str, list[int]] = {}
    for i, (c, _) in enumerate(requests):
        by_context.setdefault(c, []).append(i)
    ordered = sorted(contexts, key=lambda c: -len(ctx_ids[c]))
    start = model.config.decoder_start_token_id
    out = [0.0] * len(requests)
    def run(batch):
        ctxs = [ordered[j] for j in batch]
        ids, mask = _pad([ctx_ids[c] for c in ctxs], tok.pad_token_id, left=False)
        ids, mask = ids.to(lm.device), mask.to(lm.device)
        encoder_states = encode(model, ids, mask)
        # One decoder row per distinct (context, decoder input): options that differ only in their last
        # token (every single-token option, e.g. positive / negative) share one row and one LM head pass.
        groups: dict[tuple, list[int]] = {}
        for k, c in enumerate(ctxs):
            for i in by_context[c]:
                groups.setdefault((k, start, *cont_ids[i][:-1]), []).append(i)
        keys = list(groups)
        expand = torch.tensor([key[0] for key in keys], device=lm.device)
        decoder_in, _ = _pad([list(key[1:]) for key in keys], tok.pad_token_id, left=False)
        # Right padding of the decoder inputs cannot affect earlier positions: the decoder is causal.
        logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states[expand]),
                       attention_mask=mask[expand], decoder_input_ids=decoder_in.to(lm.device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for r, key in enumerate(keys):
            for i in groups[key]:
                label = torch.tensor(cont_ids[i], device=lm.device)
                out[i] = float(logprobs[r, torch.arange(len(label), device=lm.device), label].sum())
        if progress:
            progress(sum(len(members) for members in groups.values()))
    run_batches(_batches(list(range(len(ordered))), batch_size), run, "contexts", out,
                lambda batch: [i for j in batch for i in by_context[ordered[j]]], progress)
    return out


def _causal_sequences(lm, requests, truncated) -> list[tuple[list[int], int]]:
    """(token ids, number of continuation tokens to score) per request, cut to the model's context."""
    tok = lm.tokenizer
    limit = context_length(lm)
    out = []
    for i, (prompt, continuation) in enumerate(requests):
        whole = prompt + completion_prefix(prompt, False) + continuation
        # Tokenise context and whole text, take the continuation as the tail of the whole: merges at
        # the boundary then follow how the model saw such text (lm-evaluation-harness does the same).
        ctx = tok(prompt)["input_ids"]
        full = tok(whole)["input_ids"]
        n_cont = max(len(full) - len(ctx), 1)
        if limit is not None and len(full) > limit:
            full = _truncate_left(full, limit, tok.bos_token_id)
            if truncated is not None:
                truncated.append(i)
        # The first token has no prediction to score.
        out.append((full, min(n_cont, len(full) - 1)))
    return out


def _scored_logits(model, ids, mask, scored, positions) -> torch.Tensor:
    """Logits (scored positions, vocab) of a right-padded batch, row by row, positions in order."""
    if positions is not None:
        positions.mask = scored
    try:
        logits = model(input_ids=ids, attention_mask=mask).logits
    finally:
        if positions is not None:
            positions.mask = None
    if logits.dim() == 3:  # no row selection on this model: all positions were projected
        # Prompt-learning adapters prepend virtual tokens: the inputs align with the last positions.
        logits = logits[:, logits.shape[1] - scored.shape[1]:][scored]
    if logits.shape[0] != int(scored.sum()):
        raise RuntimeError(f"{logits.shape[0]} logit rows for {int(scored.sum())} scored positions")
    return logits


def _loglikelihood_causal(lm, requests, batch_size, progress, truncated, positions) -> list[float]:
    """`requests` hold formatted contexts; `positions` selects the LM head's rows (None: full logits).

    Requests whose token sequences differ only in their last token share one row, those tokens but the
    last: causal attention makes every position of it the same as in each request's own row, and the
    last token is never an input, only a target. A row scores its last w positions (w: the longest
    continuation among its requests); each request reads the last of them that predict its tokens.
    """
    tok, model = lm.tokenizer, lm.model
    sequences = _causal_sequences(lm, requests, truncated)
    groups: dict[tuple[int, ...], list[int]] = {}  # row (all tokens but the last) -> its requests
    for i, (full, n_cont) in enumerate(sequences):
        if n_cont > 0:  # a one-token sequence has nothing to score: 0 nats
            groups.setdefault(tuple(full[:-1]), []).append(i)
    out = [0.0] * len(sequences)
    unscored = len(sequences) - sum(len(members) for members in groups.values())
    if progress and unscored:
        progress(unscored)
    rows = sorted(groups, key=lambda row: -len(row))
    def run(batch):
        ids, mask = _pad(batch, tok.pad_token_id, left=False)
        widths = [max(sequences[i][1] for i in groups[row]) for row in batch]
        scored = torch.zeros_like(ids, dtype=torch.bool)
        for r, (row, width) in enumerate(zip(batch, widths)):
            scored[r, len(row) - width: len(row)] = True
        ids, mask, scored = ids.to(lm.device), mask.to(lm.device), scored.to(lm.device)
        logits = _scored_logits(model, ids, mask, scored, positions).float()
        # Per scored token: its logit row, its target, and which request (of `members`) it belongs to.
        at, targets, owners, members = [], [], [], []
        end = 0
        for row, width in zip(batch, widths):
            end += width
            for i in groups[row]:
                full, n_cont = sequences[i]
                at += range(end - n_cont, end)
                targets += full[-n_cont:]
                owners += [len(members)] * n_cont
                members.append(i)
        at, targets = torch.tensor(at, device=lm.device), torch.tensor(targets, device=lm.device)
        # log p(target) = logit - logsumexp(logits): the log_softmax entry without its whole-vocab copy.
        picked = logits[at, targets] - torch.logsumexp(logits, dim=-1)[at]
        sums = torch.zeros(len(members), device=lm.device).index_add_(
            0, torch.tensor(owners, device=lm.device), picked)
        for i, value in zip(members, sums.tolist()):
            out[i] = value
        if progress:
            progress(len(members))
    run_batches(_batches(rows, batch_size), run, "rows", out, lambda batch: [i for row in batch for i in groups[row]],
                progress)
    return out
