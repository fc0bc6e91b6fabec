"""One end-to-end study on a tiny model: outputs, resume after kill -9, and the CLI's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.study.helpers import study_twice


def config_dict(model_dir) -> dict:
    return {
        "name": "e2e", "model": str(model_dir),
        "target": {"task": "toy-summarize", "train_examples": 32},
        "protect": ["toy-ner", "toy-sentiment"],
        "methods": [{"method": "full"}, {"method": "lora", "options": {"r": 2, "dropout": 0.0}},
                    {"method": "wise-ft", "of": "full", "alphas": [0.0, 0.5]}],
        "train": {"max_steps": 6, "batch_size": 8, "eval_examples": 4, "save_steps": 2, "learning_rate": 1e-3},
        "eval": {"limit": 8, "batch_size": 8, "n_boot": 100},
    }


def comparable(doc: dict) -> dict:
    """What must not depend on interruptions: every score, change and verdict."""
    return {"base": doc["base"], "recommendation": doc["recommendation"], "pareto": doc["pareto"],
            "runs": [{k: r[k] for k in ("name", "scores", "change", "within_budget", "forgotten", "model")}
                     for r in doc["runs"]]}


@pytest.fixture(scope="module")
def finished(tiny_t5_dir, tmp_path_factory):
    return study_twice(config_dict(tiny_t5_dir), tmp_path_factory.mktemp("study"))


def test_results_document(finished):
    out, doc, doc2, _ = finished
    assert json.loads((out / "results.json").read_text()) == doc2
    assert doc2["study"]["created"] == doc["study"]["created"]
    assert doc["schema"] == "retain.study/1" and doc["study"]["finished"]
    names = [r["name"] for r in doc["runs"]]
    assert names == ["full", "lora", "full+wise-ft-0", "full+wise-ft-0.5"]
    assert set(doc["base"]["skills"]) == {"toy-ner", "toy-sentiment"}
    for run in doc["runs"]:
        assert run["status"] == "done"
        assert set(run["change"]) == {"toy-summarize", "toy-ner", "toy-sentiment"}
        for c in run["change"].values():
            assert c["ci95"][0] <= c["delta"] <= c["ci95"][1]
    lora = doc["runs"][1]
    assert lora["base_weights_unchanged"] is True
    assert lora["cost"]["trainable_parameters"] < doc["runs"][0]["cost"]["trainable_parameters"]
    # WiSE-FT with alpha 0 is the base model: no change anywhere.
    assert all(c["delta"] == 0 for c in doc["runs"][2]["change"].values())
    assert doc["recommendation"]["run"] in names or doc["recommendation"]["closest"]
    for f in ("report.md", "report.html", "config.yaml", "base.json"):
        assert (out / f).is_file()
    # Each run's result.json says how it was made.
    full = json.loads((out / "runs" / "full-s0" / "result.json").read_text())
    assert full["settings"]["learning_rate"] == 1e-3 and full["settings"]["max_steps"] == 6
    assert full["versions"]["torch"] and "git_commit" in full
    derived = json.loads((out / "runs" / "full+wise-ft-0.5-s0" / "result.json").read_text())
    assert derived["settings"] is None and derived["versions"] == full["versions"]


def test_rerun_reuses_every_run(finished):
    _, doc, doc2, logs = finished
    assert comparable(doc) == comparable(doc2)
    assert sum("already done" in line for line in logs) == 2


def test_check_flag_and_bad_config_exit_codes(tiny_t5_dir, tmp_path, finished):
    out, _, _, _ = finished
    data = config_dict(tiny_t5_dir)
    data["budget"] = {"max_drop": 0.0}
    data["methods"] = [{"method": "full", "train": {"learning_rate": 0.05}}]
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(data))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "methods": ["fulll"]}))
    env = {**os.environ, "RETAIN_CACHE_DIR": str(out.parent / "cache")}
    res = subprocess.run([sys.executable, "-m", "retain", "study", str(bad), "--out", str(tmp_path / "o")],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "fulll" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    res = subprocess.run([sys.executable, "-m", "retain", "study", str(cfg), "--out", str(tmp_path / "c"), "--check"],
                         env=env, capture_output=True, text=True)
    doc = json.loads((tmp_path / "c" / "results.json").read_text())
    assert res.returncode == (0 if doc["recommendation"]["within_budget"] else 1)


def test_ten_kills_at_random_points_then_resume_equals_uninterrupted(finished, tiny_t5_dir, tmp_path):
    """kill -9 at 10 random moments (loading, base evaluation, training, checkpointing, a derived run,
    the report), each time rerunning the same command; the final results equal an uninterrupted run."""
    import random

    _, reference, _, _ = finished
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(tiny_t5_dir)))
    out = tmp_path / "out"
    env = {**os.environ, "RETAIN_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "retain", "study", str(cfg), "--out", str(out)]
    rng, kills = random.Random(0), 0
    while kills < 10:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(1.0, 6.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
        else:
            break  # it finished before this kill: the remaining work was less than the delay
    assert kills == 10, f"only {kills} kills landed before the study finished: make it longer"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert comparable(json.loads((out / "results.json").read_text())) == comparable(reference)


def test_a_changed_task_list_re_evaluates_without_retraining(finished, tmp_path):
    """Dropping a protected task changes every run's key: the log says it is the evaluation, and no run trains."""
    import shutil

    out, doc, _, _ = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = (copy / "runs" / "full-s0" / "train" / "train_log.jsonl").read_text()
    config = {**config_dict(doc["study"]["config"]["model"]), "protect": ["toy-ner"]}
    lines: list[str] = []
    os.environ["RETAIN_CACHE_DIR"] = str(out.parent / "cache")
    try:
        from retain.study.config import StudyConfig
        from retain.study.run import run_study

        again = run_study(StudyConfig(**config), copy, log=lines.append)
    finally:
        os.environ.pop("RETAIN_CACHE_DIR", None)
    changed = [line for line in lines if "changed since the saved result" in line]
    assert len(changed) == 4 and all("the evaluation changed" in line for line in changed), lines
    assert sum("its trained model is unchanged; reused" in line for line in lines) == 2, lines
    assert (copy / "runs" / "full-s0" / "train" / "train_log.jsonl").read_text() == before
    assert [set(r["change"]) for r in again["runs"]] == [{"toy-summarize", "toy-ner"}] * 4
    eval_keys = {json.loads((copy / "runs" / f"{r['name']}-s0" / "result.json").read_text())["eval_key"]
                 for r in again["runs"]}
    assert len(eval_keys) == 1
