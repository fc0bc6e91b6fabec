"""The console summary keeps every run name whole in an 80-column terminal."""

from __future__ import annotations

import io
import json

from rich.console import Console

from retain.cli.study import print_summary
from tests.cli.test_console_script import retain
from tests.report.report_fixture import build_results


def test_run_names_are_whole_at_80_columns(tmp_path):
    doc = build_results()
    buffer = io.StringIO()
    print_summary(doc, tmp_path, Console(file=buffer, width=80, color_system=None))
    text = buffer.getvalue()
    lines = text.splitlines()
    for run in doc["runs"]:
        assert any(run["name"] in line for line in lines), (run["name"], text)
    assert max(len(line) for line in lines if not line.startswith("Report:")) <= 80


def test_report_from_a_study_folder(tmp_path):
    """`retain report DIR` reads DIR/results.json and writes the report beside it."""
    (tmp_path / "results.json").write_text(json.dumps(build_results()))
    res = retain("report", tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
