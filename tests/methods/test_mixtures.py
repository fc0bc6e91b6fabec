"""Training mixtures: exact proportions (multitask, replay), each task with its own prompts, self-replay."""

from __future__ import annotations

from collections import Counter

import pytest

from retain.methods import TrainContext, make_method
from retain.tasks import get_task
from retain.training.config import TrainSettings
from retain.training.data import Sample, samples_from_examples
from retain.training.mixture import counts_for, examples_proportional, mix, proportions


def _ctx(n_target: int = 40, base=None) -> TrainContext:
    task = get_task("toy-ner")
    return TrainContext(base=base, target=task, settings=TrainSettings(seed=5),
                        target_samples=samples_from_examples(task.examples("train", n_target), task.name), out_dir=None)


def test_counts_are_exact_and_follow_the_rates():
    counts = counts_for({"a": 1, "b": 2, "c": 3}, 100)
    assert sum(counts.values()) == 100 and counts == {"a": 17, "b": 33, "c": 50}
    assert examples_proportional({"a": 10, "b": 1000}, cap=100) == pytest.approx({"a": 10 / 110, "b": 100 / 110})


def test_mix_draws_without_replacement_until_a_pool_is_used_up():
    pools = {"a": [Sample(f"a{i}", "x", "a") for i in range(5)], "b": [Sample(f"b{i}", "y", "b") for i in range(50)]}
    out = mix(pools, {"a": 1, "b": 1}, 20, seed=0)
    assert Counter(s.source for s in out) == {"a": 10, "b": 10}
    a_prompts = [s.prompt for s in out if s.source == "a"]
    assert Counter(a_prompts) == {f"a{i}": 2 for i in range(5)}  # each used twice, none three times
    assert len({s.prompt for s in out if s.source == "b"}) == 10
    assert mix(pools, {"a": 1, "b": 1}, 20, seed=0) == out and mix(pools, {"a": 1, "b": 1}, 20, seed=1) != out


def test_multitask_examples_proportional_with_a_cap():
    method = make_method("multitask", {"tasks": ["toy-qa", "toy-sentiment"], "examples_per_task": 100, "cap": 50})
    samples = method.training_samples(_ctx(40))
    assert len(samples) == 40 + 50 + 50
    assert proportions(samples) == pytest.approx({"toy-ner": 40 / 140, "toy-qa": 50 / 140, "toy-sentiment": 50 / 140})
    # Each task keeps its own prompt template.
    by_source = {s.source: s.prompt for s in samples}
    assert by_source["toy-ner"].startswith("Find the named entities")
    assert by_source["toy-qa"].startswith("Context:") and by_source["toy-sentiment"].startswith("Review:")
    # The target's examples are each used exactly once.
    ner = Counter(s.prompt for s in samples if s.source == "toy-ner")
    assert len(ner) == 40 and set(ner.values()) == {1}


def test_multitask_explicit_weights():
    method = make_method("multitask", {"tasks": ["toy-qa", "toy-sentiment"], "examples_per_task": 30,
                                       "weights": {"target": 2, "toy-qa": 1, "toy-sentiment": 1}})
    samples = method.training_samples(_ctx(40))
    assert len(samples) == 80  # the target's 40 examples are half of the mixture
    assert proportions(samples) == pytest.approx({"toy-ner": 0.5, "toy-qa": 0.25, "toy-sentiment": 0.25}, abs=1e-9)


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.5])
def test_replay_ratio_is_the_replay_share(ratio):
    method = make_method("replay", {"ratio": ratio, "sources": ["toy-qa", "toy-summarize"], "examples_per_source": 30})
    samples = method.training_samples(_ctx(40))
    replay = [s for s in samples if s.source.startswith("replay:")]
    assert len(replay) / len(samples) == pytest.approx(ratio, abs=0.01)
    assert Counter(s.prompt for s in samples if s.source == "toy-ner").most_common(1)[0][1] == 1
    if ratio:
        assert {s.source for s in replay} == {"replay:toy-qa", "replay:toy-summarize"}


def test_self_replay_uses_the_base_models_own_greedy_answers(tiny_t5_dir):
    from retain.evaluation.engine import generate
    from retain.models import load_model

    lm = load_model(str(tiny_t5_dir), device="cpu", dtype="float32")
    method = make_method("replay", {"ratio": 0.5, "self_replay": ["toy-qa"], "examples_per_source": 6,
                                    "max_new_tokens": 5})
    samples = method.training_samples(_ctx(6, base=lm))
    replay = [s for s in samples if s.source == "self:toy-qa"]
    assert replay
    prompts = [ex.prompt for ex in get_task("toy-qa").examples("train", 6)]
    expected = dict(zip(prompts, generate(lm, prompts, 5)))
    assert all(s.target == expected[s.prompt] for s in replay)


def test_replay_never_trains_on_test_data(tmp_path):
    from retain.errors import UserError

    test_only = tmp_path / "test.jsonl"
    test_only.write_text('{"id": "1", "instruction": "Say hi", "input": "", "output": "hi"}\n')
    method = make_method("replay", {"ratio": 0.5, "sources": [f"instructions:{test_only}"]})
    with pytest.raises(UserError, match="no 'train' split"):
        method.training_samples(_ctx(4))
