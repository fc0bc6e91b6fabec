"""Evaluation shared by the processes of one launch (`torchrun` / `accelerate launch -m retain eval`),
with results identical to those of one process.

The engine cuts its requests into the batches one process would run (sorted by length, the same rows
and padding); with N processes, process r runs batches r, r+N, r+2N, ... and every process then
receives all outputs. Each batch is computed exactly as a single process computes it, so predictions,
log-likelihoods, metrics and cache entries equal those of one process bit for bit, on the same
hardware and kernels (a batch's numbers depend on its rows, not on which process ran it).

Sharding the examples instead would be simpler but not identical: other batch neighbours give other
padding and float rounding, and greedy answers can flip where two tokens nearly tie.

Only the main process reads and writes the evaluation cache (`cached`, and `EvalCache.put`): every
process takes the same path (computing or reusing a task) even when the others cannot see the cache
folder. Perplexity tasks share their windows the same way (`retain.evaluation.rolling`); lm-eval
tasks are not sharded: every process runs lm-eval whole (the same numbers, no speed-up).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence, TypeVar

from retain.distributed import from_main, gather, launched, rank, world_size
from retain.models.memory import memory_safe

B = TypeVar("B")


def run_batches(batches: Sequence[B], run: Callable[[B], None], what: str, out: list,
                filled: Callable[[B], Iterable[int]], progress: Callable[[int], None] | None = None) -> None:
    """Run `run` on each batch (through `memory_safe`); across processes, each its share, gathered.

    Args:
        batches: the batches one process would run, in its order.
        run: computes one batch and writes its results into `out`.
        what: what a batch holds, for the out-of-memory message (`prompts`, `rows`, ...).
        out: the results, by request index.
        filled: the indices of `out` a batch writes.
        progress: the engine's progress callback: advanced here for the batches other processes ran.
    """
    if not launched():
        for batch in batches:
            memory_safe(run, batch, what)
        return
    mine = batches[rank()::world_size()]
    for batch in mine:
        memory_safe(run, batch, what)
    values = {i: out[i] for batch in mine for i in filled(batch)}
    for r, part in enumerate(gather(values)):
        if r == rank():
            continue
        for i, value in part.items():
            out[i] = value
        if progress:
            progress(len(part))


def cached(cache, key: str) -> dict | None:
    """The cache entry under `key`, read by the main process and given to every process."""
    return from_main(cache.get, key)
