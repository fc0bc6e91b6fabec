"""Multi-task fine-tuning: train on a mixture of the target task and other tasks.

Each task's examples are rendered with its own prompt template (tasks render their prompts), and
drawn in proportion to either explicit weights or T5's examples-proportional mixing with a cap K
(rate_i proportional to min(n_i, K); Raffel et al. 2020, section 3.5.2). Every weight trains.

Mixture size per epoch, unless `size` is given: with explicit weights, enough that the target's
examples are each seen about once; with examples-proportional mixing, sum_i min(n_i, K).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from retain.errors import UserError
from retain.methods.base import MethodConfig, TrainContext, register_method
from retain.training.data import Sample
from retain.training.mixture import examples_proportional, mix, normalise

TARGET = "target"  # how weights refer to the target task


@register_method
class MultitaskMethod(MethodConfig):
    """Mixture of the target and other tasks.

    Attributes:
        tasks: the other tasks (specs such as `toy-qa` or `sentiment:PATH`); their train splits are used.
        weights: explicit relative weights by task spec, with `target` for the target task; all
            tasks must be named. Default: examples-proportional mixing.
        cap: K for examples-proportional mixing (None: no cap).
        examples_per_task: examples loaded from each other task (None: all).
        size: mixture examples per epoch (default: see the module docstring).
    """

    name: ClassVar[str] = "multitask"
    default_learning_rate: ClassVar[float] = 1e-4

    tasks: list[str] = Field(min_length=1)
    weights: dict[str, float] | None = None
    cap: int | None = Field(None, gt=0)
    examples_per_task: int | None = Field(None, gt=0)
    size: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "MultitaskMethod":
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks are listed twice")
        if self.weights is not None:
            wanted = {TARGET, *self.tasks}
            if set(self.weights) != wanted:
                missing, extra = sorted(wanted - set(self.weights)), sorted(set(self.weights) - wanted)
                raise ValueError(f"weights must name exactly 'target' and the tasks (missing: {missing}, "
                                 f"not a task: {extra})")
            if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
                raise ValueError("weights must be >= 0 and not all zero")
            if self.weights[TARGET] == 0:
                raise ValueError("the target's weight must be > 0")
        return self

    def training_samples(self, ctx: TrainContext) -> list[Sample]:
        target = ctx.target.name
        pools: dict[str, list[Sample]] = {target: list(ctx.target_samples)}
        spec_to_source = {TARGET: target}
        for spec in self.tasks:
            samples = ctx.task_samples(spec, self.examples_per_task)
            source = samples[0].source
            if source in pools:
                raise UserError(f"method multitask: task {spec!r} is the target or listed twice")
            pools[source] = samples
            spec_to_source[spec] = source
        sizes = {k: len(v) for k, v in pools.items()}
        if self.weights is not None:
            rates = normalise({spec_to_source[k]: w for k, w in self.weights.items()})
            size = self.size or round(sizes[target] / rates[target])
        else:
            rates = examples_proportional(sizes, self.cap)
            size = self.size or sum(min(n, self.cap) if self.cap else n for n in sizes.values())
        return mix(pools, rates, size, ctx.settings.seed)
