"""Rolling log-likelihood of whole texts (lm-eval's `loglikelihood_rolling`), batched: perplexity tasks.

Every token of a text is predicted exactly once. The text's tokens (no special tokens) follow one
prefix token (BOS, else EOS, as lm-eval's HFLM does) so that the first token has something to be
conditioned on; a text longer than the model's context is cut into windows that each predict the next
`context` tokens from the `context` tokens before them (lm-eval's `get_rolling_token_windows` with
`context_len=1`). Windows of every text are batched together, longest first, right-padded, and a batch
holds at most `TOKENS_PER_BATCH` tokens (rows times the longest), so that long windows run a few at a
time: a batch's logits take the vocabulary size times 2-4 bytes per token (SmolLM2's 49,152-token
vocabulary at its 8,192-token context, 16 windows at once: 13 GB of bf16 logits). Only the scored
positions of each row are turned into fp32 log-probabilities.

An encoder-decoder model reads each window's context (the prefix token, then the tokens before the
window that it does not predict) in its encoder and is scored on the window's tokens as decoder labels,
as lm-eval's HFLM scores seq2seq models. Texts are tokenised without special tokens (the same as
HFLM with `add_bos_token=False`).

A document's result is ``(nll, tokens)``: its summed negative log-likelihood in nats and the number
of tokens scored, the statistics of the `perplexity` metric family (`retain.evaluation.measured`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from retain.errors import UserError
from retain.evaluation.distributed import run_batches
from retain.evaluation.engine import _pad, _precision, context_length
from retain.models.loading import LoadedModel

DEFAULT_CONTEXT = 2048  # tokens, when the model's config does not say (lm-eval's HFLM default)
TOKENS_PER_BATCH = 8192  # rows x longest row in one forward pass (a longer window runs alone)


def windows(tokens: list[int], prefix: int, context: int) -> list[tuple[list[int], int]]:
    """(input ids, number of trailing positions scored) per window; the targets are the input shifted by one.

    Each window's input is at most `context` tokens; its last `n` next-token predictions are scored.
    """
    if context < 1:
        raise ValueError(f"context must be at least 1, got {context}")
    seq = [prefix] + list(tokens)  # seq[i + 1] is predicted from seq[: i + 1]
    out, done = [], 0  # tokens predicted so far
    while done < len(tokens):
        end = min(len(tokens), done + context)  # predict tokens[done:end], i.e. seq[done + 1: end + 1]
        start = max(0, end - context)  # inputs seq[start:end] (at most `context` of them)
        out.append((seq[start:end + 1], end - done))
        done = end
    return out


def token_batches(lengths: Sequence[int], order: Sequence[int], batch_size: int,
                  budget: int = TOKENS_PER_BATCH) -> list[list[int]]:
    """Consecutive runs of `order` (longest first) with at most `batch_size` rows and at most `budget`
    tokens once padded to the longest; a row longer than `budget` is a batch of its own."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if current and (len(current) == batch_size or max(longest, n) * (len(current) + 1) > budget):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def loglikelihood_rolling(lm: LoadedModel, texts: Sequence[str], batch_size: int = 16,
                          context: int | None = None,
                          progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
    """``(nll, tokens)`` of every text (see the module docstring).

    Args:
        context: the most tokens one forward pass sees (default: the model's `max_position_embeddings`).

    Raises:
        UserError: a tokenizer with neither a BOS nor an EOS token.
    """
    tok = lm.tokenizer
    context = context or context_length(lm) or DEFAULT_CONTEXT
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if prefix is None:
        raise UserError("perplexity tasks need a tokenizer with a BOS or EOS token to condition the first token on")
    encoded = tok(list(texts), add_special_tokens=False)["input_ids"]
    rows = []  # (document, sequence with its target token at the end, scored positions)
    for doc, ids in enumerate(encoded):
        rows += [(doc, seq, n) for seq, n in windows(list(ids), prefix, context)]
    nll = [0.0] * len(texts)
    counts = [len(ids) for ids in encoded]
    left = {doc: 0 for doc in range(len(texts))}
    for doc, _, _ in rows:
        left[doc] += 1
    if progress:  # texts with no tokens are done already
        progress(sum(1 for n in left.values() if n == 0))
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][1]))

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def forward(batch: list[int]) -> tuple[torch.Tensor, list[int]]:
        """Logits of a batch (in the model's precision) and, per row, where its scored positions end."""
        if lm.is_seq2seq:  # encoder: the context; decoder: the window's tokens as labels
            ids, mask = _pad([rows[i][1][:len(rows[i][1]) - rows[i][2]] for i in batch], pad, left=False)
            labels, _ = _pad([rows[i][1][len(rows[i][1]) - rows[i][2]:] for i in batch], -100, left=False)
            with _precision(lm), torch.no_grad():
                logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                                  labels=labels.to(lm.device)).logits
            return logits, [rows[i][2] for i in batch]
        ids, mask = _pad([rows[i][1][:-1] for i in batch], pad, left=False)
        with _precision(lm), torch.no_grad():
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        return logits, [len(rows[i][1]) - 1 for i in batch]

    row_nll = [0.0] * len(rows)
    reported = 0  # documents whose every window this process scored

    def run(batch: list[int]) -> None:
        nonlocal reported
        logits, ends = forward(batch)
        finished = 0
        for r, i in enumerate(batch):
            doc, seq, n = rows[i]
            targets = torch.tensor(seq[len(seq) - n:], device=lm.device)
            logprobs = torch.log_softmax(logits[r, ends[r] - n:ends[r]].float(), dim=-1)
            picked = logprobs.gather(-1, targets[:, None])
            row_nll[i] = float(picked.sum())
            left[doc] -= 1
            finished += left[doc] == 0
        if progress and finished:
            progress(finished)
            reported += finished

    # Shared by the processes of a launch (each its batches); windows are summed afterwards in the
    # one-process order, so a document's total is the same float whoever scored its windows.
    batches = token_batches([len(seq) for _, seq, _ in rows], order, batch_size, TOKENS_PER_BATCH)
    run_batches(batches, run, "windows", row_nll, lambda batch: batch)
    for batch in batches:
        for i in batch:
            nll[rows[i][0]] -= row_nll[i]
    if progress and reported < len({doc for doc, _, _ in rows}):  # documents split between processes
        progress(len({doc for doc, _, _ in rows}) - reported)
    return [(nll[d], counts[d]) for d in range(len(texts))]
