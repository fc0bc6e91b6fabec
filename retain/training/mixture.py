"""Training mixtures: several sample pools drawn in given proportions, reproducibly.

Used by the `multitask` and `replay` methods. Counts are exact (largest-remainder rounding), each
pool is drawn without replacement in a seeded order and only repeats once it is exhausted, and the
final mixture is shuffled with the same seed, so a run's data is a pure function of its config.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Mapping, Sequence

from retain.errors import UserError
from retain.training.data import Sample


def normalise(rates: Mapping[str, float]) -> dict[str, float]:
    """Rates scaled to sum to 1 (raises `UserError` when they are all zero or any is negative)."""
    if any(r < 0 for r in rates.values()):
        raise UserError(f"mixture rates must be >= 0, got {dict(rates)}")
    total = sum(rates.values())
    if total <= 0:
        raise UserError(f"mixture rates must not all be zero, got {dict(rates)}")
    return {k: v / total for k, v in rates.items()}


def examples_proportional(sizes: Mapping[str, int], cap: int | None) -> dict[str, float]:
    """T5's examples-proportional mixing: rate_i proportional to min(n_i, cap).

    Args:
        sizes: examples available per pool.
        cap: the artificial dataset-size limit K (None: no cap).
    """
    return normalise({k: float(min(n, cap) if cap else n) for k, n in sizes.items()})


def counts_for(rates: Mapping[str, float], total: int) -> dict[str, int]:
    """Split `total` draws by `rates` so the counts sum exactly to `total` (largest remainder)."""
    rates = normalise(rates)
    raw = {k: r * total for k, r in rates.items()}
    counts = {k: math.floor(v) for k, v in raw.items()}
    left = total - sum(counts.values())
    for k in sorted(raw, key=lambda k: (raw[k] - counts[k], k), reverse=True)[:left]:
        counts[k] += 1
    return counts


def draw(pool: Sequence[Sample], n: int, rng: random.Random) -> list[Sample]:
    """`n` samples from `pool` in a shuffled order, reshuffling only after using all of them."""
    if n and not pool:
        raise UserError("cannot draw from an empty pool of examples")
    out: list[Sample] = []
    while len(out) < n:
        order = list(pool)
        rng.shuffle(order)
        out.extend(order[: n - len(out)])
    return out


def mix(pools: Mapping[str, Sequence[Sample]], rates: Mapping[str, float], total: int, seed: int) -> list[Sample]:
    """A shuffled mixture of `total` samples drawn from `pools` in proportion to `rates`.

    Args:
        pools: samples per source name.
        rates: relative weight per source name (need not sum to 1; sources without a rate get 0).
        total: mixture size.
        seed: seed for drawing and shuffling.

    Returns:
        The mixture; `Counter(s.source for s in mixture)` matches `counts_for(rates, total)`.
    """
    if total <= 0:
        raise UserError("the training mixture would be empty")
    unknown = set(rates) - set(pools)
    if unknown:
        raise UserError(f"mixture rates name unknown sources: {', '.join(sorted(unknown))}")
    counts = counts_for(rates, total)
    out: list[Sample] = []
    for name in sorted(pools):
        out.extend(draw(pools[name], counts.get(name, 0), random.Random(f"{seed}:{name}")))
    random.Random(seed).shuffle(out)
    return out


def proportions(samples: Sequence[Sample]) -> dict[str, float]:
    """Observed share of each source in a mixture (for metadata and tests)."""
    counts = Counter(s.source for s in samples)
    n = max(len(samples), 1)
    return {k: counts[k] / n for k in sorted(counts)}
