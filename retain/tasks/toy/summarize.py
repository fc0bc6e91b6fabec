"""`toy-summarize`: summarise a short two-person dialogue in one sentence (DialogSum style).

Each scenario (shopping, meeting a friend, booking a table, a lost item, a job interview, a trip, pet
sitting) draws its slots (who, what, where, when), then one of several phrasings of a 3-6 turn
dialogue. The summary is a fixed sentence of the slots, the same whichever phrasing was drawn, so the
model must read the facts out of the dialogue rather than copy a turn. The dialogues also carry names
that are not in the summary, shared with the other toy tasks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from retain.tasks.base import Example, register_task, render
from retain.tasks.toy import vocab
from retain.tasks.toy.stream import example_id, split_records, toy_task

NAME = "toy-summarize"
PROMPT = "Summarize the dialogue:\n{dialogue}"

SHOPS = ("market", "supermarket", "bakery", "corner shop", "farm shop")
EVENING_TIMES = ("6 pm", "7 pm", "8 pm", "half past six", "half past seven")


@dataclass(frozen=True)
class Scenario:
    """One dialogue situation.

    Attributes:
        slots: slot name -> the words it is drawn from.
        dialogues: phrasings, each a tuple of turns alternating #Person1# / #Person2#, starting with
            #Person1#; `{slot}`s are filled from the drawn slots.
        summary: the one-sentence summary, a template of the same slots.
    """

    slots: dict
    dialogues: tuple[tuple[str, ...], ...]
    summary: str


SCENARIOS = {
    "shopping": Scenario(
        {"item": vocab.FOODS, "shop": SHOPS, "day": vocab.DAYS},
        (
            ("I need to buy some {item}.", "Where will you go?", "To the {shop}, I think.",
             "Let's go on {day} then."),
            ("Do you know where I can buy {item}?", "The {shop} has good {item}.", "Great, I will go there.",
             "Go on {day}, it is quieter then.", "Thanks, I will."),
            ("We have run out of {item}.", "Should we get some at the {shop}?", "Yes, is today good for you?",
             "No, I am busy. What about {day}?", "Fine, {day} it is."),
        ),
        "#Person1# wants to buy {item} at the {shop} and #Person2# suggests going on {day}.",
    ),
    "meeting": Scenario(
        {"friend": vocab.FIRST_NAMES, "place": vocab.PLACES, "day": vocab.DAYS, "time": vocab.TIMES},
        (
            ("Are you free on {day}?", "Yes, why?", "{friend} is in town and wants to see us.",
             "Great, where shall we meet?", "At the {place} at {time}."),
            ("{friend} wants to meet us at the {place}.", "When?", "On {day} at {time}.",
             "That works for me."),
            ("Shall we meet {friend} on {day}?", "Good idea. Where?", "The {place} is easy to find.",
             "And what time?", "Let's say {time}.", "Perfect, I will tell {friend}."),
        ),
        "#Person1# and #Person2# will meet {friend} at the {place} on {day} at {time}.",
    ),
    "booking": Scenario(
        {"size": vocab.NUMBERS, "day": vocab.DAYS, "time": EVENING_TIMES, "guest": vocab.SURNAMES},
        (
            ("I would like to book a table for {size}, please.", "For which day?", "{day} at {time}.",
             "And the name?", "{guest}.", "Done, see you on {day}."),
            ("Hello, do you have a table free on {day}?", "How many people?", "{size}, at {time} if possible.",
             "Yes, we do. Your name, please?", "It is {guest}."),
            ("Can I reserve a table for {time} on {day}?", "Of course. For how many?", "We are {size}.",
             "Under which name?", "{guest}, thank you."),
        ),
        "#Person1# books a table for {size} on {day} at {time} under the name {guest}.",
    ),
    "lost": Scenario(
        {"color": vocab.COLORS, "object": vocab.OBJECTS, "place": vocab.PLACES, "day": vocab.DAYS},
        (
            ("I think I lost my {object}.", "Oh no, what does it look like?", "It is {color}.",
             "Where did you last see it?", "At the {place} on {day}.", "I will help you look for it."),
            ("Have you seen a {color} {object}?", "No, did you lose it?",
             "Yes, I left it at the {place} on {day}.", "Let me help you find it."),
            ("My {color} {object} is gone.", "When did you last have it?", "On {day}, at the {place}.",
             "Come on, I will help you ask there."),
        ),
        "#Person1# lost a {color} {object} at the {place} on {day} and #Person2# offers to help.",
    ),
    "interview": Scenario(
        {"company": vocab.COMPANIES, "job": vocab.JOBS, "day": vocab.DAYS, "years": vocab.NUMBERS},
        (
            ("Welcome to {company}. So you want to be our new {job}?", "Yes, I have done this work for {years} years.",
             "When could you start?", "On {day}."),
            ("Thanks for coming in. You applied to be a {job} at {company}?", "Yes, I love this kind of work.",
             "Good. Can you start next {day}?", "Yes, {day} is fine."),
            ("Why do you want to work at {company}?", "I have been a {job} for {years} years and I like your team.",
             "We need a {job} soon. Is {day} too early?", "No, I can start on {day}."),
        ),
        "#Person1# interviews #Person2# for the {job} job at {company} and #Person2# can start on {day}.",
    ),
    "trip": Scenario(
        {"city": vocab.CITIES, "day": vocab.DAYS, "time": vocab.TIMES},
        (
            ("I am flying to {city} on {day}.", "How exciting! When is your flight?", "At {time}.",
             "I can drive you to the airport."),
            ("Could you help me on {day}?", "Sure, what do you need?",
             "A lift to the airport. My flight to {city} is at {time}.", "No problem, I will drive you."),
            ("My flight to {city} leaves at {time} on {day}.", "How will you get to the airport?",
             "I do not know yet.", "I will take you in my car."),
        ),
        "#Person1# is flying to {city} on {day} at {time} and #Person2# will drive #Person1# to the airport.",
    ),
    "pets": Scenario(
        {"pet": vocab.PET_NAMES, "animal": vocab.ANIMALS, "city": vocab.CITIES, "food": vocab.FOODS},
        (
            ("Could you look after {pet} while I am in {city}?", "Your {animal}? Of course.",
             "Thank you! {pet} eats {food} twice a day.", "No problem."),
            ("I am going to {city} next week.", "Who will look after your {animal}?",
             "I hoped you could take {pet}.", "Sure, I love {pet}."),
            ("Can {pet} stay with you while I visit {city}?", "Is {pet} the {animal} with the funny ears?",
             "Yes, and he only eats {food}.", "Then bring the {food} too."),
        ),
        "#Person1# asks #Person2# to look after {pet} the {animal} while #Person1# is in {city}.",
    ),
}


def _capitalise(turn: str) -> str:
    return turn[0].upper() + turn[1:]


def _greet(turn: str, name: str) -> str:
    first = turn.split()[0].strip("?.,!")
    proper = first == "I" or first in vocab.FIRST_NAMES or first in vocab.PET_NAMES
    return f"Hi {name}, {turn if proper else turn[0].lower() + turn[1:]}"


def sample(rng: random.Random) -> dict:
    """Draw one dialogue and its summary.

    Args:
        rng: the task's seeded generator.

    Returns:
        `{"dialogue": turns joined by newlines, "summary": one sentence, "template": "scenario.phrasing"}`.
    """
    kind = rng.choice(list(SCENARIOS))
    scenario = SCENARIOS[kind]
    slots = {name: rng.choice(words) for name, words in scenario.slots.items()}
    phrasing = rng.randrange(len(scenario.dialogues))
    turns = [_capitalise(turn.format(**slots)) for turn in scenario.dialogues[phrasing]]
    # Sometimes #Person1# greets #Person2# by a name, which the summary must leave out.
    if rng.random() < 0.4 and not turns[0].startswith("Hello"):
        name = rng.choice(vocab.FIRST_NAMES)
        while name in slots.values():
            name = rng.choice(vocab.FIRST_NAMES)
        turns[0] = _greet(turns[0], name)
    dialogue = "\n".join(f"#Person{i % 2 + 1}#: {turn}" for i, turn in enumerate(turns))
    summary = scenario.summary.format(**slots)
    return {"dialogue": vocab.fix_articles(dialogue), "summary": vocab.fix_articles(summary),
            "template": f"{kind}.{phrasing}"}


def _load(split: str, limit: int | None) -> list[Example]:
    records = split_records(NAME, sample, "dialogue", split, limit)
    return [
        Example(id=example_id(NAME, split, i), prompt=render(PROMPT, r), target=r["summary"], fields=r)
        for i, r in enumerate(records)
    ]


@register_task(NAME)
def toy_summarize():
    """The `toy-summarize` task."""
    return toy_task(NAME, _load, kind="generate", metric="rouge", prompt_template=PROMPT, max_new_tokens=48,
                    description="toy dialogue summarisation: DialogSum-style chats, one-sentence summary")
