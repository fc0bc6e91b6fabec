"""Typed training settings, the resolved run config, and parsing of `--set key=value` options.

`TrainSettings` holds everything about *how* to train that is independent of the method (steps,
batch size, learning-rate schedule, precision, checkpointing). Each field is documented once, in its
`description`; the CLI builds its `--help` from these descriptions. Bad values raise `UserError` at
construction, before any model is loaded.

`RunConfig` is what a run directory records in `config.yaml`: base model, target task, the method's
resolved options and the settings. A run is resumed only into a directory whose config matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from retain.config import read_yaml, validated

SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial",
              "inverse_sqrt")


class TrainSettings(BaseModel):
    """How to train, whatever the method. Every field can be set from the CLI (`--field-name`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_examples: int | None = Field(None, gt=0, description="Use only the first N training examples of the target.")
    eval_examples: int = Field(64, ge=0, description="Validation examples for the held-out loss (0 turns it off).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training mixture (ignored when max_steps is set).")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps to train for (overrides epochs).")
    batch_size: int = Field(8, gt=0, description="Examples per micro-batch.")
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate (default: the method's).")
    warmup: float = Field(0.06, ge=0, description="Warmup: a fraction of all steps if < 1, else a number of steps.")
    scheduler: str = Field("linear", description=f"Learning-rate schedule after warmup ({', '.join(SCHEDULERS)}).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    max_grad_norm: float = Field(1.0, ge=0, description="Clip the gradient norm to this (0 turns clipping off).")
    seed: int = Field(0, description="Seed for initialisation, data order, dropout and mixtures.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 mixed precision on GPUs and CPUs (AMX / AVX512-BF16) that support it, "
                          "fp32 elsewhere; fp32 opts out.")
    max_source_length: int = Field(512, gt=0, description="Prompt tokens kept (seq2seq: truncated at the end; "
                                                          "decoder-only: at the start).")
    max_target_length: int = Field(128, gt=1, description="Target tokens kept, EOS included.")
    chat: Literal["auto", "on", "off"] = Field(
        "auto", description="Chat template for decoder-only chat models (as in evaluation): auto, on, off.")
    group_by_length: bool = Field(True, description="Batch examples of similar length together (less padding).")
    packing: bool = Field(True, description="Decoder-only models: pack each batch's examples into rows of up to "
                                            "max_seq_length tokens, attention kept within each example (no "
                                            "padding between examples); off: pad to the longest. Seq2seq always pads.")
    max_seq_length: int | None = Field(None, gt=0, description="Tokens per packed row (default: max_source_length "
                                                               "+ max_target_length, the longest an example can be).")
    save_steps: int = Field(200, gt=0, description="Write a resumable checkpoint every N optimizer steps.")
    save_total_limit: int = Field(2, gt=0, description="Checkpoints kept on disk while training.")
    keep_checkpoints: bool = Field(False, description="Keep the checkpoints after a run finishes.")
    keep_at: list[float] = Field(default_factory=list, description="Also keep the model at these points of "
                                 "training: fractions of all steps (0 < x < 1) or step numbers (whole, >= 1); "
                                 "written to OUT/steps/step-N (the adapter only, for PEFT methods).")
    eval_steps: int | None = Field(None, gt=0, description="Validation loss every N steps (default: save_steps; "
                                                           "always once at the end).")
    logging_steps: int = Field(10, gt=0, description="Log loss, learning rate and grad norm every N steps.")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto", description="Recompute activations in backward to save memory. auto: on when most weights are "
                            "frozen (adapters), where activations are most of the memory and recomputing them "
                            "costs about the weight gradients that are skipped, and a micro-batch's activations "
                            "are estimated at 512 MB or more.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    progress: bool = Field(True, description="Show a progress bar.")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {v!r} (use one of {', '.join(SCHEDULERS)})")
        return v

    @field_validator("keep_at")
    @classmethod
    def _points_of_training(cls, points: list[float]) -> list[float]:
        return points_of_training(points)

    @field_validator("warmup")
    @classmethod
    def _warmup_steps_whole(cls, v: float) -> float:
        if v >= 1 and v != int(v):
            raise ValueError("warmup >= 1 is a number of steps and must be whole")
        return v


def points_of_training(points: list[float]) -> list[float]:
    """`points` sorted, if each is a fraction of training (0 < x < 1) or a whole step number; else ValueError."""
    for x in points:
        if not x > 0 or (x >= 1 and x != int(x)):
            raise ValueError(f"{x} is neither a fraction of training (0 < x < 1) nor a whole step number")
    if len(set(points)) != len(points):
        raise ValueError(f"{points} repeats a point")
    return sorted(points)


class RunConfig(BaseModel):
    """Everything that defines a run; saved as `config.yaml` in the run directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    target: str
    method: dict[str, Any]
    settings: TrainSettings

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        data = read_yaml(path)
        return validated(cls, data, f"{path}")


def make_settings(options: Mapping[str, Any] | None = None) -> TrainSettings:
    """`TrainSettings` from a mapping (unknown keys and bad values raise `UserError`)."""
    return validated(TrainSettings, options or {}, "training settings")
