"""Out of memory in evaluation: the batch halves and evaluation goes on, with the same answers."""

from __future__ import annotations

import logging

import pytest
import torch

from retain.errors import UserError
from retain.evaluation import engine
from retain.models.loading import load_model

PROMPTS = ["EU rejects German call", "Peter lives in Paris", "Hello world", "a", "Bonn and Berlin", "x y z"]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_model(str(tiny_llama_dir), device="cpu")


def _fails_above(monkeypatch, name: str, rows: int, error=torch.OutOfMemoryError):
    real = getattr(engine, name)
    seen = []

    def patched(model_or_lm, ids, *args, **kwargs):
        seen.append(ids.shape[0])
        if ids.shape[0] > rows:
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model_or_lm, ids, *args, **kwargs)

    monkeypatch.setattr(engine, name, patched)
    return seen


def test_generation_halves_the_batch_and_gives_the_same_answers(llama, monkeypatch, caplog):
    expected = engine.generate(llama, PROMPTS, 8, batch_size=2)
    seen = _fails_above(monkeypatch, "greedy_decode", 2)
    with caplog.at_level(logging.WARNING):
        got = engine.generate(llama, PROMPTS, 8, batch_size=8)
    assert got == expected
    assert seen[0] == 6 and max(seen[1:]) <= 3 and sum(s for s in seen if s <= 2) == 6
    assert any("out of memory on a batch of 6 prompts" in r.getMessage() for r in caplog.records)


def test_scoring_halves_too(llama, monkeypatch):
    requests = [(p, " yes") for p in PROMPTS] + [(p, " no") for p in PROMPTS]
    expected = engine.loglikelihood(llama, requests, batch_size=1)
    _fails_above(monkeypatch, "_scored_logits", 1, error=lambda m: RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    got = engine.loglikelihood(llama, requests, batch_size=16)
    assert got == pytest.approx(expected, abs=1e-5)


def test_one_prompt_that_does_not_fit_is_one_line(llama, monkeypatch):
    _fails_above(monkeypatch, "greedy_decode", 0)
    with pytest.raises(UserError, match="even at batch size 1"):
        engine.generate(llama, PROMPTS[:2], 8, batch_size=2)


def test_other_errors_are_not_swallowed(llama, monkeypatch):
    _fails_above(monkeypatch, "greedy_decode", 0, error=ValueError)
    with pytest.raises(ValueError):
        engine.generate(llama, PROMPTS[:2], 8, batch_size=2)
