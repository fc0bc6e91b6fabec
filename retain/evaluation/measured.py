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
  output must have; a metric aggregated otherwise (BLEU, corpus F1) is not additive and is left out
  by `retain.evaluation.lmeval`, which says so.
"""

from __future__ import annotations

import math

import numpy as np

from retain.evaluation.metrics import register_measured


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

register_measured("lm-eval", tuple(AGGREGATION), primary="perplexity", open_outputs=True,
                  aggregates={"perplexity": _exp_neg_ratio, "word_perplexity": _exp_neg_ratio,
                              "byte_perplexity": _exp_neg_ratio, "bits_per_byte": _bits_per_byte},
                  lower_is_better=tuple(AGGREGATION))
