"""The report as one self-contained HTML page: inline CSS, plots as base64 PNG, no script, no URLs.

Every piece of model or data text passes through `esc` (`html.escape` with quotes), in element text
and in attributes alike, so a prediction such as ``<script>`` shows as text and never runs. The page
can be mailed, attached to a ticket or opened offline and looks the same.
"""

from __future__ import annotations

import base64
import html

from retain.report import sections as sec
from retain.report.plots import Plot
from retain.report.summary import (DASH, PENDING, ReportData, TaskInfo, budget_text, change, fmt_ci, fmt_delta, gain,
                                   fmt_value, violations)

CSS = """
:root{--ink:#202124;--muted:#5f6368;--line:#e3e5e8;--soft:#f6f7f9;--red:#c0392b;--green:#1e8449;--amber:#b9770e}
*{box-sizing:border-box}
body{margin:0;background:#eef0f3;color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:28px 36px 40px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 6px;letter-spacing:-.01em}
h2{font-size:18px;margin:34px 0 10px;padding-bottom:5px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:24px 0 8px}
h3 code{font-size:14px}
p{margin:6px 0}
.meta{color:var(--muted);margin:0;font-size:13px}
.note{color:var(--muted);font-size:13px;max-width:860px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.verdict{border-left:5px solid #9aa0a6;border-radius:6px;padding:14px 20px;margin:20px 0 8px;background:var(--soft)}
.verdict.ok{background:#eef8f1;border-color:var(--green)}
.verdict.closest{background:#fdf5e6;border-color:var(--amber)}
.verdict .label{text-transform:uppercase;font-size:11px;letter-spacing:.08em;color:var(--muted);font-weight:700}
.verdict h2{border:0;margin:2px 0 6px;padding:0;font-size:21px}
.banner{background:#fff8e1;border:1px solid #f0d48a;border-radius:6px;padding:8px 14px;margin:14px 0}
.flag{background:#f1f3f4;border-left:4px solid #9aa0a6;border-radius:4px;padding:8px 14px;margin:10px 0;font-size:13px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:8px 0}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;vertical-align:middle}
th:first-child,td:first-child{text-align:left}
thead th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid #d0d4d9;vertical-align:bottom}
tbody th{font-weight:600;white-space:nowrap}
.sub{display:block;font-weight:400;font-size:11px;color:var(--muted)}
.matrix td.cell{text-align:center;min-width:118px;border:2px solid #fff;border-radius:4px;padding:5px 8px}
.cell .d{display:block;font-size:14px}
.cell .ci{display:block;font-size:11px;opacity:.8}
.cell.sig .d{font-weight:700}
.cell.over{box-shadow:inset 0 0 0 2px var(--red)}
.cell.muted{color:#80868b;font-style:italic}
.x{color:var(--red);font-weight:700}
.cell .x{color:inherit}
.star{color:#b9770e}
.pill{font-size:10.5px;font-weight:700;border-radius:9px;padding:1px 7px;margin-left:4px;color:#fff;background:var(--green);vertical-align:1px}
.pill.closest{background:var(--amber)}
.ok-text{color:var(--green);font-weight:600}
.bad-text{color:var(--red);font-weight:600}
tr.failed td{color:var(--red);text-align:left;font-size:13px}
tr.pending td{color:#777;text-align:left;font-size:13px;font-style:italic}
.legend{font-size:12px;color:var(--muted);margin:4px 0 0}
figure{margin:12px 0}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:12px 22px}
details{margin:10px 0}
summary{cursor:pointer;color:var(--muted);font-size:13px}
.example{border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:12px 0;background:#fcfcfd}
.example .head{font-size:12px;color:var(--muted);margin-bottom:6px}
.example pre{white-space:pre-wrap;word-break:break-word;margin:0;padding:8px 10px;border-radius:5px;background:var(--soft);border:1px solid var(--line)}
.example .lbl{font-size:12px;font-weight:600;color:var(--muted);margin:8px 0 3px}
.example .lbl code{color:var(--ink)}
.answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:10px;margin-top:8px}
.answers .base pre{background:#eef8f1;border-color:#b7dfc4}
.answers .run pre{background:#fdeeee;border-color:#f1c0bb}
.error{white-space:pre-wrap;background:#fdeeee;border:1px solid #f1c0bb;border-radius:5px;padding:8px 10px}
footer{margin-top:36px;padding-top:10px;border-top:1px solid var(--line);font-size:12px;color:var(--muted)}
"""


