"""`kill -9` during `retain eval`: the rerun keeps every finished task (from the cache) and ends with
results equal to an uninterrupted run; nothing half-written is left at --out."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.cli.test_console_script import RETAIN, retain

TASKS = ["--task", "toy-ner", "--task", "toy-summarize"]


def _scores(doc: dict) -> dict:
    return {name: (t["examples"], t["metrics"]) for name, t in doc["tasks"].items()}


def test_kill_9_after_the_first_task_then_resume(tiny_llama_dir, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "r.json"
    args = ["eval", "--model", str(tiny_llama_dir), *TASKS, "--limit", "24", "--batch-size", "4",
            "--cache-dir", str(cache), "--out", str(out)]
    proc = subprocess.Popen([str(RETAIN), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list(cache.rglob("*.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill: nothing was tested"
    assert not out.exists() and not list(tmp_path.glob(".r.json.*"))
    assert len(list(cache.rglob("*.json"))) == 1  # the first task, whole

    resumed = retain(*args)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(out.read_text())
    assert doc["tasks"]["toy-ner"]["from_cache"] and not doc["tasks"]["toy-summarize"]["from_cache"]

    whole = retain("eval", "--model", str(tiny_llama_dir), *TASKS, "--limit", "24", "--batch-size", "4",
                   "--no-cache", "--out", str(tmp_path / "whole.json"))
    assert whole.returncode == 0, whole.stderr
    assert _scores(doc) == _scores(json.loads((tmp_path / "whole.json").read_text()))
