"""Decoder-only scoring: requests that differ only in their last token share one forward row, and the LM
head projects only the scored positions; every value still equals one full-logits row per request."""

from __future__ import annotations

import pytest
import torch

from retain.evaluation import engine
from retain.models import device as dev
from retain.models.heads import LabelPositionsHead
from retain.models.loading import load_model

CONTEXTS = ["Review: the soup was cold.\nIs this review positive or negative?",
            "Review: great staff, lovely room.\nIs this review positive or negative?",
            "Find the named entities: Charlie is the name of the cat."]
# Longer than the shrunken context below: cut from the left.
LONG = "Summarize the dialogue: " + " ".join(f"#Person{i % 2 + 1}#: Anna lives in Paris." for i in range(12))
POSITIONS = 48

REQUESTS = ([(c, o) for c in CONTEXTS for o in ("positive", "negative")]  # single-token options
            + [(CONTEXTS[2], "PER: Charlie"), (CONTEXTS[2], "neutral")]  # multi-token options
            + [(LONG, "positive"), (LONG, "negative"), (LONG, "PER: Anna")]  # truncated
            + [("hi", "positive")])
TRUNCATED = [8, 9, 10]


@pytest.fixture()
def llama(tiny_llama_dir):
    """A fresh tiny Llama (fp32: tests/conftest.py) with a context short enough to cut LONG."""
    lm = load_model(str(tiny_llama_dir), device="cpu")
    lm.model.config.max_position_embeddings = POSITIONS
    return lm


def _reference(lm, requests) -> list[float]:
    """One row per request, logits at every position, log_softmax, gather: the plain way."""
    tok, bos = lm.tokenizer, lm.tokenizer.bos_token_id
    out = []
    for context, option in requests:
        full = tok(context + " " + option)["input_ids"]
        n_cont = len(full) - len(tok(context)["input_ids"])
        if len(full) > POSITIONS:
            full = [bos] + full[len(full) - POSITIONS + 1:] if full[0] == bos else full[len(full) - POSITIONS:]
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([full])).logits[0].float()
        logprobs = torch.log_softmax(logits[:-1], dim=-1)
        picked = logprobs[torch.arange(len(full) - 1), torch.tensor(full[1:])]
        out.append(float(picked[-n_cont:].sum()))
    return out


def _spy(module, record):
    """Calls `record(args, output)` on every forward of `module`; returns the hook handle."""
    return module.register_forward_hook(lambda mod, args, out: record(args, out))


def _single_token(lm, context, option) -> bool:
    tok = lm.tokenizer
    return len(tok(context + " " + option)["input_ids"]) == len(tok(context)["input_ids"]) + 1


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_shared_rows_equal_one_full_logits_row_per_request(llama, batch_size):
    assert all(_single_token(llama, c, o) for c, o in REQUESTS[:6])  # the test means what it says
    truncated, progress = [], []
    values = engine.loglikelihood(llama, REQUESTS, batch_size=batch_size, truncated=truncated,
                                  progress=progress.append)
    assert truncated == TRUNCATED and sum(progress) == len(REQUESTS)
    torch.testing.assert_close(torch.tensor(values), torch.tensor(_reference(llama, REQUESTS)),
                               rtol=0, atol=1e-5)


def test_options_sharing_a_context_share_a_forward_row(llama):
    rows = []
    handle = _spy(llama.model.get_input_embeddings(), lambda args, out: rows.append(args[0].shape[0]))
    try:
        engine.loglikelihood(llama, REQUESTS[:6], batch_size=64)  # 3 contexts x 2 single-token options
        shared = sum(rows)
        rows.clear()
        engine.loglikelihood(llama, [(c, "PER: Charlie") for c in CONTEXTS], batch_size=64)
        distinct = sum(rows)
    finally:
        handle.remove()
    assert shared == len(CONTEXTS) < len(REQUESTS[:6])
    assert distinct == len(CONTEXTS)  # options that differ before their last token do not share


def test_the_head_projects_only_the_scored_positions(llama):
    tok = llama.tokenizer
    requests = REQUESTS[:6] + [(CONTEXTS[0], "PER: Charlie")]
    n_multi = len(tok(CONTEXTS[0] + " PER: Charlie")["input_ids"]) - len(tok(CONTEXTS[0])["input_ids"])
    shapes, positions = [], []
    head = _spy(llama.model.get_output_embeddings(), lambda args, out: shapes.append(tuple(args[0].shape)))
    body = _spy(llama.model.get_input_embeddings(), lambda args, out: positions.append(args[0].numel()))
    try:
        values = engine.loglikelihood(llama, requests, batch_size=64)
    finally:
        head.remove()
        body.remove()
    hidden = llama.model.config.hidden_size
    # One position per single-token row, the whole continuation for the multi-token one; never a 3-D batch.
    assert shapes == [(len(CONTEXTS) + n_multi, hidden)]
    assert shapes[0][0] < positions[0] // 4
    torch.testing.assert_close(torch.tensor(values), torch.tensor(_reference(llama, requests)),
                               rtol=0, atol=1e-5)
    assert not llama.model.get_output_embeddings()._forward_pre_hooks  # the selection is removed


def test_models_without_logits_to_keep_keep_full_logits(llama, monkeypatch):
    monkeypatch.setattr(LabelPositionsHead, "attach", classmethod(lambda cls, model: None))
    dims = []
    handle = _spy(llama.model.get_output_embeddings(), lambda args, out: dims.append(args[0].dim()))
    try:
        values = engine.loglikelihood(llama, REQUESTS, batch_size=3)
    finally:
        handle.remove()
    assert dims and set(dims) == {3}
    torch.testing.assert_close(torch.tensor(values), torch.tensor(_reference(llama, REQUESTS)),
                               rtol=0, atol=1e-5)


def test_under_autocast_the_head_runs_in_fp32_on_the_scored_rows(tiny_llama_dir, monkeypatch):
    monkeypatch.setenv(dev.ENV, "1")
    lm = load_model(str(tiny_llama_dir), device="cpu")
    assert lm.autocast == torch.bfloat16
    seen = []
    head = lm.model.get_output_embeddings()
    handle = _spy(head, lambda args, out: seen.append((tuple(args[0].shape), args[0].dtype, out.dtype,
                                                       torch.is_autocast_enabled("cpu"))))
    try:
        values = engine.loglikelihood(lm, REQUESTS[:6], batch_size=64)
    finally:
        handle.remove()
    assert seen == [((len(CONTEXTS), lm.model.config.hidden_size), torch.float32, torch.float32, False)]
    assert not head._forward_pre_hooks and not head._forward_hooks and "forward" not in vars(head)
    assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv(dev.ENV, "0")
    reference = _reference(load_model(str(tiny_llama_dir), device="cpu"), REQUESTS[:6])
    assert max(abs(a - b) for a, b in zip(values, reference)) < 0.5  # bf16 body: close, not equal
