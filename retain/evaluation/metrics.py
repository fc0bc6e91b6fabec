"""Metric families, computed per example so every score can get a bootstrap confidence interval.

Every metric output is defined by per-example *additive* statistics (an array of shape ``(n, k)``)
and an aggregate function of the statistics *summed* over examples:

- a mean metric (ROUGE, accuracy, SQuAD EM/F1) has statistics ``(value, 1)`` and aggregate
  ``s[0] / s[1]``;
- micro entity F1 has statistics ``(tp, fp, fn)`` and aggregate ``2tp / (2tp + fp + fn)``.

This makes resampling generic (`retain.evaluation.bootstrap` sums the statistics over a resample and
applies the aggregate) and keeps micro-averaged metrics correct under resampling, which averaging
per-example F1 would not be.

Families register themselves where they are defined with `@register_metric`; `score(metric, ...)`
evaluates one family and returns `Scores`. A family measured by the model rather than computed from
text (a perplexity, an lm-evaluation-harness metric: `retain.evaluation.measured`) registers with
`register_measured` and its `Scores` come from `scores_from_stats`. A family can be lower-is-better
(`higher_is_better(metric, output)`): comparisons then count an increase as the drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from retain.errors import UserError
from retain.evaluation.registry import (  # noqa: F401  (re-exported: the metric API lives here)
    Aggregate, Compute, _Family, _FAMILIES, _mean, _mean_outputs, register_metric, register_measured, higher_is_better, computed_from_text, _family, metric_names, outputs, primary)

@dataclass
class Scores:
    """One metric family evaluated on n examples.

    Attributes:
        metric: the family name.
        primary: the family's primary output name.
        ids: example ids, used to pair examples across models.
        stats: output name -> ``(n, k)`` float64 per-example additive statistics.
        per_example: output name -> ``(n,)`` per-example value, for display (for `entity_f1`, the
            example's own F1, precision or recall).
        corpus: output name -> ``{"aggregation": NAME, "items": [one per example]}`` for a corpus-level
            output (lm-eval's BLEU) that is no function of summed statistics: its value is the family's
            aggregation NAME applied to the items (resampled items in a bootstrap); its `stats` are zeros.
    """

    metric: str
    primary: str
    ids: list[str]
    stats: dict[str, np.ndarray]
    per_example: dict[str, np.ndarray] = field(default_factory=dict)
    corpus: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.ids)
        for name, s in self.stats.items():
            if s.ndim != 2 or s.shape[0] != n:
                raise ValueError(f"stats[{name!r}] has shape {s.shape}, expected ({n}, k)")

    def __len__(self) -> int:
        return len(self.ids)

    def aggregate(self, name: str, summed: np.ndarray) -> np.ndarray:
        """Apply output `name`'s aggregate to summed statistics of shape ``(..., k)`` -> ``(...)``."""
        return _family(self.metric).aggregate_of(name)(np.asarray(summed, dtype=np.float64))

    def value(self, name: str) -> float:
        """The output `name` aggregated over all examples."""
        if name in self.corpus:
            return self.corpus_value(name)
        return float(self.aggregate(name, self.stats[name].sum(axis=0)))

    def corpus_value(self, name: str, counts: Sequence[int] | None = None) -> float:
        """A corpus-level output over every example, or over a resample (`counts`: draws per example)."""
        spec = self.corpus[name]
        items = spec["items"] if counts is None else \
            [item for item, c in zip(spec["items"], counts) for _ in range(int(c))]
        return float(_family(self.metric).corpus(spec["aggregation"])(items))

    def subset(self, idx) -> "Scores":
        """The scores of the examples at positions `idx` (indices or a boolean mask)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.intp)  # np.asarray([]) is float64
        return Scores(
            metric=self.metric,
            primary=self.primary,
            ids=[self.ids[i] for i in idx],
            stats={k: v[idx] for k, v in self.stats.items()},
            per_example={k: v[idx] for k, v in self.per_example.items()},
            corpus={k: {**c, "items": [c["items"][i] for i in idx]} for k, c in self.corpus.items()},
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable form, so paired comparisons can be redone from result files."""
        return {
            "metric": self.metric,
            "primary": self.primary,
            "ids": list(self.ids),
            "stats": {k: v.tolist() for k, v in self.stats.items()},
            "per_example": {k: v.tolist() for k, v in self.per_example.items()},
            **({"corpus": self.corpus} if self.corpus else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Scores":
        """Inverse of `to_dict`."""
        return cls(
            metric=data["metric"],
            primary=data["primary"],
            ids=list(data["ids"]),
            stats={k: np.asarray(v, dtype=np.float64).reshape(len(data["ids"]), -1)
                   for k, v in data["stats"].items()},
            per_example={k: np.asarray(v, dtype=np.float64) for k, v in data["per_example"].items()},
            corpus=dict(data.get("corpus") or {}),
        )


def score(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]],
          ids: Sequence[str] | None = None) -> Scores:
    """Evaluate one metric family per example.

    Args:
        metric: a registered family name (see `metric_names()`).
        predictions: one model output per example.
        references: the accepted answers per example (a bare string counts as one reference).
        ids: example ids; defaults to ``"0"``, ``"1"``, ...

    Returns:
        The per-example `Scores`.

    Raises:
        UserError: unknown metric.
        ValueError: lengths differ, or an example has no reference.
    """
    fam = _family(metric)
    if fam.compute is None:
        raise UserError(f"metric {metric!r} is measured by the model, not computed from text")
    preds = [str(p) for p in predictions]
    refs = [[r] if isinstance(r, str) else [str(x) for x in r] for r in references]
    ids = [str(i) for i in range(len(preds))] if ids is None else [str(i) for i in ids]
    if not len(preds) == len(refs) == len(ids):
        raise ValueError(f"lengths differ: {len(preds)} predictions, {len(refs)} references, {len(ids)} ids")
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"example {ids[i]!r} has no reference")
    stats, per_example = fam.compute(preds, refs)
    return Scores(metric=metric, primary=fam.primary, ids=ids, stats=stats, per_example=per_example)


# The text metric families register themselves when their module is imported: importing it here makes
# `score(metric, ...)` find them wherever it is called from.
from retain.evaluation import text_metrics  # noqa: E402,F401
