"""A study completed by several `retain study --worker` processes sharing its folder, through the
installed console script: the same results as one process, a killed worker's run taken over, and
`--run` refusing a derived run whose parent is not done."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from retain.errors import UserError
from retain.study.config import StudyConfig
from retain.study.run import Study, run_study
from retain.study.workers import claimed, run_one, run_worker
from tests.cli.test_console_script import RETAIN, one_error_line, retain


def config_dict(model_dir) -> dict:
    return {
        "name": "workers", "model": str(model_dir),
        "target": {"task": "toy-summarize", "train_examples": 16},
        "protect": ["toy-ner"],
        "methods": [{"method": "full"}, {"method": "lora", "options": {"r": 2, "dropout": 0.0}},
                    {"method": "wise-ft", "of": "full", "alphas": [0.5]}],
        "train": {"max_steps": 2, "batch_size": 8, "eval_examples": 4, "save_steps": 1, "learning_rate": 1e-3},
        "eval": {"limit": 4, "batch_size": 4, "n_boot": 50},
    }


def without_timings(doc: dict) -> dict:
    """The results document less what measures time (when it was made, what each run cost) and the
    git commit it was made at (others may commit while the tests run)."""
    doc = json.loads(json.dumps(doc))
    del doc["study"]["created"], doc["study"]["git_commit"]
    for run in doc["runs"]:
        run.pop("cost", None)
    return doc


@pytest.fixture(scope="module")
def setup(tiny_t5_dir, tmp_path_factory):
    """A study config and its results from one process.

    Every study here shares one evaluation cache, as workers on a cluster do: a model is evaluated
    once, whichever process trained it, so a worker's outputs equal the single process's exactly when
    its trained weights do (the cache keys on the weights' fingerprint).
    """
    root = tmp_path_factory.mktemp("workers")
    cfg = root / "study.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(tiny_t5_dir)))
    os.environ["RETAIN_CACHE_DIR"] = str(root / "cache")
    try:
        reference = run_study(StudyConfig(**config_dict(tiny_t5_dir)), root / "single", log=lambda _: None,
                              report=False)
    finally:
        os.environ.pop("RETAIN_CACHE_DIR", None)
    return root, cfg, reference


def worker(cfg: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "RETAIN_CACHE_DIR": str(out.parent / "cache")}
    return subprocess.Popen([str(RETAIN), "study", str(cfg), "--out", str(out), "--worker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_workers_finish_one_study_as_one_process_would(setup):
    root, cfg, reference = setup
    out = root / "three"
    procs = [worker(cfg, out) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr
    logs = "".join(stdout for stdout, _ in outputs)
    # Each run trained or evaluated by exactly one worker.
    assert logs.count("full (seed 0): training") == 1 and logs.count("lora (seed 0): training") == 1, logs
    assert logs.count("full+wise-ft-0.5: evaluated") == 1, logs
    doc = json.loads((out / "results.json").read_text())
    assert doc["study"]["finished"]
    assert without_timings(doc) == without_timings(reference)
    assert (out / "report.html").is_file() and not any((out / "claims").glob("*.lock"))


def test_a_killed_workers_run_is_taken_over(setup):
    root, cfg, reference = setup
    out = root / "killed"
    # lora is done already (a copy of the single process's run, as a copied study folder would be):
    # the workers here train full only.
    shutil.copytree(root / "single" / "runs" / "lora-s0", out / "runs" / "lora-s0")
    lock = out / "claims" / "full-s0.lock"
    first = worker(cfg, out)
    try:
        # Generous: on a loaded 2-core machine the worker's start and base evaluation take minutes.
        deadline = time.monotonic() + 400
        while not (lock.is_file() and lock.read_text()) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not (out / "runs" / "full-s0" / "result.json").exists(), "killed too late: the run was done"
        claimed_in_time = lock.is_file()
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        stdout, stderr = first.communicate()
    assert claimed_in_time, f"the worker never claimed full (exit {first.returncode}): {stdout[-2000:]}{stderr[-2000:]}"
    assert json.loads(lock.read_text())["pid"] == first.pid  # the dead worker's claim is still there
    study = Study(StudyConfig(**yaml.safe_load(cfg.read_text())), out)
    left = claimed(study, study.plan())  # what --plan shows
    assert list(left) == [("full", 0)] and f"pid {first.pid}" in left[("full", 0)] and "gone" in left[("full", 0)]
    res = retain("study", cfg, "--out", out, "--worker", env_extra={"RETAIN_CACHE_DIR": str(root / "cache")})
    assert res.returncode == 0, res.stderr
    assert f"full (seed 0): taking over from pid {first.pid}" in res.stdout, res.stdout
    doc = json.loads((out / "results.json").read_text())
    assert without_timings(doc) == without_timings(reference)


def test_run_of_a_derived_run_needs_its_parent(setup):
    root, cfg, _ = setup
    out = root / "one"
    res = retain("study", cfg, "--out", out, "--run", "full+wise-ft-0.5", env_extra={"RETAIN_CACHE_DIR": str(root / "cache")})
    line = one_error_line(res)
    assert res.returncode == 2 and "full+wise-ft-0.5" in line and "derives from full, which is not done" in line
    assert not out.exists(), "nothing is loaded or written before the parent is found missing"


def test_run_names_a_planned_run(setup, tiny_t5_dir):
    root, _, _ = setup
    study = Study(StudyConfig(**config_dict(tiny_t5_dir)), root / "none", log=lambda _: None)
    with pytest.raises(UserError, match=r"--run: no run 'nosuch' in the study's plan \(runs: full, lora, full\+wise"):
        run_one(study, "nosuch")


def test_a_failed_run_is_not_retried_by_workers_and_run_retries_it(setup, tiny_t5_dir, monkeypatch):
    root, _, reference = setup
    monkeypatch.setenv("RETAIN_CACHE_DIR", str(root / "cache"))
    out, config = root / "failing", StudyConfig(**config_dict(tiny_t5_dir))
    shutil.copytree(root / "single" / "runs" / "full-s0", out / "runs" / "full-s0")  # done: only lora runs
    train_run = Study._train_run

    def failing(self, entry, seed, base_fp):
        if entry.run_name == "lora":
            raise UserError("loss is NaN at step 1")
        return train_run(self, entry, seed, base_fp)

    with monkeypatch.context() as m:
        m.setattr(Study, "_train_run", failing)
        doc = run_worker(Study(config, out, log=lambda _: None), report=False)
    assert doc["study"]["finished"]
    assert [(r["name"], r["status"]) for r in doc["runs"]] == [("full", "done"), ("full+wise-ft-0.5", "done"),
                                                              ("lora", "failed")]
    assert "NaN" in doc["runs"][2]["error"]
    assert {r.name: r.status for r in Study(config, out).plan()}["lora"] == "failed"
    logs: list[str] = []
    import retain  # the same two through the Python API

    retain.study_worker(config, out, log=logs.append, report=False)  # a worker leaves the failure alone
    assert not any("training" in line for line in logs), logs
    doc = retain.study_worker(config, out, run="lora", log=lambda _: None, report=False)  # --run tries it again
    assert not (out / "runs" / "lora-s0" / "failed.json").exists()
    assert without_timings(doc) == without_timings(reference)
