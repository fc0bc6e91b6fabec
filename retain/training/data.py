"""Training data: samples, tokenisation with completion-only labels, and dynamic-padding batches.

The loss is computed on the completion only:

- decoder-only: `input_ids = prompt + sep + target + EOS`, where `sep` is one space unless the prompt
  is empty or ends in whitespace. Prompt positions get label -100 (ignored). Prompt and completion
  are tokenised separately and concatenated, so the boundary is exact and the prompt is tokenised
  the same way the evaluation engine tokenises it before generating. Prompts go through
  `retain.models.formatting` (chat template for chat models), exactly as in evaluation.
- seq2seq: `input_ids = prompt` (as the tokenizer encodes it, EOS included for T5), `labels =
  target + EOS`; the collator builds `decoder_input_ids` by shifting the labels right.

Batches:

- decoder-only (`PackingCollator`, the default): a batch's examples are packed into rows of up to
  `max_seq_length` tokens (`pack_rows`: nearly even rows, as few as pay for themselves), one after another, with `position_ids` restarting
  at 0 for each example and no attention mask. transformers reads the restarts as packed sequences
  and builds a block-diagonal causal mask (`masking_utils.find_packed_sequence_indices`), so no token
  attends across examples; each example's first label is -100 (nothing predicts it, as in a padded
  row). Only the rows' tails are padding, and the loss and its gradient equal those of the padded batch
  (tested). `packing_honoured` checks a model really builds that mask before packing is used.
- seq2seq, or with packing off (`Collator`): padded to the batch's longest member only (dynamic
  padding), never to a fixed maximum.

A length-grouped sampler puts examples of similar length together, so little is padding. The
sampler's order depends only on (seed, epoch), so a run resumed from a checkpoint sees the same batches
as an uninterrupted one (transformers' own `LengthGroupedSampler` draws from the global RNG and does not).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from retain.errors import UserError

IGNORE = -100  # label value ignored by the loss (PyTorch's cross_entropy default ignore_index)


@dataclass(frozen=True)
class Sample:
    """One training pair and where it came from.

    Attributes:
        prompt: model input, already rendered by its task's prompt template.
        target: the completion to learn.
        source: the task (or replay source) it came from; used to report mixture proportions.
    """

    prompt: str
    target: str
    source: str


def samples_from_examples(examples: Iterable, source: str) -> list[Sample]:
    """`Sample`s from task `Example`s (prompt and canonical target)."""
    return [Sample(ex.prompt, ex.target, source) for ex in examples]


class Encoder:
    """Tokenises samples into `input_ids` + `labels` for one model architecture.

    Args:
        tokenizer: the model's tokenizer (must have an EOS token).
        is_seq2seq: encoder-decoder (True) or decoder-only (False).
        max_source_length: prompt tokens kept.
        max_target_length: target tokens kept, EOS included.
        chat: chat-template mode (`auto`, `on`, `off`), as in `retain.models.formatting`.
    """

    def __init__(self, tokenizer, is_seq2seq: bool, max_source_length: int = 512, max_target_length: int = 128,
                 chat: str = "auto"):
        from retain.models.formatting import uses_chat_template

        uses_chat_template(tokenizer, is_seq2seq, chat)  # validates `chat`
        self.chat = chat
        if tokenizer.eos_token_id is None:
            raise UserError("the tokenizer has no EOS token; cannot mark the end of training targets")
        self.tok = tokenizer
        self.is_seq2seq = is_seq2seq
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.eos = tokenizer.eos_token_id
        # Some tokenizers (T5's, or ours with append_eos) append EOS to every text. A decoder-only
        # prompt must not end with EOS: the model would learn to continue after "end of text".
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        self._appends_eos = bool(probe) and probe[-1] == self.eos
        bos = tokenizer.bos_token_id
        self._bos_first = bos is not None and bool(probe) and probe[0] == bos

    def _target_ids(self, text: str) -> list[int]:
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        return ids[: self.max_target_length - 1] + [self.eos]

    def encode(self, sample: Sample) -> dict[str, list[int]]:
        """Token ids and labels of one sample (labels are -100 wherever no loss is wanted)."""
        from retain.models.formatting import completion_prefix, format_prompt

        text = format_prompt(self.tok, sample.prompt, self.is_seq2seq, self.chat)
        if self.is_seq2seq:
            src = self.tok(text, truncation=True, max_length=self.max_source_length)["input_ids"]
            return {"input_ids": src, "labels": self._target_ids(sample.target)}
        prompt = self.tok(text, add_special_tokens=True)["input_ids"]
        if self._appends_eos and prompt and prompt[-1] == self.eos:
            prompt = prompt[:-1]
        if len(prompt) > self.max_source_length:
            # Keep the end of the prompt (next to the answer) and the BOS token, if any.
            keep = self.max_source_length - (1 if self._bos_first else 0)
            prompt = ([prompt[0]] if self._bos_first else []) + prompt[-keep:]
        target = self._target_ids(completion_prefix(text, False) + sample.target)
        return {"input_ids": prompt + target, "labels": [IGNORE] * len(prompt) + target}

    def encode_all(self, samples: Sequence[Sample]) -> list[dict[str, list[int]]]:
        return [self.encode(s) for s in samples]


def shift_right(labels: torch.Tensor, start_id: int, pad_id: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: `[start] + labels[:-1]`, with ignored positions as pad."""
    out = labels.new_full(labels.shape, pad_id)
    out[:, 1:] = labels[:, :-1]
    out[:, 0] = start_id
    return out.masked_fill(out == IGNORE, pad_id)


