"""`toy-ner`: find the people, places and organisations in a short generated sentence.

Sentences come from templates with typed slots: `{PER}`, `{LOC}` and `{ORG}` become entities, the
other slots (`{animal}`, `{food}`, `{day}`, ...) become distractors: common nouns, and capitalised words
that are not entities (days, months, sentence starts). A sentence has 0-3 entities (about 12% none);
the target lists them in order of appearance in the canonical `TYPE: text; TYPE: text` format of
`retain.tasks.ner_format`, which the file-backed NER family shares.
"""

from __future__ import annotations

import random
import re

from retain.tasks.base import Example, register_task, render
from retain.tasks.ner_format import format_entities
from retain.tasks.toy import vocab
from retain.tasks.toy.stream import example_id, split_records, toy_task

NAME = "toy-ner"
PROMPT = "Find the named entities: {text}"

# Templates by number of entities; a sentence first draws its entity count, then a template.
TEMPLATES = {
    0: (
        "The {adj} {animal} ate the {food} on {day}.",
        "On {day} the {animal} slept under the {object}.",
        "Yesterday we bought a {color} {object} and some {food}.",
        "Nobody wanted the {food} at the {place}.",
        "My {animal} likes {food} more than {food}.",
        "Every {day} the {animal} waits by the {place}.",
        "The {color} {object} is on the table again.",
        "In {month} it rained every day at the {place}.",
        "Bring the {object} to the {place} before {day}.",
        "Somebody left a {adj} {object} near the {place}.",
    ),
    1: (
        "{PER} is the name of the {animal}.",
        "{PER} bought a {color} {object} on {day}.",
        "We met {PER} at the {place} in {month}.",
        "{LOC} is famous for its {food}.",
        "The {adj} {animal} was born in {LOC}.",
        "Last {day} it snowed in {LOC}.",
        "{ORG} announced a new {object} on {day}.",
        "She works for {ORG} now.",
        "The {adj} {animal} belongs to {PER}.",
        "{PER} cooked {food} for everyone.",
        "Yesterday {ORG} closed the {place}.",
        "The {object} was made in {LOC}.",
    ),
    2: (
        "{PER} lives in {LOC}.",
        "{PER} works at {ORG}.",
        "{ORG} opened an office in {LOC}.",
        "{PER} and {PER} ate {food} together.",
        "{PER} moved to {LOC} in {month}.",
        "On {day} {PER} visited {LOC} with the {animal}.",
        "The {animal} of {PER} was found in {LOC}.",
        "{PER} sold a {object} to {ORG}.",
        "In {month} {ORG} bought a {place} in {LOC}.",
        "The {color} {object} from {LOC} is a gift for {PER}.",
    ),
    3: (
        "{PER} flew from {LOC} to {LOC} last {day}.",
        "{PER} met {PER} in {LOC}.",
        "{ORG} hired {PER} to run its office in {LOC}.",
        "{PER} left {ORG} and joined {ORG}.",
        "After lunch {PER} drove {PER} to {LOC}.",
        "{PER} told {PER} about the {adj} {animal} from {LOC}.",
        "In {month} {ORG} and {ORG} signed a deal in {LOC}.",
        "{PER} sent {food} from {LOC} to {PER} on {day}.",
        "On {day} {PER} and the {animal} took a train from {LOC} to {LOC}.",
    ),
}
ENTITY_COUNT_WEIGHTS = {0: 0.12, 1: 0.30, 2: 0.30, 3: 0.28}
ENTITY_TYPES = ("PER", "LOC", "ORG")

_DRAW_ENTITY = {"PER": vocab.person, "LOC": vocab.location, "ORG": lambda rng: rng.choice(vocab.COMPANIES)}
_SLOT = re.compile(r"\{(\w+)\}")


def sample(rng: random.Random) -> dict:
    """Draw one sentence and its entities.

    Args:
        rng: the task's seeded generator.

    Returns:
        `{"text": sentence, "entities": [[TYPE, text], ...], "template": template index}`, entities in
        order of appearance.
    """
    count = rng.choices(list(ENTITY_COUNT_WEIGHTS), weights=list(ENTITY_COUNT_WEIGHTS.values()))[0]
    index = rng.randrange(len(TEMPLATES[count]))
    entities: list[list[str]] = []
    used: set[str] = set()  # no word twice in a sentence ("from Paris to Paris")

    def fill(match: re.Match) -> str:
        slot = match.group(1)
        draw = _DRAW_ENTITY.get(slot) or (lambda r: r.choice(vocab.WORDS[slot]))
        word = draw(rng)
        while _clashes(word, slot, used):
            word = draw(rng)
        used.add(word)
        if slot in ENTITY_TYPES:
            entities.append([slot, word])
        return word

    text = vocab.fix_articles(_SLOT.sub(fill, TEMPLATES[count][index]))
    return {"text": text, "entities": entities, "template": f"{count}.{index}"}


def _clashes(word: str, slot: str, used: set[str]) -> bool:
    # Entities must not overlap either ("Maria" next to "Maria Lopez" would make the target ambiguous).
    if slot in ENTITY_TYPES:
        return any(word in seen or seen in word for seen in used)
    return word in used


def _load(split: str, limit: int | None) -> list[Example]:
    records = split_records(NAME, sample, "text", split, limit)
    return [
        Example(id=example_id(NAME, split, i), prompt=render(PROMPT, r),
                target=format_entities([tuple(pair) for pair in r["entities"]]), fields=r)
        for i, r in enumerate(records)
    ]


@register_task(NAME)
def toy_ner():
    """The `toy-ner` task."""
    return toy_task(NAME, _load, kind="generate", metric="entity_f1", prompt_template=PROMPT,
                    max_new_tokens=32,
                    description="toy NER: PER / LOC / ORG in generated sentences, 'TYPE: text; ...'")
