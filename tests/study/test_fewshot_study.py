"""Few-shot prompts in a study: config validation, per-task settings, unchanged zero-shot run keys, and
the few-shot setting in results.json."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from retain.errors import UserError
from retain.study.config import StudyConfig, load_study_config
from retain.study.run import Study, run_study

GOOD = {
    "model": "some/model",
    "target": {"task": "toy-summarize", "train_examples": 16},
    "protect": ["toy-ner", {"task": "toy-sentiment", "fewshot": 3}],
    "methods": ["full"],
}


def write(tmp_path, data) -> str:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_fewshot_on_entries_validates(tmp_path):
    cfg = load_study_config(write(tmp_path, {**GOOD, "target": {**GOOD["target"], "fewshot": 1},
                                             "eval": {"fewshot_seed": 5}}))
    assert cfg.protect[1].fewshot == 3 and cfg.protect[0].fewshot is None
    assert cfg.target.fewshot == 1 and cfg.eval.fewshot_seed == 5


@pytest.mark.parametrize("change, expected", [
    ({"protect": [{"task": "toy-ner", "fewshot": -1}]}, "fewshot"),
    ({"protect": [{"task": "toy-ner", "fewshots": 3}]}, "fewshots"),
    ({"protect": [{"task": "toy-ner", "fewshot": "three"}]}, "fewshot"),
    ({"target": {"task": "toy-summarize", "fewshot": -2}}, "fewshot"),
])
def test_bad_fewshot_names_the_key(tmp_path, change, expected):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(UserError) as e:
        load_study_config(path)
    message = str(e.value)
    assert path in message and expected in message and "\n" not in message


def test_zero_shot_run_keys_are_unchanged(tmp_path):
    """A study without few-shot keys its runs exactly as before, so existing study folders resume."""
    study = Study(StudyConfig(**{**GOOD, "protect": ["toy-ner"]}), tmp_path)
    s = study.settings
    before = {"settings": {"split": s.split, "limit": s.limit, "chat": s.chat},
              "tasks": {n: st.task.identity(s.split, s.limit) for n, st in study.tasks.items()}}
    assert study._eval_identity() == before
    with_shots = Study(StudyConfig(**GOOD), tmp_path)._eval_identity()["tasks"]
    assert "fewshot" in with_shots["toy-sentiment"] and "fewshot" not in with_shots["toy-ner"]


def test_study_evaluates_protected_task_few_shot(tiny_t5_dir, tmp_path):
    config = {**GOOD, "model": str(tiny_t5_dir), "train": {"max_steps": 2, "batch_size": 4, "eval_examples": 4},
              "eval": {"limit": 4, "batch_size": 8, "n_boot": 50, "fewshot_seed": 2}}
    os.environ["RETAIN_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        doc = run_study(StudyConfig(**config), tmp_path / "out", log=lambda _: None, report=False)
    finally:
        os.environ.pop("RETAIN_CACHE_DIR", None)
    tasks = doc["tasks"]
    assert tasks["toy-sentiment"]["fewshot"] == {"k": 3, "seed": 2, "split": "train"}
    assert tasks["toy-ner"]["fewshot"]["k"] == 0 and tasks["toy-summarize"]["fewshot"]["k"] == 0
    assert all(t["truncated"] == 0 for t in tasks.values())
    assert doc["runs"][0]["status"] == "done"
    # The base and the run saw the same prompts: the paired comparison pairs the same example ids.
    base = json.loads((tmp_path / "out" / "base.json").read_text())["outputs"]["toy-sentiment"]
    run = json.loads((tmp_path / "out" / "runs" / "full-s0" / "result.json").read_text())["outputs"]["toy-sentiment"]
    assert base["ids"] == run["ids"]


def test_max_new_tokens_on_an_entry_caps_that_task_and_keys_it(tmp_path):
    """`max_new_tokens` on a study entry changes that task's generation length and its cache identity only."""
    capped = {**GOOD, "protect": [{"task": "toy-ner", "max_new_tokens": 3}, "toy-sentiment"]}
    cfg = load_study_config(write(tmp_path, capped))
    study, plain = Study(cfg, tmp_path), Study(StudyConfig(**{**GOOD, "protect": ["toy-ner", "toy-sentiment"]}),
                                               tmp_path)
    assert study.tasks["toy-ner"].task.max_new_tokens == 3 != plain.tasks["toy-ner"].task.max_new_tokens
    keys, plain_keys = study._eval_identity()["tasks"], plain._eval_identity()["tasks"]
    assert keys["toy-ner"] != plain_keys["toy-ner"] and keys["toy-sentiment"] == plain_keys["toy-sentiment"]
