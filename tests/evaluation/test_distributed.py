"""The engine's batches shared between processes give one process's results exactly, for every request
kind (choices, generation, perplexity) and architecture (the bookkeeping of which outputs a batch
fills, and a perplexity document's windows summed in the one-process order).

Two processes are played in turn in this one process: rank 1 runs its batches and hands its outputs
to the fake gather; rank 0 then runs its own and receives rank 1's. Launches of real processes are
tested in tests/training/test_distributed.py.
"""

from __future__ import annotations

import pytest
import torch

import retain.evaluation.distributed as shared
from retain.evaluation import engine
from retain.evaluation.rolling import loglikelihood_rolling
from retain.models import load_model
from retain.tasks import get_task


def _as_two_processes(monkeypatch, call):
    """`call()` as rank 1 then rank 0 of two processes; rank 0's result, and the progress it reported."""
    parts: list = [{}, None]

    def gather(value):
        parts[me] = value
        return list(parts)

    monkeypatch.setattr(shared, "launched", lambda: True)
    monkeypatch.setattr(shared, "world_size", lambda: 2)
    monkeypatch.setattr(shared, "gather", gather)
    for me in (1, 0):
        monkeypatch.setattr(shared, "rank", lambda: me)
        done: list[int] = []
        result = call(done.append)
    monkeypatch.undo()
    return result, sum(done)


@pytest.fixture()
def models(tiny_t5_dir, tiny_llama_dir):
    torch.manual_seed(0)
    return {"t5": load_model(str(tiny_t5_dir), device="cpu", dtype="float32"),
            "llama": load_model(str(tiny_llama_dir), device="cpu", dtype="float32")}


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_shared_batches_equal_one_process(models, arch, monkeypatch):
    lm = models[arch]
    examples = list(get_task("toy-sentiment").examples("validation", 7))
    requests = [(ex.prompt, choice) for ex in examples for choice in ex.choices]
    prompts = [ex.prompt for ex in examples]

    def score(progress):
        return engine.loglikelihood(lm, requests, batch_size=3, progress=progress)

    def answer(progress):
        return engine.generate(lm, prompts, max_new_tokens=4, batch_size=2, progress=progress)

    def perplexity(progress):  # a short context: long texts become several windows, split between processes
        return loglikelihood_rolling(lm, prompts, batch_size=2, context=6, progress=progress)

    for call, n in ((score, len(requests)), (answer, len(prompts)), (perplexity, len(prompts))):
        one = call(None)
        two, reported = _as_two_processes(monkeypatch, call)
        assert two == one
        assert reported == n  # the main process's progress counts the other's batches too
