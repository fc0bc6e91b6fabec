"""Engine invariants: batched equals unbatched, and log-likelihoods equal a direct computation."""

from __future__ import annotations

import pytest
import torch

from retain.evaluation import engine
from retain.models.loading import load_model

PROMPTS = [
    "Find the named entities: Charlie is the name of the cat.",
    "Review: the soup was cold and the staff were rude.\nIs this review positive or negative?",
    "Context: Anna lives in Paris. Tom works at Globex.\nQuestion: Where does Anna live?\nAnswer:",
    "hi",
    "Summarize the dialogue:\n#Person1#: Shall we meet at the station at five? #Person2#: Yes, see you there.",
]


@pytest.fixture(scope="module", params=["t5", "llama"])
def lm(request, tiny_t5_dir, tiny_llama_dir):
    return load_model(str(tiny_t5_dir if request.param == "t5" else tiny_llama_dir), device="cpu")


def test_generate_batched_equals_unbatched(lm):
    batched = engine.generate(lm, PROMPTS, max_new_tokens=12, batch_size=5)
    single = [engine.generate(lm, [p], max_new_tokens=12, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)  # random weights still produce tokens


def test_generate_respects_max_new_tokens(lm):
    short = engine.generate(lm, PROMPTS[:2], max_new_tokens=1, batch_size=2)
    longer = engine.generate(lm, PROMPTS[:2], max_new_tokens=8, batch_size=2)
    for s, l_ in zip(short, longer):
        assert len(lm.tokenizer(s, add_special_tokens=False)["input_ids"]) <= 1
        assert l_.startswith(s)


def test_loglikelihood_batched_equals_unbatched(lm):
    requests = [(p, c) for p in PROMPTS for c in ("negative", "positive", "PER: Charlie")]
    batched = engine.loglikelihood(lm, requests, batch_size=7)
    single = [engine.loglikelihood(lm, [r], batch_size=1)[0] for r in requests]
    assert torch.allclose(torch.tensor(batched), torch.tensor(single), atol=1e-4)
    assert all(v < 0 for v in batched)


def test_loglikelihood_matches_model_loss(lm):
    """Sum of log-probs equals -(mean token loss x tokens) from the model's own loss."""
    prompt, continuation = PROMPTS[0], "PER: Charlie"
    tok, model = lm.tokenizer, lm.model
    value = engine.loglikelihood(lm, [(prompt, continuation)])[0]
    with torch.no_grad():
        if lm.is_seq2seq:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
            labels = tok(continuation, add_special_tokens=False, return_tensors="pt")["input_ids"]
            loss = model(input_ids=ids, labels=labels).loss
            expected = -loss.item() * labels.shape[1]
        else:
            ctx = tok(prompt)["input_ids"]
            full = tok(prompt + " " + continuation, return_tensors="pt")["input_ids"]
            labels = full.clone()
            labels[:, : len(ctx)] = -100
            loss = model(input_ids=full, labels=labels).loss
            expected = -loss.item() * (full.shape[1] - len(ctx))
    assert value == pytest.approx(expected, abs=1e-3)
