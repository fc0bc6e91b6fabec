"""Full fine-tuning: every weight of the model trains (the baseline every other method is compared to)."""

from __future__ import annotations

from typing import ClassVar

from retain.methods.base import MethodConfig, register_method


@register_method
class FullMethod(MethodConfig):
    """Every weight trains; no options. The trained model is saved in the standard HF layout."""

    name: ClassVar[str] = "full"
    default_learning_rate: ClassVar[float] = 1e-4
