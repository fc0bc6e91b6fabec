"""A study completed by several processes or machines: `retain study CONFIG --worker` and `--run NAME`.

The plan (`retain.study.plan`) is the list of jobs. Every process that shares the output folder (and,
to share evaluations, the cache folder) works from it:

- the base evaluation first, under the claim `claims/base.lock`: one process evaluates, the others
  wait, then read the same outputs from the evaluation cache (writing an identical base.json);
- then each run under its claim `claims/NAME-sSEED.lock` (`retain.lock.Claim`: an `O_EXCL` file
  naming host, pid and start time, taken over when its holder is dead), checked again once claimed,
  so that a run finished meanwhile is never run twice;
- results.json is rewritten from the folder after each run under the short claim
  `claims/results.lock`, so that the last write always holds every finished run; the report is
  rendered once nothing is left to run.

A worker takes runs in plan order (a derived run once its parent is done) and ends when none is
left for it: it waits while a run held by another process has derived runs waiting on it, and leaves
runs held by others to them. A failed run (its `failed.json`) is not retried by workers; `--run NAME`
runs it again. Workers hold the folder lock shared (`retain.lock.FolderLock`): a plain `retain study`
on the same folder refuses while they work, and they refuse while it does.
"""

from __future__ import annotations

import time

from retain.errors import UserError
from retain.lock import CLAIM_LEASE, Claim, FolderLock, describe
from retain.study.run import Log, Study

POLL_SECONDS = 1.0  # how often a waiting worker looks again at the plan and the claims


def _claim(study: Study, job: str, what: str, lease: float) -> Claim:
    return Claim(study.out / "claims" / f"{job}.lock", what, lease)


def _wait_for(claim: Claim, log: Log, poll: float) -> Claim:
    """`claim` taken, waiting (and saying so once) while a live process holds it."""
    said = False
    while (holder := claim.take()) is not None:
        if not said:
            log(f"  waiting for {describe(holder)} ({claim.what})")
            said = True
        time.sleep(poll)
    _say_took_over(claim, log)
    return claim


def _say_took_over(claim: Claim, log: Log) -> None:
    if claim.took_over:
        log(f"  {claim.what}: taking over from {claim.took_over}")


def _prepare(study: Study, lease: float, poll: float) -> None:
    with _wait_for(_claim(study, "base", "base evaluation", lease), study.log, poll):
        study.prepare()


def _write(study: Study, lease: float, poll: float) -> dict:
    with _wait_for(_claim(study, "results", "results.json", lease), study.log, min(poll, 0.2)):
        return study.write_results()


def _fresh(study: Study, row):
    """`row` as the folder has it now (another process may have finished it since the plan was read)."""
    return next((r for r in study.plan() if (r.name, r.seed) == (row.name, row.seed)), None)


def claimed(study: Study, rows) -> dict[tuple[str, int], str]:
    """Who holds each claimed run of plan `rows` that is not done, for `--plan`: {(name, seed): text}."""
    found = {}
    for r in rows:
        claim = _claim(study, f"{r.name}-s{r.seed}", r.label, CLAIM_LEASE)
        if r.status == "done" or (held := claim.holder()) is None:
            continue
        holder, why = held
        found[(r.name, r.seed)] = (f"running: {describe(holder or {})}" if why is None
                                   else f"claim left by {describe(holder or {})}: {why}; the next worker takes it over")
    return found


def _finish(study: Study, doc: dict, report: bool) -> dict:
    if report and doc["study"]["finished"]:
        from retain.report import render_report

        render_report(doc, study.out)
    return doc


