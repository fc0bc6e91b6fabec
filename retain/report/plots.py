"""The report's figures as PNG bytes: forgetting heatmap, trade-off plot, one bar chart per task.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot, so no global state and
no display needed) and saved without the "Software" metadata, so the same results give the same
bytes. Colours match the HTML matrix: red for a drop, green for a gain, paler for smaller changes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import FuncNorm, LinearSegmentedColormap, to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from retain.report.summary import (ReportData, TaskInfo, change, fmt_delta, fmt_value, gain, is_checkpoint, is_wise,
                                   path_label, path_position, score,
                                   violations)

RED, GREEN, GREY, INK = "#c0392b", "#1e8449", "#9aa0a6", "#202124"
DIVERGING = LinearSegmentedColormap.from_list("retain", ["#b03a2e", "#f5b7b1", "#ffffff", "#a9dfbf", "#1e8449"])
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.titleweight": "bold", "svg.hashsalt": "retain",
         # Task and run names are data: a '$' in one must print as '$', not start mathtext.
         "text.parse_math": False}
DPI = 130


@dataclass(frozen=True)
class Plot:
    """One rendered figure: `key` names it in the returned paths, `filename` under plots/."""

    key: str
    filename: str
    title: str
    png: bytes


def build_plots(data: ReportData) -> list[Plot]:
    """All figures for a report, in the order the report shows them (none if no run finished)."""
    if not data.done_runs:
        return []
    plots = []
    with matplotlib.rc_context(STYLE):
        if (png := tradeoff_png(data)) is not None:
            plots.append(Plot("tradeoff", "tradeoff.png", "Target gain vs. forgetting", png))
        if (png := heatmap_png(data)) is not None:
            plots.append(Plot("heatmap", "forgetting-matrix.png", "Forgetting matrix", png))
        used: set[str] = set()
        for task in data.tasks:
            name = _unique(f"task-{slug(task.name)}", used)
            plots.append(Plot(f"task:{task.name}", f"{name}.png", task.name, task_png(data, task)))
    return plots


def slug(text: str) -> str:
    """A file-name-safe form of a task name (user tasks may be paths)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "task"


def _unique(name: str, used: set[str]) -> str:
    out, i = name, 2
    while out in used:
        out, i = f"{name}-{i}", i + 1
    used.add(out)
    return out


def run_colours(data: ReportData) -> dict[str, str]:
    """One colour per run; a derived run (WiSE-FT, checkpoint) takes its parent's colour, lighter the
    closer it lies to the base, so that its path reads as one family."""
    colours, i = {}, 0
    for r in data.done_runs:
        if path_position(r) is None:
            colours[r["name"]] = PALETTE[i % len(PALETTE)]
            i += 1
    for r in data.done_runs:
        position = path_position(r)
        if position is not None:
            parent = colours.get(r["parent"], PALETTE[i % len(PALETTE)])
            colours[r["name"]] = _lighten(parent, 0.65 * (1 - min(1.0, max(0.0, position))))
    return colours


def _lighten(colour: str, amount: float) -> str:
    rgb = to_rgb(colour)
    return to_hex([c + (1 - c) * amount for c in rgb])


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.12, metadata={"Software": None})
    return buf.getvalue()


