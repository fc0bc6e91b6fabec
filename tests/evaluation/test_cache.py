"""Cache isolation: same model + task is served from the cache; different weights or data never are."""

from __future__ import annotations

import json

import pytest

from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import EvalSettings, evaluate_task
from retain.models.loading import LazyModel, load_model
from retain.tasks import get_task

SETTINGS = EvalSettings(limit=6, batch_size=4, n_boot=50)


def test_second_evaluation_is_served_from_cache(tiny_t5_dir, cache_dir):
    cache = EvalCache(cache_dir / "eval")
    task = get_task("toy-qa")
    first = evaluate_task(load_model(str(tiny_t5_dir)), task, SETTINGS, cache)
    second = evaluate_task(LazyModel(str(tiny_t5_dir)), get_task("toy-qa"), SETTINGS, cache)
    assert not first.from_cache and second.from_cache
    assert second.predictions == first.predictions
    assert second.metrics == first.metrics


def test_cached_evaluation_does_not_load_the_model(tiny_t5_dir, cache_dir):
    cache = EvalCache(cache_dir / "eval")
    evaluate_task(LazyModel(str(tiny_t5_dir)), get_task("toy-sentiment"), SETTINGS, cache)
    lazy = LazyModel(str(tiny_t5_dir))
    result = evaluate_task(lazy, get_task("toy-sentiment"), SETTINGS, cache)
    assert result.from_cache and not lazy.loaded


def test_two_models_never_share_entries(tiny_t5_dir, tiny_t5_other_dir, cache_dir):
    cache = EvalCache(cache_dir / "eval")
    a = LazyModel(str(tiny_t5_dir))
    b = LazyModel(str(tiny_t5_other_dir))
    assert a.fingerprint != b.fingerprint
    ra = evaluate_task(a, get_task("toy-ner"), SETTINGS, cache)
    rb = evaluate_task(b, get_task("toy-ner"), SETTINGS, cache)
    assert not rb.from_cache
    assert ra.predictions != rb.predictions
    assert len(list((cache_dir / "eval").rglob("*.json"))) == 2


def test_changed_data_invalidates_entry(tiny_t5_dir, cache_dir, tmp_path):
    cache = EvalCache(cache_dir / "eval")
    data = tmp_path / "test.jsonl"
    rows = [{"id": str(i), "text": f"item {i} was great", "label": "positive"} for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = LazyModel(str(tiny_t5_dir))
    evaluate_task(lm, get_task(f"sentiment:{data}"), SETTINGS, cache)
    assert evaluate_task(lm, get_task(f"sentiment:{data}"), SETTINGS, cache).from_cache
    rows[0]["label"] = "negative"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert not evaluate_task(lm, get_task(f"sentiment:{data}"), SETTINGS, cache).from_cache


def test_disabled_cache_never_reads(tiny_t5_dir, cache_dir):
    cache = EvalCache(cache_dir / "eval", enabled=False)
    lm = LazyModel(str(tiny_t5_dir))
    evaluate_task(lm, get_task("toy-qa"), SETTINGS, cache)
    assert not evaluate_task(lm, get_task("toy-qa"), SETTINGS, cache).from_cache


def test_eval_settings_are_validated_when_made_and_a_study_shares_the_type():
    """One settings type: `retain eval`, the API and a study's `eval:` (which only adds the report's
    forgotten-example count and its own defaults); a bad value is one UserError naming the setting."""
    from retain.errors import UserError
    from retain.study.config import StudyEvalSettings

    for bad, name in (({"limit": 0}, "limit"), ({"chat": "bogus"}, "chat"), ({"split": "tset"}, "split"),
                      ({"fewshot": -1}, "fewshot"), ({"batch_size": 0}, "batch_size"), ({"nope": 1}, "nope")):
        with pytest.raises(UserError, match=name):
            EvalSettings(**bad)
    study = StudyEvalSettings(limit=50, forgotten_examples=3)
    assert isinstance(study, EvalSettings)
    assert study.evaluation() == EvalSettings(limit=50, batch_size=32)
    assert SETTINGS.but(fewshot=2).fewshot == 2 and SETTINGS.fewshot is None
    with pytest.raises(UserError, match="limit"):
        SETTINGS.but(limit=-1)
