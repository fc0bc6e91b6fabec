"""A corpus of bad study configs: each is one line naming the file and the key or line, exit 2, and
no output folder. Configs are untrusted input (see retain/config.py)."""

from __future__ import annotations

import pytest
import yaml

from retain.config import MAX_BYTES
from retain.errors import UserError
from retain.study.config import load_study_config
from tests.cli_helpers import run_cli

GOOD = {
    "model": "some/model",
    "target": {"task": "toy-summarize", "train_examples": 100},
    "protect": ["toy-ner", {"task": "toy-qa", "tolerance": 0.1}],
    "methods": ["full", {"method": "wise-ft", "of": "full", "alphas": [0.5]}],
}


def good_with(**change) -> bytes:
    return yaml.safe_dump({**GOOD, **change}).encode()


BOMB = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi")) + good_with()

CASES = {
    "negative seed": (good_with(seeds=[-1]), "seeds"),
    "seed too large": (good_with(seeds=[2**40]), "seeds"),
    "repeated seed": (good_with(seeds=[0, 0]), "seeds"),
    "infinite budget": (good_with(budget={"max_drop": float("inf")}), "max_drop"),
    "nan budget": (good_with(budget={"max_drop": float("nan")}), "max_drop"),
    "budget above the metric range": (good_with(budget={"max_drop": 5}), "max_drop"),
    "tolerance above the metric range": (good_with(protect=[{"task": "toy-ner", "tolerance": 2}]), "tolerance"),
    "repeated alpha": (good_with(methods=["full", {"method": "wise-ft", "of": "full", "alphas": [0.5, 0.5]}]),
                       "alphas"),
    "unknown device": (good_with(device="gpu0"), "device"),
    "unknown dtype": (good_with(dtype="float64"), "dtype"),
    "unknown chat mode": (good_with(eval={"chat": "bogus"}), "chat"),
    "unknown split": (good_with(eval={"split": "tset"}), "split"),
    "absurd bootstrap": (good_with(eval={"n_boot": 10**9}), "n_boot"),
    "negative fewshot": (good_with(protect=[{"task": "toy-ner", "fewshot": -1}]), "fewshot"),
    "fewshot for the whole study": (good_with(eval={"fewshot": 3}), "per task"),
    "zero batch size": (good_with(eval={"batch_size": 0}), "batch_size"),
    "zero max_new_tokens": (good_with(protect=[{"task": "toy-ner", "max_new_tokens": 0}]), "max_new_tokens"),
    "duplicate key": (b"model: a/b\n" + good_with(), "'model' appears twice"),
    "duplicate nested key": (b"budget:\n  max_drop: 0.1\n  max_drop: 0.2\n" + good_with(), "max_drop"),
    "UTF-16": (good_with().decode().encode("utf-16"), "UTF-16"),
    "invalid UTF-8": (b"name: caf\xe9\n" + good_with(), "study.yaml:1: not valid UTF-8"),
    "alias bomb": (BOMB, "alias"),
    "too deep": (b"[" * 5000 + b"]" * 5000 + b"\n", "deep"),
    "a list at the top": (b"- model: x\n", "mapping"),
    "a path as run name": (good_with(methods=[{"method": "full", "name": "../x"}]), "run name"),
    "tab indentation": (b"model: x\ntarget:\n\ttask: y\n", "study.yaml:3: invalid YAML"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_is_one_line_exit_2_nothing_written(name, tmp_path, capsys):
    raw, expected = CASES[name]
    config, out = tmp_path / "study.yaml", tmp_path / "out"
    config.write_bytes(raw)
    with pytest.raises(UserError) as e:
        load_study_config(config)
    assert str(config) in str(e.value) and expected in str(e.value) and "\n" not in str(e.value)
    code, stdout, stderr = run_cli(["study", str(config), "--out", str(out)], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and expected in lines[0], stderr
    assert not out.exists()


def test_too_large_a_file_is_refused_before_parsing(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_bytes(good_with() + b"#" * MAX_BYTES)
    with pytest.raises(UserError, match="too large"):
        load_study_config(config)


ALIASES = b"""model: some/model
target: toy-summarize
protect: [toy-ner]
train: &shared {epochs: 2, batch_size: 4}
methods:
  - method: full
    train: *shared
  - method: l2sp
    train: {<<: *shared, batch_size: 8}
"""


@pytest.mark.parametrize("raw, check", [
    (b"\xef\xbb\xbf" + good_with(), lambda c: c.model == "some/model"),             # UTF-8 with a BOM
    (good_with(name="no"), lambda c: c.name == "no"),                               # YAML 1.2: `no` is text
    (ALIASES, lambda c: c.methods[0].train == {"epochs": 2, "batch_size": 4}
     and c.methods[1].train == {"epochs": 2, "batch_size": 8}),                     # anchors and merge keys
])
def test_accepted_forms(raw, check, tmp_path):
    config = tmp_path / "study.yaml"
    config.write_bytes(raw)
    assert check(load_study_config(config))


def test_a_missing_model_folder_writes_nothing(tmp_path, capsys):
    config, out = tmp_path / "study.yaml", tmp_path / "out"
    config.write_bytes(good_with(model=str(tmp_path / "no-such-model")))
    code, _, stderr = run_cli(["study", str(config), "--out", str(out)], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "no-such-model" in lines[0], stderr
    assert not out.exists()
