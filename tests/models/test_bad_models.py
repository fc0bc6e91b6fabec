"""A corpus of broken model folders: each is one line naming the file and what is wrong, exit 2,
nothing written (retain eval is the probe: it loads the model after reading the task data)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli_helpers import run_cli


def _json_edit(key, value):
    def edit(folder):
        config = json.loads((folder / "config.json").read_text())
        config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _truncate(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _pickle_only(folder):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _grow_tokenizer(folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens([f"<extra-{i}>" for i in range(500)])
    tok.pad_token = "<extra-499>"  # a token retain uses, with no embedding row
    tok.save_pretrained(folder)


def _other_tokenizer(folder):
    """A tokenizer with a larger vocabulary than the model's embedding (the vocabulary trimmed away)."""
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 100
    (folder / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    for name in list(weights):
        if weights[name].shape[0] == 600:  # the embedding and output rows
            weights[name] = weights[name][:100].clone()
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _corrupt_adapter(folder):
    adapter = folder.parent / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{not json")
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    return adapter


# name: (how to break the copied folder, what the one line must contain)
CASES = {
    "missing weights": (lambda f: (f / "model.safetensors").unlink(), "weights"),
    "truncated safetensors": (_truncate, "model.safetensors"),
    "garbage safetensors": (lambda f: (f / "model.safetensors").write_bytes(b"\x07" * 100), "model.safetensors"),
    "config not JSON": (lambda f: (f / "config.json").write_text("{model_type: llama"), "config.json"),
    "config empty": (lambda f: (f / "config.json").write_text(""), "config.json"),
    "config a list": (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json"),
    "config not UTF-8": (lambda f: (f / "config.json").write_bytes(b'{"model_type": "ll\xe9ma"}'), "config.json"),
    "unknown architecture": (_json_edit("model_type", "no-such-arch"), "no-such-arch"),
    "shapes that do not match the config": (_json_edit("hidden_size", 48), "shape"),
    "config vocabulary smaller than the weights": (_json_edit("vocab_size", 16), "do not match config.json"),
    "tokenizer larger than the vocabulary": (_grow_tokenizer, "pad token has id"),
    "another model's tokenizer": (_other_tokenizer, "belongs to another model"),
    "pickle only": (_pickle_only, "--allow-pickle"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_model_is_one_line_exit_2(name, tiny_llama_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, folder)
    breaker, expected = CASES[name]
    breaker(folder)
    out = tmp_path / "r.json"
    code, _, err = run_cli(["eval", "--model", str(folder), "--task", "toy-ner", "--limit", "1",
                            "--no-cache", "--out", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert expected in lines[0] and str(folder) in lines[0], lines[0]
    assert not out.exists()


def test_corrupt_adapter(tiny_llama_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, folder)
    adapter = _corrupt_adapter(folder)
    code, _, err = run_cli(["eval", "--model", str(folder), "--adapter", str(adapter), "--task", "toy-ner",
                            "--limit", "1", "--no-cache", "--out", str(tmp_path / "r.json")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "adapter_config.json" in lines[0], err


def test_corrupt_gguf(tmp_path, capsys):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\xff" * 60)
    code, _, err = run_cli(["eval", "--model", str(gguf), "--task", "toy-ner", "--limit", "1",
                            "--no-cache", "--out", str(tmp_path / "r.json")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "model.gguf" in lines[0], err


def test_a_hub_id_without_the_hub_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RETAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing of this id is cached
    import huggingface_hub.constants as hub_constants
    import transformers.utils.hub as tf_hub

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(tf_hub, "_is_offline_mode", True, raising=False)
    out = tmp_path / "r.json"
    code, _, err = run_cli(["eval", "--model", "someorg/no-such-model-here", "--task", "toy-ner", "--limit", "1",
                            "--out", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "cannot reach the hub" in lines[0] and "someorg/no-such-model-here" in lines[0]
    assert not out.exists()
