"""Number formatting, task order and the markdown escapers behind the report."""

from __future__ import annotations

import pytest
from report_fixture import build_results

from retain.report import load
from retain.report.markdown import block, code, text
from retain.report.summary import fmt_ci, fmt_count, fmt_delta, fmt_mb, fmt_seconds, fmt_value

MINUS = "\u2212"


@pytest.mark.parametrize("x, want", [(0.1234, "+0.123"), (-0.0451, f"{MINUS}0.045"), (0.0, "0.000"),
                                     (-0.0004, "0.000"), (None, "\u2014")])
def test_fmt_delta(x, want):
    assert fmt_delta(x) == want


def test_other_formats():
    assert fmt_value(0.5) == "0.500"
    assert fmt_ci([-0.1, 0.05], signed=True) == f"[{MINUS}0.100, +0.050]"
    assert fmt_ci(None) == "\u2014"
    assert [fmt_seconds(s) for s in (3.21, 42, 412.4, 3725)] == ["3.2 s", "42 s", "6 min 52 s", "1 h 02 min"]
    assert [fmt_count(n) for n in (12, 294912, 60506624, 7.2e9)] == ["12", "294.9K", "60.5M", "7.2B"]
    assert fmt_mb(900) == "900 MB" and fmt_mb(5120) == "5.0 GB"


def test_tasks_target_first_and_common_budget():
    data = load(build_results())
    assert [t.name for t in data.tasks] == ["toy-summarize", "toy-ner", "toy-sentiment", "toy-qa"]
    assert [t.name for t in data.tasks if t.no_skill] == ["toy-sentiment"]
    assert data.common_budget() == 0.05
    assert data.target_task.primary == "rougeL"


def test_markdown_escapers():
    assert text("a|b\nc <x> & *y*") == "a\\|b c &lt;x&gt; &amp; \\*y\\*"
    assert code("a|b") == "`a\\|b`"
    assert code("x `y` z") == "``x `y` z``"
    assert block("has ``` inside") == "````text\nhas ``` inside\n````"


def test_header_says_where_the_weights_came_from():
    from retain.report.sections import header_lines

    doc = build_results()
    assert not any("dequantized" in line for line in header_lines(load(doc)))
    doc["model"]["source"] = {"kind": "gguf", "gguf_file": "m.Q4_1.gguf", "quantization": "Q4_1", "dequantized": True,
                              "note": "weights dequantized from a Q4_1-quantized GGUF file"}
    lines = header_lines(load(doc))
    assert "Weights dequantized from a Q4_1-quantized GGUF file (m.Q4_1.gguf)" in lines
