"""File-backed task families: schemas, split detection, references, located errors, real data."""

import csv
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retain.errors import UserError
from retain.tasks import get_task
from retain.tasks.families import (
    INSTRUCTIONS_TEMPLATE,
    NER_TEMPLATE,
    QA_TEMPLATE,
    SENTIMENT_TEMPLATE,
    SUMMARIZATION_TEMPLATE,
    build_family_task,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- each family ------------------------------------------------------------------------------------

def test_summarization(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [
        {"id": "d1", "dialogue": "A: hi\nB: hello", "summary": "They greet."},
        {"id": "d2", "dialogue": "A: bye", "summary": "A leaves.", "references": ["A leaves.", "A goes."]},
    ])
    task = get_task(f"summarization:{f}")
    assert (task.name, task.family, task.version, task.kind, task.metric) == (
        f"summarization:{f}", "summarization", "1", "generate", "rouge")
    assert task.max_new_tokens == 64 and task.splits == ("train",)
    a, b = task.examples("train")
    assert a.prompt == "Summarize the following dialogue.\n\nA: hi\nB: hello"
    assert a.prompt == SUMMARIZATION_TEMPLATE.format(dialogue="A: hi\nB: hello")
    assert (a.id, a.target, a.references) == ("d1", "They greet.", ("They greet.",))
    assert b.references == ("A leaves.", "A goes.")


def test_summarization_test_references_join(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [
        {"id": "t1", "dialogue": "x", "summary": "s1"},
        {"id": "t2", "dialogue": "y", "summary": "s2"},
    ])
    # Rows in another order than the data: the join is by id.
    write_jsonl(tmp_path / "test_references.jsonl", [
        {"id": "t2", "references": ["s2", "r2b", "r2c"]},
        {"id": "t1", "references": ["s1", "r1b", "r1c"]},
    ])
    write_jsonl(tmp_path / "train.jsonl", [{"id": "t1", "dialogue": "x", "summary": "train summary"}])
    task = get_task(f"summarization:{tmp_path}")
    assert task.splits == ("train", "test")
    refs = {ex.id: ex.references for ex in task.examples("test")}
    assert refs == {"t1": ("s1", "r1b", "r1c"), "t2": ("s2", "r2b", "r2c")}
    assert [ex.target for ex in task.examples("test")] == ["s1", "s2"]
    # The references file belongs to the test split only.
    assert task.examples("train")[0].references == ("train summary",)
    # ... also when the test file is named directly.
    assert get_task(f"summarization:{tmp_path / 'test.jsonl'}").examples("test")[1].references[1] == "r2b"


def test_summarization_reference_missing_for_an_id(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [{"id": "t1", "dialogue": "x", "summary": "s"},
                                          {"id": "t9", "dialogue": "y", "summary": "s"}])
    write_jsonl(tmp_path / "test_references.jsonl", [{"id": "t1", "references": ["a"]}])
    with pytest.raises(UserError, match=r"test\.jsonl:2: no references for id 't9'"):
        get_task(f"summarization:{tmp_path}").examples("test")


def test_ner_bio_jsonl(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [
        {"id": "s1", "tokens": ["Charlie", "Brown", "visited", "New", "York"],
         "tags": ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]},
        {"id": "s2", "tokens": ["Nothing", "here"], "tags": ["O", "O"]},
    ])
    task = get_task(f"ner:{f}")
    assert (task.kind, task.metric, task.max_new_tokens) == ("generate", "entity_f1", 48)
    a, b = task.examples()
    assert a.target == "PER: Charlie Brown; LOC: New York"
    assert b.target == "none"
    assert a.prompt == NER_TEMPLATE.format(text="Charlie Brown visited New York")
    assert a.prompt.endswith("\n\nSentence: Charlie Brown visited New York")


