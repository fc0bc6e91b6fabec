"""Property-based: no input makes the record loaders, the family converters or the config parsers raise
anything but a UserError (hypothesis generates the inputs; every failure it finds is a traceback a user
would have seen)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.config import load_yaml_text
from retain.errors import UserError
from retain.io import read_records
from retain.study.config import load_study_config
from retain.tasks.families import FAMILIES, build_family_task

QUICK = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
FIELDS = ["id", "text", "label", "tokens", "tags", "entities", "dialogue", "summary", "references", "context",
          "question", "answers", "answer", "instruction", "input", "output"]
records = st.dictionaries(st.sampled_from(FIELDS), json_values | st.lists(st.sampled_from(
    ["O", "B-PER", "I-PER", "B-LOC", "B-FOO", "I-ORG", ""]), max_size=5), max_size=8)


@QUICK
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_record_files_of_any_bytes(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("rec") / f"test{suffix}"
    path.write_bytes(raw)
    try:
        result = read_records(path)
    except UserError:
        return
    assert isinstance(result, list) and all(isinstance(r, dict) for r in result)


@QUICK
@given(family=st.sampled_from(sorted(FAMILIES)), rows=st.lists(records, min_size=1, max_size=4))
def test_family_records_of_any_shape(tmp_path_factory, family, rows):
    folder = tmp_path_factory.mktemp("data")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        examples = build_family_task(family, str(folder)).examples("test")
    except UserError:
        return
    assert all(isinstance(ex.prompt, str) and ex.prompt and isinstance(ex.target, str) for ex in examples)


@QUICK
@given(text=st.text(max_size=300))
def test_yaml_of_any_text(text):
    try:
        load_yaml_text(text, "c.yaml")
    except UserError:
        pass


yaml_scalars = st.sampled_from(["1", "-1", "0.5", ".inf", ".nan", "null", "true", "no", "x", "[]", "{}", "[a, b]",
                                "full", "lora", "wise-ft", "toy-ner", "toy-summarize", "'../x'", "1e400"])
yaml_keys = st.sampled_from(["model", "target", "protect", "methods", "seeds", "budget", "max_drop", "train",
                             "eval", "limit", "alphas", "of", "method", "name", "options", "r", "task", "device",
                             "dtype", "chat", "split", "tolerance", "relative", "fewshot"])


@st.composite
def yaml_documents(draw, depth=0):
    lines = []
    for key in draw(st.lists(yaml_keys, min_size=1, max_size=5)):
        if depth < 2 and draw(st.booleans()):
            inner = draw(yaml_documents(depth + 1))
            lines.append(f"{key}:")
            lines += ["  " + line for line in inner.splitlines()]
        else:
            lines.append(f"{key}: {draw(yaml_scalars)}")
    return "\n".join(lines) + "\n"


@QUICK
@given(doc=yaml_documents())
def test_study_configs_of_any_shape(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("cfg") / "study.yaml"
    path.write_text(doc, encoding="utf-8")
    try:
        load_study_config(path)
    except UserError as e:
        assert "\n" not in str(e)
