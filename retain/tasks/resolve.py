"""`get_task(spec)`: what a user typed (a name, `FAMILY:PATH`, `FAMILY:hf:ID`, a task YAML,
`lm-eval:TASK[@K]`, `perplexity:PATH` or `perplexity:SPEC`) to a `Task`.

It sits above every module that defines tasks (the registries in `base`, the toy tasks, the file
families, user YAML tasks), so that none of them imports another one back.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from retain.errors import UserError
from retain.tasks import families, toy  # noqa: F401  (importing them registers every built-in task)
from retain.tasks.base import FAMILY_FACTORIES, TASK_FACTORIES, Task, family_names, task_names
from retain.tasks.data_dir import default_family_path
from retain.tasks import lmeval, perplexity
from retain.tasks.user import load_user_task


def get_task(spec: str, lm_eval_include: Sequence[str | Path] = ()) -> Task:
    """Resolve a task spec: a registered name, `FAMILY:PATH`, `FAMILY:hf:ID`, a task YAML file,
    `lm-eval:TASK[@K]` (`retain.tasks.lmeval`) or `perplexity:PATH|SPEC` (`retain.tasks.perplexity`).

    Args:
        lm_eval_include: folders of local lm-eval task YAMLs, searched before lm-eval's own tasks.

    Raises:
        UserError: unknown name or family, a missing file, an unknown lm-eval task or a missing lm-eval extra.
    """
    spec = spec.strip()
    if spec.startswith(lmeval.PREFIX + ":"):
        return lmeval.lm_eval_task(spec[len(lmeval.PREFIX) + 1:], lm_eval_include)
    if spec.startswith(perplexity.PREFIX + ":"):
        rest = spec[len(perplexity.PREFIX) + 1:]
        head = rest.split(":", 1)[0]
        if head in FAMILY_FACTORIES or head in TASK_FACTORIES or head == lmeval.PREFIX or rest.endswith((".yaml", ".yml")):
            return perplexity.perplexity_of(spec, get_task(rest, lm_eval_include))
        return perplexity.perplexity_file(spec, rest)
    if spec in TASK_FACTORIES:
        return TASK_FACTORIES[spec]()
    if spec.endswith((".yaml", ".yml")):
        return load_user_task(spec)
    if ":" in spec:
        family, path = spec.split(":", 1)
        if family in FAMILY_FACTORIES:
            return FAMILY_FACTORIES[family](path)
        if family in ("hf",):
            raise UserError(f"task {spec!r}: write hub datasets as FAMILY:hf:ID, e.g. sentiment:hf:stanfordnlp/sst2")
        raise UserError(f"unknown task family {family!r} in {spec!r} (known: {', '.join(family_names())})")
    if spec in FAMILY_FACTORIES:
        # Named as the user wrote it ("ner"), not by the folder it resolved to: reports stay readable and
        # machine-independent. The data itself is identified by its hash (see `identity`), not the name.
        return replace(FAMILY_FACTORIES[spec](default_family_path(spec)), name=spec)
    raise UserError(
        f"unknown task {spec!r} (known tasks: {', '.join(task_names())}; "
        f"file-backed: FAMILY:PATH with FAMILY one of {', '.join(family_names())}; a task .yaml file; "
        f"lm-eval:TASK; or perplexity:PATH)"
    )
