"""The shape of a study's results.json as the report reads it: results files are untrusted input.

A results file is passed around a team and re-rendered by whoever opens it, so `retain report`
validates it before reading anything: every field the report uses has a type here, and a file that
does not match is refused in one line naming the field (`runs.2.change.ner.delta: ...`). Fields the
report does not read are kept as they are (`extra="allow"`): newer writers may add them.

Validation is strict (no "0.5" for 0.5, no 1 for true): a results file is written by retain, so a
value of the wrong type means a damaged or hand-edited file, and guessing would print wrong numbers.
Text fields stay text: escaping them is the renderers' job (markdown.py, html.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retain.errors import UserError, one_line

SCHEMA = "retain.study/1"

Number = float | None
Ci = list[float] | None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Value(_Open):
    value: Number = None
    ci95: Ci = Field(None, min_length=2, max_length=2)


class Change(_Open):
    metric: str | None = None
    delta: Number = None
    ci95: Ci = Field(None, min_length=2, max_length=2)
    base: Number = None
    value: Number = None
    p_value: Number = None
    significant: bool | None = None


class Forgotten(_Open):
    id: str | int | None = None
    prompt: str | None = None
    reference: str | list[str] | None = None
    base_prediction: str | None = None
    run_prediction: str | None = None
    base_score: Number = None
    run_score: Number = None


class Counts(_Open):
    forgotten: int | None = None
    learned: int | None = None
    n: int | None = None


class Cost(_Open):
    wall_seconds: Number = None
    train_seconds: Number = None
    tokens_per_second: Number = None
    trainable_parameters: int | None = None
    total_parameters: int | None = None
    peak_memory_mb: Number = None


class Violation(_Open):
    task: str
    delta: Number = None
    allowed: Number = None


class Run(_Open):
    name: str | None = None
    method: str | None = None
    status: str | None = None
    error: str | None = None
    parent: str | None = None
    alpha: Number = None
    step: int | None = None
    of_steps: int | None = None
    point: Number = None
    change: dict[str, Change] | None = None
    scores: dict[str, dict[str, Value]] | None = None
    cost: Cost | None = None
    forgotten: dict[str, list[Forgotten]] | None = None
    forgotten_counts: dict[str, Counts] | None = None
    budget_violations: list[Violation] | None = None
    target_gain: Number = None
    mean_protected_change: Number = None
    within_budget: bool | None = None


class Budget(_Open):
    max_drop: Number = None
    relative: bool | None = None


class TaskSpec(_Open):
    role: Literal["target", "protected"] | None = None
    primary: str | None = None
    metric: str | None = None
    n: int | None = None
    budget: Budget | None = None


class Skill(_Open):
    value: Number = None
    has_skill: bool | None = None
    chance: Number = None
    note: str | None = None


class Base(_Open):
    scores: dict[str, dict[str, Value]] | None = None
    skills: dict[str, Skill] | None = None


class Study(_Open):
    name: str | None = None
    finished: bool | None = None
    created: str | None = None
    retain_version: str | None = None
    git_commit: str | None = None


class Source(_Open):
    note: str | None = None
    gguf_file: str | None = None


class ModelInfo(_Open):
    name: str | None = None
    fingerprint: str | None = None
    source: Source | None = None


class Target(_Open):
    task: str | None = None
    metric: str | None = None
    primary: str | None = None
    train_examples: int | None = None


class Closest(_Open):
    run: str | None = None
    excess: Number = None


class Recommendation(_Open):
    run: str | None = None
    within_budget: bool | None = None
    reason: str | None = None
    closest: Closest | None = None


class Results(_Open):
    schema_: Literal["retain.study/1"] = Field(SCHEMA, alias="schema")
    study: Study | None = None
    model: ModelInfo | None = None
    target: Target | None = None
    tasks: dict[str, TaskSpec] | None = None
    base: Base | None = None
    runs: list[Run] | None = None
    pareto: list[str] | None = None
    recommendation: Recommendation | None = None


def validate_results(doc: object, where: str) -> dict:
    """`doc` checked against the report's view of the schema; the same dict shape back (unset fields absent).

    Raises:
        UserError: one line naming the first bad field and what is wrong with it.
    """
    if not isinstance(doc, dict):
        raise UserError("expected a JSON object (a retain study results document)", where)
    if "schema" in doc and doc["schema"] != SCHEMA:
        raise UserError(f"unsupported results schema {str(doc['schema'])[:60]!r} (this retain reads {SCHEMA!r})",
                        where)
    try:
        return Results.model_validate(doc).model_dump(by_alias=True, exclude_unset=True)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise UserError(one_line(f"{field}: {first['msg']}{more}; not a results.json written by retain?"),
                        where) from None
