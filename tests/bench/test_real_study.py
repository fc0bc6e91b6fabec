"""The real-data study's config and its rerun check (bench/real_study)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.real_study.run import CONFIG
from bench.studies import agreement
from tests.conftest import DATA, needs_data


def _doc(deltas: dict[str, dict[str, tuple[float, float]]]) -> dict:
    """A results document with runs -> task -> (delta, CI half-width)."""
    return {"runs": [{"name": run, "status": "done",
                      "change": {t: {"delta": d, "ci95": [d - h, d + h]} for t, (d, h) in tasks.items()}}
                     for run, tasks in deltas.items()]}


def test_agreement_within_and_outside_noise():
    old = _doc({"full": {"ner": (-0.30, 0.04), "sentiment": (-0.10, 0.03)}, "lora": {"ner": (0.0, 0.01)}})
    new = _doc({"full": {"ner": (-0.27, 0.04), "sentiment": (0.05, 0.03)}, "extra": {"ner": (0.0, 0.01)}})
    rows = {(r["run"], r["task"]): r for r in agreement(old, new)}
    assert set(rows) == {("full", "ner"), ("full", "sentiment")}  # runs in only one document are skipped
    assert rows[("full", "ner")]["agrees"]  # 0.03 apart, tolerance sqrt(2) * 0.04
    assert not rows[("full", "sentiment")]["agrees"]  # 0.15 apart, tolerance ~0.042


@needs_data
def test_study_config_validates(monkeypatch):
    from retain.study.config import load_study_config
    from retain.study.run import Study

    monkeypatch.setenv("RETAIN_DATA_DIR", str(DATA))
    config = load_study_config(CONFIG, {"model": "unused-until-run"})
    study = Study(config, Path("/nonexistent-out"))
    assert study.target.task.family == "summarization"
    assert {st.task.family for st in study.tasks.values() if st.role == "protected"} == {"ner", "sentiment", "qa"}
    methods = {m.method for m in config.methods}
    assert {"full", "lora", "multitask", "replay", "wise-ft"} <= methods and methods & {"l2sp", "ewc"}
