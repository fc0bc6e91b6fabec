"""The summary table `retain study` and `retain report` print: one row per run, each task's change.

Nothing in it is ever cut: not a run name (three `full+wise-ft-…` rows must stay apart) and not a
number. When the task names do not fit the terminal they become keys (T1, T2, …) explained under the
table; when even the keys do not fit, the task columns are split over several tables, each repeating
the run names.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

NUMBER = len("+0.000*")  # the widest cell of a task column
BASE_ROW = "base (score)"


def _fmt(x: float | None, signed: bool = True) -> str:
    if x is None:
        return "-"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _table_width(widths: list[int]) -> int:
    """Width of a rich table with a box and one space of padding each side of every cell."""
    return sum(w + 3 for w in widths) + 1


def task_groups(tasks: list, run_width: int, width: int) -> tuple[list[list[int]], bool]:
    """(indices of the tasks in each table, whether headers are keys): full headers in one table if they
    fit, else keys, else keys over as many tables as it takes."""
    tail = [len("within"), len("train s")]  # the budget and time columns, in the last table
    full = [max(NUMBER, len(t.name), len(t.primary)) for t in tasks]
    if _table_width([run_width, *full, *tail]) <= width:
        return [list(range(len(tasks)))], False
    keys = [max(NUMBER, len(f"T{i + 1}"), min(len(t.primary), NUMBER)) for i, t in enumerate(tasks)]
    groups, current = [], []
    for i, w in enumerate(keys):
        extra = tail if i == len(tasks) - 1 else []
        if current and _table_width([run_width, *(keys[j] for j in current), w, *extra]) > width:
            groups.append(current)
            current = []
        current.append(i)
    groups.append(current)
    return groups, True


def _change_cell(c: dict | None) -> str:
    from retain.report.summary import gain

    if c is None:
        return "-"
    mark = "*" if c.get("significant") else " "
    better = gain(c) or 0  # red is worse: the rise of a lower-is-better metric too
    style = "red" if better < 0 and c.get("significant") else "green" if better > 0 and c.get("significant") else ""
    text = f"{c['delta']:+.3f}{mark}"
    return f"[{style}]{text}[/{style}]" if style else text


def print_summary(doc: dict, out: Path, console: Console) -> None:
    """The summary table, the significance note, the verdict and where the report is.

    Read through the report's own view of the results (`retain.report.summary.load`), so the table and
    the report never disagree.
    """
    from retain.report.summary import change, load

    data = load(doc)
    tasks = data.tasks  # the target first
    run_width = max([len(BASE_ROW), *(len(r["name"]) for r in data.runs)])
    groups, keyed = task_groups(tasks, run_width, console.width)
    title = escape(f"{data.study.get('name')}: change against the base ({data.model.get('name')})")
    for n, group in enumerate(groups):
        last = n == len(groups) - 1
        table = Table(title=title if n == 0 else None)
        table.add_column("run", no_wrap=True, min_width=run_width)
        for i in group:
            header = f"T{i + 1}" if keyed else tasks[i].name
            table.add_column(escape(f"{header}\n{tasks[i].primary}"), justify="right", no_wrap=True,
                             min_width=NUMBER)
        if last:
            table.add_column("within\nbudget", justify="center", no_wrap=True)
            table.add_column("train s", justify="right", no_wrap=True)
        tail = ["", ""] if last else []
        table.add_row(BASE_ROW, *[_fmt(tasks[i].base_value, False) for i in group], *tail)
        for run in data.runs:
            name = escape(run["name"])
            if run.get("status") != "done":
                table.add_row(name, *([run.get("status") or "failed"] + [""] * (len(group) - 1)), *tail)
                continue
            cells = [_change_cell(change(run, tasks[i].name)) for i in group]
            if last:
                train_s = (run.get("cost") or {}).get("train_seconds")
                cells += ["yes" if run.get("within_budget") else "[red]no[/red]", f"{train_s:.0f}" if train_s else "-"]
            table.add_row(name, *cells)
        console.print(table)
    if keyed:
        for i, t in enumerate(tasks):
            console.print(f"T{i + 1} = {t.name} ({t.primary}{', target' if i == 0 else ''})", markup=False,
                          soft_wrap=True)
    console.print("* significant (paired bootstrap, 95%)")
    verdict = data.verdict
    colour = {"ok": "bold green", "closest": "bold red"}.get(verdict.kind, "bold red")
    rec = data.recommendation or {}
    if rec.get("run"):
        console.print(f"[{colour}]Recommended:[/{colour}] {escape(rec['run'])}: {escape(rec.get('reason', ''))}")
    else:
        console.print(f"[{colour}]No run within budget:[/{colour}] {escape(rec.get('reason', verdict.headline))}")
    console.print(f"Report: {out / 'report.html'} (also report.md, results.json)", markup=False)
