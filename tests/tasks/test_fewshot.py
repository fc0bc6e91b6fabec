"""Few-shot draws: shots never come from the evaluated split, are seeded, and do not depend on the limit."""

from __future__ import annotations

import json
import textwrap

import pytest

from retain.errors import UserError
from retain.tasks import get_task
from retain.tasks.fewshot import attach_shots, pool_split
from retain.tasks.user import load_user_task


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_task(tmp_path, data: str, extra: str = "") -> str:
    path = tmp_path / "task.yaml"
    path.write_text(textwrap.dedent(f"""
        name: capitals
        kind: generate
        data: {data}
        prompt: "Capital of {{country}}?"
        target: capital
        """) + extra, encoding="utf-8")
    return str(path)


def rows(prefix: str, n: int, start: int = 0) -> list[dict]:
    return [{"id": f"{i}", "country": f"{prefix}-land-{i}", "capital": f"{prefix}-city-{i}"}
            for i in range(start, start + n)]


@pytest.fixture
def leaky(tmp_path):
    """A task whose train, validation and test files share ids (0, 1, ...) and one duplicated record."""
    test = rows("test", 6)
    write_jsonl(tmp_path / "d" / "test.jsonl", test)
    # Train ids 0-5 collide with test ids; one train record repeats a test prompt under a fresh id.
    write_jsonl(tmp_path / "d" / "train.jsonl", rows("train", 30) + [{**test[2], "id": "dup"}])
    write_jsonl(tmp_path / "d" / "validation.jsonl", rows("val", 12, start=100) + [{**rows("train", 1)[0], "id": "7"}])
    return load_user_task(write_task(tmp_path, "d"))


@pytest.mark.parametrize("split", ["test", "validation", "train"])
def test_no_shot_from_the_evaluated_split_toy(split):
    task = get_task("toy-qa")
    evaluated = task.fewshot_examples(split, 20, k=3, seed=0)
    whole = task.examples(split)
    ids, prompts = {ex.id for ex in whole}, {ex.prompt for ex in whole}
    source = {ex.id for ex in task.examples(pool_split(task, split))}
    assert pool_split(task, split) == ("validation" if split == "train" else "train")
    for ex in evaluated:
        assert len(ex.shots) == 3 and len({s.id for s in ex.shots}) == 3
        for shot in ex.shots:
            assert shot.id not in ids and shot.prompt not in prompts
            assert shot.id in source


@pytest.mark.parametrize("split", ["test", "validation", "train"])
def test_no_shot_from_the_evaluated_split_with_colliding_ids(leaky, split):
    evaluated = leaky.fewshot_examples(split, None, k=4, seed=1)
    whole = leaky.examples(split)
    ids, prompts = {ex.id for ex in whole}, {ex.prompt for ex in whole}
    for ex in evaluated:
        for shot in ex.shots:
            assert shot.id not in ids, (split, ex.id, shot.id)
            assert shot.prompt not in prompts, (split, ex.id, shot.prompt)
            assert split != "test" or shot.id != "dup"  # "dup" repeats a test prompt under a train id
    # Many draws, so the exclusions were really exercised: the colliding ids never appeared.
    assert len({s.id for ex in evaluated for s in ex.shots}) >= 8


def test_same_seed_same_shots_other_seed_other_shots():
    task = get_task("toy-ner")
    a = [[s.id for s in ex.shots] for ex in task.fewshot_examples("test", 10, k=3, seed=0)]
    b = [[s.id for s in ex.shots] for ex in get_task("toy-ner").fewshot_examples("test", 10, k=3, seed=0)]
    c = [[s.id for s in ex.shots] for ex in get_task("toy-ner").fewshot_examples("test", 10, k=3, seed=1)]
    assert a == b
    assert a != c
    assert len({tuple(x) for x in a}) > 1  # each example gets its own draw


def test_draw_does_not_depend_on_limit_or_order():
    task = get_task("toy-sentiment")
    few = {ex.id: ex.shots for ex in task.fewshot_examples("test", 5, k=2, seed=3)}
    many = {ex.id: ex.shots for ex in task.fewshot_examples("test", 40, k=2, seed=3)}
    assert all(many[i] == shots for i, shots in few.items())
    reordered = attach_shots(task, "test", list(reversed(task.examples("test", 5))), 2, 3)
    assert {ex.id: ex.shots for ex in reordered} == few


def test_choice_shots_answer_with_the_gold_choice():
    for ex in get_task("toy-sentiment").fewshot_examples("test", 5, k=3, seed=0):
        for shot in ex.shots:
            assert shot.target == shot.choices[shot.label]


def test_zero_shots_are_the_plain_examples_and_training_stays_zero_shot(leaky):
    assert leaky.fewshot_examples("test", 3, k=0, seed=5) == leaky.examples("test", 3)
    leaky.fewshot_examples("validation", None, k=2, seed=0)
    assert not any(ex.shots for ex in leaky.examples("train"))  # the split training reads


def test_no_split_to_draw_from_is_one_line(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", rows("test", 4))
    task = load_user_task(write_task(tmp_path, "test.jsonl"))
    with pytest.raises(UserError) as e:
        task.fewshot_examples("test", None, k=2, seed=0)
    assert "capitals" in str(e.value) and "train" in str(e.value) and "\n" not in str(e.value)


def test_too_few_solved_examples_is_one_line(tmp_path):
    write_jsonl(tmp_path / "d" / "test.jsonl", rows("test", 4))
    write_jsonl(tmp_path / "d" / "train.jsonl", rows("train", 2, start=50))
    task = load_user_task(write_task(tmp_path, "d"))
    with pytest.raises(UserError, match="only 2") as e:
        task.fewshot_examples("test", None, k=3, seed=0)
    assert "\n" not in str(e.value)


def test_user_yaml_fewshot(tmp_path):
    write_jsonl(tmp_path / "d" / "test.jsonl", rows("test", 4))
    write_jsonl(tmp_path / "d" / "train.jsonl", rows("train", 8, start=50))
    assert load_user_task(write_task(tmp_path, "d", "fewshot: 2\n")).fewshot == 2
    assert load_user_task(write_task(tmp_path, "d")).fewshot == 0
    with pytest.raises(UserError) as e:
        load_user_task(write_task(tmp_path, "d", "fewshot: -1\n"))
    assert "'fewshot'" in str(e.value) and "\n" not in str(e.value)
