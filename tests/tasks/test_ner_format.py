"""NER target formatting, BIO conversion and lenient parsing of model answers."""

import pytest

from retain.tasks.ner_format import bio_to_entities, format_entities, parse_entities


def test_format_entities():
    assert format_entities([]) == "none"
    assert format_entities([("PER", "Charlie"), ("LOC", "Paris")]) == "PER: Charlie; LOC: Paris"


@pytest.mark.parametrize("pairs", [
    [],
    [("PER", "Charlie")],
    [("PER", "Charlie Brown"), ("LOC", "Paris"), ("ORG", "Apple, Inc."), ("MISC", "U.S.")],
    [("LOC", "Jean-Luc"), ("LOC", "Jean-Luc")],
])
def test_round_trip(pairs):
    assert parse_entities(format_entities(pairs)) == pairs


@pytest.mark.parametrize("text, expected", [
    ("PER: Charlie; LOC: Paris", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("PER: Charlie\nLOC: Paris", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("PER: Charlie, LOC: Paris", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("ORG: Apple, Inc., LOC: Paris", [("ORG", "Apple, Inc."), ("LOC", "Paris")]),
    ("PER: Smith, John", [("PER", "Smith, John")]),
    ("person: Charlie; Location: Paris", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("ORGANISATION: UN; organization: EU; Miscellaneous: Euro", [("ORG", "UN"), ("ORG", "EU"), ("MISC", "Euro")]),
    ("PER - Jean-Luc Picard", [("PER", "Jean-Luc Picard")]),
    ("Charlie (PER); Paris (loc)", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("Charlie (PER), Paris (LOC)", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("[PER] Charlie; [LOC] Paris", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("- PER: Charlie\n- LOC: Paris", [("PER", "Charlie"), ("LOC", "Paris")]),
    ("  PER:   Charlie    Brown  ;", [("PER", "Charlie Brown")]),
    ("PER: charlie", [("PER", "charlie")]),
    ("DATE: Monday; PER: Charlie; Paris", [("PER", "Charlie")]),
    ("PERU: Lima", []),
    ("none", []),
    ("None.", []),
    ("No entities", []),
    ("", []),
    ("Coca-Cola", []),
])
def test_parse_lenient(text, expected):
    assert parse_entities(text) == expected


def test_parse_strict_rejects_untyped_items():
    assert parse_entities("none", strict=True) == []
    with pytest.raises(ValueError, match="Paris"):
        parse_entities("PER: Charlie; Paris", strict=True)


def test_bio_multi_token_and_adjacent_entities():
    tokens = "Charlie Brown met Lucy Van Pelt in New York".split()
    tags = ["B-PER", "I-PER", "O", "B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    assert bio_to_entities(tokens, tags) == [("PER", "Charlie Brown"), ("PER", "Lucy Van Pelt"), ("LOC", "New York")]
    # Two adjacent entities of the same type are split by B-; of different types by the type change.
    assert bio_to_entities(["Paris", "London"], ["B-LOC", "B-LOC"]) == [("LOC", "Paris"), ("LOC", "London")]
    assert bio_to_entities(["EU", "Brussels"], ["B-ORG", "I-LOC"]) == [("ORG", "EU"), ("LOC", "Brussels")]
    assert bio_to_entities(["a", "b"], ["O", "O"]) == []


def test_bio_tolerates_iob1():
    tokens = ["The", "European", "Union", "and", "Paris"]
    tags = ["O", "I-ORG", "I-ORG", "O", "I-LOC"]
    assert bio_to_entities(tokens, tags) == [("ORG", "European Union"), ("LOC", "Paris")]


def test_bio_errors():
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        bio_to_entities(["a", "b"], ["O"])
    with pytest.raises(ValueError, match="B-DATE"):
        bio_to_entities(["Monday"], ["B-DATE"])
    with pytest.raises(ValueError, match="X-PER"):
        bio_to_entities(["Bob"], ["X-PER"])


def test_bio_then_format_is_the_target():
    tokens = ["Charlie", "flew", "to", "Paris"]
    assert format_entities(bio_to_entities(tokens, ["B-PER", "O", "O", "B-LOC"])) == "PER: Charlie; LOC: Paris"
