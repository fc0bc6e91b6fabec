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


def test_the_documented_python_example_runs_as_written(tmp_path):
    """docs/python-api.md's example, copied out of the page and run in an empty folder."""
    import os
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    env = {**os.environ, "RETAIN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"base toy-ner entity F1 0\.\d+", res.stdout)
    for name in ("full ", "full+step-", "lora ", "full+wise-ft-0.5"):
        assert name in res.stdout, res.stdout
    assert "recommended:" in res.stdout
    study = tmp_path / "runs" / "api" / "study"
    assert (study / "report.html").is_file() and (study / "results.json").is_file()
    assert (tmp_path / "runs" / "api" / "lora" / "adapter_model.safetensors").is_file()
