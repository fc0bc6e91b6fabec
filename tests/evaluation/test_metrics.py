"""Metric families against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from retain.errors import UserError
from retain.evaluation import metrics, text_metrics
from retain.evaluation.metrics import Scores, score


def test_registry_lists_families_outputs_and_primaries():
    assert set(metrics.metric_names()) >= {"rouge", "entity_f1", "accuracy", "squad", "exact_match"}
    assert metrics.outputs("rouge") == ("rouge1", "rouge2", "rougeL", "rougeLsum")
    assert metrics.outputs("entity_f1") == ("entity_f1", "entity_precision", "entity_recall")
    assert metrics.outputs("squad") == ("exact_match", "f1")
    assert [metrics.primary(m) for m in ("rouge", "entity_f1", "accuracy", "squad", "exact_match")] == [
        "rougeL", "entity_f1", "accuracy", "f1", "exact_match"]


def test_unknown_metric_is_a_user_error_listing_known_ones():
    with pytest.raises(UserError, match="known metrics: .*rouge"):
        score("bleu", ["a"], [["a"]])
    with pytest.raises(UserError):
        metrics.outputs("bleu")


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        score("accuracy", ["a", "b"], [["a"]])
    with pytest.raises(ValueError):
        score("accuracy", ["a"], [["a"]], ids=["x", "y"])
    with pytest.raises(ValueError):
        score("accuracy", ["a"], [[]])


# --- ROUGE ---------------------------------------------------------------------------------------


def test_rouge_single_reference_by_hand():
    # pred "the cat sat on the mat" vs ref "the cat is on the mat", 6 tokens each.
    # rouge1: shared unigrams the x2, cat, on, mat = 5 -> P = R = 5/6 -> F = 5/6.
    # rouge2: pred bigrams the-cat cat-sat sat-on on-the the-mat; ref the-cat cat-is is-on on-the
    #         the-mat; shared the-cat on-the the-mat = 3 of 5 each side -> F = 3/5.
    # rougeL: LCS "the cat on the mat" = 5 -> F = 5/6. No newlines, so rougeLsum = rougeL.
    s = score("rouge", ["the cat sat on the mat"], [["the cat is on the mat"]])
    assert s.value("rouge1") == pytest.approx(5 / 6)
    assert s.value("rouge2") == pytest.approx(3 / 5)
    assert s.value("rougeL") == pytest.approx(5 / 6)
    assert s.value("rougeLsum") == pytest.approx(5 / 6)
    assert s.stats["rougeL"].shape == (1, 2)


def test_rouge_stems_and_averages_examples():
    # Example 1: "quick brown fox" vs "quick brown fox jumps": rouge1 P = 3/3, R = 3/4 -> F = 6/7.
    # Example 2: "jumping dogs" vs "dog jumped": Porter stems jump, dog on both sides -> rouge1 = 1.
    # Mean rouge1 = (6/7 + 1) / 2 = 13/14.
    s = score("rouge", ["quick brown fox", "jumping dogs"], [["quick brown fox jumps"], ["dog jumped"]])
    np.testing.assert_allclose(s.per_example["rouge1"], [6 / 7, 1.0])
    assert s.value("rouge1") == pytest.approx(13 / 14)


def test_rouge_multi_reference_takes_best_reference_per_type():
    # pred "one two six ten" (4 tokens; 3-letter words are not stemmed).
    # ref A "ten six two one": rouge1 4/4 -> 1.0; no shared bigram -> rouge2 0; LCS 1 -> 1/4.
    # ref B "one two zzz zzz zzz zzz" (6 tokens): rouge1 overlap 2, P 2/4, R 2/6 -> F 0.4;
    #   rouge2 shared one-two: P 1/3, R 1/5 -> F 0.25; LCS "one two" = 2 -> F 0.4.
    # The best reference differs per type: rouge1 1.0 (A), rouge2 0.25 (B), rougeL 0.4 (B).
    pred, refs = "one two six ten", ["ten six two one", "one two zzz zzz zzz zzz"]
    s = score("rouge", [pred], [refs])
    assert s.value("rouge1") == pytest.approx(1.0)
    assert s.value("rouge2") == pytest.approx(0.25)
    assert s.value("rougeL") == pytest.approx(0.4)

    from rouge_score import rouge_scorer

    direct = rouge_scorer.RougeScorer(list(text_metrics.ROUGE_TYPES), use_stemmer=True)
    for t in text_metrics.ROUGE_TYPES:
        best = max(direct.score(r, pred)[t].fmeasure for r in refs)
        assert s.value(t) == pytest.approx(best)


def test_rouge_lsum_splits_sentences_on_newlines():
    # pred "the cat sat\nthe dog ran" vs ref "the dog ran\nthe cat sat", 6 tokens each.
    # rougeL over the whole text: LCS is 3 ("the dog ran"), so F = 3/6 = 0.5.
    # rougeLsum: each reference sentence matches one prediction sentence entirely, union LCS hits
    #   3 + 3 = 6 -> P = R = 1.0.
    s = score("rouge", ["the cat sat\nthe dog ran"], [["the dog ran\nthe cat sat"]])
    assert s.value("rougeL") == pytest.approx(0.5)
    assert s.value("rougeLsum") == pytest.approx(1.0)


def test_rouge_accepts_a_bare_string_reference():
    assert score("rouge", ["a b"], ["a b"]).value("rouge1") == pytest.approx(1.0)


# --- entity F1 -----------------------------------------------------------------------------------

ENTITY_PREDS = [
    "PER: John  Smith; LOC: paris; LOC: Paris",  # duplicate LOC, odd spacing and case
    "none",
    "none",
]
ENTITY_REFS = [
    ["PER: john smith; LOC: Paris"],
    ["ORG: Acme; PER: Ann"],
    ["none"],
]


def test_entity_f1_micro_over_multiset_by_hand():
    # Example 1: pred {(PER, john smith), (LOC, paris) x2}, ref {(PER, john smith), (LOC, paris)}
    #   -> tp 2, fp 1 (the second paris is not in the reference multiset), fn 0.
    # Example 2: nothing predicted, two missed -> tp 0, fp 0, fn 2.
    # Example 3: none vs none -> 0, 0, 0.
    # Micro: tp 2, fp 1, fn 2 -> P = 2/3, R = 2/4 = 1/2, F1 = 2*2 / (2*2 + 1 + 2) = 4/7.
    s = score("entity_f1", ENTITY_PREDS, ENTITY_REFS)
    np.testing.assert_array_equal(s.stats["entity_f1"], [[2, 1, 0], [0, 0, 2], [0, 0, 0]])
    assert s.value("entity_precision") == pytest.approx(2 / 3)
    assert s.value("entity_recall") == pytest.approx(1 / 2)
    assert s.value("entity_f1") == pytest.approx(4 / 7)
    # Per example: ex1 F1 = 4/(4+1) = 0.8, P = 2/3, R = 1; ex2 F1 0, P 0 (nothing predicted but
    # something missed), R 0; ex3 nothing to find and nothing predicted -> all 1.0.
    np.testing.assert_allclose(s.per_example["entity_f1"], [0.8, 0.0, 1.0])
    np.testing.assert_allclose(s.per_example["entity_precision"], [2 / 3, 0.0, 1.0])
    np.testing.assert_allclose(s.per_example["entity_recall"], [1.0, 0.0, 1.0])


def test_entity_f1_type_must_match_and_spurious_entity_scores_zero():
    # "LOC: John" vs "PER: John": same text, different type -> tp 0, fp 1, fn 1 -> F1 0.
    # "PER: Ann" vs "none": tp 0, fp 1, fn 0 -> P 0; recall has no denominator but fp > 0 -> 0.
    s = score("entity_f1", ["LOC: John", "PER: Ann"], [["PER: John"], ["none"]])
    np.testing.assert_array_equal(s.stats["entity_f1"], [[0, 1, 1], [0, 1, 0]])
    np.testing.assert_allclose(s.per_example["entity_recall"], [0.0, 0.0])
    assert s.value("entity_f1") == 0.0


def test_entity_f1_all_none_is_perfect():
    s = score("entity_f1", ["none", "none"], [["none"], ["none"]])
    assert s.value("entity_f1") == s.value("entity_precision") == s.value("entity_recall") == 1.0


# --- accuracy ------------------------------------------------------------------------------------


def test_accuracy_ignores_case_and_surrounding_whitespace():
    # 1: "  Positive\n" == "positive" after strip + casefold.
    # 2: "neg" matches the second reference "NEG".
    # 3: "positive." keeps its full stop -> no match.
    # 4: casefold (not just lower) makes "STRASSE" equal "straße".
    s = score("accuracy", ["  Positive\n", "neg", "positive.", "STRASSE"],
              [["positive"], ["negative", "NEG"], ["positive"], ["straße"]])
    np.testing.assert_array_equal(s.per_example["accuracy"], [1, 1, 0, 1])
    assert s.value("accuracy") == pytest.approx(3 / 4)


# --- SQuAD ---------------------------------------------------------------------------------------


def test_squad_normalisation():
    assert text_metrics.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert text_metrics.normalize_answer("an apple, a pear") == "apple pear"


def test_squad_exact_match_and_f1_by_hand():
    preds = ["The Eiffel Tower!", "the big cat", "in Paris, France", "broncos win", "an apple"]
    refs = [["eiffel tower"], ["a cat sat"], ["Paris"], ["Denver Broncos", "the Broncos"], ["apple"]]
    s = score("squad", preds, refs)
    # 1: both normalise to "eiffel tower" -> EM 1, F1 1.
    # 2: "big cat" vs "cat sat": 1 shared token, P = 1/2, R = 1/2 -> F1 1/2; EM 0.
    # 3: "in paris france" vs "paris": P = 1/3, R = 1 -> F1 = 2(1/3)(1) / (4/3) = 1/2; EM 0.
    # 4: vs "denver broncos": P 1/2, R 1/2 -> 1/2; vs "broncos": P 1/2, R 1 -> 2/3; max 2/3.
    # 5: the article "an" is dropped -> EM 1, F1 1.
    np.testing.assert_allclose(s.per_example["exact_match"], [1, 0, 0, 0, 1])
    np.testing.assert_allclose(s.per_example["f1"], [1, 1 / 2, 1 / 2, 2 / 3, 1])
    assert s.value("exact_match") == pytest.approx(2 / 5)
    # Mean F1 = (1 + 1/2 + 1/2 + 2/3 + 1) / 5 = (11/3) / 5 = 11/15.
    assert s.value("f1") == pytest.approx(11 / 15)


def test_squad_repeated_tokens_use_multiset_overlap():
    # "cat cat cat" vs "cat dog": overlap min(3, 1) = 1 -> P 1/3, R 1/2 -> F1 = (1/3)/(5/6) = 2/5.
    assert score("squad", ["cat cat cat"], [["cat dog"]]).value("f1") == pytest.approx(2 / 5)


def test_squad_empty_after_normalisation():
    # "the" and "a" both normalise to "" -> EM 1 and (by our convention) F1 1; "" vs "cat" -> 0.
    s = score("squad", ["the", ""], [["a"], ["cat"]])
    np.testing.assert_allclose(s.per_example["exact_match"], [1, 0])
    np.testing.assert_allclose(s.per_example["f1"], [1, 0])


def test_exact_match_family_max_over_references():
    s = score("exact_match", ["Denver Broncos", "Broncos."], [["Broncos", "denver broncos"], ["Denver"]])
    np.testing.assert_array_equal(s.per_example["exact_match"], [1, 0])
    assert s.value("exact_match") == 0.5


# --- Scores --------------------------------------------------------------------------------------


def test_scores_subset_ids_and_round_trip():
    s = score("entity_f1", ENTITY_PREDS, ENTITY_REFS, ids=["a", "b", "c"])
    sub = s.subset([2, 0])
    assert sub.ids == ["c", "a"]
    # tp 2, fp 1, fn 0 -> F1 = 4/5 (example c adds nothing).
    assert sub.value("entity_f1") == pytest.approx(4 / 5)
    assert s.subset(np.array([False, True, False])).ids == ["b"]
    again = Scores.from_dict(s.to_dict())
    assert again.ids == s.ids and again.value("entity_f1") == pytest.approx(4 / 7)
    # aggregate works on a batch of summed statistics (..., k) -> (...).
    np.testing.assert_allclose(s.aggregate("entity_f1", np.array([[2, 1, 2], [0, 0, 0]])), [4 / 7, 1.0])
