"""`toy-qa`: answer a question with a span of a short generated context (SQuAD style).

A context is 2-4 facts about two or three people, an object or a company ("Anna lives in Paris. Tom
works at Globex. Anna's dog is called Rex."). The same person usually has several facts and several
people share a relation, so finding the name is not enough: the model must match the relation too
("Where does Anna live?" versus "Where was Anna born?"). The answer is always a span of the context.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from retain.tasks.base import Example, register_task, render
from retain.tasks.toy import vocab
from retain.tasks.toy.stream import example_id, split_records, toy_task

NAME = "toy-qa"
PROMPT = "Context: {context}\nQuestion: {question}\nAnswer:"

AGES = tuple(str(n) for n in range(18, 80))
YEARS = tuple(str(n) for n in range(1950, 2021))


@dataclass(frozen=True)
class Relation:
    """One kind of fact.

    Attributes:
        subjects: `person`, `object` or `company`: what the fact is about.
        answers: the words the answer is drawn from.
        facts: phrasings of the fact; `{s}` is the subject, `{a}` the answer, `{animal}` an extra slot.
        questions: phrasings of the question, with the same slots.
    """

    subjects: str
    answers: tuple[str, ...]
    facts: tuple[str, ...]
    questions: tuple[str, ...]


RELATIONS = {
    "lives": Relation(
        "person", vocab.CITIES,
        facts=("{s} lives in {a}.", "{s} has a flat in {a}.", "{s}'s home is in {a}."),
        questions=("Where does {s} live?", "In which city does {s} live?"),
    ),
    "works": Relation(
        "person", vocab.COMPANIES,
        facts=("{s} works at {a}.", "{s} has a job at {a}.", "{s} is employed by {a}."),
        questions=("Where does {s} work?", "Which company does {s} work for?"),
    ),
    "born": Relation(
        "person", vocab.COUNTRIES,
        facts=("{s} was born in {a}.", "{s} comes from {a}."),
        questions=("Where was {s} born?", "Which country does {s} come from?"),
    ),
    "pet": Relation(
        "person", vocab.PET_NAMES,
        facts=("{s}'s {animal} is called {a}.", "{s} has a {animal} named {a}."),
        questions=("What is the name of {s}'s {animal}?", "What is {s}'s {animal} called?"),
    ),
    "food": Relation(
        "person", vocab.FOODS,
        facts=("{s}'s favourite food is {a}.", "{s} loves eating {a}."),
        questions=("What is {s}'s favourite food?", "What does {s} love to eat?"),
    ),
    "age": Relation(
        "person", AGES,
        facts=("{s} is {a} years old.", "{s} turned {a} this year."),
        questions=("How old is {s}?",),
    ),
    "car": Relation(
        "person", vocab.COLORS,
        facts=("{s} drives a {a} car.", "{s}'s car is {a}."),
        questions=("What colour is {s}'s car?",),
    ),
    "job": Relation(
        "person", vocab.JOBS,
        facts=("{s} is a trained {a}.", "{s} earns a living as a {a}."),
        questions=("What is {s}'s job?", "What does {s} do for a living?"),
    ),
    "room": Relation(
        "object", vocab.ROOMS,
        facts=("The {s} is in the {a}.", "Someone left the {s} in the {a}."),
        questions=("Where is the {s}?", "In which room is the {s}?"),
    ),
    "founded": Relation(
        "company", YEARS,
        facts=("{s} was founded in {a}.", "{s} opened its doors in {a}."),
        questions=("When was {s} founded?", "In which year was {s} founded?"),
    ),
}
_PERSON_RELATIONS = [name for name, rel in RELATIONS.items() if rel.subjects == "person"]
_OTHER_SUBJECTS = {"object": vocab.OBJECTS, "company": vocab.COMPANIES}


def _facts(rng: random.Random, count: int) -> list[tuple[str, str, dict]]:
    """`count` distinct (relation, subject, slots) facts, mostly about two or three people."""
    people = rng.sample(vocab.FIRST_NAMES, rng.choice((2, 3)))
    facts: list[tuple[str, str, dict]] = []
    taken: set[tuple[str, str]] = set()
    while len(facts) < count:
        if rng.random() < 0.85:
            relation, subject = rng.choice(_PERSON_RELATIONS), rng.choice(people)
        else:
            relation = rng.choice(("room", "founded"))
            subject = rng.choice(_OTHER_SUBJECTS[RELATIONS[relation].subjects])
        if (relation, subject) in taken:
            continue  # each question has exactly one answer in the context
        taken.add((relation, subject))
        slots = {"s": subject, "a": rng.choice(RELATIONS[relation].answers), "animal": rng.choice(vocab.ANIMALS)}
        facts.append((relation, subject, slots))
    return facts


def sample(rng: random.Random) -> dict:
    """Draw one context, a question about one of its facts, and the answer.

    Args:
        rng: the task's seeded generator.

    Returns:
        `{"context": facts, "question": question, "answer": span of the context, "template": relation}`.
    """
    facts = _facts(rng, rng.randint(2, 4))
    context = vocab.fix_articles(
        " ".join(rng.choice(RELATIONS[relation].facts).format(**slots) for relation, _, slots in facts))
    relation, _, slots = rng.choice(facts)
    question = vocab.fix_articles(rng.choice(RELATIONS[relation].questions).format(**slots))
    return {"context": context, "question": question, "answer": slots["a"], "template": relation}


def _load(split: str, limit: int | None) -> list[Example]:
    records = split_records(NAME, sample, "context", split, limit)
    return [
        Example(id=example_id(NAME, split, i), prompt=render(PROMPT, r), target=r["answer"],
                references=(r["answer"],), fields=r)
        for i, r in enumerate(records)
    ]


@register_task(NAME)
def toy_qa():
    """The `toy-qa` task."""
    return toy_task(NAME, _load, kind="generate", metric="squad", prompt_template=PROMPT, max_new_tokens=10,
                    description="toy extractive QA: facts about people, places and things, answer is a span")