class Collator:
    """Pads a list of encoded samples to the batch's longest (right padding).

    Args:
        pad_id: the tokenizer's pad token id.
        decoder_start_id: seq2seq only: the decoder start token (T5: the pad id); None for decoder-only.
        pad_to_multiple_of: round padded lengths up (8 helps GPU tensor cores); None for exact.
    """

    def __init__(self, pad_id: int, decoder_start_id: int | None = None, pad_to_multiple_of: int | None = None):
        self.pad_id = pad_id
        self.decoder_start_id = decoder_start_id
        self.multiple = pad_to_multiple_of

    def _width(self, seqs: list[list[int]]) -> int:
        width = max(len(s) for s in seqs)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        return width

    def _pad(self, seqs: list[list[int]], value: int) -> torch.Tensor:
        width = self._width(seqs)
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        labels = [f["labels"] for f in features]
        batch = {
            "input_ids": self._pad(ids, self.pad_id),
            "attention_mask": self._pad([[1] * len(s) for s in ids], 0),
            "labels": self._pad(labels, IGNORE),
        }
        if self.decoder_start_id is not None:
            # No decoder mask needed: padding is on the right and the decoder is causal, so real
            # positions never attend to it, and padded positions carry no loss.
            batch["decoder_input_ids"] = shift_right(batch["labels"], self.decoder_start_id, self.pad_id)
        return batch


REAL_TOKENS = "real_tokens"  # packed batches carry their count of real tokens (removed before the forward)


