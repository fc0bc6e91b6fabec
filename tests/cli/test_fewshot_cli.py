"""`retain eval --fewshot K` through the installed console script, on a small file-backed task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

RETAIN = Path(sys.executable).parent / "retain"


def write_task(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 12), ("test", 5)):
        (data / f"{split}.jsonl").write_text("".join(
            json.dumps({"id": f"{split}-{i}", "text": f"{split} review {i}: it was {'good' if i % 2 else 'bad'}.",
                        "label": "positive" if i % 2 else "negative"}) + "\n" for i in range(n)))
    task = tmp_path / "reviews.yaml"
    task.write_text(textwrap.dedent("""
        name: reviews
        kind: choice
        data: data
        prompt: "{text} Positive or negative?"
        target: label
        choices: [positive, negative]
    """))
    return task


@pytest.mark.skipif(not RETAIN.is_file(), reason="the retain console script is not installed in this environment")
def test_console_script_fewshot(tiny_llama_dir, tmp_path):
    task = write_task(tmp_path)
    out = tmp_path / "res.json"
    env = {**os.environ, "RETAIN_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [str(RETAIN), "eval", "--model", str(tiny_llama_dir), "--task", str(task), "--fewshot", "2",
           "--fewshot-seed", "1", "--limit", "4", "--batch-size", "4", "--out", str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["settings"]["fewshot"] == 2 and doc["settings"]["fewshot_seed"] == 1
    entry = doc["tasks"]["reviews"]
    assert entry["fewshot"] == {"k": 2, "seed": 1, "split": "train"}
    assert entry["truncated"] == 0 and entry["n"] == 4
    for example in entry["examples"]:
        assert len(example["shots"]) == 2 and all(s.startswith("train-") for s in example["shots"])
        assert len(example["choice_logprobs"]) == 2

    # No split to draw shots from: one line, exit 2, before the model loads.
    res = subprocess.run([*cmd[:5], str(task), "--split", "train", "--fewshot", "2", "--out", str(out)],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "reviews" in res.stderr and len(res.stderr.strip().splitlines()) == 1
