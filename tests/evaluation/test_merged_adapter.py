"""Evaluation merges a LoRA adapter into the weights: the same model (logits, greedy answers, fingerprint,
cache entries) without the adapter layers' overhead."""

from __future__ import annotations

import pytest
import torch

from retain.evaluation.runner import EvalSettings, evaluate
from retain.methods import make_method
from retain.models.loading import LazyModel, load_model
from retain.tasks import get_task
from retain.training.loop import train
from tests.training.helpers import fast, logits_of, probe_batch


@pytest.fixture(scope="module")
def adapter(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    # A high rate, so that the adapter's update is far from zero and merging it changes the weights.
    train(str(tiny_llama_dir), "toy-ner", make_method("lora", {"r": 4}), fast(max_steps=4, learning_rate=5e-2), out)
    return out


def test_merged_adapter_is_the_same_model(tiny_llama_dir, adapter):
    plain = load_model(str(tiny_llama_dir), adapter=str(adapter), dtype="float32")
    merged = load_model(str(tiny_llama_dir), adapter=str(adapter), dtype="float32", merge_adapter=True)
    base = load_model(str(tiny_llama_dir), dtype="float32")
    assert hasattr(plain.model, "peft_config") and not hasattr(merged.model, "peft_config")
    assert merged.fingerprint == plain.fingerprint != base.fingerprint
    batch = probe_batch(base.tokenizer, False)
    tuned = logits_of(plain.model, batch)
    assert torch.allclose(logits_of(merged.model, batch), tuned, atol=1e-5)
    assert not torch.allclose(logits_of(base.model, batch), tuned, atol=1e-3)  # the adapter did change it


def test_evaluation_merges_and_answers_as_the_unmerged_model(tiny_llama_dir, adapter):
    settings = EvalSettings(limit=12, batch_size=4, n_boot=50)
    tasks = [get_task("toy-ner"), get_task("toy-sentiment")]
    lazy = LazyModel(str(tiny_llama_dir), adapter=str(adapter), dtype="float32")
    merged = evaluate(lazy, tasks, settings)
    assert not hasattr(lazy.model, "peft_config")  # what evaluation used was merged
    plain = evaluate(load_model(str(tiny_llama_dir), adapter=str(adapter), dtype="float32"), tasks, settings)
    for name in ("toy-ner", "toy-sentiment"):
        assert [e["prediction"] for e in merged["tasks"][name]["examples"]] == \
            [e["prediction"] for e in plain["tasks"][name]["examples"]]
