"""Run a study: evaluate the base, train and evaluate every method, sweep WiSE-FT, write results.

Layout of the output folder::

    OUT/config.yaml            the resolved study config
    OUT/runs/NAME-sSEED/       one folder per run: the training run (model or adapter, metadata,
                               log) and `result.json` (its evaluation outputs), written last;
                               `failed.json` instead when it failed (the error, for its key)
    OUT/base.json              the base model's evaluation outputs
    OUT/results.json           the whole study (schema: docs/results-schema.md), rewritten after
                               every finished run
    OUT/report.md, report.html, plots/
    OUT/claims/                who runs what, when workers share the study (`retain.study.workers`)

The runs are those of the plan (`retain.study.plan`), in its order: one process runs them all here,
several workers share them in `retain.study.workers`, through the same `runnable` / `execute` /
`write_results`. A run whose `result.json` exists with the same key (base fingerprint, method, options, training and
evaluation settings, task data) is skipped on a rerun; an interrupted training run resumes from its
last checkpoint; evaluation outputs come from the cache. Rerunning after `kill -9` at any point
therefore finishes with the same results as an uninterrupted study.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from retain.errors import UserError
from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import (EvalSettings, TaskResult, eval_examples, evaluate_task, result_from_outputs,
                                      task_key)
from retain.io import atomic_write_json, atomic_write_text, read_json, sha256_json
from retain.lock import FolderLock
from retain.study import compare
from retain.study.config import WISE_FT, MethodEntry, StudyConfig
from retain.study.plan import change_reason
from retain.tasks import Task, get_task
from retain.training.metadata import provenance

Log = Callable[[str], None]


@dataclass
class StudyTask:
    task: Task
    role: str  # "target" or "protected"
    allowed_drop: float | None = None  # protected: budget in metric units (set after the base is scored)
    tolerance: float | None = None
    settings: EvalSettings | None = None  # how this task is evaluated (its own few-shot k)


class Study:
    """One study: its config, output folder and the state built while it runs."""

    def __init__(self, config: StudyConfig, out_dir: str | Path, log: Log = print, progress_factory=None):
        self.config = config
        self.out = Path(out_dir)
        self.log = log
        self.progress_factory = progress_factory
        self.settings = config.eval.evaluation()
        self.cache = EvalCache(config.cache_dir)
        self.tasks = self._resolve_tasks()
        # Each finished run's results entry (metrics, paired bootstrap, forgotten examples), by run key:
        # results.json is rewritten after every run, and a run's entry never changes within a study.
        self.run_entries: dict[str, dict] = {}

    # --- set-up -------------------------------------------------------------------------------------

    def _resolve_tasks(self) -> dict[str, StudyTask]:
        """Every task resolved and its data read before anything runs (bad data fails here)."""
        include = self.config.lm_eval_include
        target = get_task(self.config.target.task, include).with_max_new_tokens(self.config.target.max_new_tokens)
        if target.kind in ("perplexity", "lm-eval"):  # measured by the model: nothing to fine-tune towards
            raise UserError(f"target task {target.name}: a {target.kind} task can be protected, not fine-tuned on")
        if not target.has_split("train"):
            raise UserError(f"target task {target.name} has no 'train' split to fine-tune on")
        # Few-shot is per task and for evaluation only: training reads the target's zero-shot examples.
        tasks = {target.name: StudyTask(target, "target",
                                        settings=self.settings.but(fewshot=self.config.target.fewshot))}
        for p in self.config.protect:
            t = get_task(p.task, include).with_max_new_tokens(p.max_new_tokens)
            tasks[t.name] = StudyTask(t, "protected", tolerance=p.tolerance,
                                      settings=self.settings.but(fewshot=p.fewshot))
        for st in tasks.values():
            eval_examples(st.task, st.settings)  # reads the data and draws the shots
        target.examples("train", self.config.target.train_examples)
        return tasks

    @property
    def target(self) -> StudyTask:
        return next(st for st in self.tasks.values() if st.role == "target")

    def _eval_identity(self) -> dict:
        # Zero-shot task keys are the task identities, so run keys from before few-shot stay valid.
        return {"settings": {k: getattr(self.settings, k) for k in ("split", "limit", "chat")},
                "tasks": {n: task_key(st.task, st.settings) for n, st in self.tasks.items()}}

    # --- evaluation ---------------------------------------------------------------------------------

    def _evaluate(self, lm, label: str) -> dict[str, TaskResult]:
        results = {}
        for name, st in self.tasks.items():
            n = len(eval_examples(st.task, st.settings))
            progress = self.progress_factory(f"{label}: {name}", n) if self.progress_factory else None
            results[name] = evaluate_task(lm, st.task, st.settings, self.cache, progress)
        return results

    def rebuild(self, outputs: dict[str, dict]) -> dict[str, TaskResult]:
        """Each task's result rebuilt from stored outputs (metrics are recomputed, never stored)."""
        return {name: result_from_outputs(st.task, eval_examples(st.task, st.settings), outputs[name], st.settings)
                for name, st in self.tasks.items()}

    # --- runs ----------------------------------------------------------------------------------------

    def run_dir(self, name: str, seed: int) -> Path:
        """The folder of run `name` at `seed` (its training run is under `train/`)."""
        return self.out / "runs" / f"{name}-s{seed}"

    def train_settings(self, entry: MethodEntry, seed: int):
        """The training settings of `entry` at `seed` (validated with the config; only the seed is set here)."""
        return entry.settings.model_copy(update={"seed": seed})

    def train_key(self, entry: MethodEntry, seed: int, base_fp: str) -> str:
        """What identifies a training run's result: base, method, settings, target data, evaluation."""
        settings = self.train_settings(entry, seed)
        # keep_at: [] is left out of the key, so that runs from before checkpoints existed are reused.
        dumped = settings.model_dump(mode="json", exclude=None if settings.keep_at else {"keep_at"})
        return sha256_json({"base": base_fp, "method": entry.method_config.describe(),
                            "settings": dumped,
                            "target": self.target.task.identity("train", self.config.target.train_examples),
                            "eval": self._eval_identity()})

    def eval_key(self) -> str:
        """The evaluation part of every run key (its tasks and their settings), saved beside the key so that
        a rerun can say whether the evaluation or the training changed."""
        return sha256_json(self._eval_identity())

    def derived_key(self, parent_key: str, **what) -> str:
        """What identifies a derived run's result: its parent's key, what it takes (alpha, step), evaluation."""
        return sha256_json({"parent": parent_key, **what, "eval": self._eval_identity()})

    def _saved(self, run_dir: Path, key: str) -> dict | None:
        path = run_dir / "result.json"
        if path.is_file():
            saved = read_json(path)
            if saved.get("key") == key:
                return saved
            why = change_reason(saved, self.eval_key())
            again = ("evaluating again (its tasks or their settings), from the cache where it can"
                     if why == "the evaluation" else "running again")
            self.log(f"  {run_dir.name}: {why} changed since the saved result; {again}")
        return None

    def entry(self, name: str) -> MethodEntry:
        """The training entry whose run is `name`."""
        return next(e for e in self.config.methods if e.method != WISE_FT and e.run_name == name)

    def done_record(self, entry: MethodEntry, seed: int, base_fp: str) -> dict | None:
        """The saved result of `entry`'s training run at `seed` when it is done with today's key, else None."""
        run_dir = self.run_dir(entry.run_name, seed)
        path = run_dir / "result.json"
        saved = read_json(path) if path.is_file() else None
        if saved is None or saved.get("key") != self.train_key(entry, seed, base_fp):
            return None
        # The folder may have moved since (a copied study): derived runs read the weights from here.
        return {**saved, "train_dir": str((run_dir / "train").resolve())}

    def _train_run(self, entry: MethodEntry, seed: int, base_fp: str) -> dict:
        from retain.models.loading import LazyModel
        from retain.training.loop import train

        method = entry.method_config
        settings = self.train_settings(entry, seed)
        run_dir = self.run_dir(entry.run_name, seed)
        key = self.train_key(entry, seed, base_fp)
        saved = self._saved(run_dir, key)
        if saved is not None:
            self.log(f"  {entry.run_name} (seed {seed}): already done, reusing {run_dir}")
            return self.done_record(entry, seed, base_fp)
        self.log(f"  {entry.run_name} (seed {seed}): training {method.name} ...")
        t0 = time.perf_counter()
        # The study owns its run folders: a run whose settings changed is trained again, not refused.
        tr = train(self.config.model, self.target.task, method, settings, run_dir / "train", replace_other=True)
        if tr.reused:
            self.log(f"  {entry.run_name} (seed {seed}): its trained model is unchanged; reused from {run_dir / 'train'}")
        lm = LazyModel(tr.model_path, adapter=tr.adapter_path, device=self.config.device, dtype=self.config.dtype)
        results = self._evaluate(lm, entry.run_name)
        meta = tr.metadata
        cost = {"wall_seconds": round(time.perf_counter() - t0, 3), "train_seconds": meta.get("train_seconds"),
                "tokens_per_second": meta.get("tokens_per_second"),
                "trainable_parameters": meta["parameters"]["trainable"],
                "total_parameters": meta["parameters"]["total"],
                "peak_memory_mb": round(meta["peak_memory"]["bytes"] / 2**20, 1),
                "peak_memory_kind": meta["peak_memory"]["kind"],
                "eval_seconds": round(sum(r.seconds for r in results.values()), 3)}
        record = {"key": key, "eval_key": self.eval_key(), "name": entry.run_name, "method": method.name,
                  "options": method.options(),
                  "seed": seed, "parent": None, "alpha": None, "model": {"fingerprint": lm.fingerprint},
                  "train_dir": str((run_dir / "train").resolve()), "steps": meta["steps"],
                  "kept": meta.get("kept", []), "base_weights_unchanged":
                  meta.get("base_weights_unchanged"), "cost": cost, **provenance(settings),
                  "outputs": {n: r.outputs() for n, r in results.items()}}
        atomic_write_json(run_dir / "result.json", record, indent=None)
        self.log(f"  {entry.run_name} (seed {seed}): done in {cost['wall_seconds']:.1f}s")
        return record

    def _derived_run(self, kind, run, parent: dict, seed: int) -> dict:
        """One derived run (a WiSE-FT point, a checkpoint, ...): made by its kind, evaluated, saved."""
        run_dir = self.run_dir(run.name, seed)
        key = self.derived_key(parent["key"], **run.key)
        saved = self._saved(run_dir, key)
        if saved is not None:
            return saved
        t0 = time.perf_counter()
        lm = kind.model(parent, run, self.config.device, self.config.dtype)
        results = self._evaluate(lm, run.name)
        cost = {**kind.cost(parent, run), "wall_seconds": round(time.perf_counter() - t0, 3),
                "eval_seconds": round(sum(r.seconds for r in results.values()), 3)}
        record = {"key": key, "eval_key": self.eval_key(), "name": run.name, "seed": seed, "parent": parent["name"],
                  **kind.fields(parent, run),
                  "model": {"fingerprint": lm.fingerprint}, "cost": cost, **provenance(None),
                  "outputs": {n: r.outputs() for n, r in results.items()}}
        atomic_write_json(run_dir / "result.json", record, indent=None)
        self.log(f"  {run.name}: evaluated in {cost['wall_seconds']:.1f}s")
        return record

    # --- the plan's runs, one at a time ---------------------------------------------------------------

    def plan(self):
        """The study's plan against its folder now (`retain.study.plan.study_plan`)."""
        from retain.study.plan import study_plan

        return study_plan(self)

    @staticmethod
    def runnable(rows, retry_failed: bool = False) -> list:
        """The rows of plan `rows` that can run now, in plan order: not done, and a derived run's parent done.

        A failed run is run again only with `retry_failed` (a plain study tries each run once per
        process; workers leave failures alone, so that one bad run is not tried by every worker).
        """
        status = {(r.name, r.seed): r.status for r in rows}
        wanted = ("to do", "changed", "failed") if retry_failed else ("to do", "changed")
        return [r for r in rows if r.status in wanted and (r.parent is None or status.get((r.parent, r.seed)) == "done")]

    def execute(self, row, raise_failure: bool = False) -> dict | None:
        """Run the planned run `row` (a `PlannedRun`; a derived run's parent must be done) and save its result.

        A UserError while it runs (a NaN loss, a model that cannot be made) is logged and saved as the
        run's `failed.json` (re-raised with `raise_failure`); None is returned then.

        Raises:
            UserError: `row` is a derived run whose parent is not done.
        """
        from retain.methods.derived import derived_kind

        base_fp = self._base_fp()
        parent_entry = parent = None
        if row.parent is not None:
            parent_entry = self.entry(row.parent)
            parent = self.done_record(parent_entry, row.seed, base_fp)
            if parent is None:
                raise UserError(f"run {row.name} (seed {row.seed}) derives from {row.parent}, which is not done; "
                                f"run {row.parent} first")
        run_dir = self.run_dir(row.name, row.seed)
        try:
            if parent is None:
                record = self._train_run(self.entry(row.name), row.seed, base_fp)
            else:
                kind = derived_kind(row.kind)
                run = next(r for r in kind.planned(self.config.methods, parent_entry, parent) if r.name == row.name)
                record = self._derived_run(kind, run, parent, row.seed)
        except UserError as e:  # e.g. a NaN loss: report it, keep the other runs
            self.log(f"  {row.name} (seed {row.seed}): FAILED: {e}")
            atomic_write_json(run_dir / "failed.json", {"key": row.key, "name": row.name, "method": row.method,
                                                        "seed": row.seed, "status": "failed", "error": str(e)})
            if raise_failure:
                raise
            return None
        (run_dir / "failed.json").unlink(missing_ok=True)
        return record

    # --- the whole study ------------------------------------------------------------------------------

    def load_base(self) -> None:
        """Find the base model (and load a hub model) before anything is written: a missing folder or an
        unreachable hub leaves no half-made output folder behind."""
        from retain.models.loading import LazyModel

        self.check_devices()
        # Handed to `prepare` through `self._base` so that no frame keeps a reference: the base weights
        # are dropped before training.
        self._base = LazyModel(self.config.model, device=self.config.device, dtype=self.config.dtype)

    def check_devices(self) -> None:
        """Refuse, before anything is written, a run this machine cannot train (QLoRA without CUDA), rather
        than fail when its turn comes after the others have trained."""
        from retain.models.loading import pick_device
        from retain.training.hooks import check_runs_on

        for entry in self.config.methods:
            try:
                if entry.method_config is not None:
                    check_runs_on(entry.method_config, pick_device(entry.settings.device))
            except UserError as e:
                raise UserError(f"run {entry.run_name!r}: {e}") from None

    def run(self) -> dict:
        """Run (or resume) the study; returns the results document (also written to results.json)."""
        self.load_base()
        # One process per output folder: a second one refuses at once, naming this one.
        with FolderLock(self.out, f"retain study {self.config.name}"):
            self.prepare()
            return self._run()

    def prepare(self) -> None:
        """Evaluate the base (from the cache when it was before) and write config.yaml and base.json:
        what every run's key and every results document need. Call `load_base` first."""
        base_lm, self._base = self._base, None
        atomic_write_text(self.out / "config.yaml", yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))
        previous = self.out / "results.json"
        self.created = (read_json(previous)["study"]["created"] if previous.is_file()
                        else dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        self.log(f"base model {self.config.model} ({base_lm.fingerprint}): evaluating {len(self.tasks)} tasks")
        self.base_results = self._evaluate(base_lm, "base")
        atomic_write_json(self.out / "base.json", {"fingerprint": base_lm.fingerprint, "model": base_lm.describe(),
                                                   "outputs": {n: r.outputs() for n, r in self.base_results.items()}},
                          indent=None)
        self.skills = {n: compare.skill(self.base_results[n], self.settings.n_boot, self.settings.seed)
                       for n, st in self.tasks.items() if st.role == "protected"}
        for n, s in self.skills.items():
            if not s["has_skill"]:
                self.log(f"  warning: {n}: {s['note']}")

    def _run(self) -> dict:
        """Every run of the plan in its order, each tried once; results.json rewritten after each."""
        for row in self.plan():
            if row.kind == "train" and row.status == "done":
                self.log(f"  {row.label}: already done, reusing {self.run_dir(row.name, row.seed)}")
        tried: set[tuple[str, int]] = set()
        while row := next((r for r in self.runnable(self.plan(), retry_failed=True)
                           if (r.name, r.seed) not in tried), None):
            tried.add((row.name, row.seed))
            self.execute(row)
            self.write_results()
        return self.write_results()

    def _base_fp(self) -> str:
        return read_json(self.out / "base.json")["fingerprint"]

    def base_model(self) -> dict:
        """The base model as evaluated: name, fingerprint, and where its weights came from (e.g. a GGUF
        file's quantization) and the precision used, when base.json records them."""
        described = read_json(self.out / "base.json").get("model") or {}
        keep = {k: described[k] for k in ("architecture", "dtype", "precision", "source") if k in described}
        return {"name": self.config.model, "fingerprint": self._base_fp(), **keep}

    def write_results(self) -> dict:
        """results.json from what the folder holds now (whoever ran each run), and the document.

        Runs in plan order: the done ones, then the failed ones, then those still to run (`pending`).
        The study is *finished* when none is pending; a derived run of a failed run is left out.
        Call `prepare` first.
        """
        from retain.study.results import assemble

        rows = self.plan()
        status = {(r.name, r.seed): r.status for r in rows}
        records, failed, pending = [], [], []
        for r in rows:
            if r.status == "done":
                records.append(read_json(self.run_dir(r.name, r.seed) / "result.json"))
            elif r.status == "failed":
                saved = read_json(self.run_dir(r.name, r.seed) / "failed.json")
                failed.append({k: saved[k] for k in ("name", "method", "seed", "status", "error")})
            elif r.parent is None or status.get((r.parent, r.seed)) != "failed":
                pending.append({"name": r.name, "method": r.method, "seed": r.seed, "parent": r.parent,
                                "status": "pending", "error": None})
        # The first results.json names when the study began, whichever process wrote it (workers).
        previous = self.out / "results.json"
        created = read_json(previous)["study"]["created"] if previous.is_file() else self.created
        doc = assemble(self, self.base_results, self.skills, records, failed, created, not pending, pending)
        atomic_write_json(self.out / "results.json", doc)
        return doc


def run_study(config: StudyConfig, out_dir: str | Path, log: Log = print, progress_factory=None,
              report: bool = True) -> dict:
    """Run or resume a study and (by default) render its report; returns the results document."""
    doc = Study(config, out_dir, log, progress_factory).run()
    if report:
        from retain.report import render_report

        render_report(doc, out_dir)
    return doc