def pack_rows(lengths: Sequence[int], capacity: int, attention_span: float | None = None) -> list[list[int]]:
    """Example indices per row: `lengths` packed into rows of at most `capacity` tokens.

    For each candidate number of rows k (from the fewest that can fit to one row per example), the
    examples are spread over k rows longest first, each into the row with the fewest tokens so far
    (rows come out nearly even, so little of them is padding). Without `attention_span`, the fewest
    rows win. With it, the layout computing the least wins: a row of width W costs W positions for
    the matmuls plus attention over W keys per position, which a dense block-diagonal mask computes in
    full, so cost = rows * W * (1 + W / attention_span) (see `attention_span`). One row per example
    (plain padding) is always a candidate, so packing never costs more than padding.
    An example longer than `capacity` gets a row of its own.
    """
    n = len(lengths)
    if n == 0:
        return []
    limit = max(capacity, max(lengths))
    order = sorted(range(n), key=lambda i: (-lengths[i], i))
    best, best_cost = None, None
    for k in range(max(1, -(-sum(lengths) // limit)), n + 1):
        rows, used = [[] for _ in range(k)], [0] * k
        for i in order:
            r = min(range(k), key=lambda r: (used[r], r))
            rows[r].append(i)
            used[r] += lengths[i]
        width = max(used)
        if width > limit:
            continue
        if attention_span is None:
            return rows
        cost = k * width * (1 + width / attention_span)
        if best_cost is None or cost < best_cost:
            best, best_cost = rows, cost
    return best


def attention_span(config) -> float | None:
    """Row width at which a decoder layer's attention costs as much as its matmuls, from the config.

    Per token and layer, the projections and MLP cost about 2 * hidden * (2 * hidden + 2 * kv_dim + 3 *
    intermediate) FLOPs and attention over W keys about 4 * hidden * W (scores and weighted sum), so
    the ratio is W / span with span = (2 * hidden + 2 * kv_dim + 3 * intermediate) / 2. SmolLM2-135M:
    about 3,000 tokens. None when the config lacks the sizes, or when attention is a varlen kernel
    (flash attention) that never computes across packed examples: then only positions count.
    """
    if str(getattr(config, "_attn_implementation", "") or "").startswith("flash"):
        return None
    hidden = getattr(config, "hidden_size", None)
    inter = getattr(config, "intermediate_size", None)
    heads = getattr(config, "num_attention_heads", None)
    if not all(isinstance(v, int) and v > 0 for v in (hidden, inter, heads)):
        return None
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return (2 * hidden + 2 * kv_heads * head_dim + 3 * inter) / 2


class PackingCollator:
    """Packs a decoder-only batch into rows of up to `max_length` tokens (see the module docstring).

    Returns `input_ids`, `labels`, `position_ids` (restarting at 0 for every example and for the
    padding at a row's end, which thus forms a sequence of its own that nothing attends to) and the
    number of real tokens under `REAL_TOKENS`; no `attention_mask`, which would turn packing off.

    Args:
        pad_id: the tokenizer's pad token id.
        max_length: most tokens per row.
        attention_span: the model's `attention_span`: rows are laid out to compute the least (see
            `pack_rows`); None: the fewest rows.
    """

    def __init__(self, pad_id: int, max_length: int, attention_span: float | None = None):
        self.pad_id = pad_id
        self.max_length = max_length
        self.attention_span = attention_span

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = pack_rows([len(f["input_ids"]) for f in features], self.max_length, self.attention_span)
        width = max(sum(len(features[i]["input_ids"]) for i in row) for row in rows)
        ids, labels, positions = [], [], []
        for row in rows:
            r_ids, r_labels, r_pos = [], [], []
            for i in row:
                seq, lab = features[i]["input_ids"], features[i]["labels"]
                r_ids += seq
                r_labels += [IGNORE] + lab[1:]  # the previous example's last position must not predict it
                r_pos += range(len(seq))
            pad = width - len(r_ids)
            ids.append(r_ids + [self.pad_id] * pad)
            labels.append(r_labels + [IGNORE] * pad)
            positions.append(r_pos + list(range(pad)))
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long),
                "position_ids": torch.tensor(positions, dtype=torch.long),
                REAL_TOKENS: torch.tensor(sum(len(f["input_ids"]) for f in features))}


@torch.no_grad()
def packing_honoured(model, vocab_size: int) -> bool:
    """Whether `model` keeps packed examples apart: logits of a packed pair equal those of each alone.

    Models whose attention is built by transformers' masking utilities from `position_ids` pass;
    others (custom code, prompt-learning adapters that prepend virtual tokens) fail or raise, and
    are trained with padded batches instead. Costs two forward passes over 12 tokens.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        gen = torch.Generator().manual_seed(0)
        a = torch.randint(3, max(vocab_size, 4), (7,), generator=gen)
        b = torch.randint(3, max(vocab_size, 4), (5,), generator=gen)
        ids = torch.cat([a, b])[None].to(device)
        positions = torch.cat([torch.arange(7), torch.arange(5)])[None].to(device)
        with warnings.catch_warnings():  # e.g. peft's "position ids are not supported": the answer is no
            warnings.simplefilter("ignore")
            packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits.float()
            alone = model(input_ids=b[None].to(device), use_cache=False).logits.float()
        if packed.shape[1] != 12 or alone.shape[1] != 5:
            return False
        scale = float(alone.abs().max()) or 1.0
        return bool((packed[0, 7:] - alone[0]).abs().max() <= 1e-4 * max(scale, 1.0))
    except Exception:  # noqa: BLE001  any failure means: do not pack this model
        return False
    finally:
        model.train(was_training)


def real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding tokens in a batch: encoder/decoder-only inputs plus seq2seq decoder targets."""
    if REAL_TOKENS in batch:
        return int(batch[REAL_TOKENS])
    n = int(batch["attention_mask"].sum())
    if "decoder_input_ids" in batch:
        n += int((batch["labels"] != IGNORE).sum())
    return n


def padded_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Token positions computed in a batch, padding included (same parts as `real_tokens`)."""
    n = batch["input_ids"].numel()
    if "decoder_input_ids" in batch:
        n += batch["decoder_input_ids"].numel()
    return n


class EncodedDataset(torch.utils.data.Dataset):
    """A list of encoded samples (the Trainer's length-grouped sampler reads `input_ids` lengths)."""

    def __init__(self, items: list[dict[str, list[int]]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


class SeededLengthGroupedSampler(torch.utils.data.Sampler):
    """Length-grouped order (shuffled mega-batches sorted by length) drawn from (seed, epoch).

    Same grouping as transformers' `LengthGroupedSampler`; the Trainer calls `set_epoch` at the
    start of every epoch, including the epoch a resumed run restarts in.

    Args:
        lengths: tokens per example.
        batch_size: examples per optimizer step (micro-batch size x accumulation steps x processes:
            the order depends on the examples per step, not on how processes split them).
        seed: the data seed.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
