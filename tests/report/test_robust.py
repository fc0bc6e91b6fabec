"""The report survives partial and odd results: missing fields, no runs, failures, odd task names."""

from __future__ import annotations

import json

import pytest
from htmlcells import parse
from report_fixture import build_results

from retain.errors import UserError
from retain.report import load, render_report


def render(results: dict, tmp_path) -> tuple[dict, str, str]:
    paths = render_report(results, tmp_path / "out")
    return paths, paths["markdown"].read_text("utf-8"), paths["html"].read_text("utf-8")


def test_run_without_forgotten(results, tmp_path):
    for run in results["runs"]:
        run.pop("forgotten", None)
        run.pop("forgotten_counts", None)
    _, md, page = render(results, tmp_path)
    assert "No forgotten examples recorded." in md and "No forgotten examples recorded." in page


def test_no_wise_ft_runs(results, tmp_path):
    results["runs"] = [r for r in results["runs"] if r.get("parent") is None]
    results["pareto"] = [p for p in results["pareto"] if "wise" not in p]
    paths, md, _ = render(results, tmp_path)
    assert "tradeoff" in paths and "wise-ft" not in md


def test_single_protected_task(results, tmp_path):
    keep = {"toy-summarize", "toy-ner"}
    results["tasks"] = {t: v for t, v in results["tasks"].items() if t in keep}
    for run in results["runs"]:
        run["change"] = {t: v for t, v in (run.get("change") or {}).items() if t in keep}
        run["forgotten"] = {t: v for t, v in (run.get("forgotten") or {}).items() if t in keep}
    paths, md, page = render(results, tmp_path)
    assert set(k for k in paths if k.startswith("task:")) == {"task:toy-summarize", "task:toy-ner"}
    assert {task for _, task in parse(page).cells} == keep


def test_null_recommendation(results, tmp_path):
    results["recommendation"] = None
    _, md, page = render(results, tmp_path)
    assert "## Recommendation: No recommendation" in md
    assert 'class="verdict none"' in page


def test_no_run_fits_the_budget(results, tmp_path):
    results["recommendation"] = {"run": None, "within_budget": False, "reason": "no run is within budget",
                                 "closest": {"run": "lora-r8", "excess": 0.011}}
    _, md, page = render(results, tmp_path)
    assert "No run fits the forgetting budget" in md
    assert "Closest: lora-r8, over the budget by 0.011 (toy-ner \u22120.061 vs allowed \u22120.050)" in md
    assert 'class="verdict closest"' in page


def test_missing_optional_cost_fields(results, tmp_path):
    results["runs"][0]["cost"] = {"wall_seconds": 12.0}
    results["runs"][1].pop("cost")
    _, md, _ = render(results, tmp_path)
    assert "| `full` | full | 12 s | \u2014 | \u2014 | \u2014 | \u2014 | \u2014 | \u2014 |" in md
    assert "| `lora-r8` | lora | \u2014 |" in md


def test_every_run_failed(results, tmp_path):
    for run in results["runs"]:
        run.update(status="failed", error="boom <b>")
    results["pareto"], results["recommendation"] = [], None
    paths, md, page = render(results, tmp_path)
    assert set(paths) == {"markdown", "html"}  # nothing to plot
    assert "no run finished" in md and "boom &lt;b&gt;" in page


def test_unfinished_study_without_runs(results, tmp_path):
    results["study"]["finished"] = False
    results["runs"], results["pareto"], results["recommendation"] = [], [], None
    _, md, page = render(results, tmp_path)
    assert "Study in progress" in md and "no run has finished yet" in page


def test_minimal_document(tmp_path):
    minimal = {"schema": "retain.study/1", "runs": [{"name": "full", "status": "done",
                                                     "change": {"t": {"metric": "accuracy", "delta": -0.1}}}]}
    _, md, page = render(minimal, tmp_path)
    assert "\u22120.100" in md and 'data-task="t"' in page


def test_odd_task_names_get_safe_plot_files(results, tmp_path):
    odd = "file:data/my <task>.jsonl"
    results["tasks"][odd] = results["tasks"].pop("toy-qa")
    for run in results["runs"]:
        for key in ("change", "scores", "forgotten"):
            if "toy-qa" in (run.get(key) or {}):
                run[key][odd] = run[key].pop("toy-qa")
    paths, _, page = render(results, tmp_path)
    plot = paths[f"task:{odd}"]
    assert plot.parent == tmp_path / "out" / "plots" and plot.name == "task-file-data-my-task-.jsonl.png"
    assert "my &lt;task&gt;.jsonl" in page and "<task>" not in page


def test_relative_budget_hides_the_common_line(results, tmp_path):
    for spec in results["tasks"].values():
        if "budget" in spec:
            spec["budget"] = {"max_drop": 0.1, "relative": True}
    _, md, _ = render(results, tmp_path)
    assert "drop \u2264 10% of base" in md
    assert load(results).common_budget() is None  # per-task absolute budgets differ: no single line


@pytest.mark.parametrize("doc", [[], {"schema": "retain.eval/1"}, {"runs": "nope"}])
def test_bad_documents_raise_user_error(doc, tmp_path):
    with pytest.raises(UserError):
        render_report(doc, tmp_path)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        render_report(tmp_path / "nope.json", tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="invalid JSON"):
        render_report(bad, tmp_path / "out")


def test_fixture_is_valid_json():
    json.dumps(build_results(), allow_nan=False)
