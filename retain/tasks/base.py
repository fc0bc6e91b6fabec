"""The Task type, its examples, and the task registry.

A task is a small object: name, version, where its data comes from, a prompt template, a kind
(`generate`: the model writes an answer; `choice`: each option is scored by log-likelihood;
`perplexity` and `lm-eval`: see `Kind`), a metric
family and a generation length. Tasks register themselves where they are defined
(`@register_task` for named tasks such as the toy tasks, `@register_family` for file-backed families
such as `sentiment:PATH`); `retain.tasks.resolve.get_task(spec)` resolves what a user typed.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Mapping

from retain.errors import UserError
from retain.tasks.fewshot import attach_shots, pool_split

# generate / choice: retain's own requests; perplexity: rolling log-likelihood of each document's text
# (`retain.tasks.perplexity`); lm-eval: run through lm-evaluation-harness (`retain.tasks.lmeval`).
Kind = Literal["generate", "choice", "perplexity", "lm-eval"]
KINDS = ("generate", "choice", "perplexity", "lm-eval")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    """One task example, already rendered through the task's prompt template.

    Attributes:
        id: stable identifier, unique within a split (used to pair examples across models).
        prompt: the model input.
        target: the canonical answer, used as the training target.
        references: every accepted answer, used for scoring (the target first).
        choices: for `choice` tasks, the options scored by log-likelihood.
        label: for `choice` tasks, the index of the right option in `choices`.
        fields: the raw record the example was made from (for templates and reports).
        shots: solved examples shown before the prompt when evaluating few-shot (empty: zero-shot);
            attached by `Task.fewshot_examples`, never part of the task's own splits.
    """

    id: str
    prompt: str
    target: str
    references: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    label: int | None = None
    fields: Mapping = field(default_factory=dict, compare=False, hash=False, repr=False)
    shots: tuple["Example", ...] = field(default=(), repr=False)

    def __post_init__(self):
        if not self.references:
            object.__setattr__(self, "references", (self.target,))


Loader = Callable[[str, "int | None"], "list[Example]"]


@dataclass
class Task:
    """A task a model can be evaluated (and trained) on.

    Attributes:
        name: what the user calls it (`toy-ner`, `sentiment:data/test.jsonl`, ...).
        family: the kind of task it is (`toy-ner`, `sentiment`, ...); with `version` and the data
            hash it identifies the task in caches, independent of how a path was written.
        version: bump when prompts, parsing or scoring change, so cached results are not reused.
        kind: `generate` or `choice`.
        metric: metric family from `retain.evaluation.metrics` (`rouge`, `entity_f1`, `accuracy`,
            `squad`, `exact_match`).
        prompt_template: the `{field}` template examples are rendered with (shown to users).
        max_new_tokens: generation length for `generate` tasks.
        splits: the splits that have data.
        loader: `loader(split, limit)` returns the split's examples; toy tasks generate `limit` of
            them, file tasks read the file (the result is cut to `limit` either way).
        description: one line for `retain tasks`.
        fewshot: solved examples in each evaluation prompt unless the evaluation says otherwise
            (user task YAML `fewshot:`; 0 for built-in tasks). See `retain.tasks.fewshot`.
    """

    name: str
    family: str
    version: str
    kind: Kind
    metric: str
    prompt_template: str
    max_new_tokens: int
    splits: tuple[str, ...]
    loader: Loader = field(repr=False)
    description: str = ""
    fewshot: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserError(f"task {self.name}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.max_new_tokens <= 0:
            raise UserError(f"task {self.name}: max_new_tokens must be positive")
        if self.fewshot < 0:
            raise UserError(f"task {self.name}: fewshot must be 0 or more, not {self.fewshot}")

    def with_max_new_tokens(self, max_new_tokens: int | None) -> "Task":
        """This task generating at most `max_new_tokens` tokens (itself when None or unchanged).

        The length is part of `identity`, so answers cut at another length are never served from the cache.
        """
        if max_new_tokens is None or max_new_tokens == self.max_new_tokens:
            return self
        return replace(self, max_new_tokens=max_new_tokens)

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def examples(self, split: str = "test", limit: int | None = None) -> list[Example]:
        """The examples of `split` (the first `limit` of them when given)."""
        if split not in self.splits:
            raise UserError(f"task {self.name} has no {split!r} split (it has: {', '.join(self.splits)})")
        if limit is not None and limit <= 0:
            raise UserError(f"limit must be positive, got {limit}")
        key = (split, limit)
        if key not in self._cache:
            examples = list(self.loader(split, limit))
            if not examples:
                raise UserError(f"task {self.name}: the {split!r} split has no examples")
            self._cache[key] = examples[:limit] if limit else examples
        return self._cache[key]

    def fewshot_examples(self, split: str = "test", limit: int | None = None, k: int = 0,
                         seed: int = 0) -> list[Example]:
        """The examples of `split` with `k` solved examples each from another split (see `retain.tasks.fewshot`).

        With `k` = 0 these are exactly `examples(split, limit)`.
        """
        if k == 0:
            return self.examples(split, limit)
        key = ("fewshot", split, limit, k, seed)
        if key not in self._cache:
            self._cache[key] = attach_shots(self, split, self.examples(split, limit), k, seed)
        return self._cache[key]

    def fewshot_source(self, split: str) -> str:
        """Where the shots of a few-shot evaluation of `split` come from (results record it)."""
        return pool_split(self, split)

    def data_hash(self, split: str = "test", limit: int | None = None) -> str:
        """Hash of the exact examples (prompts, references, choices) of a split."""
        h = hashlib.sha256()
        for ex in self.examples(split, limit):
            h.update(json.dumps([ex.id, ex.prompt, ex.target, list(ex.references), list(ex.choices), ex.label],
                                ensure_ascii=False).encode())
        return h.hexdigest()

    def identity(self, split: str = "test", limit: int | None = None) -> dict:
        """What identifies this task's data and scoring in a cache key."""
        return {"family": self.family, "version": self.version, "kind": self.kind, "metric": self.metric,
                "max_new_tokens": self.max_new_tokens, "split": split, "limit": limit,
                "data": self.data_hash(split, limit)}


