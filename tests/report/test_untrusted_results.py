"""results.json is untrusted input: a damaged or hand-edited file is one line naming the field, exit 2,
no report written; text that survives validation never becomes markup in either report."""

from __future__ import annotations

import copy
import json

import pytest
from markdown_it import MarkdownIt
from report_fixture import PAYLOADS, build_results, hostile_results, injected

from retain.errors import UserError
from retain.report import render_report
from tests.cli_helpers import run_cli


def _set(doc: dict, path: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


# (path to change, new value, what the message names)
MALFORMED = [
    ("runs.0.change.toy-ner.delta", "-0.4", "runs.0.change.toy-ner.delta"),
    ("runs.0.change.toy-ner.ci95", [0.1], "ci95"),
    ("runs.0.change.toy-ner", [1, 2], "runs.0.change.toy-ner"),
    ("runs.0.cost", "fast", "runs.0.cost"),
    ("runs.0.cost.trainable_parameters", 1.5, "trainable_parameters"),
    ("runs.0.within_budget", "yes", "within_budget"),
    ("runs.0.forgotten", ["x"], "runs.0.forgotten"),
    ("runs.1", 7, "runs.1"),
    ("runs", {"full": {}}, "runs"),
    ("tasks.toy-ner.role", "<script>alert(1)</script>", "tasks.toy-ner.role"),
    ("tasks.toy-ner.n", "200", "tasks.toy-ner.n"),
    ("base.scores", [0.5], "base.scores"),
    ("study.finished", "no", "study.finished"),
    ("pareto", "full", "pareto"),
    ("recommendation", "full", "recommendation"),
    ("model", ["m"], "model"),
]


@pytest.mark.parametrize("path, value, named", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_results_are_one_line_and_write_nothing(path, value, named, tmp_path, capsys):
    doc = _set(build_results(), path, value)
    with pytest.raises(UserError) as e:
        render_report(doc, tmp_path / "direct")
    assert named in str(e.value) and "\n" not in str(e.value)
    results = tmp_path / "results.json"
    results.write_text(json.dumps(doc), encoding="utf-8")
    code, _, stderr = run_cli(["report", str(results), "--out", str(tmp_path / "out")], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and named in lines[0], stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "direct").exists()


@pytest.mark.parametrize("doc", [[1, 2], "text", 3, None, {"schema": "retain.study/1", "runs": [None]}])
def test_not_a_results_document(doc, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(doc), encoding="utf-8")
    code, _, stderr = run_cli(["report", str(results)], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and str(results) in stderr


def test_hostile_text_stays_text_in_both_reports(tmp_path):
    paths = render_report(hostile_results(), tmp_path)
    md = paths["markdown"].read_text("utf-8")
    html = paths["html"].read_text("utf-8")
    assert "alert(1)" in md and "alert(1)" in html  # shown, as text
    assert injected(html) == []
    as_html = MarkdownIt("commonmark").render(md)  # what a Markdown viewer would make of report.md
    assert injected(as_html) == [], injected(as_html)


def test_the_checker_sees_injection():
    """The detector above must flag each payload when it is not escaped."""
    for payload in PAYLOADS[:4] + ["<a href='javascript:alert(3)'>z</a>"]:
        assert injected(payload), payload
    assert injected(MarkdownIt("commonmark").render("[x](javascript:alert(1))")) == []  # markdown-it drops it
    assert injected(MarkdownIt("commonmark", {"html": True}).render("<script>x</script>"))
