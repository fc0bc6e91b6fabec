"""`retain references`: a task file whose references are the model's own greedy answers (a behaviour probe)."""

from __future__ import annotations

import json

from tests.cli.test_console_script import one_error_line, retain
from tests.cli_helpers import run_cli

RECORDS = [
    {"id": f"i{i}", "instruction": f"Write a short note about item {i}.", "input": "" if i % 2 else f"Item {i} is red.",
     "output": f"Item {i} is a thing."}
    for i in range(6)
]


def _data(tmp_path):
    folder = tmp_path / "instructions"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return folder


def test_references_are_the_models_answers_the_model_scores_itself_perfectly_and_the_cap_keys_the_cache(
        tmp_path, tiny_llama_dir, capsys):
    from transformers import AutoTokenizer

    data, probe, cache = _data(tmp_path), tmp_path / "probe", tmp_path / "cache"
    res = retain("references", "-m", tiny_llama_dir, "-t", f"instructions:{data}", "--out", probe,
                 "--cache-dir", cache, "--dtype", "float32", "--max-new-tokens", "3")
    assert res.returncode == 0, res.stderr
    written = [json.loads(line) for line in (probe / "test.jsonl").read_text().splitlines()]
    source = json.loads((probe / "SOURCE.json").read_text())
    assert source["examples"] == len(written) and source["split"] == "test" and source["max_new_tokens"] == 3
    assert (source["dtype"], source["batch_size"]) == ("float32", 16)  # what decides a greedy answer's batch
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert written and all(len(tok(r["output"], add_special_tokens=False)["input_ids"]) <= 4 for r in written)

    # The same model evaluated on the original task: its predictions are exactly the written references.
    res = retain("eval", "-m", tiny_llama_dir, "-t", f"instructions:{data}", "--out", tmp_path / "orig.json",
                 "--no-cache", "--dtype", "float32", "--max-new-tokens", "3")
    assert res.returncode == 0, res.stderr
    examples = json.loads((tmp_path / "orig.json").read_text())["tasks"][f"instructions:{data}"]["examples"]
    predicted = {e["id"]: e["prediction"] for e in examples}
    originals = {r["id"]: r for r in RECORDS}
    assert written and {r["id"] for r in written} | set(source["left_out_empty"]) == set(originals)
    for record in written:
        assert record["output"] == predicted[record["id"]] != originals[record["id"]]["output"]
        assert record["instruction"] == originals[record["id"]]["instruction"]  # same prompt
        assert record["input"] == originals[record["id"]]["input"]
    assert all(not predicted[i].strip() for i in source["left_out_empty"])

    # Against its own answers, at the same cap, the model scores ROUGE 1.0: the probe measures drift
    # from the base. (In this process: cheaper than a subprocess, the same command.)
    def run(out, *extra):
        code, _, err = run_cli(["eval", "-m", str(tiny_llama_dir), "-t", f"instructions:{probe}", "--out",
                                str(tmp_path / out), "--cache-dir", str(cache), "--dtype", "float32", *extra], capsys)
        doc = json.loads((tmp_path / out).read_text())["tasks"][f"instructions:{probe}"] if code == 0 else None
        return code, err, doc

    code, err, capped = run("capped.json", "--max-new-tokens", "3")
    assert code == 0, err
    assert capped["metrics"][capped["primary"]]["value"] == 1.0

    # The task's own length (128) is another cache entry, and other answers; the cap again is a cache hit.
    code, err, full = run("full.json")
    assert code == 0, err
    assert not full["from_cache"]
    assert [e["prediction"] for e in full["examples"]] != [e["prediction"] for e in capped["examples"]]
    code, err, again = run("again.json", "--max-new-tokens", "3")
    assert code == 0 and again["from_cache"]
    code, err, _ = run("bad.json", "--max-new-tokens", "0")
    assert code == 2 and "max-new-tokens" in err and not (tmp_path / "bad.json").exists()


def test_references_refuse_a_task_without_one_text_reference(tmp_path):
    out = tmp_path / "probe"
    line = one_error_line(retain("references", "-m", "./no-model", "-t", "toy-sentiment", "--out", out))
    assert "instructions:PATH" in line and "toy-sentiment" in line
    assert not out.exists()
