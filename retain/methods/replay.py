"""Replay: mix general data into the target's training data so old abilities keep being exercised.

Two kinds of replay data, usable together:

- `sources`: labelled data from tasks or files, e.g. `instructions:PATH` (train splits only);
- `self_replay`: prompts of protected tasks answered by the *base* model itself (greedy), so the
  model is trained to keep giving its own old answers; no labels needed (a form of
  self-distillation, as in "self-synthesized rehearsal").

`ratio` is the share of replay examples in the final mixture: with n target examples, about
n * ratio / (1 - ratio) replay examples are added (so ratio must be below 1). Every weight trains.
"""

from __future__ import annotations

import random
from typing import ClassVar

from pydantic import Field, model_validator

from retain.errors import UserError
from retain.methods.base import MethodConfig, TrainContext, register_method
from retain.training.data import Sample
from retain.training.mixture import counts_for, draw, examples_proportional


@register_method
class ReplayMethod(MethodConfig):
    """Target data plus a share of replayed general or self-generated data.

    Attributes:
        ratio: share of replay examples in the mixture, in [0, 1).
        sources: labelled replay data: task specs or files (e.g. `instructions:PATH`).
        self_replay: protected tasks whose prompts the base model answers greedily.
        examples_per_source: examples taken from each source / self-replay task.
        max_new_tokens: generation length for self-replay (default: each task's own).
        generation_batch_size: prompts per forward pass for self-replay.
    """

    name: ClassVar[str] = "replay"
    default_learning_rate: ClassVar[float] = 1e-4

    ratio: float = Field(0.2, ge=0, le=1)
    sources: list[str] = Field(default_factory=list)
    self_replay: list[str] = Field(default_factory=list)
    examples_per_source: int = Field(256, gt=0)
    max_new_tokens: int | None = Field(None, gt=0)
    generation_batch_size: int = Field(16, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "ReplayMethod":
        if self.ratio >= 1:
            raise ValueError("ratio must be below 1 (it is the replay share of the mixture; 1 leaves no target data)")
        if self.ratio > 0 and not (self.sources or self.self_replay):
            raise ValueError("give replay data: sources (tasks or files) and/or self_replay (protected tasks)")
        return self

    def training_samples(self, ctx: TrainContext) -> list[Sample]:
        target = list(ctx.target_samples)
        n_replay = round(len(target) * self.ratio / (1 - self.ratio))
        if n_replay == 0:
            return target
        pools: dict[str, list[Sample]] = {}
        for spec in self.sources:
            samples = ctx.task_samples(spec, self.examples_per_source)
            pools[f"replay:{samples[0].source}"] = [Sample(s.prompt, s.target, f"replay:{s.source}") for s in samples]
        for spec in self.self_replay:
            pools.update(self_replay_pool(ctx, spec, self.examples_per_source, self.max_new_tokens,
                                          self.generation_batch_size))
        counts = counts_for(examples_proportional({k: len(v) for k, v in pools.items()}, None), n_replay)
        replay = [s for name in sorted(pools)
                  for s in draw(pools[name], counts[name], random.Random(f"{ctx.settings.seed}:{name}"))]
        mixture = target + replay
        random.Random(ctx.settings.seed).shuffle(mixture)
        return mixture


def self_replay_pool(ctx: TrainContext, spec: str, limit: int, max_new_tokens: int | None,
                     batch_size: int) -> dict[str, list[Sample]]:
    """The base model's own greedy answers to a task's train (or validation) prompts."""
    from retain.evaluation.engine import generate
    from retain.tasks import get_task

    task = get_task(spec)
    prompts = [s.prompt for s in ctx.task_samples(spec, limit, splits=("train", "validation"))]
    answers = generate(ctx.base, prompts, max_new_tokens or task.max_new_tokens, batch_size=batch_size)
    source = f"self:{task.name}"
    samples = [Sample(p, a, source) for p, a in zip(prompts, answers) if a.strip()]
    if not samples:
        raise UserError(f"method replay: the base model answered no {task.name} prompt (all empty); "
                        "self-replay has nothing to train on")
    return {source: samples}
