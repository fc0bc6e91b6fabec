"""What users run: the installed `retain` console script, in a subprocess, on model folders whose
tokenizer was swapped or removed after a cached evaluation of the original."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from retain.evaluation.runner import EvalSettings, evaluate_task
from retain.models.loading import load_model
from retain.tasks import get_task
from tests.models.conftest import copy_model, strip_tokenizer

RETAIN = Path(sys.executable).parent / "retain"
TASK, LIMIT = "toy-qa", 4


def retain(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RETAIN_CACHE_DIR": str(cache), "COLUMNS": "200"}
    return subprocess.run([str(RETAIN), *map(str, args)], env=env, capture_output=True, text=True, timeout=600)


def _eval(model: Path, out: Path, cache: Path) -> tuple[str, dict]:
    """(what the `cached` column says for the task, the task's results) of `retain eval`."""
    res = retain("eval", "--model", model, "--task", TASK, "--limit", LIMIT, "--out", out, cache=cache)
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if f" {TASK} " in line)
    cached = re.search(r"(yes|no)\W*$", row)
    assert cached, row
    return cached.group(1), json.loads(out.read_text())["tasks"][TASK]


def test_swapped_tokenizer_is_not_served_the_originals_results(tiny_llama_dir, swapped_llama_dir, tmp_path):
    cache = tmp_path / "cache"
    assert _eval(tiny_llama_dir, tmp_path / "a.json", cache)[0] == "no"
    said, original = _eval(tiny_llama_dir, tmp_path / "b.json", cache)
    assert said == "yes" and original["from_cache"]  # the cache serves the same model
    said, swapped = _eval(swapped_llama_dir, tmp_path / "c.json", cache)
    assert said == "no" and not swapped["from_cache"]
    fresh = evaluate_task(load_model(str(swapped_llama_dir)), get_task(TASK), EvalSettings(limit=LIMIT))
    predictions = [e["prediction"] for e in swapped["examples"]]
    assert predictions == fresh.predictions
    assert predictions != [e["prediction"] for e in original["examples"]]


def test_folder_without_tokenizer_exits_2_with_one_line(tiny_llama_dir, tmp_path):
    folder = strip_tokenizer(copy_model(tiny_llama_dir, tmp_path / "no-tokenizer"))
    res = retain("eval", "--model", folder, "--task", TASK, "--limit", LIMIT, "--out", tmp_path / "r.json",
                 cache=tmp_path / "cache")
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert str(folder) in lines[0] and "tokenizer" in lines[0]
    assert not (tmp_path / "r.json").exists()
