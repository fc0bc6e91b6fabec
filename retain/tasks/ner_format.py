"""NER as text generation: the canonical target format, BIO conversion and lenient parsing.

A model is trained to write the entities of a sentence as `PER: Charlie; LOC: Paris` (`none` when
there is none). Targets are built from BIO tags with `bio_to_entities` + `format_entities`; model
predictions are read back with `parse_entities`, which is deliberately lenient (other separators, long
type names, `text (TYPE)`...) so that a model is scored on the entities it found, not on punctuation.
The entity-F1 metric compares the parsed (type, text) pairs, texts case-insensitively.
"""

from __future__ import annotations

import re
from typing import Sequence

NONE = "none"
ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")

# Every spelling of a type a model may write (upper-cased), mapped to the canonical type.
_TYPE_NAMES = {
    "PER": "PER", "PERS": "PER", "PERSON": "PER", "PERSONS": "PER", "PEOPLE": "PER",
    "LOC": "LOC", "LOCATION": "LOC", "LOCATIONS": "LOC",
    "ORG": "ORG", "ORGS": "ORG", "ORGANIZATION": "ORG", "ORGANIZATIONS": "ORG",
    "ORGANISATION": "ORG", "ORGANISATIONS": "ORG",
    "MISC": "MISC", "MISCELLANEOUS": "MISC",
}
# Longest names first so that `PERSON` is not read as `PER` + "SON".
_TYPE_RE = "|".join(sorted(_TYPE_NAMES, key=len, reverse=True))
_ITEM_PATTERNS = (
    # TYPE: text / TYPE - text / [TYPE]: text
    re.compile(rf"^\[?(?P<type>{_TYPE_RE})\]?(?:\s*:|\s*[-–—]\s)\s*(?P<text>.+)$", re.IGNORECASE),
    # [TYPE] text / (TYPE) text
    re.compile(rf"^[\[(](?P<type>{_TYPE_RE})[\])]\s*(?P<text>.+)$", re.IGNORECASE),
    # text (TYPE) / text [TYPE]
    re.compile(rf"^(?P<text>.+?)\s*[\[(](?P<type>{_TYPE_RE})[\])]$", re.IGNORECASE),
)
# A comma separates items only where the next item starts with a type prefix (`ORG: Apple, Inc.` stays whole).
_COMMA_SPLIT = re.compile(rf",\s*(?=\[?(?:{_TYPE_RE})\]?\s*(?::|[-–—]\s)|\[(?:{_TYPE_RE})\])", re.IGNORECASE)
# ... and after an item that ends with a bracketed type (`Charlie (PER), Paris (LOC)`).
_COMMA_AFTER_TYPE = re.compile(rf"([\[(](?:{_TYPE_RE})[\])])\s*,", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*•]\s+|\d+[.)]\s+)")
_NONE_TEXT = re.compile(r"^(?:none|no(?: named)? entit(?:y|ies)(?: found)?|n/?a|nothing)\W*$", re.IGNORECASE)
_QUOTES = ('"', "'", "`", "“", "”")


def format_entities(pairs: Sequence[tuple[str, str]]) -> str:
    """Render (type, text) pairs as the canonical target, e.g. `PER: Charlie; LOC: Paris`.

    Args:
        pairs: entities in sentence order as (TYPE, text).

    Returns:
        `TYPE: text; TYPE: text`, or `none` when `pairs` is empty.
    """
    if not pairs:
        return NONE
    return "; ".join(f"{etype}: {text}" for etype, text in pairs)


def canonical_type(name: str) -> str | None:
    """The canonical type (`PER`, `LOC`, `ORG`, `MISC`) for a spelling of it, or None if unknown."""
    return _TYPE_NAMES.get(name.strip().upper())


def bio_to_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """Collect the entities of a BIO-tagged sentence.

    IOB2 is expected; IOB1 is tolerated (an `I-` tag that does not continue an entity of the same type
    starts a new one). Entity text is the entity's tokens joined by single spaces.

    Args:
        tokens: the sentence's tokens.
        tags: one tag per token: `O`, `B-TYPE` or `I-TYPE` with TYPE one of PER LOC ORG MISC.

    Returns:
        (TYPE, text) pairs in sentence order.

    Raises:
        ValueError: the lengths differ, or a tag is malformed or has an unknown type.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    entities: list[tuple[str, str]] = []
    current_type: str | None = None
    current: list[str] = []

    def flush():
        if current_type is not None and current:
            entities.append((current_type, " ".join(current)))

    for token, tag in zip(tokens, tags):
        tag = str(tag).strip()
        if tag.upper() == "O":
            flush()
            current_type, current = None, []
            continue
        prefix, _, name = tag.partition("-")
        etype = canonical_type(name) if name else None
        if prefix.upper() not in ("B", "I") or etype is None:
            raise ValueError(f"bad tag {tag!r} (expected O, B-TYPE or I-TYPE with TYPE in {', '.join(ENTITY_TYPES)})")
        if prefix.upper() == "B" or etype != current_type:
            flush()
            current_type, current = etype, []
        current.append(str(token).strip())
    flush()
    return entities


def parse_entities(text: str, strict: bool = False) -> list[tuple[str, str]]:
    """Read (type, text) pairs from a model's answer, leniently.

    Items are separated by `;` or newlines (or by `,` before an item that starts with a type prefix).
    An item may be written `TYPE: text`, `TYPE - text`, `text (TYPE)` or `[TYPE] text`; types are
    case-insensitive and may be spelled out (`Person`, `location`, `Organisation`, ...). Items with no
    or an unknown type are dropped; `none`, `no entities` and empty text give no entities.

    Args:
        text: the model's answer (or a target string).
        strict: raise instead of dropping an item that cannot be read (for reading data files).

    Returns:
        (TYPE, text) pairs with canonical upper-case types and whitespace-normalised texts (case kept).

    Raises:
        ValueError: only with `strict`, for an item that cannot be read.
    """
    text = (text or "").strip()
    if not text or _NONE_TEXT.match(text):
        return []
    pairs: list[tuple[str, str]] = []
    for chunk in re.split(r"[;\n]", _COMMA_AFTER_TYPE.sub(r"\1;", text)):
        for item in _COMMA_SPLIT.split(chunk):
            pair = _parse_item(item)
            if pair is not None:
                pairs.append(pair)
            elif strict and item.strip() and not _NONE_TEXT.match(item.strip()):
                raise ValueError(f"cannot read entity {item.strip()!r} (write TYPE: text)")
    return pairs


def _parse_item(item: str) -> tuple[str, str] | None:
    item = _BULLET.sub("", " ".join(item.split()))
    for pattern in _ITEM_PATTERNS:
        m = pattern.match(item)
        if m:
            etype = canonical_type(m.group("type"))
            value = _strip_quotes(m.group("text").strip())
            if etype is None or not value or value.lower() == NONE:
                return None
            return etype, value
    return None


def _strip_quotes(value: str) -> str:
    while len(value) >= 2 and value[0] in _QUOTES and value[-1] in _QUOTES:
        value = value[1:-1].strip()
    return value