def heatmap_png(data: ReportData) -> bytes | None:
    """Runs x tasks, cell colour = primary-metric delta vs base; * = significant; red frame = over budget."""
    runs, tasks = data.done_runs, data.tasks
    if not tasks:
        return None
    scale = data.delta_scale()
    fig = Figure(figsize=(1.55 * len(tasks) + 2.2, 0.48 * len(runs) + 1.3))
    ax = fig.add_subplot()
    grid = [[gain(c) for c in (change(r, t.name) for t in tasks)] for r in runs]  # colour: red is worse
    masked = [[float("nan") if v is None else v for v in row] for row in grid]
    # |delta| ** 0.6 like the HTML cells: small changes stay visible without large ones saturating
    norm = FuncNorm((_spread, _unspread), vmin=-scale, vmax=scale)
    im = ax.imshow(masked, cmap=DIVERGING, norm=norm, aspect="auto")
    for i, run in enumerate(runs):
        over = violations(run)
        for j, task in enumerate(tasks):
            c = change(run, task.name) or {}
            star = "*" if c.get("significant") else ""
            strong = c.get("delta") is not None and abs(c["delta"]) / scale > 0.6
            colour = GREY if task.no_skill else "white" if strong else INK
            ax.text(j, i, fmt_delta(c.get("delta")) + star, ha="center", va="center", fontsize=8.5,
                    color=colour, fontweight="bold" if star else "normal")
            if task.name in over:
                ax.add_patch(Rectangle((j - 0.47, i - 0.45), 0.94, 0.9, fill=False, ec=RED, lw=2))
    ax.set_xticks(range(len(tasks)), [_task_label(t) for t in tasks])
    ax.set_yticks(range(len(runs)), [r["name"] for r in runs])
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("change vs base (primary metric)")
    bar.outline.set_visible(False)
    ax.set_xlabel("* 95% CI excludes 0    red frame: over the forgetting budget", fontsize=8, color="#555")
    return _png(fig)


def _spread(x):
    return np.sign(x) * np.abs(x) ** 0.6


def _unspread(y):
    return np.sign(y) * np.abs(y) ** (1 / 0.6)


def _task_label(task: TaskInfo) -> str:
    note = "target" if task.role == "target" else ("at chance" if task.no_skill else "protected")
    return f"{task.name}\n{task.primary} \u00b7 {note}"


PATHS = ((is_wise, ":", "WiSE-FT path (base \u2192 parent)"),
         (is_checkpoint, "--", "training path (base \u2192 checkpoints \u2192 end)"))


def derived_paths(data: ReportData, points: dict[str, tuple[float, float]]) -> list[tuple[str, str, str, list]]:
    """(line style, legend label, parent, points) of each path the trade-off plot draws: from the base
    (0, 0) through a parent's WiSE-FT runs (by alpha) or checkpoints (by step) to the parent itself."""
    paths = []
    for kind, style, label in PATHS:
        for parent in dict.fromkeys(r["parent"] for r in data.done_runs if kind(r)):
            kids = sorted((r for r in data.done_runs if kind(r) and r["parent"] == parent and r["name"] in points),
                          key=path_position)
            path = [(0.0, 0.0)] + [points[r["name"]] for r in kids] + ([points[parent]] if parent in points else [])
            paths.append((style, label, parent, path))
    return paths


def tradeoff_png(data: ReportData) -> bytes | None:
    """x = mean protected change, y = target gain; the Pareto front, WiSE-FT paths and training paths
    (base, checkpoints, end) drawn as lines."""
    points = {r["name"]: (r["mean_protected_change"], r["target_gain"]) for r in data.done_runs
              if r.get("mean_protected_change") is not None and r.get("target_gain") is not None}
    if not points:
        return None
    colours = run_colours(data)
    fig = Figure(figsize=(7.2, 4.6))
    ax = fig.add_subplot()
    ax.axhline(0, color="#ddd", lw=0.8, zorder=0)
    ax.axvline(0, color="#ddd", lw=0.8, zorder=0)
    budget = data.common_budget()
    if budget is not None:
        ax.axvline(-budget, color=RED, ls="--", lw=1.2, label=f"budget: drop \u2264 {budget:.3f} per task")
    front = sorted((points[n] for n in data.pareto if n in points))
    if len(front) > 1:
        ax.plot(*zip(*front), color="#555", lw=5, alpha=0.18, solid_capstyle="round", zorder=1,
                label="Pareto front")
    elif front:
        ax.plot(*zip(*front), "o", ms=16, color="#555", alpha=0.18, label="Pareto front")
    labelled = set()
    for style, label, parent, path in derived_paths(data, points):
        ax.plot(*zip(*path), ls=style, lw=1.3, color=colours.get(parent, GREY), zorder=2,
                label=None if label in labelled else label)
        labelled.add(label)
    ax.plot([0], [0], "D", color=INK, ms=6, zorder=4)
    ax.annotate("base", (0, 0), xytext=(6, -11), textcoords="offset points", fontsize=8, color=INK)
    lo, hi = min(0.0, *(x for x, _ in points.values())), max(0.0, *(x for x, _ in points.values()))
    for name, (x, y) in points.items():
        run = data.run(name)
        on_front = name in data.pareto
        ax.plot([x], [y], "o", ms=8 if on_front else 6.5, color=colours[name], zorder=5,
                mec=INK if on_front else "white", mew=1.4 if on_front else 0.8)
        label = path_label(run, name)
        if name == data.verdict.run:
            ax.plot([x], [y], "o", ms=15, mfc="none", mec=GREEN if data.verdict.kind == "ok" else "#b9770e",
                    mew=1.6, zorder=6)
            label += " (recommended)" if data.verdict.kind == "ok" else " (closest)"
        left = x > lo + 0.9 * (hi - lo)  # labels near the right edge go left of the point, inside the axes
        ax.annotate(label, (x, y), xytext=(-8 if left else 7, 5), textcoords="offset points", fontsize=8,
                    ha="right" if left else "left",
                    color=INK if path_position(run) is None else "#444",
                    fontweight="bold" if on_front else "normal")
    ax.margins(x=0.12, y=0.12)
    target = data.target_task
    ax.set_xlabel("mean change on protected tasks (primary metric; right is better)")
    ax.set_ylabel(f"gain on {target.name} {target.primary}" if target else "target gain")
    ax.set_title("Target gain vs. forgetting", loc="left")
    ax.grid(True, color="#eee", lw=0.6)
    ax.set_axisbelow(True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8, frameon=False)
    return _png(fig)