def render(template: str, record: Mapping, where: str = "") -> str:
    """Fill a `{field}` template from a record, with an error naming the missing field."""
    try:
        return template.format_map(_StrictFields(record))
    except KeyError as e:
        raise UserError(f"missing field {e.args[0]!r} needed by the prompt template", where or None) from None
    except (ValueError, IndexError) as e:
        raise UserError(f"bad prompt template {template!r}: {e}", where or None) from None


class _StrictFields(dict):
    def __init__(self, record: Mapping):
        super().__init__({k: v for k, v in record.items()})

    def __missing__(self, key):
        raise KeyError(key)


def template_fields(template: str) -> list[str]:
    """The `{field}` names a template uses."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


# --- registries -------------------------------------------------------------------------------------

TASK_FACTORIES: dict[str, Callable[[], Task]] = {}
FAMILY_FACTORIES: dict[str, Callable[[str], Task]] = {}


def register_task(name: str):
    """Decorator registering a zero-argument factory that builds the named task."""

    def deco(factory: Callable[[], Task]):
        if name in TASK_FACTORIES:
            raise ValueError(f"task {name!r} registered twice")
        TASK_FACTORIES[name] = factory
        return factory

    return deco


def register_family(name: str):
    """Decorator registering a factory `factory(path) -> Task` for `NAME:PATH` specs."""

    def deco(factory: Callable[[str], Task]):
        if name in FAMILY_FACTORIES:
            raise ValueError(f"task family {name!r} registered twice")
        FAMILY_FACTORIES[name] = factory
        return factory

    return deco


def task_names() -> list[str]:
    return sorted(TASK_FACTORIES)


def family_names() -> list[str]:
    return sorted(FAMILY_FACTORIES)


def split_files(path: str | Path) -> dict[str, Path]:
    """Map split names to data files for a file or a folder of `train/validation/test` files.

    A single file is one split named by its stem (`train`, `validation`/`dev`/`val`, `test`; any other
    name counts as `test`). A folder holds one file per split.
    """
    from retain.io import RECORD_SUFFIXES

    path = Path(path)
    aliases = {"train": "train", "validation": "validation", "dev": "validation", "val": "validation",
               "test": "test"}
    if path.is_dir():
        found: dict[str, Path] = {}
        for f in sorted(path.iterdir()):
            if f.suffix.lower() in RECORD_SUFFIXES and f.stem.lower() in aliases:
                found.setdefault(aliases[f.stem.lower()], f)
        if not found:
            raise UserError("folder has no train/validation/test data files (.jsonl, .json, .csv, .parquet)", path)
        return found
    if not path.exists():
        raise UserError("file not found", path)
    return {aliases.get(path.stem.lower(), "test"): path}
