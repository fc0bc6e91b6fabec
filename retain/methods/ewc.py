"""EWC: full fine-tuning with a Fisher-weighted pull towards the base weights.

Penalty: `lambda * sum_i F_i (theta_i - theta0_i)^2` (Kirkpatrick et al. 2017), with F the diagonal
*empirical* Fisher of the base model on protected-task data: the mean over examples of the squared
gradient of the example's log-likelihood (summed over its target tokens), each example on its own
(batch size 1), so F is a true per-example diagonal rather than a squared batch mean. The estimate
uses the protected tasks' train (or validation) examples and their reference answers; test data is
never used. Dropout is off while estimating.

Cost: one forward and backward pass per Fisher example, before training; memory: F and the anchor,
two fp32 copies of the trainable weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from retain.errors import UserError
from retain.methods.base import MethodConfig, Penalty, TrainContext, register_method
from retain.methods.l2sp import AnchorPenalty, trainable
from retain.training.data import Collator, Encoder, Sample
from retain.training.loss import token_loss


@register_method
class EWCMethod(MethodConfig):
    """Full fine-tuning plus a diagonal-Fisher EWC penalty.

    Attributes:
        lam: the strength lambda (write it as `lambda`).
        tasks: protected tasks to estimate the Fisher on (train or validation split).
        fisher_examples: examples per task for the estimate.
    """

    name: ClassVar[str] = "ewc"
    default_learning_rate: ClassVar[float] = 1e-4

    lam: float = Field(100.0, ge=0, alias="lambda")
    tasks: list[str] = Field(min_length=1)
    fisher_examples: int = Field(64, gt=0)

    def make_penalty(self, model: torch.nn.Module, ctx: TrainContext) -> Penalty | None:
        samples = [s for spec in self.tasks
                   for s in ctx.task_samples(spec, self.fisher_examples, splits=("train", "validation"))]
        params = trainable(model)
        fisher = empirical_fisher(model, params, samples, ctx)
        return AnchorPenalty(params, self.lam, fisher) if self.lam > 0 else None


def empirical_fisher(model: torch.nn.Module, params: list[torch.nn.Parameter], samples: list[Sample],
                     ctx: TrainContext) -> list[torch.Tensor]:
    """Mean over samples of the squared gradient of each sample's log-likelihood (one per parameter)."""
    if not samples:
        raise UserError("method ewc: no examples to estimate the Fisher information on")
    s = ctx.settings
    encoder = Encoder(ctx.tokenizer, ctx.is_seq2seq, s.max_source_length, s.max_target_length, s.chat)
    collate = Collator(ctx.tokenizer.pad_token_id,
                       decoder_start_id=_start_id(model) if ctx.is_seq2seq else None)
    device = params[0].device
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the deterministic base model
    try:
        for sample in samples:
            batch = {k: v.to(device) for k, v in collate([encoder.encode(sample)]).items()}
            labels = batch.pop("labels")
            model.zero_grad(set_to_none=True)
            outputs = model(**batch)
            counted = labels if ctx.is_seq2seq else labels[:, 1:]  # causal: position 0 predicts nothing
            n_tokens = (counted != -100).sum()
            # token_loss gives the mean over target tokens; times their number = -log p(target | prompt)
            nll = token_loss(outputs, labels, shift=not ctx.is_seq2seq) * n_tokens
            nll.backward()
            for f, p in zip(fisher, params):
                if p.grad is not None:
                    f.add_(p.grad.detach().float().pow(2))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [f / len(samples) for f in fisher]


def _start_id(model) -> int:
    cfg = model.config
    return cfg.decoder_start_token_id if cfg.decoder_start_token_id is not None else cfg.pad_token_id
