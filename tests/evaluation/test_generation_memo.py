"""One model answers a prompt once: tasks with the same prompts share greedy answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from retain.evaluation import engine
from retain.evaluation.runner import EvalSettings, evaluate_task
from retain.models.loading import load_model
from retain.tasks import get_task


@pytest.fixture()
def counted(monkeypatch):
    calls: list[int] = []
    real = engine.generate

    def generate(lm, prompts, *args, **kwargs):
        calls.append(len(prompts))
        return real(lm, prompts, *args, **kwargs)

    monkeypatch.setattr(engine, "generate", generate)
    return calls


def test_a_probe_with_the_same_prompts_generates_nothing(tiny_llama_dir, counted):
    lm = load_model(str(tiny_llama_dir), device="cpu")
    task = get_task("toy-ner")
    settings = EvalSettings(limit=6, batch_size=4)
    first = evaluate_task(lm, task, settings)
    probe = evaluate_task(lm, replace(task, name="toy-ner-probe"), settings)
    assert counted == [6]
    assert probe.predictions == first.predictions
    assert probe.truncated == first.truncated


def test_other_lengths_prompts_and_weights_generate_again(tiny_llama_dir, counted):
    lm = load_model(str(tiny_llama_dir), device="cpu")
    task = get_task("toy-ner")
    evaluate_task(lm, task, EvalSettings(limit=4, batch_size=4))
    evaluate_task(lm, replace(task, max_new_tokens=task.max_new_tokens + 1), EvalSettings(limit=4, batch_size=4))
    evaluate_task(lm, task, EvalSettings(limit=6, batch_size=4))  # 4 remembered, 2 new
    assert counted == [4, 4, 2]
    fresh = load_model(str(tiny_llama_dir), device="cpu")  # a new LoadedModel starts with nothing remembered
    again = evaluate_task(fresh, task, EvalSettings(limit=6, batch_size=4))
    assert counted == [4, 4, 2, 6]
    assert again.predictions == evaluate_task(lm, task, EvalSettings(limit=6, batch_size=4)).predictions
