"""NER as text generation: the canonical target format, BIO conversion and lenient parsing.

A model is trained to write `PER: Charlie; LOC: Paris` (`none` when a sentence has no entity).
"""

from __future__ import annotations

from typing import Sequence

NONE = "none"


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
