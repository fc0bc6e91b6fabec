"""Shared by the study tests: a study run to the end, then run again over the same folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from retain.study.config import StudyConfig
from retain.study.run import run_study


def study_twice(config: dict, root: Path, log: Callable[[str], None] = lambda _: None):
    """Run `config` into ROOT/out with a private evaluation cache, then again (everything reused).

    Returns (out folder, first results, second results, the second run's log lines).
    """
    os.environ["RETAIN_CACHE_DIR"] = str(root / "cache")
    try:
        doc = run_study(StudyConfig(**config), root / "out", log=log)
        again: list[str] = []
        doc2 = run_study(StudyConfig(**config), root / "out", log=again.append)
    finally:
        os.environ.pop("RETAIN_CACHE_DIR", None)
    return root / "out", doc, doc2, again
