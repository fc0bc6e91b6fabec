"""`toy-sentiment`: is a short generated review positive or negative?

Reviews of restaurants, products, films and hotels are built from polar clauses. A clause of polarity
p is `the plot was great` or `the plot was not bad` (negation flips the word's polarity: `good` only
ever appears negated, so it signals a negative review); mixed reviews contrast two clauses and the
deciding one comes after `but`, in the main clause after `although`, or in the reviewer's own opinion
after someone else's. A bag of words is therefore not quite enough. Classes are balanced.
"""

from __future__ import annotations

import random

from retain.tasks.base import Example, register_task, render
from retain.tasks.toy import vocab
from retain.tasks.toy.stream import example_id, split_records, toy_task

NAME = "toy-sentiment"
PROMPT = "Review: {text}\nIs this review positive or negative?"
CHOICES = ("negative", "positive")

# Subjects (what is reviewed) and aspects (parts of it) per domain; `{slot}`s come from vocab.WORDS.
DOMAINS = {
    "restaurant": (
        ("the {food}", "dinner at the new restaurant in {city}", "the cafe in {city}", "lunch at {first}'s bistro"),
        ("the food", "the service", "the staff", "the {food}", "the prices", "the dessert", "the wine"),
    ),
    "product": (
        ("this {object}", "the {object} from {company}", "my new {object}", "the {color} {object}"),
        ("the battery", "the price", "the delivery", "the design", "the {object}", "the instructions"),
    ),
    "film": (
        ("the film", "this movie", "the new film by {first} {surname}", "the documentary about {country}"),
        ("the plot", "the acting", "the ending", "the music", "the jokes", "the actors", "the dialogue"),
    ),
    "hotel": (
        ("the hotel in {city}", "our stay in {city}", "the trip to {country}", "the hostel near the {place}"),
        ("the room", "the breakfast", "the bed", "the view", "the location", "the pool", "the staff"),
    ),
}

# Polar words by polarity (0 negative, 1 positive); NEGATED[p] are words that mean p after "not".
ADJECTIVES = {
    0: ("terrible", "awful", "horrible", "dreadful", "poor", "disappointing", "bad", "mediocre", "bland"),
    1: ("great", "excellent", "wonderful", "lovely", "fantastic", "superb", "amazing", "brilliant", "perfect"),
}
NEGATED = {0: ("good", "great", "amazing", "impressive", "special"), 1: ("bad", "terrible", "awful", "horrible")}
INTENSIFIERS = ("really", "very", "truly", "quite")
OVERALL = {
    0: ("overall a waste of money", "overall I hated it", "so never again", "not recommended at all",
        "what a disappointment"),
    1: ("overall great", "overall I loved it", "so I will be back", "highly recommended", "worth every penny"),
}
STRUCTURES = ("plain", "plain-overall", "but", "but-overall", "although", "hearsay", "expectation", "agree")


def _is_plural(noun: str) -> bool:
    # The head noun follows the determiner: "the grapes", "the hotel in Athens", "dinner at ...".
    words = noun.split()
    head = words[1] if words[0] in ("the", "this", "my", "our") and len(words) > 1 else words[0]
    return head == "they" or head.endswith("s")


def _be(noun: str) -> str:
    return "were" if _is_plural(noun) else "was"


def _pronoun(noun: str) -> str:
    return "they" if _is_plural(noun) else "it"


def _clause(rng: random.Random, polarity: int, noun: str) -> str:
    """`noun was great`, `noun was really great` or `noun was not bad`, with the given polarity."""
    roll = rng.random()
    if roll < 0.3:
        return f"{noun} {_be(noun)} not {rng.choice(NEGATED[polarity])}"
    if roll < 0.5:
        return f"{noun} {_be(noun)} {rng.choice(INTENSIFIERS)} {rng.choice(ADJECTIVES[polarity])}"
    return f"{noun} {_be(noun)} {rng.choice(ADJECTIVES[polarity])}"


def _review(rng: random.Random, structure: str, polarity: int) -> str:
    subjects, aspects = DOMAINS[rng.choice(list(DOMAINS))]
    subject = vocab.fill(rng.choice(subjects), rng)
    first, second = (vocab.fill(a, rng) for a in rng.sample(aspects, 2))
    other = 1 - polarity
    if structure == "plain":
        return f"{_clause(rng, polarity, subject)}."
    if structure == "plain-overall":
        return f"{_clause(rng, polarity, subject)}, {rng.choice(OVERALL[polarity])}."
    if structure == "but":
        return f"{_clause(rng, other, first)} but {_clause(rng, polarity, second)}."
    if structure == "but-overall":
        return f"{_clause(rng, other, first)} but {_clause(rng, polarity, second)}, {rng.choice(OVERALL[polarity])}."
    if structure == "although":
        return f"although {_clause(rng, other, first)}, {_clause(rng, polarity, subject)}."
    if structure == "hearsay":
        said = f"{rng.choice(vocab.FIRST_NAMES)} said {subject} {_be(subject)} {rng.choice(ADJECTIVES[other])}"
        return f"{said}, but I thought {_clause(rng, polarity, _pronoun(subject))}."
    if structure == "expectation":
        expected = f"I expected {subject} to be {rng.choice(ADJECTIVES[other])}"
        return f"{expected}, but {_clause(rng, polarity, _pronoun(subject))}."
    if structure == "agree":
        return f"{_clause(rng, polarity, first)} and {_clause(rng, polarity, second)}."
    raise ValueError(f"unknown review structure {structure!r}")


def sample(rng: random.Random) -> dict:
    """Draw one review and its label.

    Args:
        rng: the task's seeded generator.

    Returns:
        `{"text": review, "label": "negative" | "positive", "template": structure name}`.
    """
    polarity = int(rng.random() < 0.5)
    structure = rng.choice(STRUCTURES)
    text = _review(rng, structure, polarity)
    text = vocab.fix_articles(text[0].upper() + text[1:])
    return {"text": text, "label": CHOICES[polarity], "template": structure}


def _load(split: str, limit: int | None) -> list[Example]:
    records = split_records(NAME, sample, "text", split, limit)
    return [
        Example(id=example_id(NAME, split, i), prompt=render(PROMPT, r), target=r["label"],
                choices=CHOICES, label=CHOICES.index(r["label"]), fields=r)
        for i, r in enumerate(records)
    ]


@register_task(NAME)
def toy_sentiment():
    """The `toy-sentiment` task."""
    return toy_task(NAME, _load, kind="choice", metric="accuracy", prompt_template=PROMPT, max_new_tokens=4,
                    description="toy sentiment: generated reviews with negation and contrast, positive/negative")
