"""Tasks declared in a YAML file: good files build working tasks, bad ones give one-line located errors."""

import json
import re
import textwrap

import pytest

from retain.errors import UserError
from retain.tasks import get_task
from retain.tasks.user import load_user_task, read_task_config


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def capitals(tmp_path):
    write_jsonl(tmp_path / "data" / "capitals.jsonl", [
        {"id": "fr", "country": "France", "capital": "Paris", "aliases": ["paris", "Paris"]},
        {"country": "Italy", "capital": "Rome"},
    ])
    return write(tmp_path / "task.yaml", """
        name: capital-cities
        version: 2
        kind: generate
        data: data/capitals.jsonl
        prompt: "What is the capital of {country}?"
        target: capital
        references: aliases
        metric: exact_match
        max_new_tokens: 16
        description: capitals of countries
    """)


def test_generate_task(capitals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)  # data paths are relative to the YAML file, not the working directory
    task = load_user_task(capitals)
    assert (task.name, task.family, task.version, task.kind, task.metric, task.max_new_tokens) == (
        "capital-cities", "capital-cities", "2", "generate", "exact_match", 16)
    assert task.splits == ("test",) and task.description == "capitals of countries"
    fr, it = task.examples()
    assert (fr.id, fr.prompt, fr.target, fr.references) == ("fr", "What is the capital of France?", "Paris",
                                                             ("Paris", "paris"))
    assert (it.id, it.references) == ("capitals-1", ("Rome",))


def test_get_task_dispatches_yaml(capitals):
    assert get_task(str(capitals)).name == "capital-cities"


def test_choice_task_with_fixed_choices(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"q": "Is water wet?", "a": "yes"}, {"q": "Is fire cold?", "a": 1}])
    write_jsonl(tmp_path / "test.jsonl", [{"q": "Is ice cold?", "a": "0"}])
    path = write(tmp_path / "yn.yml", """
        name: yes-no
        kind: choice
        data: {train: train.jsonl, test: test.jsonl}
        prompt: "{q}"
        target: a
        choices: [yes, no]
    """)
    task = load_user_task(path)
    assert task.metric == "accuracy" and task.splits == ("train", "test")
    train = task.examples("train")
    assert train[0].choices == ("yes", "no")  # not YAML 1.1 booleans
    assert [(ex.label, ex.target) for ex in train] == [(0, "yes"), (1, "no")]
    assert task.examples("test")[0].label == 0


def test_choice_task_with_choices_field(tmp_path):
    write_jsonl(tmp_path / "data" / "validation.jsonl", [
        {"question": "2+2?", "options": ["3", "4", "5"], "answer": "4"},
        {"question": "1+1?", "options": ["2", "3"], "answer": 1},
    ])
    path = write(tmp_path / "math.yaml", """
        name: math
        kind: choice
        data: data
        prompt: "Q: {question}"
        target: answer
        choices_field: options
    """)
    task = load_user_task(path)
    assert task.splits == ("validation",)
    a, b = task.examples("validation")
    assert (a.choices, a.label, a.target) == (("3", "4", "5"), 1, "4")  # the text "4" wins over index 4
    assert (b.label, b.target) == (1, "3")


def test_choice_answer_not_among_choices(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [{"q": "x", "a": "yes"}, {"q": "y", "a": "maybe"}])
    path = write(tmp_path / "t.yaml", """
        name: t
        kind: choice
        data: test.jsonl
        prompt: "{q}"
        target: a
        choices: [yes, no]
    """)
    with pytest.raises(UserError, match=r"test\.jsonl:2: field 'a' is 'maybe'"):
        load_user_task(path).examples()


def error_of(tmp_path, text, name="task.yaml"):
    write_jsonl(tmp_path / "test.jsonl", [{"x": "1", "y": "2"}])
    path = write(tmp_path / name, text)
    with pytest.raises(UserError) as info:
        load_user_task(path)
    message = str(info.value)
    assert "\n" not in message
    return message, path


GOOD = 'name: t\ndata: test.jsonl\nprompt: "{x}"\ntarget: y\n'


def test_unknown_key(tmp_path):
    message, path = error_of(tmp_path, GOOD + "kindd: generate\n")
    assert message.startswith(f"{path}: key 'kindd': unknown key")
    assert "did you mean 'kind'" in message


def test_bad_kind(tmp_path):
    message, path = error_of(tmp_path, GOOD + "kind: classify\n")
    assert message.startswith(f"{path}: key 'kind':") and "'generate' or 'choice'" in message


def test_bad_metric_and_missing_key(tmp_path):
    message, _ = error_of(tmp_path, "name: t\ndata: test.jsonl\nprompt: p\nmetric: bleu\n")
    assert "key 'metric':" in message and "exact_match" in message
    assert "key 'target': required key is missing" in message


def test_bad_max_new_tokens(tmp_path):
    message, _ = error_of(tmp_path, GOOD + "max_new_tokens: 0\n")
    assert "key 'max_new_tokens':" in message


def test_choice_needs_choices(tmp_path):
    message, _ = error_of(tmp_path, GOOD + "kind: choice\n")
    assert "key 'choices':" in message
    message, _ = error_of(tmp_path, GOOD + "kind: choice\nchoices: [a, b]\nmetric: rouge\n")
    assert "key 'metric':" in message
    message, _ = error_of(tmp_path, GOOD + "choices: [a, b]\n")
    assert "only for kind: choice" in message


def test_bad_data(tmp_path):
    message, path = error_of(tmp_path, GOOD.replace("data: test.jsonl", "data: {testing: test.jsonl}"))
    assert "key 'data': unknown split 'testing'" in message
    message, _ = error_of(tmp_path, GOOD.replace("data: test.jsonl", "data: nope.jsonl"))
    assert re.search(r"nope\.jsonl: file not found", message)
    message, _ = error_of(tmp_path, GOOD.replace("data: test.jsonl", "data: {train: nope.jsonl}"))
    assert "key 'data': file not found" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    message, path = error_of(tmp_path, "name: t\ndata: [test.jsonl\nprompt: p\n")
    assert re.match(rf"{re.escape(str(path))}:3: invalid YAML", message)


def test_not_a_mapping(tmp_path):
    message, _ = error_of(tmp_path, "- name: t\n")
    assert "expected a mapping" in message


def test_missing_yaml_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        read_task_config(tmp_path / "none.yaml")


def test_missing_prompt_field_in_a_record(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [{"x": "1", "y": "2"}, {"y": "3"}])
    path = write(tmp_path / "task.yaml", GOOD)
    with pytest.raises(UserError, match=r"test\.jsonl:2: missing field 'x'"):
        load_user_task(path).examples()
