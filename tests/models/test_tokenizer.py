"""A model folder without a usable tokenizer is a one-line error, never an empty tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retain.errors import UserError
from retain.models.loading import LazyModel, check_tokenizer, load_model
from tests.models.conftest import copy_model, strip_tokenizer


def _edit_tokenizer_config(folder: Path, drop=(), **changes) -> None:
    path = folder / "tokenizer_config.json"
    cfg = {k: v for k, v in json.loads(path.read_text()).items() if k not in drop}
    path.write_text(json.dumps({**cfg, **changes}))


@pytest.mark.parametrize("fixture", ["tiny_t5_dir", "tiny_llama_dir"])
def test_folder_without_tokenizer_files_is_refused_before_loading(fixture, request, tmp_path, monkeypatch):
    folder = strip_tokenizer(copy_model(request.getfixturevalue(fixture), tmp_path / "no-tokenizer"))
    import transformers

    def no_weights(*a, **k):
        raise AssertionError("weights were loaded before the tokenizer was checked")

    monkeypatch.setattr(transformers.AutoModelForSeq2SeqLM, "from_pretrained", no_weights)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    for load in (LazyModel, load_model):
        with pytest.raises(UserError, match="no tokenizer files") as err:
            load(str(folder))
        assert str(folder) in str(err.value) and "\n" not in str(err.value)


def test_tokenizer_config_alone_building_an_empty_tokenizer_is_refused(tiny_t5_dir, tmp_path):
    """transformers builds a T5 tokenizer from nothing (every word unknown): found after loading it."""
    folder = strip_tokenizer(copy_model(tiny_t5_dir, tmp_path / "empty"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    lm = LazyModel(str(folder))  # the folder looks complete; the tokenizer is only judged once built
    with pytest.raises(UserError, match="tokenizer is empty") as err:
        lm.tokenizer
    assert str(folder) in str(err.value)


def test_pad_falls_back_to_eos(tiny_llama_dir, tmp_path):
    folder = copy_model(tiny_llama_dir, tmp_path / "no-pad")
    _edit_tokenizer_config(folder, drop=("pad_token",))
    tok = load_model(str(folder)).tokenizer
    assert tok.pad_token == tok.eos_token == "</s>"


def test_no_pad_eos_or_unk_is_an_error(tiny_llama_dir, tmp_path, causal_tokenizer):
    folder = copy_model(tiny_llama_dir, tmp_path / "no-special")
    _edit_tokenizer_config(folder, drop=("pad_token", "eos_token", "unk_token"))
    with pytest.raises(UserError, match="no pad, eos or unk token") as err:
        load_model(str(folder))
    assert str(folder) in str(err.value)
    tok = causal_tokenizer.__class__(tokenizer_object=causal_tokenizer.backend_tokenizer)
    with pytest.raises(UserError, match="no pad, eos or unk"):
        check_tokenizer(tok, "t")