def test_ner_parquet_lists(tmp_path):
    f = write_parquet(tmp_path / "validation.parquet", [
        {"id": "p1", "tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
    ])
    task = get_task(f"ner:{f}")
    assert task.splits == ("validation",)
    assert task.examples("validation")[0].target == "ORG: EU; MISC: German"


def test_ner_csv_text_and_entities(tmp_path):
    f = write_csv(tmp_path / "train.csv", [
        {"text": "Charlie flew to Paris", "entities": "person: Charlie ; LOC: Paris"},
        {"text": "Nothing here", "entities": "none"},
    ])
    a, b = get_task(f"ner:{f}").examples("train")
    assert (a.id, a.target) == ("train-0", "PER: Charlie; LOC: Paris")
    assert a.prompt.endswith("Sentence: Charlie flew to Paris")
    assert (b.id, b.target) == ("train-1", "none")


def test_ner_csv_unreadable_entities(tmp_path):
    f = write_csv(tmp_path / "train.csv", [{"text": "a", "entities": "PER: a"}, {"text": "b", "entities": "b"}])
    with pytest.raises(UserError, match=r"train\.csv:3: field 'entities'"):
        get_task(f"ner:{f}").examples("train")


@pytest.mark.parametrize("writer, labels", [
    (write_jsonl, ["positive", "negative", 1, 0]),
    (write_jsonl, ["Positive", " NEGATIVE", "1", "0"]),
    (write_csv, ["1", "0", "positive", "negative"]),
])
def test_sentiment(tmp_path, writer, labels):
    suffix = ".jsonl" if writer is write_jsonl else ".csv"
    rows = [{"text": f"review {i}", "label": label} for i, label in enumerate(labels)]
    task = get_task(f"sentiment:{writer(tmp_path / ('test' + suffix), rows)}")
    assert (task.kind, task.metric, task.max_new_tokens) == ("choice", "accuracy", 4)
    examples = task.examples()
    assert [ex.label for ex in examples] == [1, 0, 1, 0]
    assert [ex.target for ex in examples] == ["positive", "negative", "positive", "negative"]
    assert examples[0].choices == ("negative", "positive")
    assert examples[0].prompt == "Review: review 0\nIs this review positive or negative?"
    assert examples[0].prompt == SENTIMENT_TEMPLATE.format(text="review 0")


def test_qa(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [
        {"id": "q1", "context": "Tesla had a brother, Dane.", "question": "Who?", "answers": ["Dane", "Dane "]},
        {"id": "q2", "context": "c", "question": "q", "answer": "only"},
    ])
    task = get_task(f"qa:{f}")
    assert (task.kind, task.metric, task.max_new_tokens) == ("generate", "squad", 24)
    a, b = task.examples()
    assert (a.target, a.references) == ("Dane", ("Dane", "Dane"))
    assert a.prompt == QA_TEMPLATE.format(context="Tesla had a brother, Dane.", question="Who?")
    assert (b.target, b.references) == ("only", ("only",))


def test_qa_empty_answers(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [{"context": "c", "question": "q", "answers": []}])
    with pytest.raises(UserError, match=r"test\.jsonl:1: field 'answers'"):
        get_task(f"qa:{f}").examples()


def test_instructions(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [
        {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
        {"instruction": "Name a colour.", "input": "", "output": "blue"},
        {"instruction": "Name a fruit.", "output": "apple"},
    ])
    task = get_task(f"instructions:{f}")
    assert (task.kind, task.metric, task.max_new_tokens) == ("generate", "rouge", 128)
    assert task.prompt_template == INSTRUCTIONS_TEMPLATE
    a, b, c = task.examples("train")
    assert a.prompt == "Translate to French.\n\ncat" and a.target == "chat"
    assert b.prompt == "Name a colour." and c.prompt == "Name a fruit."


# --- splits, ids, laziness, limits ------------------------------------------------------------------

@pytest.mark.parametrize("name, split", [
    ("train.jsonl", "train"), ("validation.jsonl", "validation"), ("dev.csv", "validation"),
    ("val.json", "validation"), ("test.parquet", "test"), ("my_reviews.jsonl", "test"),
])
def test_split_of_a_single_file(tmp_path, name, split):
    rows = [{"text": "good", "label": "positive"}]
    f = tmp_path / name
    if f.suffix == ".csv":
        write_csv(f, rows)
    elif f.suffix == ".parquet":
        write_parquet(f, rows)
    elif f.suffix == ".json":
        f.write_text(json.dumps(rows))
    else:
        write_jsonl(f, rows)
    task = get_task(f"sentiment:{f}")
    assert task.splits == (split,)
    assert task.examples(split)[0].id == f"{f.stem}-0"


def test_split_of_a_folder(tmp_path):
    for split in ("test", "train"):
        write_jsonl(tmp_path / f"{split}.jsonl", [{"text": split, "label": 1}])
    (tmp_path / "notes.txt").write_text("ignored")
    task = get_task(f"sentiment:{tmp_path}")
    assert task.splits == ("train", "test")
    assert not task.has_split("validation")
    with pytest.raises(UserError, match="no 'validation' split"):
        task.examples("validation")


def test_folder_without_data_files(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(UserError, match="no train/validation/test data files"):
        get_task(f"qa:{tmp_path}")


def test_reading_is_lazy_and_limit_cuts(tmp_path):
    f = tmp_path / "test.jsonl"
    write_jsonl(f, [{"text": f"t{i}", "label": i % 2} for i in range(5)])
    task = get_task(f"sentiment:{f}")
    f.write_text(f.read_text() + "{broken\n")  # written after the factory ran: only read on demand
    with pytest.raises(UserError, match=r"test\.jsonl:6: malformed JSON line"):
        task.examples(limit=2)
    f.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(5)))
    task = get_task(f"sentiment:{f}")
    assert [ex.id for ex in task.examples(limit=2)] == ["test-0", "test-1"]
    assert len(task.examples()) == 5


# --- located errors ---------------------------------------------------------------------------------

def test_missing_field_names_file_line_and_field(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [{"dialogue": "a", "summary": "b"}, {"dialogue": "c"}])
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:2: missing field 'summary'"):
        get_task(f"summarization:{f}").examples("train")


def test_malformed_jsonl_line(tmp_path):
    f = tmp_path / "test.jsonl"
    f.write_text('{"context": "c", "question": "q", "answers": ["a"]}\n{"context": \n')
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:2: malformed JSON"):
        get_task(f"qa:{f}").examples()


def test_mismatched_tokens_and_tags(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [
        {"tokens": ["a"], "tags": ["O"]},
        {"tokens": ["Charlie", "runs"], "tags": ["B-PER"]},
    ])
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:2: .*2 tokens but 1 tags"):
        get_task(f"ner:{f}").examples()


def test_bad_ner_tag(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [{"tokens": ["Monday"], "tags": ["B-DATE"]}])
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:1: .*B-DATE"):
        get_task(f"ner:{f}").examples()


@pytest.mark.parametrize("label", ["neutral", 2, None, True])
def test_bad_sentiment_label(tmp_path, label):
    row = {"text": "meh"} if label is None else {"text": "meh", "label": label}
    f = write_jsonl(tmp_path / "test.jsonl", [{"text": "good", "label": "positive"}, row])
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:2: .*'label'"):
        get_task(f"sentiment:{f}").examples()


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(UserError, match=rf"{re.escape(str(missing))}: file not found"):
        get_task(f"sentiment:{missing}")


def test_empty_file(tmp_path):
    f = tmp_path / "test.jsonl"
    f.write_text("\n")
    task = get_task(f"sentiment:{f}")
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}: no records"):
        task.examples()


