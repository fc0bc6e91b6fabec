"""Bootstrap confidence intervals and paired model comparisons over per-example metric statistics.

Every `Scores` output is an aggregate of summed per-example statistics (see
`retain.evaluation.metrics`), so one resample is "sum the statistics of the drawn examples, apply the
aggregate". Resamples are drawn as an index matrix ``(n_boot, n)`` from `numpy.random.default_rng`
(seeded: the same call gives the same interval), turned into per-example draw counts, and every
output's resampled sums come from one matrix product ``counts @ stats``.

For a paired comparison both models are resampled with the SAME index matrix over the same examples,
which removes the between-example variance that unpaired intervals would include: the question is
"did the fine-tuned model get worse on these examples", not "would a new test set look different".
"""

from __future__ import annotations

import numpy as np

from retain.evaluation.metrics import Scores


def _counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Per-example draw counts ``(n_boot, n)`` of `n_boot` resamples of `n` examples with replacement."""
    if n == 0:
        raise ValueError("cannot bootstrap zero examples")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    # Offsetting row r by r * n lets one bincount count every row at once.
    flat = (idx + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _resampled(scores: Scores, names, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Output name -> ``(n_boot,)`` aggregate over each resample."""
    out = {}
    for name in names:
        if name in scores.corpus:  # corpus-level (BLEU): the task's own aggregation over each resample's items
            out[name] = np.array([scores.corpus_value(name, row) for row in counts])
        else:
            out[name] = scores.aggregate(name, counts @ scores.stats[name])
    return out


def _percentiles(values: np.ndarray, level: float) -> list[float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def confidence_interval(scores: Scores, name: str, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of one output.

    Args:
        scores: per-example scores of one metric family.
        name: the output (e.g. ``"rougeL"``).
        n_boot: number of resamples.
        seed: seed of the resampling; the same arguments give the same interval.
        level: coverage of the interval.

    Returns:
        ``(lo, hi)``; degenerate (``lo == hi``) for one example.
    """
    boot = _resampled(scores, [name], _counts(len(scores), n_boot, seed))[name]
    lo, hi = _percentiles(boot, level)
    return lo, hi


def summarize(scores: Scores, n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Value and 95% bootstrap interval of every output, all from the same resamples.

    Returns:
        ``{output: {"value": v, "ci95": [lo, hi]}}`` in the family's output order.
    """
    names = list(scores.stats)
    boot = _resampled(scores, names, _counts(len(scores), n_boot, seed))
    return {name: {"value": scores.value(name), "ci95": _percentiles(boot[name], 0.95)} for name in names}


def _align(a: Scores, b: Scores) -> Scores:
    """`b` reordered so its examples line up with `a`'s by id."""
    if a.metric != b.metric:
        raise ValueError(f"cannot compare metric {a.metric!r} with {b.metric!r}")
    for s, label in ((a, "a"), (b, "b")):
        if len(set(s.ids)) != len(s.ids):
            raise ValueError(f"scores {label} have duplicate example ids; cannot pair examples")
    if set(a.ids) != set(b.ids):
        only_a, only_b = sorted(set(a.ids) - set(b.ids)), sorted(set(b.ids) - set(a.ids))
        raise ValueError(
            f"the two scores are on different examples: {len(only_a)} ids only in a "
            f"(e.g. {only_a[:3]}), {len(only_b)} only in b (e.g. {only_b[:3]})"
        )
    if a.ids == b.ids:
        return b
    position = {i: k for k, i in enumerate(b.ids)}
    return b.subset([position[i] for i in a.ids])


def paired_bootstrap(a: Scores, b: Scores, name: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of ``b - a`` on the same examples (e.g. a = base model, b = fine-tuned).

    Args:
        a: scores of the reference model.
        b: scores of the compared model, on the same example ids (any order).
        name: the output to compare.
        n_boot: number of resamples.
        seed: seed of the resampling.

    Returns:
        ``{"delta": value_b - value_a, "ci95": [lo, hi], "p_value": p, "significant": bool}``.
        `p_value` is two-sided: twice the fraction of resampled deltas on the other side of zero
        from the observed delta (ties with zero counted, which is conservative), capped at 1; it is
        1 when the delta is 0. `significant` is true when the 95% interval excludes 0.

    Raises:
        ValueError: the two scores are on different (or duplicated) example ids or metrics.
    """
    b = _align(a, b)
    counts = _counts(len(a), n_boot, seed)
    deltas = _resampled(b, [name], counts)[name] - _resampled(a, [name], counts)[name]
    delta = b.value(name) - a.value(name)
    lo, hi = _percentiles(deltas, 0.95)
    if delta > 0:
        p = 2 * float(np.mean(deltas <= 0))
    elif delta < 0:
        p = 2 * float(np.mean(deltas >= 0))
    else:
        p = 1.0
    return {"delta": float(delta), "ci95": [lo, hi], "p_value": min(1.0, p),
            "significant": bool(lo > 0 or hi < 0)}
