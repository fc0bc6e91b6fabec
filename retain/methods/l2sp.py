"""L2-SP: full fine-tuning with a pull towards the starting (base) weights.

The penalty added to every optimizer step's loss is `lambda * sum_i F_i (theta_i - theta0_i)^2`
over all trainable weights, with theta0 the base weights and F_i = 1 (Li et al. 2018, "Explicit
inductive bias for transfer learning with convolutional networks"). EWC (`ewc.py`) is the same
penalty with F the diagonal Fisher information; both use `AnchorPenalty`.

Memory: one fp32 copy of the trainable weights (the anchor), plus F for EWC.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from retain.methods.base import MethodConfig, Penalty, TrainContext, register_method


class AnchorPenalty:
    """`lam * sum_i F_i (theta_i - theta0_i)^2`, anchored at the parameters' values at construction.

    Args:
        params: the trainable parameters (the penalty reads their live values at each call).
        lam: the strength lambda.
        importance: one tensor per parameter (F_i), or None for F = 1.
    """

    def __init__(self, params: list[torch.nn.Parameter], lam: float, importance: list[torch.Tensor] | None = None):
        self.params = params
        self.lam = lam
        self.anchors = [p.detach().clone() for p in params]
        self.importance = importance
        if importance is not None and len(importance) != len(params):
            raise ValueError("one importance tensor per parameter")

    def __call__(self) -> torch.Tensor:
        total = self.params[0].new_zeros((), dtype=torch.float32)
        for i, (p, p0) in enumerate(zip(self.params, self.anchors)):
            sq = (p.float() - p0.float()).pow(2)
            total = total + (sq * self.importance[i] if self.importance is not None else sq).sum()
        return self.lam * total


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    seen, out = set(), []
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:  # tied weights count once
            seen.add(id(p))
            out.append(p)
    return out


@register_method
class L2SPMethod(MethodConfig):
    """Full fine-tuning plus `lambda * ||theta - theta_base||^2`.

    Attributes:
        lam: the strength lambda (write it as `lambda`); 0 is plain full fine-tuning.
    """

    name: ClassVar[str] = "l2sp"
    default_learning_rate: ClassVar[float] = 1e-4

    lam: float = Field(0.01, ge=0, alias="lambda")

    def make_penalty(self, model: torch.nn.Module, ctx: TrainContext) -> Penalty | None:
        return AnchorPenalty(trainable(model), self.lam) if self.lam > 0 else None
