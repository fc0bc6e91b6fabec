"""A corpus of bad task data files: each is one line naming the file and line and what is wrong,
exit 2, and nothing written. Data files are read before the model loads (retain eval)."""

from __future__ import annotations

import json

import pytest

from retain.io import MAX_RECORD_BYTES
from tests.cli_helpers import run_cli


def jl(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


SENT = {"id": "s1", "text": "a fine film", "label": "positive"}
SUMM = {"id": "d1", "dialogue": "#Person1#: hi\n#Person2#: hello", "summary": "They greet."}
NER = {"id": "n1", "tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]}
QA = {"id": "q1", "context": "Paris is in France.", "question": "Where is Paris?", "answers": ["France"]}
INSTR = {"id": "i1", "instruction": "Say hi.", "input": "", "output": "Hi!"}

# name: (family, file name, bytes, what the one line must contain)
CASES = {
    "malformed JSON": ("sentiment", "test.jsonl", jl(SENT) + b'{"id": "s2", "text": \n', "test.jsonl:2"),
    "a number as text": ("sentiment", "test.jsonl", jl({**SENT, "text": 42}), "'text' must be text, not a number"),
    "a boolean as text": ("sentiment", "test.jsonl", jl({**SENT, "text": True}), "not a boolean"),
    "an object as text": ("summarization", "test.jsonl", jl({**SUMM, "dialogue": {"a": 1}}), "not an object"),
    "missing field": ("sentiment", "test.jsonl", jl({"id": "s1", "label": "positive"}), "missing field 'text'"),
    "label outside the set": ("sentiment", "test.jsonl", jl({**SENT, "label": "neutral"}), "'label'"),
    "empty summary": ("summarization", "test.jsonl", jl({**SUMM, "summary": "  "}), "'summary' is empty"),
    "empty output": ("instructions", "test.jsonl", jl({**INSTR, "output": ""}), "'output' is empty"),
    "empty file": ("sentiment", "test.jsonl", b"", "no records"),
    "blank lines only": ("sentiment", "test.jsonl", b"\n\n  \n", "no records"),
    "invalid UTF-8": ("sentiment", "test.jsonl", jl(SENT) + b'{"id": "s2", "text": "caf\xe9", "label": "positive"}\n',
                      "test.jsonl:2: not valid UTF-8"),
    "a huge line": ("sentiment", "test.jsonl", b'{"text": "' + b"a" * (MAX_RECORD_BYTES + 10) + b'"}\n',
                    "test.jsonl:1: line longer than"),
    "tokens and tags of different lengths": ("ner", "test.jsonl", jl({**NER, "tags": ["B-ORG", "O"]}), "test.jsonl:1"),
    "a tag outside the BIO set": ("ner", "test.jsonl", jl({**NER, "tags": ["B-FOO", "O", "O", "O"]}), "B-FOO"),
    "a number as a token": ("ner", "test.jsonl", jl({**NER, "tokens": ["EU", 5, "German", "call"]}), "token 1"),
    "no tokens": ("ner", "test.jsonl", jl({**NER, "tokens": [], "tags": []}), "'tokens' is empty"),
    "duplicate ids": ("sentiment", "test.jsonl", jl(SENT, SENT), "duplicate id 's1'"),
    "duplicate key in a record": ("sentiment", "test.jsonl",
                                  b'{"id": "s1", "text": "a", "text": "b", "label": "positive"}\n', "appears twice"),
    "a list instead of an object": ("sentiment", "test.jsonl", b'["a", "positive"]\n', "expected a JSON object"),
    "answers empty": ("qa", "test.jsonl", jl({**QA, "answers": []}), "answers"),
    "answers a number": ("qa", "test.jsonl", jl({**QA, "answers": 3}), "answers"),
    "JSON array of non-objects": ("sentiment", "test.json", b'[1, 2]', "expected a JSON array of objects"),
    "CSV with a missing column": ("sentiment", "test.csv", b"id,text\ns1,a fine film\n", "missing field 'label'"),
    "CSV with an empty text": ("sentiment", "test.csv", b"id,text,label\ns1,,positive\n", "'text' is empty"),
    "CSV with a stray field": ("sentiment", "test.csv", b"id,text,label\ns1,a,positive,extra\n", "test.csv:2"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_data_is_one_line_exit_2_nothing_written(name, tmp_path, capsys):
    family, filename, raw, expected = CASES[name]
    data = tmp_path / "data"
    data.mkdir()
    (data / filename).write_bytes(raw)
    out = tmp_path / "out.json"
    code, _, stderr = run_cli(["eval", "--model", str(tmp_path / "no-model-needed"), "--task",
                               f"{family}:{data}", "--out", str(out)], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, stderr
    assert expected in lines[0] and str(data) in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf" + jl(SENT), jl(SENT).replace(b"\n", b"\r\n")])
def test_a_bom_and_windows_line_ends_are_accepted(raw, tmp_path):
    from retain.tasks import get_task

    (tmp_path / "test.jsonl").write_bytes(raw)
    (example,) = get_task(f"sentiment:{tmp_path}").examples("test")
    assert example.id == "s1" and example.target == "positive"


def test_a_bom_is_accepted_in_csv(tmp_path):
    from retain.tasks import get_task

    (tmp_path / "test.csv").write_bytes(b"\xef\xbb\xbfid,text,label\ns1,a fine film,positive\n")
    (example,) = get_task(f"sentiment:{tmp_path}").examples("test")
    assert example.id == "s1"
