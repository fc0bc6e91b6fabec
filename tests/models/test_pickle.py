"""Pickle is refused everywhere by default: model and adapter weights, checkpoints, any `torch.load`.

Pickle files can run code when loaded; `allow_pickle` (`--allow-pickle`) opts in, and the error says
why. What retain cannot avoid unpickling (the Trainer's optimizer / RNG state on resume) goes through
`torch.load(weights_only=True)`, safe from torch 2.6, the floor in pyproject.toml.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from retain.errors import UserError
from retain.models.loading import LazyModel, load_model
from retain.training.checkpoints import resumable_checkpoint
from tests.cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def adapters(tiny_t5_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(safetensors adapter, the same adapter with only adapter_model.bin)."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("adapters")
    model = load_model(str(tiny_t5_dir)).model
    get_peft_model(model, LoraConfig(r=2, target_modules=["q", "v"], init_lora_weights=False)).save_pretrained(
        root / "safe")
    pickled = root / "pickled"
    shutil.copytree(root / "safe", pickled)
    torch.save(load_file(str(pickled / "adapter_model.safetensors")), pickled / "adapter_model.bin")
    (pickled / "adapter_model.safetensors").unlink()
    return root / "safe", pickled


def _logits(lm) -> torch.Tensor:
    ids = lm.tokenizer(["Name the cat."], return_tensors="pt")
    with torch.no_grad():
        return lm.model(**ids, decoder_input_ids=torch.zeros((1, 2), dtype=torch.long)).logits


def test_pickle_adapter_refused_without_allow_pickle(tiny_t5_dir, adapters, monkeypatch):
    safe, pickled = adapters

    def no_unpickling(*a, **k):
        raise AssertionError("torch.load was called on a pickle the user did not allow")

    with monkeypatch.context() as m:
        m.setattr(torch, "load", no_unpickling)
        for load in (LazyModel, load_model):
            with pytest.raises(UserError, match="allow-pickle") as err:
                load(str(tiny_t5_dir), adapter=str(pickled))
            msg = str(err.value)
            assert str(pickled) in msg and "adapter_model.bin" in msg and "run arbitrary code" in msg
    allowed = load_model(str(tiny_t5_dir), adapter=str(pickled), allow_pickle=True)
    assert torch.equal(_logits(allowed), _logits(load_model(str(tiny_t5_dir), adapter=str(safe))))
    assert LazyModel(str(tiny_t5_dir), adapter=str(pickled), allow_pickle=True).fingerprint == allowed.fingerprint


def test_pickle_adapter_through_the_cli(tiny_t5_dir, adapters, tmp_path, cache_dir, capsys):
    _, pickled = adapters
    args = ["eval", "--model", str(tiny_t5_dir), "--adapter", str(pickled), "--task", "toy-sentiment",
            "--limit", "2", "--out", str(tmp_path / "r.json")]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--allow-pickle" in err and "adapter_model.bin" in err
    assert not (tmp_path / "r.json").exists()
    code, _, err = run_cli([*args, "--allow-pickle"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["model"]["adapter"] == str(pickled)


def test_adapter_folder_checked_like_a_model_folder(tiny_t5_dir, adapters, tmp_path):
    safe, _ = adapters
    no_weights = tmp_path / "no-weights"
    shutil.copytree(safe, no_weights)
    (no_weights / "adapter_model.safetensors").unlink()
    no_config = tmp_path / "no-config"
    shutil.copytree(safe, no_config)
    (no_config / "adapter_config.json").unlink()
    cases = {no_weights: "no weights", no_config: "no adapter_config.json", tmp_path / "missing": "not found"}
    for folder, problem in cases.items():
        for load in (LazyModel, load_model):
            with pytest.raises(UserError, match=problem) as err:
                load(str(tiny_t5_dir), adapter=str(folder))
            assert str(folder) in str(err.value)


def test_pickle_model_error_says_why(tiny_t5_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_t5_dir, folder)
    torch.save({}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    for load in (LazyModel, load_model):
        with pytest.raises(UserError, match=r"pytorch_model\.bin.*run arbitrary code.*--allow-pickle"):
            load(str(folder))


def _checkpoint(root: Path, step: int, *files: str) -> Path:
    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    for name in ("trainer_state.json", *files):
        (ckpt / name).write_bytes(b"{}")
    return ckpt


def test_resume_refuses_a_checkpoint_with_pickle_weights(tmp_path):
    assert resumable_checkpoint(tmp_path / "none") is None
    safe = _checkpoint(tmp_path / "a", 2, "model.safetensors", "optimizer.pt", "rng_state.pth")
    assert resumable_checkpoint(tmp_path / "a") == safe
    adapter = _checkpoint(tmp_path / "b", 2, "adapter_model.safetensors", "optimizer.pt")
    assert resumable_checkpoint(tmp_path / "b") == adapter
    for name in ("pytorch_model.bin", "adapter_model.bin"):
        _checkpoint(tmp_path / name, 3, name, "optimizer.pt")
        with pytest.raises(UserError, match=rf"{re.escape(name)}.*run arbitrary code"):
            resumable_checkpoint(tmp_path / name)


def test_every_torch_load_in_retain_is_weights_only():
    calls = []
    for path in sorted((REPO / "retain").rglob("*.py")):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            end = text.find("\n\n", m.end())
            calls.append((path.name, "weights_only=True" in text[m.end():end]))
    assert all(ok for _, ok in calls), calls


class _Gadget:
    """Unpickling this would call `print` (any callable): what a malicious checkpoint does."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_torch_load_refuses_code_by_default(tmp_path, capsys):
    """The installed torch (>= the pyproject floor) loads weights only unless told otherwise."""
    floor = re.search(r'"torch>=2\.(\d+)', (REPO / "pyproject.toml").read_text())
    assert floor and int(floor.group(1)) >= 6
    torch.save({"x": _Gadget()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        torch.load(tmp_path / "evil.pt")
    assert "unpickled code ran" not in capsys.readouterr().out
