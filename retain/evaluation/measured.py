"""Metric families the model measures rather than scores from text: perplexity and lm-eval metrics.

Both keep the additive-statistics contract of `retain.evaluation.metrics`, so bootstrap intervals and
paired comparisons resample them like every other metric:

- `perplexity` (retain's `perplexity:` tasks): per document ``(nll, tokens)``, the summed negative
  log-likelihood in nats and the number of scored tokens. `nll` is the corpus's mean NLL per token
  (``sum nll / sum tokens``, every token weighing the same, as lm-eval's weighted perplexities do) and
  `perplexity` its exponential; per document, the document's own mean NLL and perplexity. Both are
  lower-is-better.
- `lm-eval` (`lm-eval:TASK`): outputs named after the task's metrics (`acc`, `exact_match`, ...; with
  a filter other than `none`, `metric,filter`). A mean metric has statistics ``(value, 1)``; lm-eval's
  corpus perplexities are additive too: `perplexity` is ``exp(-mean loglikelihood)``,
  `word_perplexity`/`byte_perplexity` ``exp(-sum ll / sum weight)`` over ``(ll, weight)`` pairs and
  `bits_per_byte` ``-sum ll / sum bytes / ln 2``. `AGGREGATION` names the lm-eval aggregation each
  of those must have. Any other lm-eval aggregation (BLEU, chrF, TER, corpus F1) is corpus-level: the
  output keeps lm-eval's per-document items (`Scores.corpus`) and its value, on all documents and on
  each bootstrap resample, is lm-eval's own aggregation of them.
"""

from __future__ import annotations

import math

import numpy as np

from typing import Sequence

from retain.evaluation.metrics import Scores
from retain.evaluation.registry import _family, register_measured


def _ratio(summed: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return summed[..., 0] / summed[..., 1]


def _exp_ratio(summed: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(_ratio(summed))


def _exp_neg_ratio(summed: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-_ratio(summed))


def _bits_per_byte(summed: np.ndarray) -> np.ndarray:
    return -_ratio(summed) / math.log(2)


register_measured("perplexity", ("nll", "perplexity"), primary="nll",
                  aggregates={"nll": _ratio, "perplexity": _exp_ratio}, lower_is_better=("nll", "perplexity"))

# lm-eval metric name -> the name of the lm-eval aggregation (lm_eval.api.metrics) it must have here.
AGGREGATION = {"perplexity": "perplexity", "word_perplexity": "weighted_perplexity",
               "byte_perplexity": "weighted_perplexity", "bits_per_byte": "bits_per_byte"}



def lm_eval_aggregation(name: str):
    """lm-eval's registered aggregation `name` (`bleu`, `chrf`, ...), a function of per-document items."""
    from lm_eval.api.registry import get_aggregation

    return get_aggregation(name)


register_measured("lm-eval", tuple(AGGREGATION), primary="perplexity", open_outputs=True,
                  aggregates={"perplexity": _exp_neg_ratio, "word_perplexity": _exp_neg_ratio,
                              "byte_perplexity": _exp_neg_ratio, "bits_per_byte": _bits_per_byte},
                  lower_is_better=(*AGGREGATION, "ter"), corpus=lm_eval_aggregation)


def scores_from_stats(metric: str, ids: Sequence[str], stats: dict[str, Sequence], primary: str,
                      corpus: dict[str, dict] | None = None) -> Scores:
    """`Scores` of a measured family from stored per-example statistics.

    Args:
        stats: output -> per-example rows (``[value]``, ``[value, 1]`` or the family's own ``(n, k)``).
        primary: the output reported as the score.
        corpus: corpus-level outputs, ``{output: {"aggregation": NAME, "items": [...]}}`` (`Scores.corpus`).

    The display value per example is the output's aggregate over that example alone.
    """
    fam = _family(metric)
    ids = [str(i) for i in ids]
    arrays: dict[str, np.ndarray] = {}
    for name, rows in stats.items():
        a = np.asarray(rows, dtype=np.float64).reshape(len(ids), -1)
        arrays[name] = np.concatenate([a, np.ones_like(a)], axis=1) if a.shape[1] == 1 else a
    per = {name: np.asarray(fam.aggregate_of(name)(a), dtype=np.float64) for name, a in arrays.items()}
    corpus = dict(corpus or {})
    for name, spec in corpus.items():
        if len(spec["items"]) != len(ids):
            raise ValueError(f"corpus output {name!r} has {len(spec['items'])} items for {len(ids)} examples")
        arrays[name] = np.zeros((len(ids), 1))
        aggregation = fam.corpus(spec["aggregation"])
        per[name] = np.asarray([aggregation([item]) for item in spec["items"]], dtype=np.float64)
    if primary not in arrays:
        raise ValueError(f"primary output {primary!r} is not among {sorted(arrays)}")
    return Scores(metric=metric, primary=primary, ids=ids, stats=arrays, per_example=per, corpus=corpus)
