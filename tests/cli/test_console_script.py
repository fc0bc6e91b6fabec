"""The exit-code contract, through the installed `retain` console script in a subprocess.

0 success; 1 `--check` failed or an internal error; 2 bad input or usage (one line, no traceback);
130 SIGINT, 143 SIGTERM (one line saying how to resume); 141 stdout closed by the reader.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

RETAIN = Path(sys.executable).parent / "retain"


def retain(*args, env_extra=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([str(RETAIN), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_console_script_is_installed():
    assert RETAIN.is_file(), "make setup installs the package, which installs the `retain` script"


def _study_yaml(tmp_path: Path, **overrides) -> Path:
    data = {"name": "s", "model": "unused", "target": "toy-summarize", "protect": ["toy-ner"],
            "methods": ["full"], **overrides}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


USAGE_ERRORS = {
    "no command argument": (["study"], "config"),
    "unknown command": (["nosuch"], "nosuch"),
    "unknown option": (["eval", "--bogus"], "--bogus"),
    "not a number": (["eval", "--model", "m", "--task", "toy-ner", "--out", "o.json", "--limit", "abc"], "--limit"),
    "extra argument": (["tasks", "extra"], "extra"),
    "missing config file": (["study", "missing.yaml"], "missing.yaml"),
    "missing results file": (["report", "nosuch.json"], "nosuch.json"),
    "missing data dir": (["--data-dir", "/nonexistent-retain", "tasks"], "/nonexistent-retain"),
    "missing model folder": (["eval", "--model", "./no-model", "--task", "toy-ner", "--out", "o.json"], "no-model"),
    "unknown task": (["eval", "--model", "./m", "--task", "no-such-task", "--out", "o.json"], "no-such-task"),
    "unknown method": (["train", "--model", "./m", "--task", "toy-ner", "--method", "fulll", "--out", "o"], "fulll"),
    "bad --set": (["study", "{cfg}", "--set", "novalue"], "novalue"),
    "output is a folder": (["report", "{results}", "--out", "{cfg}"], "study.yaml"),
    "negative limit": (["eval", "--model", "./m", "--task", "toy-ner", "--out", "o.json", "--limit", "-3"], "limit"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_are_one_line_exit_2(case, tmp_path):
    args, named = USAGE_ERRORS[case]
    cfg = _study_yaml(tmp_path)
    results = tmp_path / "in" / "results.json"  # a minimal study result, for `retain report`
    results.parent.mkdir()
    results.write_text(json.dumps({"schema": "retain.study/1"}))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = retain(*[a.replace("{cfg}", str(cfg)).replace("{results}", str(results)) for a in args], cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert named.lower() in one_error_line(res).lower()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "nothing may be written"


def test_bare_command_prints_help_exit_2():
    res = retain()
    assert res.returncode == 2
    assert "Usage" in res.stdout and "study" in res.stdout and "Traceback" not in res.stderr


def test_group_without_subcommand_prints_its_help_once_exit_2():
    res = retain("models")
    assert res.returncode == 2
    assert res.stdout.count("Usage") == 1 and "list" in res.stdout and "Traceback" not in res.stderr


def test_help_exits_0():
    res = retain("study", "--help")
    assert res.returncode == 0 and "--check" in res.stdout


def test_closed_stdout_is_quiet(tmp_path):
    res = subprocess.run(["bash", "-c", f"set -o pipefail; '{RETAIN}' tasks | head -1"], capture_output=True,
                         text=True)
    assert res.stdout.strip() and res.stderr == ""
    assert res.returncode == 141


INTERNAL_ERROR_HOOK = """
import retain.tasks.base as base

def broken():
    raise RuntimeError("injected failure")

