"""`retain init-model`: a tiny T5 from the real flan-t5-small config and tokenizer, loadable and usable."""

from __future__ import annotations

import json

import pytest

from retain.cli import main
from retain.models.loading import load_model
from tests.conftest import FLAN_T5_CONFIG, needs_flan_config


@needs_flan_config
def test_init_model_tiny_from_flan_config(tmp_path, capsys):
    out = tmp_path / "m"
    with pytest.raises(SystemExit) as e:
        main(["init-model", "--config", str(FLAN_T5_CONFIG), "--tiny", "--out", str(out), "--set", "num_heads=2"])
        raise SystemExit(0)
    assert (e.value.code or 0) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["d_model"] == 64 and cfg["num_layers"] == 2 and cfg["num_heads"] == 2
    assert cfg["vocab_size"] == json.loads((FLAN_T5_CONFIG / "config.json").read_text())["vocab_size"]
    lm = load_model(str(out))
    assert lm.is_seq2seq and lm.tokenizer("Charlie is the cat").input_ids[-1] == lm.tokenizer.eos_token_id


def test_init_model_without_config_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["init-model", "--config", str(tmp_path), "--out", str(tmp_path / "m")])
    assert e.value.code == 2 and "config.json" in capsys.readouterr().err
