"""On-disk cache of evaluation outputs.

A cache entry holds a model's raw outputs (greedy predictions, or per-choice log-likelihoods) for
every example of one task split. The key covers everything that can change those outputs: the model
fingerprint (weights, config, tokenizer, chat template, generation config, adapter), the task's
family, version, kind, generation length and data hash
(with few-shot prompts: k, seed and every example's shots; zero-shot keys carry none of it, so they
are those from before few-shot existed), and the evaluation settings (dtype, chat mode, engine version). Two different models therefore never
share an entry, and editing a data file invalidates its entries.

Metrics are not cached: they are recomputed from the outputs in milliseconds, so a metric fix never
serves stale scores. Entries are written atomically, so concurrent jobs can share one cache folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from retain.distributed import is_main
from retain.io import atomic_write_json, sha256_json
from retain.models.fingerprint import cache_root

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"  # bump when the engine's outputs change for the same model and prompts


class EvalCache:
    """A folder of cached evaluation outputs, one JSON file per key."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_root() / "eval"
        self.enabled = enabled
        self._warned = False

    @staticmethod
    def key(fingerprint: str, task_identity: dict, settings: dict) -> str:
        return sha256_json({"model": fingerprint, "task": task_identity, "settings": settings,
                            "engine": ENGINE_VERSION})

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing or unreadable entries are recomputed

    def put(self, key: str, entry: dict) -> None:
        """Store `entry`; a cache that cannot be written (read-only, full) is a warning, not a failure.

        Of the processes of one launch (torchrun), only the main one writes: they hold the same entry.
        """
        if not self.enabled or not is_main():
            return
        try:
            atomic_write_json(self._path(key), entry, indent=None)
        except OSError as e:
            if not self._warned:
                log.warning("evaluation cache %s is not writable (%s); evaluating without storing results",
                            self.root, e.strerror or e)
                self._warned = True
