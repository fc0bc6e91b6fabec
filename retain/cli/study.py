"""`retain study`, `retain report` and `retain demo`: from a base model to a forgetting report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retain.cli import app, quiet_libraries
from retain.cli.summary import print_summary


def _progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def run_with_progress(config, out: Path, console: Console, worker: bool = False, run: str | None = None,
                      lease: float | None = None) -> dict:
    """Run a study (or, as one of its workers, its runs left; or its run `run`), showing one progress
    bar per evaluation and a line per step."""
    from retain.study.run import run_study

    with _progress_bar(console) as bar:
        def factory(label, total):
            handle = bar.add_task(escape(label), total=total)
            return lambda n: bar.advance(handle, n)

        # Log lines carry user strings (run and task names, paths): printed as text, never as markup.
        def log(line: str) -> None:
            console.print(line, markup=False, highlight=False)

        if not worker and run is None:
            return run_study(config, out, log=log, progress_factory=factory)
        from retain.study.workers import study_worker

        leased = {"lease": lease} if lease is not None else {}
        return study_worker(config, out, run=run, log=log, progress_factory=factory, **leased)


def print_plan(config, out: Path, console: Console) -> None:
    """The plan table: every run and derived run, its kind, parent, what it takes, and whether it is done."""
    from retain.study.plan import study_plan
    from retain.study.run import Study
    from retain.study.workers import claimed

    study = Study(config, out, log=lambda _: None)
    rows = study_plan(study)
    running = claimed(study, rows)  # runs that workers hold (docs/scale-out.md)
    table = Table(title=escape(f"{config.name}: {len(rows)} runs in {out}"))
    for col in ("run", "kind", "parent", "seed", "what", "status"):
        table.add_column(col, no_wrap=col == "run")
    for r in rows:
        changed = f"[yellow]changed ({escape(r.why or 'settings')}): runs again[/yellow]"
        status = {"done": "[green]done[/green]", "changed": changed, "failed": "[red]failed[/red]"}.get(r.status, r.status)
        if (r.name, r.seed) in running:
            status = escape(running[(r.name, r.seed)])
        table.add_row(escape(r.name), r.kind, escape(r.parent or "-"), str(r.seed), escape(r.detail), status)
    console.print(table)
    done = sum(r.status == "done" for r in rows)
    console.print(f"{done} of {len(rows)} done", markup=False)


@app.command("study")
def study_command(
    config: Path = typer.Argument(..., help="Study config YAML (see docs/study.md)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: runs/<study name>)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a top-level config key: key=value."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the recommendation breaks the budget (for CI)."),
    plan: bool = typer.Option(False, "--plan", help="Print every run and derived run, and which are done; run nothing."),
    worker: bool = typer.Option(False, "--worker", help="Work with any other workers on the same --out: claim the "
                                "next run, run it, repeat until none is left (docs/scale-out.md)."),
    run: Optional[str] = typer.Option(None, "--run", metavar="NAME", help="Run only the planned run NAME (NAME-sSEED "
                                      "for one seed); a derived run's parent must be done."),
    lease: Optional[float] = typer.Option(None, "--lease", min=1.0, help="With --worker or --run: seconds without a "
                                          "heartbeat after which this process's claims count as dead on other "
                                          "machines (default 600)."),
) -> None:
    """Fine-tune with every method in the config and report what each forgot."""
    quiet_libraries()
    from retain.io import check_output_folder
    from retain.study.config import load_study_config
    from retain.config import parse_set

    cfg = load_study_config(config, parse_set(set_))
    out = out or Path("runs") / cfg.name
    console = Console()
    from retain.errors import UserError

    if sum([plan, worker, run is not None]) > 1:
        raise UserError("use one of --plan, --worker and --run")
    if lease is not None and not (worker or run is not None):
        raise UserError("--lease: only with --worker or --run")
    if plan:
        print_plan(cfg, out, console)
        return
    check_output_folder(out)
    doc = run_with_progress(cfg, out, console, worker=worker, run=run, lease=lease)
    if not doc["study"]["finished"]:
        left = sum(r.get("status") == "pending" for r in doc["runs"])
        runs, them = ("run", "it") if left == 1 else ("runs", "them")
        why = f"other workers hold {them}" if worker else f"run {them} with --run NAME or --worker"
        console.print(f"{left} {runs} of the study not done yet ({why}); `retain report {out}` shows what is done",
                      markup=False, highlight=False)
        return
    print_summary(doc, out, console)
    if check and not doc["recommendation"]["within_budget"]:
        raise typer.Exit(1)


@app.command("report")
def report_command(
    results: Path = typer.Argument(..., help="A study's results.json, or its output folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the report (default: beside results)."),
) -> None:
    """Re-render a study's report from its results.json alone (no model needed).

    A study still running (or stopped part-way) has a results.json too: its report shows the runs done
    so far and lists the others as not run yet.
    """
    from retain.io import read_json
    from retain.report import render_report

    from retain.report.schema import SCHEMA

    if results.is_dir():
        results = results / "results.json"
    doc = read_json(results)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        from retain.errors import UserError

        raise UserError(f"not a retain study results file (schema {SCHEMA})", results)
    written = render_report(results, out or results.parent)
    Console().print(f"wrote {', '.join(str(p) for p in written.values())}", markup=False)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Output folder."),
    rebuild_base: bool = typer.Option(False, help="Build the demo base model again."),
) -> None:
    """Run the whole study on a built-in tiny model and the toy tasks (CPU, minutes)."""
    import time

    quiet_libraries()
    from retain.demo.base import build_base
    from retain.demo.study import demo_config

    console = Console()
    t0 = time.perf_counter()
    model_dir = build_base(rebuild=rebuild_base, log=console.print)
    t1 = time.perf_counter()
    doc = run_with_progress(demo_config(model_dir), out, console)
    print_summary(doc, out, console)
    console.print(f"study took {time.perf_counter() - t1:.0f}s (base model: {t1 - t0:.0f}s)")