base.task_names = broken
"""


def test_internal_error_is_one_line_exit_1_and_debug_shows_traceback(tmp_path):
    # A real bug, injected through sitecustomize into the installed script's own process.
    (tmp_path / "sitecustomize.py").write_text(INTERNAL_ERROR_HOOK)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    res = retain("tasks", env_extra=env)
    assert res.returncode == 1
    line = one_error_line(res)
    # The line names what failed and where: the (injected) function lives in sitecustomize.py.
    assert "RuntimeError in sitecustomize.py:" in line and "injected failure" in line and "--debug" in line
    res = retain("tasks", "--debug", env_extra=env)
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "injected failure" in res.stderr


def _interrupt_study(tiny_t5_dir, tmp_path, sig) -> tuple[subprocess.CompletedProcess, Path]:
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "interrupt", "model": str(tiny_t5_dir), "target": {"task": "toy-summarize", "train_examples": 64},
        "protect": ["toy-ner"], "methods": ["full"],
        "train": {"max_steps": 100000, "batch_size": 4, "save_steps": 5},
        "eval": {"limit": 4, "batch_size": 4, "n_boot": 50}}))
    out = tmp_path / "out"
    env = {**os.environ, "RETAIN_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([str(RETAIN), "study", str(cfg), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = out / "runs" / "full-s0" / "train" / "checkpoints"  # checkpoint-N folders while training
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(checkpoint.glob("checkpoint-*")):  # training is under way
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), out


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_study(sig, code, tiny_t5_dir, tmp_path):
    res, out = _interrupt_study(tiny_t5_dir, tmp_path, sig)
    assert res.returncode == code, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr
    assert last.startswith(f"interrupted ({signal.Signals(sig).name})") and "rerun to resume: retain study" in last
    assert not list(out.rglob("*.tmp")), "no half-written file may be left behind"


def _sentiment_data(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = [{"id": str(i), "text": f"the film was {'great' if i % 2 else 'awful'}",
             "label": "positive" if i % 2 else "negative"} for i in range(12)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_check_gate_fails_then_passes_and_names_stay_text(tmp_path):
    """A study that breaks a zero budget fails `--check` (exit 1); the same study with a loose budget
    passes (exit 0). A task path with `$` and `[/x]` is printed, plotted and reported as text."""
    from retain.demo.base import PACKAGED

    odd = tmp_path / "d$ta [/x]"
    _sentiment_data(odd)
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "gate", "model": str(PACKAGED),
        "target": {"task": "toy-summarize", "train_examples": 64}, "protect": ["toy-ner", f"sentiment:{odd}"],
        "budget": {"max_drop": 0.0}, "methods": ["full"],
        "train": {"max_steps": 12, "batch_size": 16, "learning_rate": 0.01, "save_steps": 100},
        "eval": {"limit": 24, "batch_size": 24, "n_boot": 100}}))
    out = tmp_path / "out"
    env = {"RETAIN_CACHE_DIR": str(tmp_path / "cache")}
    res = retain("study", cfg, "--out", out, "--check", env_extra=env)
    doc = json.loads((out / "results.json").read_text())
    assert doc["runs"][0]["change"]["toy-ner"]["delta"] < 0, "the gate needs a run that forgets"
    assert not doc["recommendation"]["within_budget"]
    assert res.returncode == 1, res.stderr
    assert "No run within budget" in res.stdout and "[/x]" in res.stdout
    assert "d$ta [/x]" in (out / "report.md").read_text()
    res = retain("study", cfg, "--out", out, "--check", "--set", "budget={max_drop: 1.0}", env_extra=env)
    assert res.returncode == 0, res.stderr
    assert "Recommended:" in res.stdout
    assert json.loads((out / "results.json").read_text())["recommendation"]["within_budget"]


@pytest.mark.parametrize("field,value", [
    ("run", "../../../escaped-run"), ("run", "full+wise-ft-0.5"), ("run", "a/b"), ("run", "[/x]"),
    ("study", "../x"), ("study", "/abs"), ("study", "[/x]"), ("study", "..")])
def test_names_are_data_never_paths(field, value, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    if field == "run":
        cfg = _study_yaml(work, methods=[{"method": "full", "name": value},
                                         {"method": "wise-ft", "of": value, "alphas": [0.5]}])
    else:
        cfg = _study_yaml(work, name=value)
    res = retain("study", cfg, cwd=work)
    assert res.returncode == 2
    line = one_error_line(res)
    assert "name" in line and "study.yaml" in line
    assert sorted(p.name for p in work.iterdir()) == ["study.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