def task_png(data: ReportData, task: TaskInfo) -> bytes:
    """Each finished run's primary metric on one task, with CI error bars and the base as a line."""
    runs = data.done_runs
    colours = run_colours(data)
    fig = Figure(figsize=(6.4, 3.5))
    ax = fig.add_subplot()
    tops = [1e-9]
    for i, run in enumerate(runs):
        value, ci = score(run, task)
        if value is None:
            continue
        over = task.name in violations(run)
        err = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]] if ci else None
        ax.bar(i, value, color=colours[run["name"]], alpha=0.85, width=0.68, yerr=err, capsize=3,
               error_kw={"lw": 1, "ecolor": "#333"}, hatch="///" if over else None,
               edgecolor=RED if over else "none", lw=1.4 if over else 0)
        delta = (change(run, task.name) or {}).get("delta")
        better = gain(change(run, task.name)) or 0
        top = ci[1] if ci else value
        tops.append(top)
        ax.annotate(fmt_delta(delta), (i, top), xytext=(0, 3), textcoords="offset points", ha="center",
                    fontsize=7.5, color=RED if better < 0 else GREEN if better > 0 else "#555")
    if task.base_value is not None:
        if task.base_ci:
            ax.axhspan(*task.base_ci, color="#000", alpha=0.06, lw=0)
        ax.axhline(task.base_value, color=INK, ls="--", lw=1.1, label=f"base {fmt_value(task.base_value)}")
        tops.append(task.base_ci[1] if task.base_ci else task.base_value)
    if task.chance is not None and task.no_skill:
        ax.axhline(task.chance, color=GREY, ls=":", lw=1.1, label=f"chance {fmt_value(task.chance)}")
    ax.set_ylim(0, min(1.0, max(tops)) * 1.15 + 0.02)
    ax.set_xticks(range(len(runs)), [r["name"] for r in runs], rotation=25, ha="right")
    ax.set_ylabel(task.primary)
    role = "target" if task.role == "target" else ("protected, base at chance" if task.no_skill else "protected")
    ax.set_title(f"{task.name} \u2014 {task.primary} ({role})", loc="left")
    ax.grid(True, axis="y", color="#eee", lw=0.6)
    ax.set_axisbelow(True)
    handles, labels = ax.get_legend_handles_labels()
    if any(task.name in violations(r) for r in runs):
        handles.append(Patch(facecolor="white", hatch="///", edgecolor=RED, lw=1.4))
        labels.append("over budget")
    if handles:
        ax.legend(handles, labels, loc="lower right", fontsize=8, frameon=True, framealpha=0.9, edgecolor="#ddd")
    return _png(fig)