def test_duplicate_id(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [{"id": 1, "text": "a", "label": 1}, {"id": "1", "text": "b", "label": 0}])
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:2: duplicate id '1' \(first used on line 1\)"):
        get_task(f"sentiment:{f}").examples()


def test_list_where_text_expected(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [{"text": ["not", "text"], "label": 1}])
    with pytest.raises(UserError, match=rf"{re.escape(str(f))}:1: field 'text' must be text"):
        get_task(f"sentiment:{f}").examples()


# --- hub datasets (load_dataset replaced by a local DatasetDict: no network) ------------------------

def test_hub_dataset_is_lazy_and_maps_labels(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    local = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["great", "awful", "fine"], "label": [1, 0, 1]},
                                            features=features),
    })

    def fake_load(dataset_id, config=None):
        calls.append((dataset_id, config))
        return local

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = build_family_task("sentiment", "hf:someone/reviews@default")
    assert task.name == "sentiment:hf:someone/reviews@default" and calls == []
    examples = task.examples("train")
    assert calls == [("someone/reviews", "default")]
    assert [ex.target for ex in examples] == ["positive", "negative", "positive"]
    assert examples[0].prompt == SENTIMENT_TEMPLATE.format(text="great")
    with pytest.raises(UserError, match="no 'test' split"):
        task.examples("test")


# --- the real data in ../shared/data ----------------------------------------------------------------

@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize("family, splits, test_count", [
    ("summarization", ("train", "validation", "test"), 300),
    ("ner", ("train", "validation", "test"), 300),
    ("sentiment", ("train", "validation", "test"), 300),
    ("qa", ("train", "test"), 300),
    ("instructions", ("train", "test"), 252),
])
def test_real_data(family, splits, test_count):
    task = get_task(f"{family}:{SHARED_DATA / family}")
    assert task.splits == splits
    test = task.examples("test")
    assert len(test) == test_count
    assert len({ex.id for ex in test}) == test_count
    assert all(ex.prompt and ex.target for ex in test)
    if family == "summarization":
        assert all(len(ex.references) == 3 and ex.references[0] == ex.target for ex in test)
    if family == "ner":
        assert sum(ex.target != "none" for ex in test) > test_count // 2
    if family == "sentiment":
        assert {ex.label for ex in test} == {0, 1}
    if family == "qa":
        assert all(ex.references[0] == ex.target for ex in test)
