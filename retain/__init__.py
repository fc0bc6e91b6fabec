"""retain: fine-tune a language model on one task and measure what it forgot on the way.

The Python API, for notebooks and pipelines (the same functions the `retain` command uses)::

    import retain

    lm = retain.load_model("HuggingFaceTB/SmolLM2-135M-Instruct")          # or a folder, a .gguf
    doc = retain.evaluate(lm, [retain.get_task("summarization:data/dialogsum")],
                          retain.EvalSettings(limit=200))                   # scores with 95% CIs
    run = retain.train("model-dir", "summarization:data/dialogsum", retain.make_method("lora", {"r": 16}),
                       retain.make_settings({"epochs": 1}), out_dir="runs/lora")
    results = retain.run_study(retain.load_study_config("study.yaml"), "runs/study")
    retain.study_worker(config, "runs/study")           # one of several workers on one study (docs/scale-out.md)
    retain.render_report(results, "runs/study")

Names load on first use, so `import retain` stays light (no torch, no transformers) for the CLI.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_model": "retain.models.loading",
    "LoadedModel": "retain.models.loading",
    "get_task": "retain.tasks",
    "Task": "retain.tasks.base",
    "evaluate": "retain.evaluation.runner",
    "evaluate_task": "retain.evaluation.runner",
    "EvalSettings": "retain.evaluation.settings",
    "train": "retain.training.loop",
    "make_settings": "retain.training.config",
    "TrainSettings": "retain.training.config",
    "make_method": "retain.methods",
    "load_study_config": "retain.study.config",
    "run_study": "retain.study.run",
    "study_worker": "retain.study.workers",
    "StudyConfig": "retain.study.config",
    "render_report": "retain.report",
    "UserError": "retain.errors",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'retain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
