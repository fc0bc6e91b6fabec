"""The console summary keeps every run name whole in an 80-column terminal."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from rich.console import Console

from retain.cli.study import print_summary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_fixture import build_results  # noqa: E402


def test_run_names_are_whole_at_80_columns(tmp_path):
    doc = build_results()
    buffer = io.StringIO()
    print_summary(doc, tmp_path, Console(file=buffer, width=80, color_system=None))
    text = buffer.getvalue()
    lines = text.splitlines()
    for run in doc["runs"]:
        assert any(run["name"] in line for line in lines), (run["name"], text)
    assert max(len(line) for line in lines if not line.startswith("Report:")) <= 80
