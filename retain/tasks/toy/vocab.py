"""Word lists shared by every toy task.

The same names, cities and companies fill the NER sentences, the QA contexts, the dialogues and the
reviews, so fine-tuning on one toy task moves the model on words the others depend on: that overlap is
what makes forgetting visible. The entity lists (`FIRST_NAMES`, `SURNAMES`, `CITIES`, `COUNTRIES`,
`COMPANIES`) are pairwise disjoint and no entity is a common word, so every generated label is
unambiguous. The other lists are lower-case distractors, except `DAYS` and `MONTHS`, which are
capitalised words that are *not* entities.
"""

from __future__ import annotations

import random
import re

FIRST_NAMES = (
    "Anna", "Tom", "Maria", "Charlie", "Sofia", "Liam", "Emma", "Noah", "Olivia", "Lucas", "Mia", "Ethan",
    "Chloe", "Omar", "Priya", "Kenji", "Yuki", "Elena", "Pedro", "Fatima", "Hugo", "Ingrid", "Ravi", "Zoe",
    "Daniel", "Grace", "Samuel", "Leila", "Marco", "Nina", "Oscar", "Paula", "Felix", "Rosa", "Victor",
    "Hannah", "Ahmed", "Clara", "David", "Eva", "Jonas", "Lena", "Mateo", "Sara", "Tariq", "Ursula",
    "Wei", "Amara", "Bruno", "Carmen", "Diego", "Erik", "Greta", "Ivan", "Julia", "Kofi", "Laura", "Mohan",
    "Nora", "Pablo", "Rachel", "Simon", "Tessa", "Aiko", "Boris", "Celia", "Dmitri", "Esther", "Farid",
)

SURNAMES = (
    "Smith", "Lopez", "Tanaka", "Novak", "Okafor", "Rossi", "Schmidt", "Kowalski", "Haddad", "Nguyen",
    "Petrov", "Silva", "Jensen", "Murphy", "Sato", "Dubois", "Fischer", "Moreno", "Costa", "Larsen",
    "Mendes", "Kaur", "Weber", "Ortiz", "Lindgren", "Brown", "Patel", "Keller", "Romero", "Bianchi",
)

CITIES = (
    "Paris", "Tokyo", "Berlin", "Madrid", "Rome", "Lisbon", "Oslo", "Cairo", "Lagos", "Nairobi", "Lima",
    "Toronto", "Chicago", "Boston", "Seattle", "Sydney", "Dublin", "Vienna", "Prague", "Warsaw", "Athens",
    "Istanbul", "Mumbai", "Delhi", "Seoul", "Bangkok", "Hanoi", "Manila", "Santiago", "Bogota", "Havana",
    "Helsinki", "Stockholm", "Copenhagen", "Amsterdam", "Brussels", "Zurich", "Munich", "Milan", "Osaka",
)

COUNTRIES = (
    "France", "Japan", "Germany", "Spain", "Italy", "Portugal", "Norway", "Egypt", "Nigeria", "Kenya",
    "Peru", "Canada", "Australia", "Ireland", "Austria", "Poland", "Greece", "Brazil", "India", "Korea",
    "Thailand", "Vietnam", "Chile", "Colombia", "Cuba", "Finland", "Sweden", "Denmark", "Belgium", "Mexico",
)

COMPANIES = (
    "Acme Corp", "Globex", "Initech", "Hooli", "Umbrella Group", "Vandelay Industries", "Stark Labs",
    "Wonka Foods", "Cyberdyne", "Soylent Co", "Tyrell Systems", "Oceanic Air", "Pied Piper", "Massive Dynamic",
    "Blue Sun", "Nakatomi Trading", "Gringotts Bank", "Monarch Media", "Aperture Science", "Zenith Motors",
    "Northwind Traders", "Contoso", "Fabrikam", "Dunder Mifflin", "Sterling Cooper", "Bluth Company",
    "Krusty Burger", "Duff Brewing", "Oscorp", "Wayne Energy",
)

PET_NAMES = (
    "Rex", "Bella", "Whiskers", "Biscuit", "Pepper", "Luna", "Shadow", "Bubbles", "Ziggy", "Mochi",
    "Peanut", "Tiger", "Coco", "Buster", "Noodle", "Pixel", "Muffin", "Sparky", "Fudge", "Waffles",
)

