"""The report as GitHub-flavoured markdown, with the plots referenced as files under plots/.

Model and data text never reaches a table cell raw: names go in code spans, free text is escaped
(`|`, newlines, markdown and HTML specials), and prompts and answers go in fenced code blocks whose
fence is longer than any backtick run inside. The output depends on the results alone (no clock), so
re-rendering gives identical bytes.
"""

from __future__ import annotations

import re

from retain.report import sections as sec
from retain.report.plots import Plot
from retain.report.summary import (DASH, PENDING, ReportData, budget_text, change, fmt_ci, fmt_delta, fmt_value,
                                   violations)

_SPECIAL = re.compile(r"([\\`*_\[\]|#<>&~])")


def text(s: object) -> str:
    """Free text safe inside a paragraph or table cell."""
    s = " ".join(str(s).split())
    return _SPECIAL.sub(lambda m: {"<": "&lt;", ">": "&gt;", "&": "&amp;"}.get(m[1], "\\" + m[1]), s)


def code(s: object) -> str:
    """An inline code span (run and task names); safe in table cells."""
    s = " ".join(str(s).split()).replace("|", "\\|")
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def answer(s: object) -> str:
    """A model answer or reference in a table cell: a code span, newlines shown as ⏎."""
    s = str(s).replace("\r\n", "\n").replace("\n", " ⏎ ")
    return code(s) if s.strip() else "_(empty)_"


def block(s: object) -> str:
    """A fenced code block holding `s` verbatim."""
    s = str(s)
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    return f"{fence}text\n{s}\n{fence}"


def _table(head: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(head) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    return ["| " + " | ".join(head) + " |", "| " + " | ".join(marks[a] for a in align) + " |",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def render(data: ReportData, plots: list[Plot]) -> str:
    """The whole report as markdown text."""
    files = {p.key: f"plots/{p.filename}" for p in plots}
    out = [f"# retain report: {text(data.study.get('name') or 'study')}", ""]
    out += [f"{text(line)}  " for line in sec.header_lines(data)] + [""]
    if not data.study.get("finished", True):
        out += ["> **Study in progress:** these results cover the runs finished so far.", ""]
    v = data.verdict
    out += [f"## Recommendation: {text(v.headline)}", ""]
    for line in v.body:
        out += [text(line), ""]
    out += _base(data)
    out += ["## Forgetting matrix", "", text(sec.MATRIX_NOTE), ""]
    out += _matrix(data)
    if "heatmap" in files:
        out += [f"![Forgetting matrix]({files['heatmap']})", ""]
    if "tradeoff" in files:
        out += ["## Trade-off", "", text(sec.TRADEOFF_NOTE), "", f"![Target gain vs. forgetting]({files['tradeoff']})", ""]
    task_plots = [(t, files.get(f"task:{t.name}")) for t in data.tasks]
    if any(f for _, f in task_plots):
        out += ["## Per-task scores", "", text(sec.TASKS_NOTE), ""]
        out += [f"![{text(t.name)}]({f})\n" for t, f in task_plots if f]
    out += ["## Cost", ""]
    rows = sec.cost_rows(data)
    out += _table([h for h in sec.COST_HEAD], [[code(r[0]), text(r[1]), *r[2:]] for r in rows], "ll" + "r" * 7) if rows \
        else ["No runs.", ""]
    out += _forgotten(data)
    out += _failed(data)
    out += ["---", "", text(sec.footer(data)), ""]
    return "\n".join(out)


def _base(data: ReportData) -> list[str]:
    out = ["## Base model", ""]
    rows = [[code(t.name), text(t.role), text(t.primary), fmt_value(t.base_value), fmt_ci(t.base_ci),
             str(t.n) if t.n is not None else DASH, budget_text(t.budget, t.higher_is_better) if t.role == "protected" else DASH,
             "at chance" if t.no_skill else ("yes" if t.has_skill else DASH if t.has_skill is None else "no")]
            for t in data.tasks]
    out += _table(["task", "role", "metric", "base", "95% CI", "n", "budget", "skill"], rows, "lllrrrll")
    flags = [t for t in data.protected if t.no_skill]
    for t in flags:
        out += [f"> **Skill flag:** {code(t.name)}: the base is at chance"
                + (f" ({text(t.skill_note)})" if t.skill_note else "") + ". Forgetting there means nothing.", ""]
    return out


def _cell(run: dict, task_name: str, no_skill: bool) -> str:
    c = change(run, task_name)
    if c is None:
        return DASH
    value = fmt_delta(c.get("delta"))
    value = f"**{value}**\\*" if c.get("significant") else value
    mark = " \u2717" if task_name in violations(run) else ""
    ci = fmt_ci(c.get("ci95"), signed=True)
    shown = f"{value}{mark} {ci}" if ci != DASH else f"{value}{mark}"
    return f"_{shown}_" if no_skill else shown


def _matrix(data: ReportData) -> list[str]:
    if not data.runs:
        return ["No runs.", ""]
    head = ["run"] + [f"{code(t.name)} ({text(t.role)}{', at chance' if t.no_skill else ''}"
                      f"{'' if t.higher_is_better else ', lower is better'})" for t in data.tasks]
    head += ["mean protected", "budget"]
    rows = []
    for r in data.runs:
        if r.get("status") == PENDING:
            rows.append([code(r["name"]), "not run yet"] + [""] * (len(head) - 2))
            continue
        if r.get("status") != "done":
            rows.append([code(r["name"]), "failed (see below)"] + [""] * (len(head) - 2))
            continue
        n_over = len(violations(r))
        tag = {"ok": " (recommended)", "closest": " (closest)"}.get(data.verdict.kind, "")
        rows.append([code(r["name"]) + (" \u2605" if r["name"] in data.pareto else "")
                     + (tag if r["name"] == data.verdict.run else "")]
                    + [_cell(r, t.name, t.no_skill) for t in data.tasks]
                    + [fmt_delta(r.get("mean_protected_change")),
                       "within" if r.get("within_budget") else f"\u2717 {n_over} over" if n_over else "over"])
    return _table(head, rows, "l" + "r" * (len(head) - 2) + "l") + [text(sec.MATRIX_LEGEND), ""]


def _forgotten(data: ReportData) -> list[str]:
    out = ["## Forgotten examples", "", text(sec.FORGOTTEN_NOTE), ""]
    if not data.protected:
        return out + ["No protected tasks.", ""]
    counts = sec.count_rows(data)
    if counts:
        head = ["run"] + [code(sec.count_head(data, t)) for t in data.protected]
        out += _table(head, [[code(r), *c] for r, c in counts])
    for task in data.protected:
        out += [f"### {code(task.name)}" + (" (base at chance: forgetting here means nothing)"
                                            if task.no_skill else ""), ""]
        examples = sec.pick_examples(data, task)
        if not examples:
            out += ["No forgotten examples recorded.", ""]
        for ex in examples:
            rows = [["reference", "", answer(ex.reference)], ["base", fmt_value(ex.base_score), answer(ex.base_prediction)]]
            rows += [[code(name), fmt_value(s), answer(pred)] for name, pred, s in ex.runs]
            out += [f"#### Example {code(ex.id)}", "", block(ex.prompt), ""]
            out += _table(["", "score", "answer"], rows, "lrl")
    return out


def _failed(data: ReportData) -> list[str]:
    if not data.failed_runs:
        return []
    out = ["## Failed runs", ""]
    for r in data.failed_runs:
        out += [f"- {code(r['name'])} ({text(r.get('method') or 'unknown method')}, status "
                f"{text(r.get('status') or 'unknown')}):", "", block(r.get("error") or "no error message recorded"), ""]
    return out
