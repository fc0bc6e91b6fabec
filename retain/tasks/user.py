"""Tasks a user declares in a small YAML file, for their own data.

```yaml
name: capital-cities          # required
version: 1                    # optional, default "1"
kind: generate                # generate | choice
data: data/capitals.jsonl     # a file or folder (relative to this file), or {train: ..., test: ...}
prompt: "What is the capital of {country}?"
target: capital               # field holding the answer (choice tasks: the right choice's text or index)
references: aliases           # optional field with a list of other accepted answers
metric: exact_match           # rouge | entity_f1 | accuracy | squad | exact_match
choices: [yes, no]            # choice tasks only (or choices_field: a field holding each record's options)
max_new_tokens: 16
fewshot: 0                    # optional: solved examples (from train, else validation) in each evaluation prompt
description: one line for `retain tasks`
```

The file is validated with pydantic (unknown keys are errors) and every problem becomes a one-line
`UserError` naming the file and the key (or the YAML line). `yes`/`no`/`on`/`off` stay text: only
`true`/`false` are booleans, so `choices: [yes, no]` means what it says.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retain.config import load_yaml_file
from retain.errors import UserError, one_line
from retain.tasks.base import SPLITS, Example, Task, render, split_files
from retain.tasks.families import field_list, field_text, file_loader, raw_fields, record_id

METRICS = ("rouge", "entity_f1", "accuracy", "squad", "exact_match")
_SPLIT_ALIASES = {"train": "train", "validation": "validation", "dev": "validation", "val": "validation",
                  "test": "test"}


class UserTaskConfig(BaseModel):
    """The schema of a task YAML file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the task's name")
    version: str = Field("1", description="bump when prompts, data or scoring change")
    kind: Literal["generate", "choice"] = "generate"
    data: str | dict[str, str] = Field(description="a file or folder, or {split: file}, relative to the YAML file")
    prompt: str = Field(min_length=1, description="`{field}` template rendered with each record")
    target: str = Field(min_length=1, description="the field holding the answer")
    references: str | None = Field(None, description="a field with a list of other accepted answers")
    metric: Literal["rouge", "entity_f1", "accuracy", "squad", "exact_match"] | None = None
    choices: list[str] | None = Field(None, min_length=2, description="the options of a choice task")
    choices_field: str | None = Field(None, description="a field holding each record's options")
    max_new_tokens: int = Field(32, gt=0)
    fewshot: int = Field(0, ge=0, description="solved examples in each evaluation prompt (unless overridden)")
    description: str = ""

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("choices", mode="before")
    @classmethod
    def _choices_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("data", mode="before")
    @classmethod
    def _data_shape(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
            unknown = [k for k in value if str(k).lower() not in _SPLIT_ALIASES]
            if unknown:
                raise ValueError(f"unknown split {unknown[0]!r} (use {', '.join(SPLITS)})")
            return {str(k): v for k, v in value.items()}
        raise ValueError("must be a file or folder, or a mapping {train: FILE, test: FILE, ...}")

    @model_validator(mode="after")
    def _kind_fits(self) -> "UserTaskConfig":
        if self.kind == "choice":
            if (self.choices is None) == (self.choices_field is None):
                raise ValueError("key 'choices': a choice task needs exactly one of 'choices' or 'choices_field'")
            if self.metric not in (None, "accuracy"):
                raise ValueError(f"key 'metric': a choice task is scored with 'accuracy', not {self.metric!r}")
        elif self.choices is not None or self.choices_field is not None:
            raise ValueError("key 'choices': choices are only for kind: choice")
        if self.metric is None:
            self.metric = "accuracy" if self.kind == "choice" else "exact_match"
        return self


def read_task_config(path: str | Path) -> UserTaskConfig:
    """Read and validate a task YAML file.

    Raises:
        UserError: missing file, YAML syntax error (with its line) or a bad key, in one line.
    """
    path = Path(path).expanduser()
    raw = load_yaml_file(path)
    if not isinstance(raw, dict):
        raise UserError("expected a mapping of keys (name, data, prompt, target, ...)", path)
    try:
        return UserTaskConfig(**{str(k): v for k, v in raw.items()})
    except ValidationError as e:
        raise UserError(_describe(e), path) from None


def _describe(error: ValidationError) -> str:
    """One line naming each bad key and what is wrong with it."""
    known = list(UserTaskConfig.model_fields)
    parts = []
    for err in error.errors():
        key = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, known, n=1)
            msg = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})")
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if len(err["loc"]) > 1:
                msg = f"{'.'.join(str(p) for p in err['loc'][1:])}: {msg}"
        parts.append(f"key {key!r}: {msg}" if key else msg)
    return one_line("; ".join(parts))


def _data_files(config: UserTaskConfig, base: Path, yaml_path: Path) -> dict[str, Path]:
    if isinstance(config.data, str):
        return split_files(base / Path(config.data).expanduser())
    files = {}
    for split, name in config.data.items():
        file = base / Path(name).expanduser()
        if not file.is_file():
            raise UserError(f"key 'data': file not found: {file}", yaml_path)
        files[_SPLIT_ALIASES[split.lower()]] = file
    return files


def load_user_task(path: str | Path) -> Task:
    """Build a task from a task YAML file; its data files are read when examples are asked for.

    Args:
        path: the YAML file. Data paths in it are relative to the file's folder.

    Returns:
        The task (family = its name).

    Raises:
        UserError: a bad YAML file (naming the key) or missing data files.
    """
    yaml_path = Path(path).expanduser()
    config = read_task_config(yaml_path)
    files = _data_files(config, yaml_path.parent, yaml_path)

    def to_examples(split: str, file: Path, records: list[dict]) -> list[Example]:
        return [_example(config, rec, f"{file}:{rec.get('_line', i + 1)}", record_id(rec, file.stem, i))
                for i, rec in enumerate(records)]

    return Task(name=config.name, family=config.name, version=config.version, kind=config.kind,
                metric=config.metric, prompt_template=config.prompt, max_new_tokens=config.max_new_tokens,
                splits=tuple(s for s in SPLITS if s in files), loader=file_loader(files, to_examples),
                description=config.description or f"user task from {yaml_path}", fewshot=config.fewshot)


def _example(config: UserTaskConfig, record: dict, where: str, ex_id: str) -> Example:
    prompt = render(config.prompt, record, where)
    if config.kind == "choice":
        choices = (tuple(config.choices) if config.choices is not None
                   else tuple(str(c) for c in field_list(record, config.choices_field, where)))
        if len(choices) < 2:
            raise UserError(f"field {config.choices_field!r} needs at least two choices", where)
        label = _choice_label(record.get(config.target), choices, config.target, where)
        return Example(ex_id, prompt, choices[label], choices=choices, label=label, fields=raw_fields(record))
    target = field_text(record, config.target, where)
    refs = [target]
    if config.references is not None and record.get(config.references) is not None:
        value = record[config.references]
        others = [value] if isinstance(value, str) else field_list(record, config.references, where)
        refs += [str(r) for r in others if str(r) not in refs]
    return Example(ex_id, prompt, target, references=tuple(refs), fields=raw_fields(record))


def _choice_label(value: Any, choices: tuple[str, ...], field: str, where: str) -> int:
    """The index of the right choice from its text or its index (text wins when a choice is a digit)."""
    if value is None:
        raise UserError(f"missing field {field!r}", where)
    if isinstance(value, str) and value in choices:
        return choices.index(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
        return value
    raise UserError(f"field {field!r} is {value!r}, neither one of the choices {list(choices)} nor their index", where)
