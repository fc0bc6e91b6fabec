"""The built-in toy tasks: deterministic, disjoint splits of any size, well-formed targets, varied."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from retain.errors import UserError
from retain.tasks import get_task, render
from retain.tasks.ner_format import parse_entities
from retain.tasks.toy import ner, qa, sentiment, summarize, vocab
from retain.tasks.toy.stream import DEFAULT_SIZES, split_of, split_records

TOY_TASKS = ("toy-ner", "toy-sentiment", "toy-summarize", "toy-qa")
SETTINGS = {  # name: (kind, metric, the record field holding the input text)
    "toy-ner": ("generate", "entity_f1", "text"),
    "toy-sentiment": ("choice", "accuracy", "text"),
    "toy-summarize": ("generate", "rouge", "dialogue"),
    "toy-qa": ("generate", "squad", "context"),
}


@pytest.mark.parametrize("name", TOY_TASKS)
def test_registered_with_its_settings(name):
    task = get_task(name)
    kind, metric, _ = SETTINGS[name]
    assert (task.name, task.family, task.version) == (name, name, "1")
    assert (task.kind, task.metric) == (kind, metric)
    assert task.splits == ("train", "validation", "test")


@pytest.mark.parametrize("name", TOY_TASKS)
def test_fresh_task_objects_give_identical_examples(name):
    first, second = get_task(name).examples("test", 300), get_task(name).examples("test", 300)
    assert first == second
    assert [dict(e.fields) for e in first] == [dict(e.fields) for e in second]


def test_data_does_not_depend_on_the_hash_seed():
    code = ("import json; from retain.tasks import get_task; "
            f"print(json.dumps([get_task(n).data_hash('validation', 100) for n in {TOY_TASKS!r}]))")
    hashes = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        hashes.append(json.loads(out.stdout))
    assert hashes[0] == hashes[1]
    assert hashes[0] == [get_task(n).data_hash("validation", 100) for n in TOY_TASKS]


@pytest.mark.parametrize("name", TOY_TASKS)
def test_default_splits_are_pairwise_disjoint(name):
    task = get_task(name)
    field = SETTINGS[name][2]
    prompts, inputs = {}, {}
    for split in task.splits:
        examples = task.examples(split)
        assert len(examples) == DEFAULT_SIZES[split]
        prompts[split] = {e.prompt for e in examples}
        inputs[split] = {e.fields[field] for e in examples}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not prompts[a] & prompts[b], (a, b)
        assert not inputs[a] & inputs[b], (a, b)  # not even the same sentence / dialogue / context


@pytest.mark.parametrize("name", TOY_TASKS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_any_size_and_a_prefix_of_larger_requests(name, split):
    task = get_task(name)
    small, large = task.examples(split, 50), task.examples(split, 3000)
    assert (len(small), len(large)) == (50, 3000)
    assert small == large[:50]
    assert [e.id for e in large] == [f"{name}-{split}-{i}" for i in range(3000)]
    assert len({e.prompt for e in large}) == 3000


@pytest.mark.parametrize("name", TOY_TASKS)
def test_prompts_render_the_template_from_the_fields(name):
    task = get_task(name)
    for e in task.examples("validation", 100):
        assert e.prompt == render(task.prompt_template, e.fields)
        assert e.references[0] == e.target and e.target.strip()


@pytest.mark.parametrize("name", TOY_TASKS)
def test_varied_prompts_and_templates(name):
    examples = get_task(name).examples("train", 1000)
    assert len({e.prompt for e in examples}) >= 950
    used = Counter(e.fields["template"] for e in examples)
    assert len(used) >= 8
    assert max(used.values()) < 0.3 * len(examples)  # no template dominates


def test_ner_targets_parse_back_to_the_entities_in_order():
    exact = re.compile(r"none|(PER|LOC|ORG): [^;]+(; (PER|LOC|ORG): [^;]+)*")
    counts = Counter()
    for e in get_task("toy-ner").examples("train", 1000):
        text, entities = e.fields["text"], [tuple(p) for p in e.fields["entities"]]
        assert exact.fullmatch(e.target), e.target
        assert parse_entities(e.target, strict=True) == entities
        position = 0
        for _, span in entities:  # every entity is in the sentence, in order of appearance
            position = text.index(span, position) + len(span)
        counts[len(entities)] += 1
    assert set(counts) == {0, 1, 2, 3}
    assert 0.05 <= counts[0] / 1000 <= 0.2


def test_ner_templates_have_the_entity_count_they_are_filed_under():
    for count, templates in ner.TEMPLATES.items():
        for template in templates:
            slots = re.findall(r"\{(\w+)\}", template)
            assert sum(slot in ner.ENTITY_TYPES for slot in slots) == count, template


def test_ner_labels_every_capitalised_name():
    # Capitalised words that are no entity may only be the first word, a day or a month: the
    # distractors are there, and no entity is left out of the target.
    allowed = set(vocab.DAYS) | set(vocab.MONTHS)
    types = {**dict.fromkeys(vocab.FIRST_NAMES + vocab.SURNAMES, "PER"),
             **dict.fromkeys(vocab.CITIES + vocab.COUNTRIES, "LOC")}
    distractors = 0
    for e in get_task("toy-ner").examples("train", 500):
        words = re.findall(r"[A-Za-z]+", e.fields["text"])
        in_entities = {w for _, span in e.fields["entities"] for w in span.split()}
        for word in words[1:]:
            if word[0].isupper() and word not in in_entities:
                assert word in allowed, (word, e.fields["text"])
                distractors += 1
        for etype, span in e.fields["entities"]:
            expected = "ORG" if span in vocab.COMPANIES else types[span.split()[0]]
            assert etype == expected, (etype, span)
    assert distractors > 50


def test_sentiment_labels_are_balanced_and_consistent():
    examples = get_task("toy-sentiment").examples("train", 1000)
    positive = sum(e.label == 1 for e in examples) / len(examples)
    assert 0.4 <= positive <= 0.6
    for e in examples:
        assert e.choices == ("negative", "positive")
        assert e.target == e.choices[e.label] == e.fields["label"]
    texts = " ".join(e.fields["text"] for e in examples)
    assert " not " in texts and " but " in texts
    # In one-opinion reviews "not good" is negative and "not bad" positive.
    plain = [e for e in examples if e.fields["template"] in ("plain", "agree")]
    not_bad = [e.target for e in plain if " not bad" in e.fields["text"]]
    not_good = [e.target for e in plain if " not good" in e.fields["text"]]
    assert not_bad and set(not_bad) == {"positive"}
    assert not_good and set(not_good) == {"negative"}


def test_summaries_are_one_sentence_about_the_dialogue():
    for e in get_task("toy-summarize").examples("train", 500):
        dialogue, summary = e.fields["dialogue"], e.fields["summary"]
        turns = dialogue.split("\n")
        assert 3 <= len(turns) <= 6
        assert [t.split(":")[0] for t in turns] == ["#Person1#", "#Person2#"] * (len(turns) // 2) + \
            ["#Person1#"] * (len(turns) % 2)
        assert len(dialogue.split()) < 60
        assert summary.startswith("#Person1# ") and summary.endswith(".") and summary.count(".") == 1
        for word in re.findall(r"\b[A-Z][a-z]+\b", summary):  # names, places, days come from the dialogue
            assert word in dialogue, (word, summary, dialogue)


def test_qa_answers_are_spans_of_the_context():
    answers = Counter()
    for e in get_task("toy-qa").examples("train", 1000):
        context, question, answer = e.fields["context"], e.fields["question"], e.fields["answer"]
        assert e.references == (answer,) and e.target == answer
        assert re.search(rf"\b{re.escape(answer)}\b", context), (answer, context)
        assert question.endswith("?") and 2 <= context.count(".") <= 4
        assert len(e.prompt.split()) < 45
        answers[answer] += 1
    assert len(answers) > 100


def test_names_are_shared_across_tasks():
    names = set(vocab.FIRST_NAMES)
    seen = {}
    for name in ("toy-ner", "toy-summarize", "toy-qa"):
        words = {w for e in get_task(name).examples("train", 500) for w in re.findall(r"[A-Z][a-z]+", e.prompt)}
        seen[name] = words & names
    assert len(seen["toy-ner"] & seen["toy-summarize"] & seen["toy-qa"]) > 30


def test_entity_word_lists_are_unambiguous():
    lists = [vocab.FIRST_NAMES, vocab.SURNAMES, vocab.CITIES, vocab.COUNTRIES, vocab.COMPANIES, vocab.PET_NAMES,
             vocab.DAYS, vocab.MONTHS]
    everything = [word for words in lists for word in words]
    assert len(everything) == len(set(everything))


def test_fix_articles():
    assert vocab.fix_articles("a orange umbrella and a red owl") == "an orange umbrella and a red owl"
    assert vocab.fix_articles("Maria ate a apple") == "Maria ate an apple"


def test_split_of_is_stable_and_roughly_80_10_10():
    assert split_of("Anna lives in Paris.") == split_of("Anna lives in Paris.")
    shares = Counter(split_of(f"sentence {i}") for i in range(20_000))
    assert abs(shares["test"] / 20_000 - 0.1) < 0.01
    assert abs(shares["validation"] / 20_000 - 0.1) < 0.01


def test_an_exhausted_stream_says_how_many_it_can_make():
    with pytest.raises(UserError, match="can make only"):
        split_records("tiny", lambda rng: {"text": str(rng.randrange(30))}, "text", "test", 100)


def test_unknown_split_is_refused():
    with pytest.raises(UserError):
        split_records("toy-ner", ner.sample, "text", "dev", 10)


@pytest.mark.parametrize("module", [ner, sentiment, summarize, qa])
def test_sample_returns_the_record_fields(module):
    import random

    record = module.sample(random.Random(0))
    assert set(record) >= set(re.findall(r"\{(\w+)\}", module.PROMPT)) | {"template"}
