"""The package's Python API: every documented name resolves to the function the CLI uses, and
`import retain` alone imports neither torch nor transformers."""

from __future__ import annotations

import subprocess
import sys

import retain


def test_every_api_name_is_the_defining_object():
    import importlib

    for name, module in retain._API.items():
        assert getattr(retain, name) is getattr(importlib.import_module(module), name), name
    assert set(retain.__all__) == {"__version__", *retain._API}
    assert set(retain._API) <= set(dir(retain))


def test_import_retain_is_light():
    code = "import sys, retain; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_names_still_fail():
    import pytest

    with pytest.raises(AttributeError):
        retain.no_such_function  # noqa: B018
