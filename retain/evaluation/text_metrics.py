"""The metric families computed from text: ROUGE, entity F1, accuracy, SQuAD exact match and token F1.

Each registers itself with `retain.evaluation.registry.register_metric` (statistics per example, an
aggregate of their sums; see that module). Imported by `retain.evaluation.metrics` itself.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter

import numpy as np

from retain.evaluation.registry import _mean_outputs, register_metric


# --- ROUGE -------------------------------------------------------------------------------------

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class _MemoTokenizer:
    """rouge-score's own tokenizer (lower case, alphanumeric tokens, Porter stemming), memoised by text.

    Stemming dominates ROUGE's cost, and a study scores the same references for every model (and the
    same predictions again when it rebuilds results), so each distinct text is tokenised once.
    """

    def __init__(self):
        from rouge_score import tokenizers

        inner = tokenizers.DefaultTokenizer(use_stemmer=True)
        self._tokenize = functools.lru_cache(maxsize=1 << 16)(lambda text: tuple(inner.tokenize(text)))

    def tokenize(self, text: str) -> list[str]:
        return list(self._tokenize(text))


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    # Built once: constructing the scorer (and its Porter stemmer) per example is slow.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=_MemoTokenizer())


@register_metric("rouge", ROUGE_TYPES, primary="rougeL")
def _rouge(preds, refs):
    """ROUGE F-measures (rouge-score, Porter stemming), the best reference per type by F-measure.

    rougeLsum splits prediction and references into sentences on newlines.
    """
    scorer = _rouge_scorer()
    values = {t: [] for t in ROUGE_TYPES}
    for pred, ref in zip(preds, refs):
        best = scorer.score_multi(ref, pred)
        for t in ROUGE_TYPES:
            values[t].append(best[t].fmeasure)
    return _mean_outputs(values)


# --- entity F1 ---------------------------------------------------------------------------------


def _ratio_or_convention(num, den, other):
    """``num / den``; where ``den == 0``: 1.0 if `other` is also 0 (nothing to find), else 0.0."""
    num, den, other = (np.asarray(x, dtype=np.float64) for x in (num, den, other))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = num / den
    return np.where(den > 0, ratio, np.where(other == 0, 1.0, 0.0))


def _entity_precision(s: np.ndarray) -> np.ndarray:
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    return _ratio_or_convention(tp, tp + fp, fn)


def _entity_recall(s: np.ndarray) -> np.ndarray:
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    return _ratio_or_convention(tp, tp + fn, fp)


def _entity_f1(s: np.ndarray) -> np.ndarray:
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    return _ratio_or_convention(2 * tp, 2 * tp + fp + fn, 0)


def _entity_key(etype: str, text: str) -> tuple[str, str]:
    # Case-insensitive text after collapsing whitespace: "New  York" and "new york" are one entity.
    return etype.strip().upper(), " ".join(text.split()).casefold()


@register_metric(
    "entity_f1",
    ("entity_f1", "entity_precision", "entity_recall"),
    primary="entity_f1",
    aggregates={"entity_f1": _entity_f1, "entity_precision": _entity_precision,
                "entity_recall": _entity_recall},
)
def _entities(preds, refs):
    """Micro precision, recall and F1 over the multiset of (type, text) entities.

    Predictions and the first reference are NER strings (``TYPE: text; TYPE: text`` or ``none``)
    parsed by `retain.tasks.ner_format.parse_entities`. Per example the statistics are
    ``(tp, fp, fn)`` with tp the size of the multiset intersection, so a predicted entity repeated
    more often than in the reference counts as a false positive.

    Conventions when a denominator is zero (so an empty prediction for an empty reference is
    perfect, and empty against non-empty is zero):

    - precision = 1.0 if nothing was predicted and nothing was missed (tp + fp == 0 and fn == 0),
      0.0 if nothing was predicted but something was missed;
    - recall = 1.0 if there was nothing to find and nothing was wrongly predicted
      (tp + fn == 0 and fp == 0), else 0.0 when tp + fn == 0;
    - F1 = 1.0 when 2tp + fp + fn == 0.
    """
    from retain.tasks.ner_format import parse_entities

    rows = []
    for pred, ref in zip(preds, refs):
        p = Counter(_entity_key(t, x) for t, x in parse_entities(pred))
        g = Counter(_entity_key(t, x) for t, x in parse_entities(ref[0]))
        tp = sum((p & g).values())
        rows.append((tp, sum(p.values()) - tp, sum(g.values()) - tp))
    s = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    stats = {"entity_f1": s, "entity_precision": s, "entity_recall": s}
    per = {"entity_f1": _entity_f1(s), "entity_precision": _entity_precision(s),
           "entity_recall": _entity_recall(s)}
    return stats, per


# --- accuracy ----------------------------------------------------------------------------------


@register_metric("accuracy", ("accuracy",), primary="accuracy")
def _accuracy(preds, refs):
    """1.0 if the prediction equals any reference after strip() and casefold(), else 0.0."""
    values = [
        float(any(pred.strip().casefold() == r.strip().casefold() for r in ref))
        for pred, ref in zip(preds, refs)
    ]
    return _mean_outputs({"accuracy": values})


# --- SQuAD exact match and token F1 ------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, drop punctuation, drop a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _exact(pred: str, ref: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(ref))


def _token_f1(pred: str, ref: str) -> float:
    """SQuAD token F1 with multiset overlap.

    Unlike the v1.1 script (which gives 0 when both sides normalise to nothing, e.g. "the" vs
    "a"), two empty answers score 1.0 here, as in the v2.0 script, so F1 agrees with exact match.
    """
    p, g = normalize_answer(pred).split(), normalize_answer(ref).split()
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


@register_metric("squad", ("exact_match", "f1"), primary="f1")
def _squad(preds, refs):
    """SQuAD exact match and token F1 in [0, 1], each the max over references."""
    return _mean_outputs({
        "exact_match": [max(_exact(p, r) for r in ref) for p, ref in zip(preds, refs)],
        "f1": [max(_token_f1(p, r) for r in ref) for p, ref in zip(preds, refs)],
    })


@register_metric("exact_match", ("exact_match",), primary="exact_match")
def _exact_match(preds, refs):
    """SQuAD-normalised exact match, the max over references."""
    return _mean_outputs({
        "exact_match": [max(_exact(p, r) for r in ref) for p, ref in zip(preds, refs)],
    })
