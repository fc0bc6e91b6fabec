"""What a training method is, and the method registry.

A method is a typed config (a frozen pydantic model: unknown options and bad values raise `UserError`
on construction) with a few narrow hooks that the one training loop (`retain.training.loop`) calls in
this order:

1. `training_samples(ctx)`: the training mixture (default: the target task's training examples);
2. `prepare_model(model, ctx)`: e.g. wrap the model with a PEFT adapter, or choose what trains (the
   base was loaded with `load_options()`, e.g. in 4 bits for QLoRA);
3. `make_penalty(model, ctx)`: an optional extra loss term, e.g. L2-SP / EWC towards the base weights;
4. `finish(model, ctx, out_dir)`: after the model is saved, e.g. write WiSE-FT interpolations; returns
   extra metadata.

Methods register themselves where they are defined with `@register_method`; `make_method(name,
options)` builds one from what the user typed. Names no method claims can be resolved by fallbacks
(`register_fallback`), which is how any PEFT method (`ia3`, `prompt_tuning`, ...) works by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
from pydantic import BaseModel, ConfigDict

from retain.errors import UserError
from retain.config import validated
from retain.training.data import Sample
from retain.training.hooks import Penalty, TrainContext  # noqa: F401  (part of this module's interface)

class MethodConfig(BaseModel):
    """Base of every method config; subclasses add typed fields and override hooks.

    It is what `retain.training.hooks.TrainingMethod` asks of a method; the loop knows only that.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    name: ClassVar[str] = ""
    #: Learning rate used when the settings do not give one.
    default_learning_rate: ClassVar[float] = 1e-4

    def training_samples(self, ctx: TrainContext) -> list[Sample]:
        """The training mixture (default: the target's samples)."""
        return list(ctx.target_samples)

    def prepare_model(self, model: torch.nn.Module, ctx: TrainContext) -> torch.nn.Module:
        """Return the model to train (default: the model itself, every weight trainable)."""
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def make_penalty(self, model: torch.nn.Module, ctx: TrainContext) -> Penalty | None:
        """An extra loss term, or None (default)."""
        return None

    def finish(self, model: torch.nn.Module, ctx: TrainContext, out_dir: Path) -> dict:
        """Work after the trained model is saved; returns extra metadata (default: nothing)."""
        return {}

    def learning_rate(self) -> float:
        return self.default_learning_rate

    def load_options(self) -> dict[str, Any]:
        """Extra `retain.models.load_model` arguments for the base this method trains (default: none;
        QLoRA asks for a 4-bit base: `{"quantize": "nf4"}`)."""
        return {}

    def options(self) -> dict[str, Any]:
        """The resolved options (aliases as the user writes them)."""
        return self.model_dump(mode="json", by_alias=True)

    def describe(self) -> dict[str, Any]:
        """`{"name": ..., **options}`: what `config.yaml` records."""
        return {"name": self.name, **self.options()}


_METHODS: dict[str, type[MethodConfig]] = {}
_FALLBACKS: list[Callable[[str, Mapping[str, Any]], MethodConfig | None]] = []


def register_method(cls: type[MethodConfig]) -> type[MethodConfig]:
    """Class decorator registering a method config under its `name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    _METHODS[cls.name] = cls
    return cls


def register_fallback(resolver: Callable[[str, Mapping[str, Any]], MethodConfig | None]):
    """Register `resolver(name, options)`, tried for names no method claims (None: not mine)."""
    _FALLBACKS.append(resolver)
    return resolver


def method_names() -> list[str]:
    import retain.methods  # noqa: F401  (registers the built-in methods)

    return sorted(_METHODS)


def make_method(name: str, options: Mapping[str, Any] | None = None) -> MethodConfig:
    """Build a validated method config from its name and options.

    Args:
        name: a registered method (`full`, `lora`, ...) or a PEFT method name (`ia3`, ...).
        options: the method's options; a `name` key, if present, must agree with `name`.

    Raises:
        UserError: unknown method, unknown option, or a bad value.
    """
    import retain.methods  # noqa: F401

    options = dict(options or {})
    given = options.pop("name", None)
    key = name.strip().lower()
    if given is not None and str(given).strip().lower() != key:
        raise UserError(f"method options name {given!r} but the method is {name!r}")
    cls = _METHODS.get(key)
    if cls is not None:
        return validated(cls, options, f"method {key}")
    for resolver in _FALLBACKS:
        found = resolver(key, options)
        if found is not None:
            return found
    raise UserError(f"unknown method {name!r} (known: {', '.join(sorted(_METHODS))}; "
                    "or any PEFT method by name, e.g. ia3, prompt_tuning)")
