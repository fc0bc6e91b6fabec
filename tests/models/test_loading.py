"""Model loading: architecture choice, safetensors-only default, fingerprints, adapters."""

from __future__ import annotations

import shutil

import pytest
import torch

from retain.errors import UserError
from retain.models.fingerprint import fingerprint_path, fingerprint_state
from retain.models.loading import LazyModel, load_model


def test_architecture_chosen_from_config(tiny_t5_dir, tiny_llama_dir):
    assert load_model(str(tiny_t5_dir)).is_seq2seq
    llama = load_model(str(tiny_llama_dir))
    assert not llama.is_seq2seq
    assert llama.tokenizer.pad_token is not None


def test_fingerprint_depends_on_weights_not_path(tiny_t5_dir, tiny_t5_other_dir, tmp_path, cache_dir):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_t5_dir, copy)
    assert fingerprint_path(copy) == fingerprint_path(tiny_t5_dir)
    assert fingerprint_path(tiny_t5_other_dir) != fingerprint_path(tiny_t5_dir)
    assert LazyModel(str(copy)).fingerprint == load_model(str(copy)).fingerprint


def test_fingerprint_state_sees_one_changed_weight(tiny_t5_dir):
    model = load_model(str(tiny_t5_dir)).model
    before = fingerprint_state(model)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert fingerprint_state(model) != before


def test_folder_without_weights_is_a_clear_error(tiny_t5_dir, tmp_path):
    folder = tmp_path / "noweights"
    shutil.copytree(tiny_t5_dir, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(UserError, match="no weights"):
        load_model(str(folder))


def test_pickle_weights_need_opt_in(tiny_t5_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_t5_dir, folder)
    model = load_model(str(tiny_t5_dir)).model
    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(UserError, match="allow-pickle"):
        load_model(str(folder))
    loaded = load_model(str(folder), allow_pickle=True)
    assert fingerprint_state(loaded.model) == fingerprint_state(model)


def test_adapter_changes_fingerprint(tiny_t5_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_model(str(tiny_t5_dir))
    peft_model = get_peft_model(base.model, LoraConfig(r=2, target_modules=["q", "v"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    with_adapter = load_model(str(tiny_t5_dir), adapter=str(tmp_path / "adapter"))
    assert with_adapter.fingerprint != load_model(str(tiny_t5_dir)).fingerprint
    assert LazyModel(str(tiny_t5_dir), adapter=str(tmp_path / "adapter")).fingerprint == with_adapter.fingerprint


def test_unknown_dtype_and_device(tiny_t5_dir):
    with pytest.raises(UserError, match="dtype"):
        load_model(str(tiny_t5_dir), dtype="float8")
    with pytest.raises(UserError, match="device"):
        load_model(str(tiny_t5_dir), device="tpu")


def test_adapter_fingerprint_ignores_module_list_order(tiny_t5_dir, tmp_path):
    """peft saves target_modules (a set) in hash order; reordering must not change the fingerprint."""
    import json

    from peft import LoraConfig, get_peft_model

    base = load_model(str(tiny_t5_dir))
    get_peft_model(base.model, LoraConfig(r=2, target_modules=["q", "v"])).save_pretrained(tmp_path / "a")
    before = fingerprint_path(tiny_t5_dir, tmp_path / "a")
    cfg_path = tmp_path / "a" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["target_modules"] = list(reversed(sorted(cfg["target_modules"])))
    cfg_path.write_text(json.dumps(cfg))
    assert fingerprint_path(tiny_t5_dir, tmp_path / "a") == before
    cfg["r"] = 4
    cfg_path.write_text(json.dumps(cfg))
    assert fingerprint_path(tiny_t5_dir, tmp_path / "a") != before
