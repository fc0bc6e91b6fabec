"""The verdict: which runs stay within the forgetting budget, the Pareto front, and the recommendation.

The recommended run is the best on the target among runs whose every protected drop stays within
budget (protected tasks the base lacks are not counted). When none fits, the closest run is the one
whose worst overshoot of the budget is smallest, and the verdict says by how much.

A drop is a change for the worse: a fall of a higher-is-better metric, a rise of a lower-is-better one
(a perplexity task's NLL). Each change's `gain` (see `retain.study.compare.change`) says which.
"""

from __future__ import annotations


def allowed_drop(base_value: float, max_drop: float, relative: bool) -> float:
    """The largest drop allowed, in metric units."""
    return max_drop * abs(base_value) if relative else max_drop


def budget_check(run: dict, budgets: dict[str, float], skilled: set[str]) -> tuple[bool, list[dict]]:
    """(within budget?, violations) for a run with `change` filled in.

    Args:
        budgets: protected task -> allowed drop in metric units.
        skilled: protected tasks the base has; others never violate.
    """
    violations = []
    for task, allowed in budgets.items():
        if task not in skilled or task not in run.get("change", {}):
            continue
        c = run["change"][task]
        delta, up = c["delta"], c.get("higher_is_better", True)
        gain = c.get("gain", delta)
        if gain < -allowed - 1e-12:  # `allowed` in the metric's own direction: -0.05 accuracy, +0.05 nats
            violations.append({"task": task, "delta": delta, "allowed": -allowed if up else allowed,
                               "excess": -allowed - gain})
    return not violations, violations


def pareto_front(runs: list[dict]) -> list[str]:
    """Names of runs not dominated in (target_gain, mean_protected_change), both higher-is-better."""
    points = [(r["name"], r["target_gain"], r["mean_protected_change"]) for r in runs
              if r.get("status") == "done" and r.get("target_gain") is not None]
    front = []
    for name, g, p in points:
        dominated = any(g2 >= g and p2 >= p and (g2 > g or p2 > p) for _, g2, p2 in points)
        if not dominated:
            front.append(name)
    return front


def recommend(runs: list[dict]) -> dict:
    """Pick the run to recommend (see module docstring)."""
    done = [r for r in runs if r.get("status") == "done" and r.get("target_gain") is not None]
    if not done:
        return {"run": None, "within_budget": False, "reason": "no run finished", "closest": None}
    fits = [r for r in done if r["within_budget"]]
    if fits:
        best = max(fits, key=lambda r: (r["target_gain"], r["mean_protected_change"]))
        return {"run": best["name"], "within_budget": True,
                "reason": f"best target gain ({best['target_gain']:+.3f}) among the {len(fits)} of {len(done)} "
                          "runs whose protected drops stay within budget",
                "closest": None}
    closest = min(done, key=lambda r: (max(v["excess"] for v in r["budget_violations"]), -r["target_gain"]))
    excess = max(v["excess"] for v in closest["budget_violations"])
    worst = max(closest["budget_violations"], key=lambda v: v["excess"])
    return {"run": None, "within_budget": False,
            "reason": f"no run stays within budget; the closest is {closest['name']}, which overshoots on "
                      f"{worst['task']} by {excess:.3f}",
            "closest": {"run": closest["name"], "excess": excess, "task": worst["task"]}}
