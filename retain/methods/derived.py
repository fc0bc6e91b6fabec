"""Derived runs: models made from a finished training run without training, each evaluated like a run.

A study is a plan of runs. A run either trains (a method on the target) or is *derived* from a trained
one: a WiSE-FT interpolation at an alpha (`retain.methods.wise_ft`), or a checkpoint kept part-way
through training (`retain.methods.checkpoints`). Each kind is defined in its own module and registered
here; the study asks every kind which derived runs a trained run has, and runs them, without knowing
the kinds.

A kind answers four questions:

- `planned(entries, parent_entry, parent)`: the derived runs of the training entry `parent_entry`
  (`parent`: its finished run's record, or None before it has trained), from the study's method
  entries (a WiSE-FT entry names its parent with `of`);
- `model(parent, run, device, dtype)`: the model to evaluate;
- `fields(parent, run)`: what the run's result records besides its scores (method, options, alpha,
  step, ...);
- `cost(parent, run)`: its share of the parent's cost (nothing is trained).

`after_all` says when a kind's runs are made: right after their parent (checkpoints), or once every
run is trained (WiSE-FT, whose parents may be any run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class DerivedRun:
    """One derived run of a plan.

    Attributes:
        name: the run's name, `PARENT+...` (`+` is reserved for derived runs).
        kind: the kind that makes it (`wise-ft`, `checkpoint`).
        method: the method its result names (a checkpoint's is its parent's; WiSE-FT's is `wise-ft`).
        parent: the training run it derives from.
        key: what identifies it besides its parent and the evaluation (its result's cache key).
        detail: one line for the plan (`alpha 0.5`, `step 16 of 63`).
        known: False for a placeholder whose name is known only once the parent has trained.
    """

    name: str
    kind: str
    method: str
    parent: str
    key: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    known: bool = True


class DerivedKind(Protocol):
    kind: str
    after_all: bool

    def planned(self, entries: Sequence, parent_entry, parent: dict | None) -> list[DerivedRun]: ...

    def model(self, parent: dict, run: DerivedRun, device: str, dtype: str): ...

    def fields(self, parent: dict, run: DerivedRun) -> dict: ...

    def cost(self, parent: dict, run: DerivedRun) -> dict: ...


_KINDS: dict[str, DerivedKind] = {}


def register_derived(kind: DerivedKind) -> DerivedKind:
    """Register a derived kind (an instance), once, where it is defined."""
    if kind.kind in _KINDS:
        raise ValueError(f"derived kind {kind.kind!r} registered twice")
    _KINDS[kind.kind] = kind
    return kind


def derived_kinds() -> list[DerivedKind]:
    """Every registered kind: those made right after their parent first, then those made at the end."""
    import retain.methods  # noqa: F401  (registers the built-in kinds)

    return sorted(_KINDS.values(), key=lambda k: k.after_all)


def derived_kind(kind: str) -> DerivedKind:
    import retain.methods  # noqa: F401

    return _KINDS[kind]
