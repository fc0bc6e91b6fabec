"""The study config: what to fine-tune, what to protect, which methods to compare, and the budget.

YAML -> `StudyConfig` (pydantic, unknown keys forbidden). Every problem becomes one line naming the
file and the key, e.g. `study.yaml: methods.1.optionz: unknown option`. Methods and training
settings are validated by the same code that trains them, so a typo fails before anything runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from retain.errors import UserError
from retain.evaluation.settings import EvalSettings
from retain.models.sources import DTYPE_NAMES, MODEL_HELP
from retain.config import read_yaml
from retain.config import validated
from retain.training.config import points_of_training

WISE_FT = "wise-ft"
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")

# Names become folder names and report text, so they are data, never paths or markup: letters,
# digits, '.', '_' and '-', starting with a letter or digit. '+' is left out on purpose: derived
# runs are named PARENT+NAME-ALPHA (WiSE-FT) and PARENT+step-N (checkpoints), so they can never collide
# with a run the user named.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def check_name(value: str, what: str) -> str:
    """`value` if it is a safe run or study name, else a ValueError saying what is allowed."""
    if not NAME_PATTERN.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} {value!r} is not allowed: use up to 80 letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit ('+' is reserved for derived runs)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(_Strict):
    """The task to fine-tune on."""

    task: str = Field(description="Task spec: a name, FAMILY:PATH or a task .yaml.")
    train_examples: int | None = Field(None, gt=0, description="Train on the first N training examples.")
    fewshot: int | None = Field(None, ge=0, description="Solved examples in each evaluation prompt (training "
                                                        "stays zero-shot); default: the task's own (0).")
    max_new_tokens: int | None = Field(None, gt=0, description="Cap on generated tokens when evaluating this task "
                                                               "(generation tasks); default: the task's own.")


class ProtectConfig(_Strict):
    """A capability that must survive fine-tuning."""

    task: str = Field(description="Task spec.")
    tolerance: float | None = Field(None, ge=0, le=1, description="Allowed drop for this task (overrides the "
                                                                  "budget), in metric units (metrics lie in [0, 1]).")
    fewshot: int | None = Field(None, ge=0, description="Solved examples in each evaluation prompt, from the "
                                                        "task's train (else validation) split; default: the task's own (0).")
    max_new_tokens: int | None = Field(None, gt=0, description="Cap on generated tokens when evaluating this task "
                                                               "(generation tasks); default: the task's own.")


class BudgetConfig(_Strict):
    """How much each protected task may drop (in its primary metric)."""

    max_drop: float = Field(0.05, ge=0, le=1, description="Allowed drop per protected task: metric units (metrics "
                                                          "lie in [0, 1]) or, with relative, a fraction of the base.")
    relative: bool = Field(False, description="max_drop is a fraction of the base score, not metric units.")


class MethodEntry(_Strict):
    """One run (or, for wise-ft, one sweep) to compare."""

    method: str = Field(description="Method name: full, lora, qlora (CUDA), multitask, replay, l2sp, ewc, wise-ft, any PEFT name.")
    name: str | None = Field(None, description="Run name (default: the method name).")
    options: dict[str, Any] = Field(default_factory=dict, description="Method options.")
    train: dict[str, Any] = Field(default_factory=dict, description="Training settings for this run only.")
    of: str | None = Field(None, description="wise-ft: the run to interpolate with the base.")
    alphas: list[float] | None = Field(None, description="wise-ft: interpolation weights (0 = base, 1 = tuned).")
    checkpoints: list[float] | None = Field(None, description="Keep the model at these points of training "
                                            "(fractions of all steps, 0 < x < 1, or step numbers) and evaluate "
                                            "each as the derived run NAME+step-N: the forgetting trajectory.")

    # Set once when the study config is validated (see `StudyConfig._typed_methods`): the method as a typed
    # config, and the entry's training settings (the study's `train`, then its own) without the seed.
    _method: Any = PrivateAttr(default=None)
    _settings: Any = PrivateAttr(default=None)

    @property
    def run_name(self) -> str:
        return self.name or self.method

    @property
    def method_config(self):
        """The validated method (`retain.methods.MethodConfig`); None for wise-ft entries."""
        return self._method

    @property
    def settings(self):
        """The validated training settings (`retain.training.TrainSettings`), seed 0; None for wise-ft."""
        return self._settings

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str | None) -> str | None:
        return None if name is None else check_name(name, "run name")

    @field_validator("checkpoints")
    @classmethod
    def _points(cls, points: list[float] | None) -> list[float] | None:
        return None if points is None else points_of_training(points)

    @model_validator(mode="after")
    def _wise_ft_fields(self):
        if self.method == WISE_FT:
            if not self.of:
                raise ValueError("wise-ft needs 'of': the name of the run to interpolate")
            if not self.alphas or any(not 0 <= a <= 1 for a in self.alphas):
                raise ValueError("wise-ft needs 'alphas', a list of numbers in [0, 1]")
            if len(set(self.alphas)) != len(self.alphas):
                raise ValueError(f"alphas {self.alphas} repeat a value: each alpha is one run")
            if self.checkpoints:
                raise ValueError("wise-ft trains nothing, so it has no checkpoints")
        elif self.of is not None or self.alphas is not None:
            raise ValueError("'of' and 'alphas' are for wise-ft only")
        return self


class StudyEvalSettings(EvalSettings):
    """A study's `eval:`: the evaluation settings (`retain.evaluation.runner.EvalSettings`), with a study's
    defaults (200 examples, batches of 32), and how many forgotten examples the report keeps.

    Few-shot is per task in a study (`fewshot:` on the target or a protected entry), not here.
    """

    limit: int | None = Field(200, gt=0, description="Examples per task (first N of the split).")
    batch_size: int = Field(32, gt=0, description="Prompts per forward pass.")
    forgotten_examples: int = Field(10, ge=0, description="Forgotten examples kept per run and task.")

    # Inside a study file a bad value is a validation error that the loader words with the file and key
    # (EvalSettings' own __init__ turns it into a bare UserError, for the command line and Python).
    __init__ = BaseModel.__init__

    @field_validator("fewshot")
    @classmethod
    def _per_task(cls, value):
        if value is not None:
            raise ValueError("few-shot is set per task in a study: 'fewshot: K' on the target or a protect entry")
        return value

    def evaluation(self) -> EvalSettings:
        """The evaluation settings alone (what cache keys and results are made of)."""
        return EvalSettings(**self.model_dump(exclude={"forgotten_examples"}))


class StudyConfig(_Strict):
    """A whole study. See docs/study.md for an annotated example."""

    name: str = Field("study", description="Study name (report title).")
    model: str = Field(description=f"Base model: {MODEL_HELP}.")
    target: TargetConfig
    protect: list[ProtectConfig] = Field(min_length=1, description="Capabilities to keep.")
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    methods: list[MethodEntry] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1,
                             description="Training seeds, each one run per method (0 <= seed < 2**32).")
    train: dict[str, Any] = Field(default_factory=dict, description="Training settings shared by every run.")
    eval: StudyEvalSettings = Field(default_factory=StudyEvalSettings)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    dtype: str = Field("auto", description="Evaluation precision: auto, float32, bfloat16, float16 or bf16-autocast.")
    cache_dir: str | None = Field(None, description="Evaluation cache (default ~/.cache/retain/eval).")
    lm_eval_include: list[str] = Field(default_factory=list,
                                       description="Folders of local lm-eval task YAMLs for lm-eval:TASK tasks.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        return check_name(name, "study name")

    @field_validator("seeds")
    @classmethod
    def _good_seeds(cls, seeds: list[int]) -> list[int]:
        if any(not 0 <= s < 2**32 for s in seeds):
            raise ValueError("seeds must lie in [0, 2**32): torch and numpy take no other")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds} repeat a value: a repeated seed repeats the same runs")
        return seeds

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
        return device

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, dtype: str) -> str:
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}: use {', '.join(DTYPE_NAMES)}")
        return dtype

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        # `target: toy-summarize` and `protect: [toy-ner, ...]` are accepted as shorthands.
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("target"), str):
                data["target"] = {"task": data["target"]}
            if isinstance(data.get("protect"), list):
                data["protect"] = [{"task": p} if isinstance(p, str) else p for p in data["protect"]]
            if isinstance(data.get("methods"), list):
                data["methods"] = [{"method": m} if isinstance(m, str) else m for m in data["methods"]]
        return data

    @field_validator("methods")
    @classmethod
    def _unique_names(cls, methods: list[MethodEntry]) -> list[MethodEntry]:
        seen: set[str] = set()
        for m in methods:
            if m.run_name in seen:
                raise ValueError(f"two runs are named {m.run_name!r}; give one a 'name'")
            seen.add(m.run_name)
        for m in methods:
            if m.method == WISE_FT and m.of not in seen - {m.run_name}:
                raise ValueError(f"wise-ft 'of: {m.of}' names no run of this study")
            if m.method == WISE_FT and next(x for x in methods if x.run_name == m.of).method == WISE_FT:
                raise ValueError("wise-ft cannot interpolate another wise-ft run")
        return methods

    @model_validator(mode="after")
    def _typed_methods(self):
        """Each training entry's method and settings, validated here, once, by the code that trains them."""
        from retain.methods import make_method
        from retain.training.config import make_settings

        for i, entry in enumerate(self.methods):
            if entry.method == WISE_FT:
                continue
            merged = {"progress": False, **self.train, **entry.train}
            if entry.checkpoints:
                merged["keep_at"] = entry.checkpoints
            if self.target.train_examples is not None:
                merged.setdefault("train_examples", self.target.train_examples)
            if self.device != "auto":
                merged.setdefault("device", self.device)
            try:
                entry._method = make_method(entry.method, entry.options)
                entry._settings = make_settings(merged)
            except UserError as e:
                raise ValueError(f"methods.{i} ({entry.run_name}): {e.message}") from None
        return self

    @model_validator(mode="after")
    def _tasks_distinct(self):
        names = [self.target.task] + [p.task for p in self.protect]
        if len(set(names)) != len(names):
            raise ValueError("the target and the protected tasks must all be different")
        return self


def load_study_config(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Read and validate a study YAML (relative data paths stay relative to the working directory).

    Raises:
        UserError: one line naming the file and the key.
    """
    data = read_yaml(path)
    data.update(overrides or {})
    return validated(StudyConfig, data, str(path))