def run_worker(study: Study, lease: float = CLAIM_LEASE, poll: float = POLL_SECONDS, report: bool = True) -> dict:
    """Claim and run the study's runs one at a time, with any other workers, until none is left for this one.

    Args:
        study: the study (its output folder is shared with the other workers).
        lease: seconds without a heartbeat after which this worker's claims are taken for dead.
        poll: seconds between looks while waiting for another worker.
        report: render the report when the study is finished.

    Returns:
        The results document as this worker last wrote it (`doc["study"]["finished"]`: all is done).
    """
    study.load_base()
    with FolderLock(study.out, shared=True):
        _prepare(study, lease, poll)
        while True:
            rows = study.plan()
            for row in study.runnable(rows):
                claim = _claim(study, f"{row.name}-s{row.seed}", row.label, lease)
                if claim.take() is not None:
                    continue  # another live process runs it
                with claim:
                    _say_took_over(claim, study.log)
                    row = _fresh(study, row)
                    if row is None or row.status not in ("to do", "changed"):
                        continue  # finished (or failed) by another worker since the plan was read
                    study.execute(row)
                    if claim.lost:
                        study.log(f"  {row.label}: warning: its claim was taken over while it ran "
                                  f"(lease {lease:g}s too short?)")
                _write(study, lease, poll)
                break
            else:
                status = {(r.name, r.seed): r.status for r in rows}
                waiting = [r for r in rows if r.parent is not None and r.status not in ("done", "failed")
                           and status.get((r.parent, r.seed)) not in ("done", "failed")]
                if not waiting:  # nothing to run here: the rest (if any) is held by others
                    break
                time.sleep(poll)  # a derived run waits for its parent, which another worker runs
        return _finish(study, _write(study, lease, poll), report)


def run_one(study: Study, name: str, lease: float = CLAIM_LEASE, poll: float = POLL_SECONDS,
            report: bool = True) -> dict:
    """Run the planned run `name` (at every seed of the study; `NAME-sSEED` for one) and return.

    A run already done is left as it is; a failed one is run again.

    Raises:
        UserError: no such run in the plan; a derived run whose parent is not done; a run another
            live process holds; the run failed.
    """
    def matching() -> list:
        rows = study.plan()
        found = [r for r in rows if name in (r.name, f"{r.name}-s{r.seed}")]
        if not found:
            names = ", ".join(dict.fromkeys(r.name for r in rows))
            raise UserError(f"no run {name!r} in the study's plan (runs: {names})", "--run")
        status = {(r.name, r.seed): r.status for r in rows}
        for r in found:
            if r.parent is not None and status.get((r.parent, r.seed)) != "done":
                raise UserError(f"{r.name} (seed {r.seed}) derives from {r.parent}, which is not done; "
                                f"run it first: retain study CONFIG --run {r.parent}", "--run")
        return found

    matching()  # before loading anything: a parent with no result cannot be done
    study.load_base()
    with FolderLock(study.out, shared=True):
        _prepare(study, lease, poll)
        try:
            for row in matching():
                if row.status == "done":
                    study.log(f"  {row.label}: already done, reusing {study.run_dir(row.name, row.seed)}")
                    continue
                claim = _claim(study, f"{row.name}-s{row.seed}", row.label, lease)
                if (holder := claim.take()) is not None:
                    raise UserError(f"{row.label} is being run by {describe(holder)}", "--run")
                with claim:
                    _say_took_over(claim, study.log)
                    row = _fresh(study, row)
                    if row is not None and row.status != "done":
                        study.execute(row, raise_failure=True)
        finally:
            doc = _write(study, lease, poll)
        return _finish(study, doc, report)


def study_worker(config, out_dir, run: str | None = None, log: Log = print, progress_factory=None,
                 lease: float = CLAIM_LEASE, report: bool = True) -> dict:
    """`retain study CONFIG --worker` (or, with `run`, `--run NAME`) from Python: `retain.study_worker`.

    Args:
        config: the study (`retain.load_study_config`).
        out_dir: the output folder every worker shares (and, to share evaluations, the same cache folder).
        run: a planned run (`NAME`, or `NAME-sSEED` for one seed) to run alone and return; None: work
            as a worker, claiming runs until none is left for this process.
        lease: seconds without a heartbeat after which a claim is taken for dead (docs/scale-out.md).

    Returns:
        The results document as this process last wrote it.
    """
    study = Study(config, out_dir, log, progress_factory)
    if run is None:
        return run_worker(study, lease=lease, report=report)
    return run_one(study, run, lease=lease, report=report)