ANIMALS = (
    "cat", "dog", "parrot", "rabbit", "horse", "goat", "hamster", "turtle", "duck", "pony", "fox", "owl",
    "donkey", "lizard", "goose", "sheep",
)

FOODS = (
    "apples", "bread", "rice", "soup", "pasta", "cheese", "noodles", "pancakes", "oranges", "tomatoes",
    "carrots", "cake", "cookies", "salad", "fish", "chicken", "potatoes", "grapes", "yogurt", "pizza",
    "dumplings", "curry", "bananas", "eggs", "mushrooms", "olives", "honey", "pears", "beans", "tea",
)

OBJECTS = (
    "umbrella", "wallet", "phone", "laptop", "backpack", "watch", "bicycle", "camera", "guitar", "lamp",
    "kettle", "scarf", "jacket", "notebook", "suitcase", "chair", "clock", "radio", "helmet", "mirror",
    "blanket", "toaster", "printer", "keyboard", "vase",
)

COLORS = ("red", "blue", "green", "black", "white", "yellow", "grey", "brown", "purple", "orange", "pink")

ADJECTIVES = (
    "old", "new", "small", "large", "quiet", "noisy", "happy", "sleepy", "tiny", "heavy", "shiny", "lazy",
    "clever", "friendly", "strange", "lucky", "cheap", "broken",
)

PLACES = (
    "market", "station", "library", "park", "cafe", "museum", "bakery", "harbour", "gym", "cinema",
    "bookshop", "pharmacy", "post office", "supermarket", "bus stop", "hotel lobby",
)

ROOMS = ("kitchen", "garage", "attic", "cellar", "hallway", "bedroom", "office", "garden", "basement")

JOBS = (
    "engineer", "designer", "cook", "driver", "teacher", "nurse", "cashier", "accountant", "gardener",
    "pilot", "librarian", "plumber",
)

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)

TIMES = (
    "9 am", "10 am", "11 am", "noon", "1 pm", "2 pm", "3 pm", "4 pm", "5 pm", "6 pm", "7 pm", "8 pm",
    "half past six", "a quarter to five",
)

NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight")


def person(rng: random.Random, full_name_share: float = 0.3) -> str:
    """A person's name: a first name, or (with probability `full_name_share`) first name and surname.

    Args:
        rng: the task's seeded generator.
        full_name_share: probability of adding a surname.

    Returns:
        e.g. `Maria` or `Maria Lopez`.
    """
    first = rng.choice(FIRST_NAMES)
    return f"{first} {rng.choice(SURNAMES)}" if rng.random() < full_name_share else first


def location(rng: random.Random) -> str:
    """A city (two times in three) or a country."""
    return rng.choice(CITIES) if rng.random() < 2 / 3 else rng.choice(COUNTRIES)


# Slot names usable in `{slot}` templates, for `fill`.
WORDS = {
    "first": FIRST_NAMES, "surname": SURNAMES, "city": CITIES, "country": COUNTRIES, "company": COMPANIES,
    "pet": PET_NAMES, "animal": ANIMALS, "food": FOODS, "object": OBJECTS, "color": COLORS,
    "adj": ADJECTIVES, "place": PLACES, "room": ROOMS, "job": JOBS, "day": DAYS, "month": MONTHS,
    "time": TIMES, "number": NUMBERS,
}
_SLOT = re.compile(r"\{(\w+)\}")
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def fill(template: str, rng: random.Random) -> str:
    """Fill every `{slot}` of a template with a word from `WORDS[slot]`.

    Repeated slots get different words (`{food} or {food}` never reads `rice or rice`).

    Args:
        template: text with `{slot}` names from `WORDS`.
        rng: the task's seeded generator.

    Returns:
        The filled text.
    """
    used: dict[str, set[str]] = {}

    def word(match: re.Match) -> str:
        slot = match.group(1)
        taken = used.setdefault(slot, set())
        choice = rng.choice(WORDS[slot])
        while choice in taken:
            choice = rng.choice(WORDS[slot])
        taken.add(choice)
        return choice

    return _SLOT.sub(word, template)


def fix_articles(text: str) -> str:
    """Turn `a` into `an` before a vowel (`a orange umbrella` -> `an orange umbrella`).

    Templates write `a {slot}`; no word in these lists starts with a vowel that sounds like a consonant.
    """
    return _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + "n ", text)
