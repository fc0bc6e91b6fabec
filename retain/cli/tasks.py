"""`retain tasks`: list the built-in tasks and the file-backed task families."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from retain.cli import app


@app.command("tasks")
def tasks_command() -> None:
    """List built-in tasks and file-backed task families."""
    from retain.tasks import base

    import retain.tasks  # noqa: F401

    console = Console()
    table = Table(title="Built-in tasks")
    for col in ("name", "kind", "metric", "splits", "description"):
        table.add_column(col)
    for name in base.task_names():
        task = base.TASK_FACTORIES[name]()
        table.add_row(name, task.kind, task.metric, ",".join(task.splits), task.description)
    console.print(table)
    fam = Table(title="File-backed families (write FAMILY:PATH, e.g. sentiment:data/sentiment/test.jsonl)")
    fam.add_column("family")
    for name in base.family_names():
        fam.add_row(name)
    console.print(fam)
    console.print("User tasks: pass a task .yaml file (see docs/tasks.md).")
    console.print("lm-evaluation-harness tasks: lm-eval:TASK or lm-eval:TASK@SHOTS (pip install 'retain[lm-eval]'; "
                  "local task YAMLs with --lm-eval-include DIR).", markup=False)
    console.print("Perplexity (per-token NLL, lower is better): perplexity:PATH (a .txt or a file with a text "
                  "field) or perplexity:TASK (a task's reference texts).", markup=False)
