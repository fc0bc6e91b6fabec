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


def test_answers_from_the_cache_serve_a_probe_without_loading_the_model(tiny_llama_dir, counted, cache_dir,
                                                                         tmp_path):
    import json

    from retain.evaluation.cache import EvalCache
    from retain.models.loading import LazyModel

    def task_with_outputs(folder, outputs):  # same prompts, other references: another task, another cache key
        folder.mkdir()
        rows = [{"id": f"i{k}", "instruction": f"Say {w}.", "output": o} for k, (w, o) in
                enumerate(zip(["hi", "yes", "no", "bye"], outputs))]
        (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return replace(get_task(f"instructions:{folder}"), max_new_tokens=6)

    task = task_with_outputs(tmp_path / "task", ["Hi!", "Yes.", "No.", "Bye."])
    probe = task_with_outputs(tmp_path / "probe", ["a", "b", "c", "d"])
    settings, cache = EvalSettings(batch_size=4), EvalCache(cache_dir / "eval")
    first = evaluate_task(load_model(str(tiny_llama_dir), device="cpu"), task, settings, cache)
    assert counted == [4]
    lazy = LazyModel(str(tiny_llama_dir), device="cpu")
    cached = evaluate_task(lazy, task, settings, cache)
    probed = evaluate_task(lazy, probe, settings, cache)
    assert cached.from_cache and not probed.from_cache
    assert probed.predictions == first.predictions and counted == [4]
    assert not lazy.loaded  # neither the cached task nor the probe needed the weights
