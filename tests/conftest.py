"""Shared offline fixtures: a tokenizer trained locally and tiny T5 / Llama models saved as folders.

Everything is built from configs with fixed seeds; nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Numeric checks (batched == unbatched, packed == padded, ...) are written for fp32: the same on every
# CPU. bf16 autocast on CPUs that have it is tested explicitly (tests/evaluation/test_precision.py).
os.environ.setdefault("RETAIN_CPU_BF16", "0")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
FLAN_T5_CONFIG = SHARED / "models" / "flan-t5-small-tokenizer"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
needs_flan_config = pytest.mark.skipif(not FLAN_T5_CONFIG.is_dir(), reason="../shared/models is not present")


def _corpus() -> list[str]:
    from retain.tasks import get_task

    texts = []
    for name in ("toy-ner", "toy-sentiment", "toy-summarize", "toy-qa"):
        for ex in get_task(name).examples("train", 300):
            texts += [ex.prompt, ex.target]
    return texts


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return _corpus()


@pytest.fixture(scope="session")
def t5_tokenizer(corpus):
    from retain.models.tiny import train_tokenizer

    return train_tokenizer(corpus, vocab_size=600, append_eos=True)


@pytest.fixture(scope="session")
def causal_tokenizer(corpus):
    from retain.models.tiny import train_tokenizer

    return train_tokenizer(corpus, vocab_size=600, append_eos=False)


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory, t5_tokenizer) -> Path:
    from retain.models.tiny import save_model, tiny_t5, zero_special_output_rows

    return save_model(zero_special_output_rows(tiny_t5(t5_tokenizer, seed=0), t5_tokenizer), t5_tokenizer, tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_t5_other_dir(tmp_path_factory, t5_tokenizer) -> Path:
    """Same architecture and tokenizer as `tiny_t5_dir`, different weights (seed 1)."""
    from retain.models.tiny import save_model, tiny_t5, zero_special_output_rows

    return save_model(zero_special_output_rows(tiny_t5(t5_tokenizer, seed=1), t5_tokenizer), t5_tokenizer, tmp_path_factory.mktemp("tiny-t5-b"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, causal_tokenizer) -> Path:
    from retain.models.tiny import save_model, tiny_llama, zero_special_output_rows

    return save_model(zero_special_output_rows(tiny_llama(causal_tokenizer, seed=0), causal_tokenizer), causal_tokenizer, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An empty retain cache for one test (also where file-hash memos go)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RETAIN_CACHE_DIR", str(root))
    return root
