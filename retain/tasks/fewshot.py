"""Few-shot prompts: which solved examples go before each evaluated prompt.

Shots come from the task's `train` split, else its `validation` split, never from the split being
evaluated: evaluating `train` draws from `validation`, evaluating `validation` draws from `train`.
Pool records that share an id or a prompt with any example of the evaluated split are left out too, so
a record duplicated across split files cannot leak its answer.

Each evaluated example gets its own draw (as in lm-evaluation-harness, many shot sets average out the
luck of one set), seeded by `(seed, example id)` alone: an example's shots do not depend on the
limit, on the order of examples or on which model is evaluated, so the base and every run see the same
prompts and paired comparisons stay paired. The shots of one example are `k` distinct pool records,
in the order drawn. Few-shot is an evaluation setting only: training data stays zero-shot.
"""

from __future__ import annotations

import random
from dataclasses import replace

from retain.errors import UserError
from retain.io import sha256_json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: base.Task calls attach_shots, so this module never imports base
    from retain.tasks.base import Example, Task

POOL_SPLITS = ("train", "validation")


def pool_split(task: Task, split: str) -> str:
    """The split shots are drawn from when `split` is evaluated.

    Raises:
        UserError: the task has neither a train nor a validation split besides `split`.
    """
    for candidate in POOL_SPLITS:
        if candidate != split and task.has_split(candidate):
            return candidate
    raise UserError(f"task {task.name}: few-shot prompts need solved examples from a train or validation split "
                    f"other than the evaluated {split!r} split, and it has only: {', '.join(task.splits)}")


def shot_pool(task: Task, split: str, evaluated: list[Example]) -> list[Example]:
    """The examples shots may be drawn from for `split` (see the module docstring)."""
    source = task.examples(pool_split(task, split))
    # The whole evaluated split (not only the first `limit`) is excluded, so the pool, and with it every
    # example's draw, does not depend on the limit.
    excluded = list(task.examples(split)) + list(evaluated)
    ids = {ex.id for ex in excluded}
    prompts = {ex.prompt for ex in excluded}
    return [ex for ex in source if ex.id not in ids and ex.prompt not in prompts]


def draw(example_id: str, pool_size: int, k: int, seed: int) -> list[int]:
    """Indices of `k` distinct pool examples for one evaluated example (deterministic on every machine)."""
    # A string seed is hashed with SHA-512 by `random.Random`: independent of PYTHONHASHSEED.
    return random.Random(f"retain-fewshot\0{seed}\0{example_id}").sample(range(pool_size), k)


def attach_shots(task: Task, split: str, examples: list[Example], k: int, seed: int) -> list[Example]:
    """`examples` (of `split`) with `k` shots each.

    Raises:
        UserError: no split to draw from, or fewer than `k` examples in it.
    """
    if k <= 0:
        return list(examples)
    pool = shot_pool(task, split, examples)
    if len(pool) < k:
        raise UserError(f"task {task.name}: {k} shots per prompt need {k} solved examples, but its "
                        f"{pool_split(task, split)!r} split has only {len(pool)} outside the {split!r} split")
    return [replace(ex, shots=tuple(pool[i] for i in draw(ex.id, len(pool), k, seed))) for ex in examples]


def shots_hash(examples: list[Example]) -> str:
    """Hash of every example's shots (ids, prompts and answers), for cache keys."""
    return sha256_json([[[s.id, s.prompt, s.target] for s in ex.shots] for ex in examples])
