"""Budget checks, the Pareto front and the recommendation, on hand-made runs."""

from __future__ import annotations

from retain.study.verdict import allowed_drop, budget_check, pareto_front, recommend


def run(name, gain, changes, status="done"):
    r = {"name": name, "status": status, "target_gain": gain,
         "change": {t: {"delta": d} for t, d in changes.items()},
         "mean_protected_change": sum(changes.values()) / len(changes)}
    r["within_budget"], r["budget_violations"] = budget_check(r, {"ner": 0.05, "qa": 0.05}, {"ner", "qa"})
    return r


def test_allowed_drop_absolute_and_relative():
    assert allowed_drop(0.8, 0.05, relative=False) == 0.05
    assert abs(allowed_drop(0.8, 0.05, relative=True) - 0.04) < 1e-12


def test_budget_check_flags_only_skilled_tasks():
    r = {"change": {"ner": {"delta": -0.2}, "qa": {"delta": -0.2}}}
    ok, violations = budget_check(r, {"ner": 0.05, "qa": 0.05}, skilled={"ner"})
    assert not ok and [v["task"] for v in violations] == ["ner"]
    assert abs(violations[0]["excess"] - 0.15) < 1e-12
    assert budget_check({"change": {"ner": {"delta": -0.05}}}, {"ner": 0.05}, {"ner"})[0]


def test_recommend_best_target_within_budget():
    runs = [run("full", 0.30, {"ner": -0.40, "qa": -0.10}),
            run("lora", 0.20, {"ner": -0.04, "qa": 0.00}),
            run("multitask", 0.25, {"ner": -0.01, "qa": -0.02})]
    rec = recommend(runs)
    assert rec["run"] == "multitask" and rec["within_budget"]


def test_recommend_closest_when_none_fits():
    runs = [run("full", 0.30, {"ner": -0.40, "qa": -0.10}),
            run("lora", 0.20, {"ner": -0.08, "qa": 0.00})]
    rec = recommend(runs)
    assert rec["run"] is None and not rec["within_budget"]
    assert rec["closest"]["run"] == "lora" and abs(rec["closest"]["excess"] - 0.03) < 1e-12


def test_pareto_front_excludes_dominated_and_failed():
    runs = [run("a", 0.3, {"ner": -0.3, "qa": -0.3}), run("b", 0.2, {"ner": 0.0, "qa": 0.0}),
            run("c", 0.1, {"ner": -0.1, "qa": -0.1}), run("d", 0.9, {"ner": 0, "qa": 0}, status="failed")]
    assert pareto_front(runs) == ["a", "b"]
