"""Evaluate a model on tasks: requests -> engine -> cache -> per-example metrics -> results.

`evaluate_task` returns a `TaskResult` holding the predictions and the per-example `Scores`, from
which the JSON summary (values with 95% bootstrap CIs) and paired comparisons are made.
`evaluate` runs several tasks and returns the document `retain eval` writes (schema in
docs/results-schema.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from retain.errors import UserError
from retain.evaluation import engine
from retain.evaluation.bootstrap import summarize
from retain.evaluation.cache import EvalCache
from retain.evaluation.metrics import Scores, score
from retain.models.loading import LoadedModel
from retain.tasks.base import Example, Task


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate.

    Attributes:
        split: which split of each task (`test` by default).
        limit: evaluate only the first N examples of the split.
        batch_size: prompts per forward pass.
        chat: chat-template mode for decoder-only chat models (`auto`, `on`, `off`).
        n_boot: bootstrap resamples for confidence intervals.
        seed: bootstrap seed.
    """

    split: str = "test"
    limit: int | None = None
    batch_size: int = 16
    chat: str = "auto"
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"limit must be a positive number of examples, got {self.limit}")
        if self.batch_size <= 0:
            raise UserError(f"batch size must be positive, got {self.batch_size}")
        if self.n_boot <= 0:
            raise UserError(f"n_boot must be positive, got {self.n_boot}")


@dataclass
class TaskResult:
    """One model's outputs and scores on one task split."""

    task: Task
    examples: list[Example]
    predictions: list[str]
    scores: Scores
    choice_logprobs: list[list[float]] | None = None
    from_cache: bool = False
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)

    def outputs(self) -> dict:
        """The raw model outputs, enough to rebuild this result with `result_from_outputs`."""
        out = {"ids": [ex.id for ex in self.examples], "predictions": self.predictions}
        if self.choice_logprobs is not None:
            out["choice_logprobs"] = self.choice_logprobs
        return out

    def to_json(self) -> dict:
        examples = []
        for i, (ex, pred) in enumerate(zip(self.examples, self.predictions)):
            item = {"id": ex.id, "prompt": ex.prompt, "prediction": pred, "reference": ex.target,
                    "references": list(ex.references),
                    "scores": {k: float(v[i]) for k, v in self.scores.per_example.items()}}
            if self.choice_logprobs is not None:
                item["choices"] = list(ex.choices)
                item["choice_logprobs"] = self.choice_logprobs[i]
            examples.append(item)
        return {"n": len(self.examples), "kind": self.task.kind, "metric": self.task.metric,
                "primary": self.scores.primary, "metrics": self.metrics, "from_cache": self.from_cache,
                "seconds": round(self.seconds, 3), "examples": examples}


def _settings_key(lm: LoadedModel, settings: EvalSettings) -> dict:
    return {"dtype": str(lm.dtype), "device": lm.device.type, "chat": settings.chat}


def _run_engine(lm: LoadedModel, task: Task, examples: list[Example], settings: EvalSettings,
                progress) -> dict:
    if task.kind == "choice":
        requests, owners = [], []
        for k, ex in enumerate(examples):
            if not ex.choices:
                raise UserError(f"task {task.name}: example {ex.id} has no choices")
            for choice in ex.choices:
                requests.append((ex.prompt, choice))
                owners.append(k)
        values = engine.loglikelihood(lm, requests, batch_size=settings.batch_size, chat=settings.chat,
                                      progress=(lambda n: progress(n / max(len(ex.choices), 1)))
                                      if progress else None)
        logprobs: list[list[float]] = [[] for _ in examples]
        for k, v in zip(owners, values):
            logprobs[k].append(v)
        preds = [ex.choices[max(range(len(lp)), key=lp.__getitem__)] for ex, lp in zip(examples, logprobs)]
        return {"predictions": preds, "choice_logprobs": logprobs}
    preds = engine.generate(lm, [ex.prompt for ex in examples], task.max_new_tokens,
                            batch_size=settings.batch_size, chat=settings.chat, progress=progress)
    return {"predictions": preds}


def evaluate_task(lm: LoadedModel, task: Task, settings: EvalSettings = EvalSettings(),
                  cache: EvalCache | None = None, progress: Callable[[float], None] | None = None) -> TaskResult:
    """Evaluate one task split, reusing cached outputs for the same model, data and settings."""
    start = time.perf_counter()
    examples = task.examples(settings.split, settings.limit)
    key = EvalCache.key(lm.fingerprint, task.identity(settings.split, settings.limit), _settings_key(lm, settings))
    entry = cache.get(key) if cache is not None else None
    from_cache = entry is not None and entry.get("ids") == [ex.id for ex in examples]
    if not from_cache:
        entry = _run_engine(lm, task, examples, settings, progress)
        entry["ids"] = [ex.id for ex in examples]
        if cache is not None:
            cache.put(key, entry)
    elif progress:
        progress(len(examples))
    result = result_from_outputs(task, examples, entry, settings)
    result.from_cache = from_cache
    result.seconds = time.perf_counter() - start
    return result


def result_from_outputs(task: Task, examples: list[Example], outputs: dict, settings: EvalSettings) -> TaskResult:
    """Score stored outputs (`{"predictions": [...], "choice_logprobs": [...]?}`) against the examples.

    Metrics are cheap, so they are always recomputed from outputs (cached or saved in a study).
    """
    scores = score(task.metric, outputs["predictions"], [list(ex.references) for ex in examples],
                   ids=[ex.id for ex in examples])
    result = TaskResult(task=task, examples=examples, predictions=list(outputs["predictions"]), scores=scores,
                        choice_logprobs=outputs.get("choice_logprobs"))
    result.metrics = summarize(scores, n_boot=settings.n_boot, seed=settings.seed)
    return result


def evaluate(lm: LoadedModel, tasks: list[Task], settings: EvalSettings = EvalSettings(),
             cache: EvalCache | None = None, progress_factory=None) -> dict:
    """Evaluate `lm` on every task; returns the `retain eval` results document.

    Args:
        progress_factory: optional `factory(task, total) -> callable(advance)` for progress bars.
    """
    doc = {"model": lm.describe(), "settings": {"split": settings.split, "limit": settings.limit,
                                                "batch_size": settings.batch_size, "chat": settings.chat,
                                                "n_boot": settings.n_boot, "seed": settings.seed},
           "tasks": {}}
    for task in tasks:
        progress = progress_factory(task, len(task.examples(settings.split, settings.limit))) if progress_factory else None
        doc["tasks"][task.name] = evaluate_task(lm, task, settings, cache, progress).to_json()
    return doc
