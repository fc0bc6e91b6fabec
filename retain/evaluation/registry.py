"""The registry of metric families: what each computes (its outputs, primary output, direction) and how
its per-example statistics aggregate. `retain.evaluation.metrics` scores with it; the families
register themselves where they are defined (`text_metrics`, `measured`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from retain.errors import UserError

Aggregate = Callable[[np.ndarray], np.ndarray]
# compute(predictions, references) -> {output: (n, k) statistics}, {output: (n,) display values}
Compute = Callable[[list[str], list[list[str]]], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


@dataclass(frozen=True)
class _Family:
    name: str
    outputs: tuple[str, ...]
    primary: str
    aggregates: dict[str, Aggregate]
    compute: Compute | None  # None: measured by the model (`scores_from_stats`), not computed from text
    lower_is_better: frozenset[str] = frozenset()
    open_outputs: bool = False  # outputs are named per task (lm-eval metrics); unlisted ones are means
    corpus: Callable[[str], Callable[[list], float]] | None = None  # aggregation name -> function of items

    def aggregate_of(self, output: str) -> Aggregate:
        if output in self.aggregates:
            return self.aggregates[output]
        if self.open_outputs:
            return self.aggregates.get(output.split(",")[0], _mean)  # lm-eval's "metric,filter" names
        raise KeyError(output)


_FAMILIES: dict[str, _Family] = {}


def _mean(summed: np.ndarray) -> np.ndarray:
    """Aggregate for statistics ``(value, 1)``: the mean value (NaN over zero examples)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return summed[..., 0] / summed[..., 1]


def register_metric(name: str, outputs: Sequence[str], primary: str,
                    aggregates: dict[str, Aggregate] | None = None, lower_is_better: Sequence[str] = ()):
    """Decorator registering a metric family's `compute(predictions, references)` function.

    Args:
        name: the family name tasks refer to (`Task.metric`).
        outputs: the named outputs the family produces, in display order.
        primary: the output reported as "the" score of the family.
        aggregates: output name -> aggregate of summed statistics; outputs not listed are means
            with statistics ``(value, 1)``.
        lower_is_better: outputs where a lower value is better (a perplexity).
    """
    if primary not in outputs:
        raise ValueError(f"primary output {primary!r} is not one of {list(outputs)}")

    def decorator(compute: Compute) -> Compute:
        if name in _FAMILIES:
            raise ValueError(f"metric {name!r} registered twice")
        aggs = {out: (aggregates or {}).get(out, _mean) for out in outputs}
        _FAMILIES[name] = _Family(name, tuple(outputs), primary, aggs, compute, frozenset(lower_is_better))
        return compute

    return decorator


def register_measured(name: str, outputs: Sequence[str], primary: str, aggregates: dict[str, Aggregate] | None = None,
                      lower_is_better: Sequence[str] = (), open_outputs: bool = False,
                      corpus: Callable[[str], Callable[[list], float]] | None = None) -> None:
    """Register a family whose per-example statistics the model measures (`retain.evaluation.measured`).

    Args:
        open_outputs: the outputs are named per task (lm-eval's metric names); `outputs` and
            `aggregates` then list the known ones and any other is a mean with statistics ``(value, 1)``.
        corpus: resolves an aggregation name to a function of per-example items, for corpus-level
            outputs (`Scores.corpus`).
    """
    if name in _FAMILIES:
        raise ValueError(f"metric {name!r} registered twice")
    aggs = {out: (aggregates or {}).get(out, _mean) for out in outputs}
    _FAMILIES[name] = _Family(name, tuple(outputs), primary, aggs, None, frozenset(lower_is_better), open_outputs,
                              corpus)


def higher_is_better(metric: str, output: str) -> bool:
    """Whether a higher value of `output` is better (False for perplexities and per-token NLL)."""
    fam = _family(metric)
    return output not in fam.lower_is_better and output.split(",")[0] not in fam.lower_is_better


def computed_from_text(metric: str) -> bool:
    """Whether `score(metric, predictions, references)` can score text (False for measured families)."""
    return _family(metric).compute is not None


def _family(metric: str) -> _Family:
    try:
        return _FAMILIES[metric]
    except KeyError:
        raise UserError(f"unknown metric {metric!r}; known metrics: {', '.join(metric_names())}") from None


def metric_names() -> list[str]:
    """Names of the registered metric families, sorted."""
    return sorted(_FAMILIES)


def outputs(metric: str) -> tuple[str, ...]:
    """The named outputs of a metric family (e.g. `squad` -> ``("exact_match", "f1")``)."""
    return _family(metric).outputs


def primary(metric: str) -> str:
    """The primary output of a metric family (e.g. `rouge` -> ``"rougeL"``)."""
    return _family(metric).primary


def _mean_outputs(values: dict[str, list[float]]):
    """Statistics ``(value, 1)`` and display values for mean metrics."""
    stats, per = {}, {}
    for name, vals in values.items():
        v = np.asarray(vals, dtype=np.float64).reshape(-1)
        stats[name] = np.stack([v, np.ones_like(v)], axis=1)
        per[name] = v
    return stats, per
