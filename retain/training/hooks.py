"""What the training loop asks of a method: the `TrainingMethod` protocol, and the `TrainContext` its
hooks receive.

Defined here, in `retain.training`, so that the loop never imports `retain.methods`: methods sit above
training and implement this interface (`retain.methods.base.MethodConfig`). The loop calls, in order:

1. `training_samples(ctx)`: the training mixture;
2. `prepare_model(model, ctx)`: the model to train (e.g. wrapped with an adapter);
3. `make_penalty(model, ctx)`: an optional extra loss term, added once per optimizer step;
4. `finish(model, ctx, out_dir)`: work after the model is saved; returns extra metadata.

A method may also have `load_options()`, extra `load_model` arguments for the base it trains (QLoRA's
4-bit base); without it the base loads as usual (`method_load_options`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from retain.errors import UserError
from retain.training.config import TrainSettings
from retain.training.data import Sample, samples_from_examples

Penalty = Callable[[], torch.Tensor]  # returns a scalar added to the loss of every optimizer step


@runtime_checkable
class TrainingMethod(Protocol):
    """A fine-tuning method as the loop sees it."""

    name: str

    def describe(self) -> dict[str, Any]:
        """`{"name": ..., **options}`: what the run's config.yaml records (and compares on resume)."""

    def learning_rate(self) -> float:
        """The learning rate used when the settings give none."""

    def training_samples(self, ctx: TrainContext) -> list[Sample]: ...

    def prepare_model(self, model: torch.nn.Module, ctx: TrainContext) -> torch.nn.Module: ...

    def make_penalty(self, model: torch.nn.Module, ctx: TrainContext) -> Penalty | None: ...

    def finish(self, model: torch.nn.Module, ctx: TrainContext, out_dir: Path) -> dict: ...




def method_load_options(method) -> dict[str, Any]:
    """The method's extra `load_model` arguments (its optional `load_options()`; none without it)."""
    get = getattr(method, "load_options", None)
    return dict(get()) if callable(get) else {}


def check_runs_on(method, device: torch.device) -> None:
    """Refuse, with one line, a method this device cannot train (QLoRA's 4-bit base off CUDA)."""
    from retain.models.quantization import check_quantization

    check_quantization(method_load_options(method).get("quantize"), device)


@dataclass
class TrainContext:
    """What a method's hooks may use.

    Attributes:
        base: the base model as loaded (`LoadedModel`: model, tokenizer, is_seq2seq), before
            `prepare_model`; self-replay generates with it.
        target: the target task.
        settings: the training settings.
        target_samples: the target task's training samples (validation slice already removed).
        out_dir: the run directory.
    """

    base: Any
    target: Any
    settings: TrainSettings
    target_samples: list[Sample]
    out_dir: Path

    @property
    def tokenizer(self):
        return self.base.tokenizer

    @property
    def is_seq2seq(self) -> bool:
        return self.base.is_seq2seq

    def task_samples(self, spec: str, limit: int | None = None, splits: tuple[str, ...] = ("train",)) -> list[Sample]:
        """Samples of another task (by spec), from the first of `splits` it has.

        Raises:
            UserError: unknown task, or none of `splits` exists (test data is never trained on).
        """
        from retain.tasks import get_task

        task = get_task(spec)
        for split in splits:
            if task.has_split(split):
                return samples_from_examples(task.examples(split, limit), task.name)
        raise UserError(f"task {task.name} has no {' or '.join(repr(s) for s in splits)} split to train on "
                        f"(it has: {', '.join(task.splits)})")
