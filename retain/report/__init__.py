"""Turn a study's `results.json` into a report: markdown, a self-contained HTML page and PNG plots.

The report is built from the results file alone (no model, no task data), so it can be re-rendered
anywhere. Layout of `out_dir`:

    report.md          markdown, plots referenced as plots/*.png
    report.html        one self-contained page (inline CSS, plots as base64 PNG, no script)
    plots/*.png        trade-off plot, forgetting heatmap, one bar chart per task

Every file is written atomically, so a reader never sees a half-written report.
"""

from __future__ import annotations

from pathlib import Path

from retain.io import atomic_write_bytes, atomic_write_text
from retain.report import html, markdown
from retain.report.plots import build_plots
from retain.report.summary import ReportData, load

__all__ = ["ReportData", "load", "render_report"]


def render_report(results: str | Path | dict, out_dir: str | Path) -> dict[str, Path]:
    """Render the report for one study.

    Args:
        results: path to a `retain.study/1` results.json, or that document already loaded as a dict.
        out_dir: folder to write into (created if needed); existing report files are replaced.

    Returns:
        Written paths by name: "markdown", "html", and one per plot ("tradeoff", "heatmap",
        "task:<task name>").

    Raises:
        UserError: the results file is missing, not JSON, or not a `retain.study/1` document.
    """
    data = load(results)
    out_dir = Path(out_dir)
    plots = build_plots(data)
    written: dict[str, Path] = {}
    for plot in plots:
        path = out_dir / "plots" / plot.filename
        atomic_write_bytes(path, plot.png)
        written[plot.key] = path
    written["markdown"] = out_dir / "report.md"
    atomic_write_text(written["markdown"], markdown.render(data, plots))
    written["html"] = out_dir / "report.html"
    atomic_write_text(written["html"], html.render(data, plots))
    return written
