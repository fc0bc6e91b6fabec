"""Bad input fails with one-line `UserError`s before any training starts (before the model loads)."""

from __future__ import annotations

import pytest

from retain.errors import UserError
from retain.methods import make_method
from retain.tasks.base import Example, Task
from retain.training.config import make_settings
from retain.training.loop import train


@pytest.mark.parametrize("name,options,message", [
    ("sgd-magic", {}, "unknown method 'sgd-magic'"),
    ("lora", {"rank": 8}, "unknown option 'rank'"),
    ("lora", {"r": 0}, "r: Input should be greater than 0"),
    ("lora", {"r": -4}, "greater than 0"),
    ("lora", {"dropout": 1.0}, "dropout"),
    ("replay", {"ratio": 1.5, "sources": ["toy-qa"]}, "ratio"),
    ("replay", {"ratio": -0.1, "sources": ["toy-qa"]}, "ratio"),
    ("replay", {"ratio": 1.0, "sources": ["toy-qa"]}, "ratio must be below 1"),
    ("replay", {"ratio": 0.2}, "give replay data"),
    ("multitask", {}, "tasks: Field required"),
    ("multitask", {"tasks": ["toy-qa"], "weights": {"toy-qa": 1.0}}, "weights must name exactly"),
    ("ewc", {"lambda": 1.0}, "tasks: Field required"),
    ("l2sp", {"lambda": -1}, "lambda"),
    ("wise-ft", {"alphas": [0.5, 1.5]}, "alphas must be in [0, 1]"),
    ("ia3", {"not_an_ia3_field": 1}, "unknown option 'not_an_ia3_field'"),
    ("prompt_tuning", {"num_virtual_tokens": "many"}, "prompt_tuning"),
])
def test_bad_method_options(name, options, message):
    with pytest.raises(UserError) as exc:
        make_method(name, options)
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("options,message", [
    ({"batch_size": 0}, "batch_size"), ({"warmup": 1.5}, "warmup"), ({"scheduler": "magic"}, "unknown scheduler"),
    ({"epochs": 0}, "epochs"), ({"precision": "fp8"}, "precision"), ({"learning_rat": 1e-3}, "unknown option"),
])
def test_bad_settings(options, message):
    with pytest.raises(UserError, match=message):
        make_settings(options)


def _task(splits, n=8) -> Task:
    def loader(split, limit):
        return [Example(f"{split}{i}", f"Say {i}", str(i)) for i in range(n)]

    return Task(name="t", family="t", version="1", kind="generate", metric="exact_match", prompt_template="Say {i}",
                max_new_tokens=4, splits=splits, loader=loader)


@pytest.fixture()
def no_model(monkeypatch):
    """Fail the test if a model is loaded: errors must come first."""
    import retain.models

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(retain.models, "load_model", refuse)


@pytest.mark.parametrize("task,message", [
    (_task(("test",)), "has no 'train' split"),
    (_task(("train", "test"), n=0), "has no examples"),
    ("no-such-task", "unknown task"),
])
def test_bad_target_fails_before_the_model_loads(task, message, no_model, tmp_path):
    with pytest.raises(UserError, match=message):
        train("any-model", task, make_method("full"), make_settings({}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unfinished_run_with_another_config_is_refused(no_model, tmp_path):
    from retain.training.config import RunConfig, TrainSettings

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(RunConfig(model="m", target="toy-ner", method={"name": "full"},
                                               settings=TrainSettings(seed=1)).to_yaml())
    with pytest.raises(UserError, match="unfinished run with a different config"):
        train("m", "toy-ner", make_method("full"), make_settings({"seed": 2}), out)
