"""Training data: samples, tokenisation with completion-only labels, and dynamic-padding batches.

The loss is computed on the completion only:

- decoder-only: `input_ids = prompt + sep + target + EOS`, where `sep` is one space unless the prompt
  is empty or ends in whitespace. Prompt positions get label -100 (ignored). Prompt and completion
  are tokenised separately and concatenated, so the boundary is exact and the prompt is tokenised
  the same way the evaluation engine tokenises it before generating. Prompts go through
  `retain.models.formatting` (chat template for chat models), exactly as in evaluation.
- seq2seq: `input_ids = prompt` (as the tokenizer encodes it, EOS included for T5), `labels =
  target + EOS`; the collator builds `decoder_input_ids` by shifting the labels right.

Batches are padded to their longest member only (dynamic padding), never to a fixed maximum, and a
length-grouped sampler puts examples of similar length together, so little is padding. The sampler's
order depends only on (seed, epoch), so a run resumed from a checkpoint sees the same batches as an
uninterrupted one (transformers' own `LengthGroupedSampler` draws from the global RNG and does not).
"""

from __future__ import annotations

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


def real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding tokens in a batch: encoder/decoder-only inputs plus seq2seq decoder targets."""
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
        batch_size: examples per optimizer step (micro-batch size times accumulation steps).
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
