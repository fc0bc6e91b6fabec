"""A study's plan: every run it trains and every run derived from one (WiSE-FT points, checkpoints), in
the order they run, with what is already done in the output folder.

Read from disk only (base.json and each run's result.json): no model is loaded and nothing is written,
so `retain study CONFIG --plan` is instant and safe on a folder another process is filling.

A run is *done* when its result.json holds the key the study would give it now; *changed* when a
result.json exists for other settings (it will run again); *failed* when it has no such result but its
failed.json (written when it failed: a NaN loss, a bad option) holds that key; *to do* otherwise. Without base.json no key
can be computed (it names the base model's fingerprint), so every run is *to do*. Derived runs come
from their kinds (`retain.methods.derived`): a checkpoint asked for as a fraction of training gets its
step once its parent has trained; until then the plan names it `PARENT+at-FRACTION`.
"""

from __future__ import annotations

from dataclasses import dataclass

from retain.io import read_json
from retain.study.config import WISE_FT


@dataclass(frozen=True)
class PlannedRun:
    """One row of the plan.

    Attributes:
        name: the run's name (its folder is `runs/NAME-sSEED`).
        kind: `train`, `wise-ft` or `checkpoint`.
        method: the method that trains it (a checkpoint's is its parent's; `wise-ft` for WiSE-FT).
        parent: the run it is derived from (None for `train`).
        seed: the training seed.
        detail: what it takes: the method and options, the alpha, or the point of training.
        status: `done`, `changed`, `failed` or `to do`.
        key: what identifies its result (None while it cannot be known: no base.json, parent not done).
        why: for `changed`, what changed (`change_reason`).
    """

    name: str
    kind: str
    method: str
    parent: str | None
    seed: int
    detail: str
    status: str
    key: str | None = None
    why: str | None = None

    @property
    def label(self) -> str:
        """How logs and errors name it: `NAME (seed N)`."""
        return f"{self.name} (seed {self.seed})"


def study_plan(study) -> list[PlannedRun]:
    """The plan of `study` (a `retain.study.run.Study`) against its output folder, in the order it runs."""
    from retain.methods.derived import derived_kinds

    base = study.out / "base.json"
    base_fp = read_json(base)["fingerprint"] if base.is_file() else None
    kinds = derived_kinds()
    rows: list[PlannedRun] = []
    for seed in study.config.seeds:
        trained = []  # (entry, key when done, saved record when done)
        for entry in study.config.methods:
            if entry.method == WISE_FT:
                continue
            key = study.train_key(entry, seed, base_fp) if base_fp else None
            status, saved, why = _status(study, entry.run_name, seed, key)
            trained.append((entry, key, saved))
            options = ", ".join(f"{k}={v}" for k, v in entry.options.items())
            rows.append(PlannedRun(entry.run_name, "train", entry.method, None, seed,
                                   entry.method + (f" ({options})" if options else ""), status, key, why))
            rows += [r for kind in kinds if not kind.after_all for r in _derived(study, kind, entry, key, saved, seed)]
        for kind in kinds:
            if kind.after_all:
                rows += [r for entry, key, saved in trained for r in _derived(study, kind, entry, key, saved, seed)]
    return rows


def _derived(study, kind, entry, parent_key: str | None, parent: dict | None, seed: int) -> list[PlannedRun]:
    rows = []
    for run in kind.planned(study.config.methods, entry, parent):
        key = study.derived_key(parent_key, **run.key) if parent is not None and run.known else None
        status, _, why = _status(study, run.name, seed, key)
        rows.append(PlannedRun(run.name, kind.kind, run.method, run.parent, seed, run.detail, status, key, why))
    return rows


def change_reason(saved: dict, eval_key: str) -> str:
    """What changed since a run's saved result (whose key no longer matches): `the evaluation` (its tasks
    or their settings), `its training settings`, `its parent or what it takes` (a derived run), or just
    `settings` for a result saved before the evaluation key was."""
    before = saved.get("eval_key")
    if before is None:
        return "settings"
    if before != eval_key:
        return "the evaluation"
    return "its training settings" if saved.get("parent") is None else "its parent or what it takes"


def _status(study, name: str, seed: int, key: str | None) -> tuple[str, dict | None, str | None]:
    """(status, the saved result when done, what changed when changed)."""
    run_dir = study.run_dir(name, seed)
    if key is None:  # no base.json, or the parent is not done: nothing can be matched yet
        return "to do", None, None
    path = run_dir / "result.json"
    saved = read_json(path) if path.is_file() else None
    if saved is not None and saved.get("key") == key:
        return "done", saved, None
    failure = run_dir / "failed.json"
    if failure.is_file() and read_json(failure).get("key") == key:
        return "failed", None, None
    if saved is None:
        return "to do", None, None
    return "changed", None, change_reason(saved, study.eval_key())
