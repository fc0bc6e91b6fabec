"""Protected tasks measured by the model: an lm-eval task and a perplexity task in a study, and the verdict
on a lower-is-better metric (a rise of NLL is the drop)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retain.evaluation.measured import scores_from_stats
from retain.evaluation.runner import TaskResult
from retain.study import compare, verdict
from retain.tasks import get_task
from tests.tasks.lmeval_fixture import write_tasks

TEXTS = ["The sky is blue today.", "Fire is hot and grass is green.", "Night is dark.", "Ice is cold.",
         "Snow is white in the winter.", "The sun is bright."]


def _nll_result(nll_per_token: list[float], tokens: int = 10) -> TaskResult:
    scores = scores_from_stats("perplexity", [str(i) for i in range(len(nll_per_token))],
                               {"nll": [[v * tokens, tokens] for v in nll_per_token],
                                "perplexity": [[v * tokens, tokens] for v in nll_per_token]}, "nll")
    return TaskResult(task=None, examples=[], predictions=[""] * len(nll_per_token), scores=scores)


def test_a_rise_of_nll_is_the_drop():
    base = _nll_result([2.0, 2.0, 2.0, 2.0])
    worse = compare.change(base, _nll_result([2.6, 2.7, 2.8, 2.5]), n_boot=200, seed=0)
    better = compare.change(base, _nll_result([1.9, 1.8, 2.0, 1.9]), n_boot=200, seed=0)
    assert worse["delta"] > 0 and worse["gain"] == -worse["delta"] and worse["higher_is_better"] is False
    assert better["delta"] < 0 and better["gain"] > 0
    budgets = {"ppl": 0.1}
    ok, violations = verdict.budget_check({"change": {"ppl": worse}}, budgets, {"ppl"})
    assert not ok and violations[0]["allowed"] == 0.1 and violations[0]["excess"] == pytest.approx(worse["delta"] - 0.1)
    assert verdict.budget_check({"change": {"ppl": better}}, budgets, {"ppl"}) == (True, [])


def test_the_verdict_recommends_the_run_that_keeps_perplexity_lowest_among_equals():
    base = _nll_result([2.0, 2.0, 2.0, 2.0])
    runs = []
    for name, nll in (("a", [2.05, 2.04, 2.06, 2.05]), ("b", [2.01, 2.0, 2.02, 2.01]), ("c", [2.08, 2.09, 2.07, 2.08])):
        c = compare.change(base, _nll_result(nll), n_boot=100, seed=0)
        run = {"name": name, "status": "done", "target_gain": 0.2, "mean_protected_change": c["gain"],
               "change": {"ppl": c}}
        run["within_budget"], run["budget_violations"] = verdict.budget_check(run, {"ppl": 0.5}, {"ppl"})
        runs.append(run)
    assert verdict.recommend(runs)["run"] == "b"
    assert verdict.pareto_front(runs) == ["b"]


def test_forgotten_documents_are_those_whose_nll_rose():
    base, run = _nll_result([2.0, 2.0, 2.0]), _nll_result([2.9, 2.1, 1.0])
    base.examples = run.examples = [type("Ex", (), {"id": str(i), "prompt": f"doc {i}", "target": ""})()
                                    for i in range(3)]
    items, counts = compare.forgotten(base, run, keep=5)
    assert [i["id"] for i in items] == ["0"] and counts == {"forgotten": 1, "learned": 1, "n": 3}


def test_a_study_protecting_an_lm_eval_and_a_perplexity_task(tiny_llama_dir, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")
    from retain.study.config import StudyConfig
    from retain.study.run import run_study

    monkeypatch.setenv("RETAIN_CACHE_DIR", str(tmp_path / "cache"))
    tasks = write_tasks(tmp_path / "lm-eval")
    docs = tmp_path / "general.txt"
    docs.write_text("\n\n".join(TEXTS))
    config = StudyConfig(**{
        "name": "measured", "model": str(tiny_llama_dir), "lm_eval_include": [str(tasks)],
        "target": {"task": "toy-summarize", "train_examples": 16},
        "protect": ["lm-eval:tiny_mc", f"perplexity:{docs}"],
        "methods": [{"method": "full"}],
        "train": {"max_steps": 3, "batch_size": 8, "eval_examples": 4, "learning_rate": 1e-2},
        "eval": {"limit": 6, "batch_size": 8, "n_boot": 100},
    })
    doc = run_study(config, tmp_path / "out", log=lambda _: None)
    ppl, mc = f"perplexity:{docs}", "lm-eval:tiny_mc"
    assert doc["tasks"][ppl]["kind"] == "perplexity" and doc["tasks"][ppl]["primary"] == "nll"
    assert doc["tasks"][mc]["kind"] == "lm-eval" and doc["tasks"][mc]["primary"] == "acc"
    run = doc["runs"][0]
    assert run["status"] == "done"
    for name in (ppl, mc):
        c = run["change"][name]
        assert c["ci95"][0] <= c["delta"] <= c["ci95"][1]
        assert name in run["forgotten"] and set(run["forgotten_counts"][name]) == {"forgotten", "learned", "n"}
    c = run["change"][ppl]
    assert c["higher_is_better"] is False and c["gain"] == -c["delta"]
    assert c["delta"] != 0  # training moved the weights: every document's NLL changed
    base = json.loads((tmp_path / "out" / "results.json").read_text())["base"]["scores"][ppl]["nll"]
    assert np.isfinite(base["value"])
    assert (tmp_path / "out" / "report.html").is_file()
    assert get_task(mc, [tasks]).kind == "lm-eval"


def test_a_measured_task_is_no_target(tmp_path):
    from retain.errors import UserError
    from retain.study.config import StudyConfig
    from retain.study.run import Study

    config = StudyConfig(name="t", model="unused", target="perplexity:toy-qa", protect=["toy-ner"], methods=["full"])
    with pytest.raises(UserError, match="can be protected, not fine-tuned on"):
        Study(config, tmp_path / "out", log=lambda _: None)