def esc(s: object) -> str:
    """HTML-escape any text, quotes included, so it is safe in element text and attribute values."""
    return html.escape(str(s), quote=True)


def render(data: ReportData, plots: list[Plot]) -> str:
    """The whole report as one HTML document."""
    figs = {p.key: p for p in plots}
    title = f"retain report: {data.study.get('name') or 'study'}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width,initial-scale=1">',
           f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
           f"<header><h1>{esc(title)}</h1>"]
    out += [f'<p class="meta">{esc(line)}</p>' for line in sec.header_lines(data)] + ["</header>"]
    if not data.study.get("finished", True):
        out.append('<div class="banner"><b>Study in progress:</b> these results cover the runs finished so far.</div>')
    v = data.verdict
    out += [f'<section class="verdict {esc(v.kind)}" id="recommendation"><div class="label">Recommendation</div>',
            f"<h2>{esc(v.headline)}</h2>", *(f"<p>{esc(b)}</p>" for b in v.body), "</section>"]
    out += _base(data)
    out += ['<section id="matrix"><h2>Forgetting matrix</h2>', f'<p class="note">{esc(sec.MATRIX_NOTE)}</p>']
    out += _matrix(data)
    if "heatmap" in figs:
        out += ["<details><summary>Same matrix as a heatmap image</summary>", _figure(figs["heatmap"]), "</details>"]
    out.append("</section>")
    if "tradeoff" in figs:
        out += ['<section id="tradeoff"><h2>Trade-off</h2>', f'<p class="note">{esc(sec.TRADEOFF_NOTE)}</p>',
                _figure(figs["tradeoff"], width=780), "</section>"]
    task_figs = [figs[f"task:{t.name}"] for t in data.tasks if f"task:{t.name}" in figs]
    if task_figs:
        out += ['<section id="tasks"><h2>Per-task scores</h2>', f'<p class="note">{esc(sec.TASKS_NOTE)}</p>',
                '<div class="grid">', *(_figure(p) for p in task_figs), "</div></section>"]
    out += _cost(data) + _forgotten(data) + _failed(data)
    out += [f"<footer>{esc(sec.footer(data))}</footer>", "</main></body></html>", ""]
    return "\n".join(out)


def _figure(plot: Plot, width: int | None = None) -> str:
    b64 = base64.b64encode(plot.png).decode("ascii")
    style = f' style="max-width:{width}px"' if width else ""
    return (f'<figure><img alt="{esc(plot.title)}" src="data:image/png;base64,{b64}"{style}>'
            f"</figure>")


def _table(head: list[str], rows: list[str], cls: str = "") -> list[str]:
    """`head` and `rows` are already-escaped HTML fragments."""
    return [f'<div class="scroll"><table class="{cls}"><thead><tr>', *(f"<th>{h}</th>" for h in head),
            "</tr></thead><tbody>", *rows, "</tbody></table></div>"]


