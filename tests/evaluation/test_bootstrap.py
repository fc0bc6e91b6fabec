"""Bootstrap intervals and paired comparisons over per-example statistics."""

from __future__ import annotations

import numpy as np
import pytest

from retain.evaluation.bootstrap import confidence_interval, paired_bootstrap, summarize
from retain.evaluation.metrics import Scores, score


def _accuracy(correct, ids=None) -> Scores:
    """Accuracy scores with the given per-example correctness (1 = right)."""
    preds = ["yes" if c else "no" for c in correct]
    return score("accuracy", preds, [["yes"]] * len(preds), ids=ids)


def _coin_flips(n, p, seed):
    return np.random.default_rng(seed).random(n) < p


def test_interval_contains_the_value():
    s = _accuracy(_coin_flips(200, 0.6, seed=1))
    lo, hi = confidence_interval(s, "accuracy")
    assert lo < s.value("accuracy") < hi
    assert 0.0 <= lo and hi <= 1.0


def test_interval_narrows_with_more_examples():
    small = _accuracy(_coin_flips(50, 0.5, seed=2))
    large = _accuracy(_coin_flips(2000, 0.5, seed=2))
    lo_s, hi_s = confidence_interval(small, "accuracy")
    lo_l, hi_l = confidence_interval(large, "accuracy")
    # Width shrinks like 1/sqrt(n): ~0.28 at n = 50, ~0.044 at n = 2000.
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_seeded_and_seed_dependent():
    # Continuous per-example values (SQuAD-style F1), so two seeds cannot land on the same grid
    # point as 0/1 accuracy on 100 examples can.
    f1 = np.random.default_rng(3).random(100)
    s = Scores("squad", "f1", [str(i) for i in range(100)], {"f1": np.stack([f1, np.ones(100)], axis=1)})
    assert confidence_interval(s, "f1", seed=7) == confidence_interval(s, "f1", seed=7)
    assert confidence_interval(s, "f1", seed=7) != confidence_interval(s, "f1", seed=8)


def test_matches_a_naive_loop_with_the_same_resamples():
    # Micro entity F1 must be recomputed from summed (tp, fp, fn) per resample, not averaged.
    preds = ["PER: A", "none", "PER: B; LOC: C", "LOC: D", "ORG: E"]
    refs = [["PER: A"], ["ORG: X"], ["PER: B"], ["LOC: D; PER: F"], ["none"]]
    s = score("entity_f1", preds, refs)
    idx = np.random.default_rng(5).integers(0, len(preds), size=(300, len(preds)))
    naive = []
    for row in idx:
        tp, fp, fn = s.stats["entity_f1"][row].sum(axis=0)
        naive.append(1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    expected = tuple(np.percentile(naive, [2.5, 97.5]))
    assert confidence_interval(s, "entity_f1", n_boot=300, seed=5) == pytest.approx(expected)


def test_single_example_gives_a_degenerate_interval():
    s = _accuracy([True])
    assert confidence_interval(s, "accuracy") == (1.0, 1.0)
    with pytest.raises(ValueError):
        confidence_interval(s.subset([]), "accuracy")


def test_level_controls_width():
    s = _accuracy(_coin_flips(300, 0.5, seed=4))
    lo90, hi90 = confidence_interval(s, "accuracy", level=0.90)
    lo99, hi99 = confidence_interval(s, "accuracy", level=0.99)
    assert hi90 - lo90 < hi99 - lo99


def test_summarize_reports_every_output():
    s = score("squad", ["the big cat", "paris", "x"], [["a cat sat"], ["Paris"], ["y"]])
    out = summarize(s, n_boot=200)
    assert list(out) == ["exact_match", "f1"]
    # F1 per example 1/2, 1, 0 -> mean 1/2.
    assert out["f1"]["value"] == pytest.approx(0.5)
    lo, hi = out["f1"]["ci95"]
    assert lo <= 0.5 <= hi
    assert out == summarize(s, n_boot=200)


def test_paired_against_itself_is_zero_and_not_significant():
    s = _accuracy(_coin_flips(150, 0.7, seed=5))
    r = paired_bootstrap(s, s, "accuracy")
    assert r == {"delta": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "significant": False}


def test_paired_detects_a_clearly_better_model():
    base = _accuracy(_coin_flips(200, 0.3, seed=6))
    better = _accuracy(base.per_example["accuracy"].astype(bool) | _coin_flips(200, 0.8, seed=7))
    r = paired_bootstrap(base, better, "accuracy")
    assert r["delta"] == pytest.approx(better.value("accuracy") - base.value("accuracy"))
    assert r["delta"] > 0.3
    assert r["significant"] and r["ci95"][0] > 0
    assert r["p_value"] < 0.01
    # The other direction is the mirror image.
    back = paired_bootstrap(better, base, "accuracy")
    assert back["delta"] == pytest.approx(-r["delta"]) and back["ci95"][1] < 0


def test_paired_small_difference_is_not_significant():
    # 30 examples; b fixes one example a got wrong: delta 1/30, the interval straddles 0.
    a_correct = _coin_flips(30, 0.5, seed=8)
    b_correct = a_correct.copy()
    b_correct[np.flatnonzero(~a_correct)[0]] = True
    r = paired_bootstrap(_accuracy(a_correct), _accuracy(b_correct), "accuracy")
    assert r["delta"] == pytest.approx(1 / 30)
    assert not r["significant"] and r["p_value"] > 0.05


def test_paired_aligns_examples_by_id():
    ids = [f"ex{i}" for i in range(100)]
    a_correct, b_correct = _coin_flips(100, 0.4, seed=9), _coin_flips(100, 0.6, seed=10)
    a, b = _accuracy(a_correct, ids), _accuracy(b_correct, ids)
    order = np.random.default_rng(0).permutation(100)
    b_shuffled = b.subset(order)
    assert b_shuffled.ids != b.ids
    assert paired_bootstrap(a, b_shuffled, "accuracy") == paired_bootstrap(a, b, "accuracy")


def test_paired_rejects_different_examples():
    a = _accuracy([True, False], ids=["x", "y"])
    with pytest.raises(ValueError, match="different examples"):
        paired_bootstrap(a, _accuracy([True, False], ids=["x", "z"]), "accuracy")
    with pytest.raises(ValueError):
        paired_bootstrap(a, _accuracy([True], ids=["x"]), "accuracy")
    with pytest.raises(ValueError, match="duplicate"):
        paired_bootstrap(_accuracy([True, True], ids=["x", "x"]), _accuracy([True, True], ids=["x", "x"]),
                         "accuracy")
