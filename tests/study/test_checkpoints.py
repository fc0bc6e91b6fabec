"""`checkpoints:` in a study: the forgetting trajectory. Each kept checkpoint is a derived run, evaluated
like any other, drawn on its parent's training path, considered by the recommendation, and served from
disk on a rerun."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest
import yaml

from retain.errors import UserError
from retain.evaluation.runner import EvalSettings, evaluate
from retain.models import load_model
from retain.report.plots import derived_paths
from retain.report.summary import load
from retain.study import verdict
from retain.study.config import StudyConfig, load_study_config
from retain.study.run import run_study
from tests.study.helpers import study_twice
from retain.tasks import get_task


def config_dict(model_dir) -> dict:
    return {
        "name": "trajectory", "model": str(model_dir),
        "target": {"task": "toy-summarize", "train_examples": 32},
        "protect": ["toy-ner", "toy-sentiment"],
        "methods": [{"method": "full", "checkpoints": [0.25, 0.5]},
                    {"method": "lora", "options": {"r": 2, "dropout": 0.0}, "checkpoints": [3]}],
        "train": {"max_steps": 4, "batch_size": 8, "eval_examples": 4, "save_steps": 2, "learning_rate": 3e-3},
        "eval": {"limit": 8, "batch_size": 8, "n_boot": 100},
    }


MID_STUDY: dict = {}  # filled by `finished`


@pytest.fixture(scope="module")
def finished(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")

    def snapshot(line: str) -> None:  # results.json as it stands when the second run starts
        if "lora (seed 0): training" in line:
            MID_STUDY["results"] = json.loads((out / "out" / "results.json").read_text())

    return study_twice(config_dict(tiny_llama_dir), out, log=snapshot)


def test_each_checkpoint_is_a_derived_run(finished):
    out, doc, _, _ = finished
    runs = {r["name"]: r for r in doc["runs"]}
    assert list(runs) == ["full", "full+step-1", "full+step-2", "lora", "lora+step-3"]
    for name, parent, step, point in (("full+step-1", "full", 1, 0.25), ("full+step-2", "full", 2, 0.5),
                                      ("lora+step-3", "lora", 3, 3)):
        r = runs[name]
        assert (r["parent"], r["step"], r["of_steps"], r["point"], r["alpha"]) == (parent, step, 4, point, None)
        assert r["method"] == runs[parent]["method"] and r["status"] == "done"
        assert r["cost"]["train_seconds"] == pytest.approx(runs[parent]["cost"]["train_seconds"] * step / 4, abs=1e-3)
        assert r["within_budget"] in (True, False) and r["target_gain"] is not None
    assert runs["full"]["step"] is None and runs["lora"]["parent"] is None
    # Different points of training are different models.
    assert len({runs[n]["model"]["fingerprint"] for n in runs}) == len(runs)
    train = out / "runs" / "full-s0" / "train"
    assert {p.name for p in (train / "steps").iterdir()} == {"step-1", "step-2"}
    lora_step = out / "runs" / "lora-s0" / "train" / "steps" / "step-3"
    assert (lora_step / "adapter_config.json").is_file() and not (lora_step / "model.safetensors").exists()


def test_a_checkpoint_scores_as_its_model_evaluated_on_its_own(finished, tiny_llama_dir):
    out, doc, _, _ = finished
    run = next(r for r in doc["runs"] if r["name"] == "full+step-2")
    lm = load_model(str(out / "runs" / "full-s0" / "train" / "steps" / "step-2"))
    direct = evaluate(lm, [get_task("toy-ner")], EvalSettings(limit=8, batch_size=8, n_boot=100), cache=None)
    assert direct["tasks"]["toy-ner"]["metrics"] == run["scores"]["toy-ner"]


def test_the_recommendation_and_the_plot_consider_checkpoints(finished):
    _, doc, _, _ = finished
    assert doc["recommendation"] == verdict.recommend(doc["runs"])
    assert doc["pareto"] == verdict.pareto_front(doc["runs"])
    data = load(doc)
    points = {r["name"]: (r["mean_protected_change"], r["target_gain"]) for r in doc["runs"]}
    paths = {parent: (style, path) for style, _, parent, path in derived_paths(data, points)}
    assert paths["full"] == ("--", [(0.0, 0.0), points["full+step-1"], points["full+step-2"], points["full"]])
    assert paths["lora"] == ("--", [(0.0, 0.0), points["lora+step-3"], points["lora"]])


def test_a_rerun_reuses_every_run_and_checkpoint(finished):
    out, doc, doc2, again = finished
    assert [r["scores"] for r in doc2["runs"]] == [r["scores"] for r in doc["runs"]]
    assert not any("evaluated in" in line or "training" in line for line in again)
    assert json.loads((out / "results.json").read_text()) == doc2


def test_changed_checkpoints_retrain_that_run_only(finished, tiny_llama_dir, tmp_path):
    """The study owns its run folders: new checkpoints on an entry train it again; the others are reused."""
    out, _, _, _ = finished
    cfg = config_dict(tiny_llama_dir)
    cfg["methods"][1]["checkpoints"] = [2]
    os.environ["RETAIN_CACHE_DIR"] = str(out.parent / "cache")
    logs: list[str] = []
    try:
        doc = run_study(StudyConfig(**cfg), out, log=logs.append, report=False)
    finally:
        os.environ.pop("RETAIN_CACHE_DIR", None)
    assert [r["name"] for r in doc["runs"]] == ["full", "full+step-1", "full+step-2", "lora", "lora+step-2"]
    assert any("lora (seed 0): training" in line for line in logs)
    assert not any("full (seed 0): training" in line for line in logs)

    # The plan of that folder: every run done, a new WiSE-FT point to do; a changed entry is "changed".
    cfg["methods"].append({"method": "wise-ft", "of": "full", "alphas": [0.5]})
    assert _plan(cfg, out, tmp_path, in_process=True) == {
        "full": "done", "full+step-1": "done", "full+step-2": "done", "lora": "done", "lora+step-2": "done",
        "full+wise-ft-0.5": "to do"}
    cfg["methods"][1]["options"] = {"r": 4, "dropout": 0.0}
    changed = _plan(cfg, out, tmp_path, in_process=True)
    assert changed["lora"].startswith("changed (its training settings)"), changed
    assert changed["lora+step-2"] == "to do" and changed["full"] == "done"


@pytest.mark.parametrize("entry, expected", [
    ({"method": "full", "checkpoints": [1.5]}, "1.5"),
    ({"method": "full", "checkpoints": [0.5, 0.5]}, "repeats"),
    ({"method": "wise-ft", "of": "full", "alphas": [0.5], "checkpoints": [0.5]}, "no checkpoints"),
])
def test_bad_checkpoints_name_the_entry(entry, expected, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"model": "m", "target": "toy-summarize", "protect": ["toy-ner"],
                                    "methods": ["full", entry] if entry["method"] == "wise-ft" else [entry]}))
    with pytest.raises(UserError) as e:
        load_study_config(path)
    message = str(e.value)
    assert str(path) in message and "checkpoints" in message and expected in message and "\n" not in message


def _plan(config: dict, out, tmp_path, in_process: bool = False) -> dict[str, str]:
    """`retain study CONFIG --plan` as users run it (or the same command in this process): {run name: status}."""
    from tests.cli.test_console_script import retain

    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(config))
    if in_process:
        from retain.cli import main

        os.environ["COLUMNS"] = "200"
        try:
            with pytest.raises(SystemExit) as exc, contextlib.redirect_stdout(io.StringIO()) as stdout:
                main(["study", str(path), "--out", str(out), "--plan"])
        finally:
            os.environ.pop("COLUMNS", None)
        assert not exc.value.code
        text = stdout.getvalue()
    else:
        res = retain("study", path, "--out", out, "--plan", env_extra={"COLUMNS": "200"})
        assert res.returncode == 0, res.stderr
        text = res.stdout
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("\u2502")[1:-1]]
        if len(cells) == 6 and cells[0] != "run":
            rows[cells[0]] = cells[5]
    return rows


def test_plan_of_a_fresh_folder_lists_every_run_to_do_and_writes_nothing(tiny_llama_dir, tmp_path):
    cfg = {**config_dict(tiny_llama_dir), "methods": [*config_dict(tiny_llama_dir)["methods"],
                                                      {"method": "wise-ft", "of": "full", "alphas": [0.5]}]}
    fresh = _plan(cfg, tmp_path / "fresh", tmp_path)
    assert fresh == {"full": "to do", "full+at-0.25": "to do", "full+at-0.5": "to do", "lora": "to do",
                     "lora+step-3": "to do", "full+wise-ft-0.5": "to do"}
    assert not (tmp_path / "fresh").exists()  # a plan writes nothing


def test_results_mid_study_list_the_runs_not_run_yet(finished, tmp_path):
    from retain.report import render_report

    mid = MID_STUDY["results"]
    assert not mid["study"]["finished"]
    status = {r["name"]: r["status"] for r in mid["runs"]}
    assert status == {"full": "done", "full+step-1": "done", "full+step-2": "done", "lora": "pending",
                      "lora+step-3": "pending"}
    assert mid["recommendation"] == verdict.recommend(mid["runs"])  # pending runs are never recommended
    written = render_report(mid, tmp_path)
    md = written["markdown"].read_text()
    assert "2 not run yet (lora, lora+step-3)" in md and "not run yet |" in md
    assert "not run yet" in written["html"].read_text()
