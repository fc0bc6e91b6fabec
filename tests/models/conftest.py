"""Fixtures for model tests: copies of the tiny models with one output-changing file swapped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retain.models.fingerprint import SETTINGS_FILES, is_tokenizer_data

MODEL_ONLY = ("config.json", "generation_config.json")


def strip_tokenizer(folder: Path) -> Path:
    """Delete every tokenizer file (and chat template) of a model folder, keeping config and weights."""
    for p in folder.iterdir():
        if p.is_file() and ((p.name in SETTINGS_FILES and p.name not in MODEL_ONLY) or is_tokenizer_data(p.name)):
            p.unlink()
    return folder


def copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@pytest.fixture(scope="session")
def other_causal_tokenizer(corpus):
    """A tokenizer for the same text with another vocabulary: the same ids mean other strings."""
    from retain.models.tiny import train_tokenizer

    return train_tokenizer(corpus, vocab_size=300, append_eos=False)


@pytest.fixture(scope="session")
def swapped_llama_dir(tmp_path_factory, tiny_llama_dir, other_causal_tokenizer) -> Path:
    """`tiny_llama_dir`'s config and weights, byte for byte, with `other_causal_tokenizer`."""
    folder = strip_tokenizer(copy_model(tiny_llama_dir, tmp_path_factory.mktemp("swapped") / "llama"))
    other_causal_tokenizer.save_pretrained(folder)
    return folder
