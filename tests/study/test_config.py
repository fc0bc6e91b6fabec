"""Study config validation: every mistake is one line naming the file and the key."""

from __future__ import annotations

import pytest
import yaml

from retain.errors import UserError
from retain.study.config import load_study_config

GOOD = {
    "model": "some/model",
    "target": {"task": "toy-summarize", "train_examples": 100},
    "protect": ["toy-ner", {"task": "toy-qa", "tolerance": 0.1}],
    "methods": ["full", {"method": "lora", "options": {"r": 4}},
                {"method": "wise-ft", "of": "full", "alphas": [0.5]}],
}


def write(tmp_path, data) -> str:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_good_config_with_shorthands(tmp_path):
    cfg = load_study_config(write(tmp_path, GOOD))
    assert cfg.target.task == "toy-summarize"
    assert [p.task for p in cfg.protect] == ["toy-ner", "toy-qa"]
    assert cfg.protect[1].tolerance == 0.1
    assert [m.run_name for m in cfg.methods] == ["full", "lora", "wise-ft"]
    assert cfg.budget.max_drop == 0.05 and cfg.seeds == [0]


@pytest.mark.parametrize("change, expected", [
    ({"modell": "x"}, "modell"),
    ({"methods": ["full", "fulll"]}, "fulll"),
    ({"methods": [{"method": "lora", "options": {"rank": 4}}]}, "rank"),
    ({"methods": [{"method": "lora", "options": {"r": 0}}]}, "r"),
    ({"methods": ["full", {"method": "wise-ft", "of": "nope", "alphas": [0.5]}]}, "nope"),
    ({"methods": ["full", {"method": "wise-ft", "of": "full", "alphas": [1.5]}]}, "alphas"),
    ({"methods": ["full", "full"]}, "full"),
    ({"budget": {"max_drop": -1}}, "max_drop"),
    ({"protect": []}, "protect"),
    ({"train": {"learning_rat": 1e-3}}, "learning_rat"),
    ({"eval": {"limit": 0}}, "limit"),
])
def test_bad_config_names_the_key(tmp_path, change, expected):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(UserError) as e:
        load_study_config(path)
    message = str(e.value)
    assert path in message and expected in message
    assert "\n" not in message


def test_yaml_syntax_error_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml"):
        load_study_config(str(p))
