"""`retain eval` end to end: the documented JSON, metrics recomputable from it, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from rouge_score import rouge_scorer

from tests.cli_helpers import run_cli
from tests.conftest import DATA, needs_data



def test_eval_writes_documented_schema(tiny_t5_dir, tmp_path, cache_dir, capsys):
    out = tmp_path / "res.json"
    code, _, _ = run_cli(["eval", "--model", str(tiny_t5_dir), "--task", "toy-ner", "--task", "toy-sentiment",
                          "--limit", "8", "--out", str(out)], capsys)
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["model"]["name"] == str(tiny_t5_dir) and len(doc["model"]["fingerprint"]) == 16
    ner = doc["tasks"]["toy-ner"]
    assert ner["n"] == 8 and len(ner["examples"]) == 8
    assert set(ner["metrics"]) == {"entity_f1", "entity_precision", "entity_recall"}
    for m in ner["metrics"].values():
        assert m["ci95"][0] <= m["value"] <= m["ci95"][1]
    assert {"id", "prompt", "prediction", "reference"} <= set(ner["examples"][0])
    sent = doc["tasks"]["toy-sentiment"]
    acc = sum(e["prediction"] == e["reference"] for e in sent["examples"]) / sent["n"]
    assert sent["metrics"]["accuracy"]["value"] == pytest.approx(acc, abs=1e-9)
    # A second identical call is served from the cache.
    code, _, _ = run_cli(["eval", "--model", str(tiny_t5_dir), "--task", "toy-ner", "--task", "toy-sentiment",
                          "--limit", "8", "--out", str(out)], capsys)
    assert all(t["from_cache"] for t in json.loads(out.read_text())["tasks"].values())


@needs_data
def test_real_summarization_metrics_recomputable(tiny_t5_dir, tmp_path, cache_dir, capsys):
    out = tmp_path / "res.json"
    spec = f"summarization:{DATA / 'summarization' / 'test.jsonl'}"
    code, _, err = run_cli(["eval", "--model", str(tiny_t5_dir), "--task", spec, "--limit", "6",
                            "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads(out.read_text())["tasks"][spec]
    assert all(len(e["references"]) == 3 for e in res["examples"])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    for name in ("rouge1", "rougeL"):
        expected = sum(scorer.score_multi(e["references"], e["prediction"])[name].fmeasure
                       for e in res["examples"]) / res["n"]
        assert res["metrics"][name]["value"] == pytest.approx(expected, abs=1e-6)


def _bad_jsonl(tmp_path):
    p = tmp_path / "test.jsonl"
    p.write_text('{"id": "1", "text": "fine", "label": "positive"}\n{"id": "2", "text": broken}\n')
    return f"sentiment:{p}", f"{p}:2"


def _missing_field(tmp_path):
    p = tmp_path / "test.jsonl"
    p.write_text('{"id": "1", "text": "fine", "label": "positive"}\n{"id": "2", "label": "negative"}\n')
    return f"sentiment:{p}", f"{p}:2"


BAD_TASKS = {
    "missing file": lambda tmp: (f"sentiment:{tmp / 'nope.jsonl'}", "nope.jsonl"),
    "malformed line": _bad_jsonl,
    "missing field": _missing_field,
    "unknown task": lambda tmp: ("toy-nerr", "toy-nerr"),
    "unknown family": lambda tmp: (f"sentimnt:{tmp}/x.jsonl", "sentimnt"),
}


@pytest.mark.parametrize("case", list(BAD_TASKS))
def test_bad_task_input_exits_2_with_one_line(case, tiny_t5_dir, tmp_path, cache_dir, capsys):
    spec, expected_in_message = BAD_TASKS[case](tmp_path)
    out = tmp_path / "res.json"
    code, stdout, err = run_cli(["eval", "--model", str(tiny_t5_dir), "--task", spec, "--out", str(out)], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected_in_message in lines[0], err
    assert "Traceback" not in err + stdout
    assert not out.exists()


def test_model_without_weights_exits_2(tiny_t5_dir, tmp_path, capsys):
    folder = tmp_path / "m"
    shutil.copytree(tiny_t5_dir, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    out = tmp_path / "res.json"
    code, _, err = run_cli(["eval", "--model", str(folder), "--task", "toy-qa", "--out", str(out)], capsys)
    assert code == 2 and "no weights" in err and str(folder) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_console_script_exit_code_and_tasks_listing(tmp_path):
    """The installed `retain` command itself: lists the toy tasks, and exits 2 on an unknown task."""
    listing = subprocess.run([sys.executable, "-m", "retain", "tasks"], capture_output=True, text=True)
    assert listing.returncode == 0
    for name in ("toy-ner", "toy-sentiment", "toy-summarize", "toy-qa"):
        assert name in listing.stdout
    bad = subprocess.run([sys.executable, "-m", "retain", "eval", "--model", str(tmp_path), "--task", "nope",
                          "--out", str(tmp_path / "o.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_data_dir_flag_resolves_family_names(tiny_t5_dir, tmp_path, cache_dir, capsys, monkeypatch):
    """`--data-dir D --task sentiment` reads D/sentiment/; without it a bare family name is an error."""
    monkeypatch.delenv("RETAIN_DATA_DIR", raising=False)
    (tmp_path / "data" / "sentiment").mkdir(parents=True)
    (tmp_path / "data" / "sentiment" / "test.jsonl").write_text(
        '{"id": "a", "text": "lovely", "label": "positive"}\n{"id": "b", "text": "awful", "label": "negative"}\n')
    out = tmp_path / "res.json"
    code, _, err = run_cli(["eval", "--model", str(tiny_t5_dir), "--task", "sentiment", "--out", str(out)], capsys)
    assert code == 2 and "RETAIN_DATA_DIR" in err and not out.exists()
    code, _, err = run_cli(["--data-dir", str(tmp_path / "data"), "eval", "--model", str(tiny_t5_dir),
                            "--task", "sentiment", "--out", str(out)], capsys)
    assert code == 0, err
    tasks = json.loads(out.read_text())["tasks"]
    assert list(tasks) == ["sentiment"] and tasks["sentiment"]["n"] == 2  # named as written, not by its path
    code, _, err = run_cli(["--data-dir", str(tmp_path / "missing"), "tasks"], capsys)
    assert code == 2 and "missing" in err and err.count("\n") == 1
