"""The console summary keeps every run name whole in an 80-column terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rich.console import Console

from retain.cli.summary import print_summary
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


REAL = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "real-model" / "results.json"


def _printed(doc, tmp_path, width: int) -> str:
    buffer = io.StringIO()
    print_summary(doc, tmp_path, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_no_number_and_no_name_is_cut_when_task_names_are_long(tmp_path, width):
    """The real-model study: six tasks, one named by a path, nine runs. Every change is printed whole,
    in however many tables it takes; the task keys are explained under the table."""
    doc = json.loads(REAL.read_text())
    text = _printed(doc, tmp_path, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines if not line.startswith(("Report:", "T", "No run"))) <= width
    from retain.report.summary import change, load

    data = load(doc)
    for run in doc["runs"]:
        row_cells = " ".join(line for line in lines if line.strip("│ ").startswith(run["name"] + " "))
        for t in data.tasks:
            assert f"{change(run, t.name)['delta']:+.3f}" in row_cells, (run["name"], t.name, text)
    for i, t in enumerate(data.tasks):
        assert f"T{i + 1} = {t.name} ({t.primary}" in text
    assert "…" not in text


def test_full_task_names_when_they_fit(tmp_path):
    doc = json.loads(REAL.read_text())
    text = _printed(doc, tmp_path, 250)
    assert "instructions:bench/real_model/out/chat-probe" in text.splitlines()[2] and "T1 =" not in text
