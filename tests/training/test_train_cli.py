"""`retain train` end to end on a toy task: the run-folder layout, reuse, and one-line errors."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.cli_helpers import run_cli

TOKENIZER = {"tokenizer.json", "tokenizer_config.json"}



FAST = ["--max-steps", "3", "--train-examples", "12", "--batch-size", "4", "--save-steps", "2",
        "--eval-examples", "4", "--logging-steps", "1", "--no-progress"]


def test_train_lora_writes_the_layout_and_is_reused(tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "lora"
    code, stdout, err = run_cli(["train", "--model", str(tiny_llama_dir), "--task", "toy-ner", "--method", "lora",
                                 "--set", "r=4", "--set", "target_modules=[q_proj, v_proj]", "--seed", "3",
                                 *FAST, "--out", str(out)], capsys)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.yaml", "train_log.jsonl",
            "metadata.json"} | TOKENIZER <= names
    assert "checkpoints" not in names and "model.safetensors" not in names
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["method"]["name"] == "lora" and config["method"]["r"] == 4
    assert config["method"]["target_modules"] == ["q_proj", "v_proj"] and config["settings"]["seed"] == 3
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["base_weights_unchanged"] is True and meta["steps"] == 3
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)] == [1, 2, 3]
    assert "done: 3 steps" in stdout
    assert meta["kept"] == []

    # The saved config.yaml repeats the run; the finished folder is detected, not retrained.
    code, _, err = run_cli(["train", "--config", str(out / "config.yaml"), "--out", str(out)], capsys)
    assert code == 0 and "already holds this finished run" in err


def test_train_full_from_a_config_file(tiny_t5_dir, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(tiny_t5_dir), "target": "toy-ner", "method": {"name": "full"},
                                   "settings": {"max_steps": 2, "train_examples": 8, "batch_size": 4}}))
    out = tmp_path / "full"
    code, _, err = run_cli(["train", "--config", str(cfg), "--eval-examples", "0", "--no-progress",
                            "--out", str(out)], capsys)
    assert code == 0, err
    assert {"config.json", "model.safetensors", "config.yaml", "metadata.json", "train_log.jsonl"} | TOKENIZER \
        <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["settings"]["max_steps"] == 2 and meta["config"]["settings"]["eval_examples"] == 0


def test_keep_at_from_the_command_line(tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", str(tiny_llama_dir), "--task", "toy-ner", *FAST, "--keep-at", "1",
                            "--keep-at", "0.67", "--out", str(out)], capsys)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["settings"]["keep_at"] == [0.67, 1] and [k["step"] for k in meta["kept"]] == [1, 2]
    assert {p.name for p in (out / "steps").iterdir()} == {"step-1", "step-2"}
    assert meta["adapter_path"] is None and meta["model_path"] == str(out)


@pytest.mark.parametrize("args,message", [
    (["--method", "lora", "--set", "r=0"], "r: Input should be greater than 0"),
    (["--method", "lora", "--set", "rnk=4"], "unknown option 'rnk'"),
    (["--method", "nonsense"], "unknown method 'nonsense'"),
    (["--method", "replay", "--set", "ratio=2", "--set", "sources=[toy-qa]"], "ratio"),
    (["--method", "lora", "--set", "r"], "--set expects key=value"),
    (["--batch-size", "0"], "batch_size"),
    (["--task", "toy-ner", "--train-examples", "-3"], "train_examples"),
    (["--keep-at", "2.5"], "keep_at"),
])
def test_bad_input_is_one_line_with_exit_code_2(args, message, tiny_llama_dir, tmp_path, capsys):
    base = ["train", "--model", str(tiny_llama_dir), "--task", "toy-ner", "--out", str(tmp_path / "x")]
    code, _, err = run_cli(base + args, capsys)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert not (tmp_path / "x").exists()


def test_method_help_lists_every_registered_method():
    """The --method help names the methods without importing them (torch) at CLI start-up; keep it in sync."""
    from retain.cli.train import METHODS_HELP
    from retain.methods import method_names

    assert all(name in METHODS_HELP for name in method_names())