def _base(data: ReportData) -> list[str]:
    rows = []
    for t in data.tasks:
        skill = ('<span class="bad-text">at chance</span>' if t.no_skill
                 else "yes" if t.has_skill else DASH if t.has_skill is None else "no")
        budget = esc(budget_text(t.budget, t.higher_is_better)) if t.role == "protected" else DASH
        rows.append(f"<tr><th><code>{esc(t.name)}</code></th><td>{esc(t.role)}</td><td>{esc(t.primary)}</td>"
                    f"<td>{fmt_value(t.base_value)}</td><td>{esc(fmt_ci(t.base_ci))}</td>"
                    f"<td>{esc(t.n) if t.n is not None else DASH}</td><td>{budget}</td><td>{skill}</td></tr>")
    out = ['<section id="base"><h2>Base model</h2>']
    out += _table(["task", "role", "metric", "base", "95% CI", "n", "budget", "skill"], rows, "base")
    for t in data.protected:
        if t.no_skill:
            note = f" ({esc(t.skill_note)})" if t.skill_note else ""
            out.append(f'<div class="flag"><b>Skill flag:</b> <code>{esc(t.name)}</code>: the base is at chance'
                       f"{note}. Forgetting there means nothing.</div>")
    return out + ["</section>"]


def _colour(delta: float, scale: float, muted: bool) -> tuple[str, bool]:
    """Cell background for a delta (red drop, green gain, stronger when larger) and whether text goes white."""
    t = min(1.0, abs(delta) / scale) ** 0.6 * 0.85
    rgb = (154, 160, 166) if muted else (30, 132, 73) if delta > 0 else (192, 57, 43)
    t = t * 0.45 if muted else t
    mix = [round(255 + (c - 255) * t) for c in rgb]
    return "#{:02x}{:02x}{:02x}".format(*mix), t > 0.6


def _cell(run: dict, task: TaskInfo, scale: float) -> str:
    c = change(run, task.name)
    attrs = f'data-run="{esc(run["name"])}" data-task="{esc(task.name)}"'
    if c is None or c.get("delta") is None:
        return f'<td class="cell" {attrs}>{DASH}</td>'
    delta = float(c["delta"])
    over = task.name in violations(run)
    bg, light = _colour(gain(c), scale, task.no_skill)  # red is worse: a lower-is-better metric's rise
    cls = "cell" + (" sig" if c.get("significant") else "") + (" over" if over else "") \
        + (" muted" if task.no_skill else "")
    style = f"background:{bg}" + (";color:#fff" if light else "")
    tip = f"{task.primary}: {fmt_value(c.get('base'))} \u2192 {fmt_value(c.get('value'))}"
    if c.get("p_value") is not None:
        tip += f", p={c['p_value']:.3g}"
    if over:
        v = violations(run)[task.name]
        tip += f"; over budget (allowed {fmt_delta(v.get('allowed'))})"
    mark = ' <span class="x" title="over budget">\u2717</span>' if over else ""
    star = "*" if c.get("significant") else ""
    return (f'<td class="{cls}" style="{style}" {attrs} data-delta="{delta!r}" title="{esc(tip)}">'
            f'<span class="d">{fmt_delta(delta)}{star}{mark}</span>'
            f'<span class="ci">{esc(fmt_ci(c.get("ci95"), signed=True))}</span></td>')


def _matrix(data: ReportData) -> list[str]:
    if not data.runs:
        return ["<p>No runs.</p>"]
    scale = data.delta_scale()
    head = ["run"] + [f"<code>{esc(t.name)}</code><span class=\"sub\">{esc(t.primary)} \u00b7 "
                      f"{'at chance' if t.no_skill else esc(t.role)}"
                      f"{'' if t.higher_is_better else ' · lower is better'}</span>" for t in data.tasks]
    head += ["mean protected", "budget"]
    rows = []
    for r in data.runs:
        name = f"<code>{esc(r['name'])}</code>" + (' <span class="star" title="Pareto front">\u2605</span>'
                                                  if r["name"] in data.pareto else "")
        if r["name"] == data.verdict.run:
            name += f' <span class="pill {esc(data.verdict.kind)}">{"recommended" if data.verdict.kind == "ok" else "closest"}</span>'
        if r.get("status") == PENDING:
            rows.append(f'<tr class="pending" data-run="{esc(r["name"])}"><th>{name}</th>'
                        f'<td colspan="{len(head) - 1}">not run yet</td></tr>')
            continue
        if r.get("status") != "done":
            err = " ".join(str(r.get("error") or "no error message").split())
            err = err if len(err) <= 140 else err[:139] + "\u2026"
            rows.append(f'<tr class="failed" data-run="{esc(r["name"])}"><th>{name}</th>'
                        f'<td colspan="{len(head) - 1}">failed: {esc(err)}</td></tr>')
            continue
        n_over = len(violations(r))
        budget = ('<span class="ok-text">within</span>' if r.get("within_budget")
                  else f'<span class="bad-text">\u2717 {n_over} over</span>' if n_over
                  else '<span class="bad-text">over</span>')
        rows.append(f'<tr data-run="{esc(r["name"])}"><th>{name}</th>'
                    + "".join(_cell(r, t, scale) for t in data.tasks)
                    + f"<td>{fmt_delta(r.get('mean_protected_change'))}</td><td>{budget}</td></tr>")
    return _table(head, rows, "matrix") + [f'<p class="legend">{esc(sec.MATRIX_LEGEND)}</p>']


