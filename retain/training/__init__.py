"""Training: the one loop every method shares, its typed settings, data handling and run metadata.

The study calls::

    from retain.training import TrainSettings, train
    from retain.methods import make_method

    result = train("google/flan-t5-small", "toy-ner", make_method("lora", {"r": 8}),
                   TrainSettings(max_steps=200), out_dir="runs/lora")
    lm = result.load()            # LoadedModel: base + adapter, or the fine-tuned model

Names are imported lazily so that `retain.methods` (which uses `retain.training.config`) and
`retain.training.loop` (which uses `retain.methods`) can import each other's modules.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "retain.training.loop",
    "load_trained": "retain.training.loop",
    "TrainResult": "retain.training.loop",
    "TrainSettings": "retain.training.config",
    "RunConfig": "retain.training.config",
    "make_settings": "retain.training.config",
    "Sample": "retain.training.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'retain.training' has no attribute {name!r}")
