"""Assemble a study's `results.json` from the base outputs and the runs' saved outputs.

Everything here is recomputed from stored predictions (metrics, paired bootstraps, forgotten
examples), so the document is the same whether the runs were computed now or reused from disk.
Schema: docs/results-schema.md (`retain.study/1`).
"""

from __future__ import annotations

from retain import __version__
from retain.evaluation.metrics import higher_is_better
from retain.report.schema import SCHEMA
from retain.study import compare, verdict


def _git_commit() -> str | None:
    from retain.training.metadata import git_commit

    return git_commit()


def _run_entry(study, base: dict, record: dict, budgets: dict[str, float], skilled: set[str]) -> dict:
    st_n, seed = study.settings.n_boot, study.settings.seed
    results = study.rebuild(record["outputs"])
    changes = {n: compare.change(base[n], results[n], st_n, seed) for n in study.tasks}
    target = study.target.task.name
    protected = [n for n, t in study.tasks.items() if t.role == "protected" and n in skilled]
    forgotten, counts = {}, {}
    for n, st in study.tasks.items():
        if st.role == "protected":
            forgotten[n], counts[n] = compare.forgotten(base[n], results[n], study.config.eval.forgotten_examples)
    run = {
        "name": record["name"], "method": record["method"], "options": record["options"], "seed": record["seed"],
        "parent": record.get("parent"), "alpha": record.get("alpha"), "step": record.get("step"),
        "of_steps": record.get("of_steps"), "point": record.get("point"), "status": "done", "error": None,
        "model": record["model"], "base_weights_unchanged": record.get("base_weights_unchanged"),
        "scores": {n: r.metrics for n, r in results.items()},
        "change": changes,
        # gains: deltas signed so that positive is better (a perplexity task's NLL falling)
        "target_gain": changes[target]["gain"],
        "mean_protected_change": (sum(changes[n]["gain"] for n in protected) / len(protected)) if protected else 0.0,
        "cost": record["cost"], "forgotten": forgotten, "forgotten_counts": counts,
    }
    run["within_budget"], run["budget_violations"] = verdict.budget_check(run, budgets, skilled)
    return run


def assemble(study, base: dict, skills: dict, records: list[dict], failed: list[dict], created: str,
             finished: bool, pending: list[dict] = ()) -> dict:
    """The results document (see module docstring); `pending`: planned runs without a result yet
    (status `pending`), listed after the others so a report of a running study shows what is missing."""
    cfg = study.config
    skilled = {n for n, s in skills.items() if s["has_skill"]}
    budgets, tasks = {}, {}
    for n, st in study.tasks.items():
        primary = base[n].scores.primary
        entry = {"role": st.role, "metric": st.task.metric, "primary": primary, "n": len(base[n].examples),
                 "higher_is_better": higher_is_better(base[n].scores.metric, primary),
                 "kind": st.task.kind, "fewshot": base[n].fewshot, "truncated": base[n].truncated}
        if st.role == "protected":
            max_drop = st.tolerance if st.tolerance is not None else cfg.budget.max_drop
            budgets[n] = verdict.allowed_drop(base[n].scores.value(primary), max_drop, cfg.budget.relative)
            entry["budget"] = {"max_drop": max_drop, "relative": cfg.budget.relative, "allowed_drop": budgets[n]}
        tasks[n] = entry
    runs = []
    for r in records:
        if r["key"] not in study.run_entries:
            study.run_entries[r["key"]] = _run_entry(study, base, r, budgets, skilled)
        runs.append(study.run_entries[r["key"]])
    runs += [{"parent": None, **f, "alpha": None, "step": None, "of_steps": None, "point": None, "options": {},
              "target_gain": None,
              "mean_protected_change": None, "within_budget": False, "budget_violations": []} for f in [*failed, *pending]]
    target = study.target
    return {
        "schema": SCHEMA,
        "study": {"name": cfg.name, "created": created, "finished": finished, "retain_version": __version__,
                  "git_commit": _git_commit(), "config": cfg.model_dump(mode="json")},
        "model": study.base_model(),
        "target": {"task": target.task.name, "metric": target.task.metric,
                   "primary": base[target.task.name].scores.primary,
                   "train_examples": cfg.target.train_examples},
        "tasks": tasks,
        "base": {"scores": {n: r.metrics for n, r in base.items()}, "skills": skills},
        "runs": runs,
        "pareto": verdict.pareto_front(runs),
        "recommendation": verdict.recommend(runs),
    }