def _cost(data: ReportData) -> list[str]:
    rows = sec.cost_rows(data)
    out = ['<section id="cost"><h2>Cost</h2>']
    if not rows:
        return out + ["<p>No runs.</p></section>"]
    body = [f'<tr><th><code>{esc(r[0])}</code></th><td style="text-align:left">{esc(r[1])}</td>'
            + "".join(f"<td>{esc(x)}</td>" for x in r[2:]) + "</tr>" for r in rows]
    return out + _table(list(sec.COST_HEAD), body, "cost") + ["</section>"]


def _forgotten(data: ReportData) -> list[str]:
    out = ['<section id="forgotten"><h2>Forgotten examples</h2>', f'<p class="note">{esc(sec.FORGOTTEN_NOTE)}</p>']
    if not data.protected:
        return out + ["<p>No protected tasks.</p></section>"]
    counts = sec.count_rows(data)
    if counts:
        head = ["run"] + [f"<code>{esc(sec.count_head(data, t))}</code><span class=\"sub\">forgotten / learned</span>"
                          for t in data.protected]
        out += _table(head, [f"<tr><th><code>{esc(r)}</code></th>" + "".join(f"<td>{esc(x)}</td>" for x in c)
                             + "</tr>" for r, c in counts], "counts")
    for task in data.protected:
        out.append(f"<h3><code>{esc(task.name)}</code>" + (' <span class="sub">base at chance: forgetting '
                                                         'here means nothing</span>' if task.no_skill else "") + "</h3>")
        examples = sec.pick_examples(data, task)
        if not examples:
            out.append("<p>No forgotten examples recorded.</p>")
        for ex in examples:
            answers = [f'<div class="base"><div class="lbl">base \u00b7 score {fmt_value(ex.base_score)}</div>'
                       f"<pre>{esc(ex.base_prediction)}</pre></div>"]
            answers += [f'<div class="run" data-run="{esc(name)}"><div class="lbl"><code>{esc(name)}</code> \u00b7 score '
                        f"{fmt_value(s)}</div><pre>{esc(pred)}</pre></div>" for name, pred, s in ex.runs]
            out += [f'<article class="example" data-id="{esc(ex.id)}">',
                    f'<div class="head">example <code>{esc(ex.id)}</code></div>',
                    '<div class="lbl">prompt</div>', f"<pre>{esc(ex.prompt)}</pre>",
                    '<div class="lbl">reference</div>', f"<pre>{esc(ex.reference)}</pre>",
                    '<div class="answers">', *answers, "</div></article>"]
    return out + ["</section>"]


def _failed(data: ReportData) -> list[str]:
    if not data.failed_runs:
        return []
    out = ['<section id="failed"><h2>Failed runs</h2>']
    for r in data.failed_runs:
        out += [f"<h3><code>{esc(r['name'])}</code> <span class=\"sub\">{esc(r.get('method') or 'unknown method')}"
                f", status {esc(r.get('status') or 'unknown')}</span></h3>",
                f'<pre class="error">{esc(r.get("error") or "no error message recorded")}</pre>']
    return out + ["</section>"]
