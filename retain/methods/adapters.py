"""Any PEFT method by name (`ia3`, `prompt_tuning`, `loha`, ...), options passed through to PEFT.

`--method ia3 --set target_modules=[q,v] --set feedforward_modules=[]` builds `peft.IA3Config` with
those options. Option names are checked against the PEFT config class's fields and the config is
built once at validation time, so a bad option fails before any model is loaded. `task_type` is
filled in from the model (seq2seq or causal) at training time unless given.

The shared helpers here (`apply_peft`, `peft_config_class`) are also what `lora.py` uses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import torch
from pydantic import Field, model_validator

from retain.errors import UserError, one_line
from retain.methods.base import MethodConfig, TrainContext, register_fallback

# Prompt-learning methods train a few embeddings and need much larger steps than weight adapters.
_LEARNING_RATES = {"PROMPT_TUNING": 3e-2, "P_TUNING": 3e-2, "PREFIX_TUNING": 3e-2, "IA3": 3e-3}
_TASK_TYPE_PLACEHOLDER = "CAUSAL_LM"


def peft_type_of(name: str) -> str | None:
    """PEFT's type name for what a user typed (`prompt-tuning` -> `PROMPT_TUNING`), or None."""
    from peft import PeftType

    key = name.strip().upper().replace("-", "_")
    return key if key in PeftType.__members__ else None


def peft_config_class(peft_type: str):
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    import peft  # noqa: F401  (importing peft registers its methods)

    cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
    if cls is None:
        raise UserError(f"PEFT has no config class for {peft_type}")
    return cls


def build_peft_config(peft_type: str, options: Mapping[str, Any], task_type: str):
    """Instantiate the PEFT config class with `options` (errors become one-line `UserError`s)."""
    cls = peft_config_class(peft_type)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"method {peft_type.lower()}: unknown option {unknown[0]!r} for {cls.__name__}")
    kwargs = {k: _typed(cls, k, v, peft_type) for k, v in options.items()}
    kwargs.setdefault("task_type", task_type)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"method {peft_type.lower()}: {one_line(e)}") from None


def _typed(cls, name: str, value, peft_type: str):
    """Check (and coerce) one option against the PEFT dataclass field's type; PEFT itself does not."""
    import typing

    from pydantic import TypeAdapter, ValidationError

    try:
        hint = typing.get_type_hints(cls)[name]
        adapter = TypeAdapter(hint)
    except Exception:  # a type pydantic cannot check: leave it to PEFT
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as e:
        msg = e.errors()[0]["msg"] if e.errors() else str(e)
        raise UserError(f"method {peft_type.lower()}: {name}: {msg} (got {value!r})") from None


def task_type_for(ctx: TrainContext) -> str:
    return "SEQ_2_SEQ_LM" if ctx.is_seq2seq else "CAUSAL_LM"


def apply_peft(model: torch.nn.Module, peft_config) -> torch.nn.Module:
    """Wrap `model` with a fresh adapter; only the adapter's parameters train."""
    import warnings

    from peft import get_peft_model

    try:
        with warnings.catch_warnings():
            # peft reads transformers' deprecated `is_gradient_checkpointing`; nothing for users to fix.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, peft_config)
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise UserError(f"cannot apply {peft_config.peft_type} to this model: {one_line(e)}") from None


class PeftMethod(MethodConfig):
    """A PEFT method given by its name, with options passed to its PEFT config class.

    Attributes:
        peft_type: PEFT's name for it (`IA3`, `PROMPT_TUNING`, ...; any case, `-` or `_`).
        options: fields of the PEFT config class (e.g. `num_virtual_tokens` for prompt tuning).
    """

    name: ClassVar[str] = "peft"
    peft_type: str
    options_: dict[str, Any] = Field(default_factory=dict, alias="options")

    @model_validator(mode="after")
    def _check(self) -> "PeftMethod":
        key = peft_type_of(self.peft_type)
        if key is None:
            raise ValueError(f"unknown PEFT method {self.peft_type!r}")
        object.__setattr__(self, "peft_type", key)
        build_peft_config(key, self.options_, _TASK_TYPE_PLACEHOLDER)  # fail now, not after loading
        return self

    def learning_rate(self) -> float:
        return _LEARNING_RATES.get(self.peft_type, 3e-4)

    def prepare_model(self, model, ctx):
        return apply_peft(model, build_peft_config(self.peft_type, self.options_, task_type_for(ctx)))

    def finish(self, model, ctx, out_dir) -> dict:
        return {"peft_type": self.peft_type}

    def describe(self) -> dict[str, Any]:
        # Round-trips through make_method(name, options): the PEFT name is the method name.
        return {"name": self.peft_type.lower(), **self.options_}


@register_fallback
def _peft_by_name(name: str, options: Mapping[str, Any]) -> MethodConfig | None:
    key = peft_type_of(name)
    if key is None:
        return None
    from retain.config import validated

    return validated(PeftMethod, {"peft_type": key, "options": dict(options)}, f"method {name}")
