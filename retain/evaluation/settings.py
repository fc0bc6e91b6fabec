"""`EvalSettings`: how to evaluate, the one settings type of `retain eval`, a study's `eval:` and the API.

Its own module, importing only pydantic, so that a study config can be validated without torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retain.errors import UserError


class EvalSettings(BaseModel):
    """How to evaluate: the one settings type of `retain eval`, a study's `eval:` and the Python API.

    Validated when made: a bad value from Python or the command line is a `UserError` naming the
    setting; inside a study file the study's loader names the file and key.

    Attributes:
        split: which split of each task (`test` by default).
        limit: evaluate only the first N examples of the split.
        batch_size: prompts per forward pass.
        chat: chat-template mode for decoder-only chat models (`auto`, `on`, `off`).
        n_boot: bootstrap resamples for confidence intervals.
        seed: bootstrap seed.
        fewshot: solved examples in each prompt; None: each task's own default (0 unless its YAML says).
        fewshot_seed: seed of the draw of those examples (the same for every model evaluated).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: Literal["train", "validation", "test"] = Field("test", description="Split of every task to evaluate on.")
    limit: int | None = Field(None, gt=0, description="Examples per task (first N of the split).")
    batch_size: int = Field(16, gt=0, description="Prompts per forward pass.")
    chat: Literal["auto", "on", "off"] = Field("auto", description="Chat template mode for decoder-only chat models.")
    n_boot: int = Field(1000, gt=0, le=100_000, description="Bootstrap resamples for CIs and paired tests.")
    seed: int = Field(0, description="Bootstrap seed.")
    fewshot: int | None = Field(None, ge=0, description="Solved examples in each prompt (None: each task's own).")
    fewshot_seed: int = Field(0, description="Seed of the few-shot draw (the same for the base and every run).")

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise UserError(f"evaluation setting {where}: {first['msg']} (got {first.get('input')!r})") from None

    def but(self, **changes) -> "EvalSettings":
        """A copy with `changes`, validated."""
        return type(self)(**{**self.model_dump(), **changes})
