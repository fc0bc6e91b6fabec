"""Seeded record streams cut into disjoint train / validation / test splits.

Every toy task is one seeded generator: `sample(rng)` draws a record (a dict) from templates and word
lists. The stream is cut into splits by a stable hash of each record's input text (about 80% train,
10% validation, 10% test), and repeated inputs are dropped, so the splits are disjoint by construction,
any split can be as large as asked, and the first N examples of a split do not depend on how many were
requested. Only `hashlib` and `random.Random` with fixed seeds are used, so nothing depends on
`PYTHONHASHSEED` or on the machine.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable

from retain.errors import UserError
from retain.tasks.base import SPLITS, Example, Task

DEFAULT_SIZES = {"train": 2000, "validation": 200, "test": 200}

# Hash buckets per split, out of 1000: [0, 100) test, [100, 200) validation, the rest train.
_BUCKETS = {"test": (0, 100), "validation": (100, 200), "train": (200, 1000)}

# A stream that draws this many records in a row without a new input has run out of variety.
_MAX_REPEATS = 20_000

Record = dict
Sampler = Callable[[random.Random], Record]


def split_of(key: str) -> str:
    """The split an input text belongs to, from a stable hash of the text.

    Args:
        key: the record's input text (the sentence, the dialogue, the QA context).

    Returns:
        `train`, `validation` or `test`.
    """
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 1000
    for split, (low, high) in _BUCKETS.items():
        if low <= bucket < high:
            return split
    raise AssertionError("unreachable: the buckets cover 0-999")


def seeded_rng(name: str) -> random.Random:
    """A generator seeded from the task name (the same stream on every machine and run)."""
    return random.Random(int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big"))


def split_records(name: str, sample: Sampler, key: str, split: str, limit: int | None) -> list[Record]:
    """The first `limit` distinct records of the task's stream that fall in `split`.

    Args:
        name: the task name; it seeds the stream.
        sample: draws one record from the generator it is given.
        key: the record field whose text decides the split and the de-duplication.
        split: `train`, `validation` or `test`.
        limit: how many records; `DEFAULT_SIZES[split]` when None.

    Returns:
        Records in stream order.

    Raises:
        UserError: the templates cannot make `limit` distinct records for this split.
    """
    if split not in _BUCKETS:
        raise UserError(f"toy task {name} has no {split!r} split (it has: {', '.join(SPLITS)})")
    wanted = DEFAULT_SIZES[split] if limit is None else limit
    rng = seeded_rng(name)
    seen: set[str] = set()
    records: list[Record] = []
    repeats = 0
    while len(records) < wanted:
        record = sample(rng)
        text = record[key]
        if text in seen:
            repeats += 1
            if repeats > _MAX_REPEATS:
                raise UserError(f"toy task {name} can make only {len(records)} distinct {split} examples, "
                                f"not {wanted}")
            continue
        repeats = 0
        seen.add(text)
        if split_of(text) == split:
            records.append(record)
    return records


def example_id(name: str, split: str, index: int) -> str:
    """The stable id of the `index`-th example of a split, e.g. `toy-ner-test-17`."""
    return f"{name}-{split}-{index}"


def toy_task(name: str, loader: Callable[[str, int | None], list[Example]], **settings) -> Task:
    """A toy `Task`: its family is its name, version "1", splits train / validation / test.

    Args:
        name: the registered task name, e.g. `toy-ner`.
        loader: `loader(split, limit)` generating the split's examples.
        **settings: the remaining `Task` fields (kind, metric, prompt_template, max_new_tokens,
            description).

    Returns:
        The task.
    """
    return Task(name=name, family=name, version="1", splits=SPLITS, loader=loader, **settings)
