"""`get_task(spec)`: what a user typed (a name, `FAMILY:PATH`, `FAMILY:hf:ID`, a task YAML) to a `Task`.

It sits above every module that defines tasks (the registries in `base`, the toy tasks, the file
families, user YAML tasks), so that none of them imports another one back.
"""

from __future__ import annotations

from dataclasses import replace

from retain.errors import UserError
from retain.tasks import families, toy  # noqa: F401  (importing them registers every built-in task)
from retain.tasks.base import FAMILY_FACTORIES, TASK_FACTORIES, Task, family_names, task_names
from retain.tasks.data_dir import default_family_path
from retain.tasks.user import load_user_task


def get_task(spec: str) -> Task:
    """Resolve a task spec: a registered name, `FAMILY:PATH`, `FAMILY:hf:ID` or a task YAML file.

    Raises:
        UserError: unknown name or family, or a missing file.
    """
    spec = spec.strip()
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
        f"file-backed: FAMILY:PATH with FAMILY one of {', '.join(family_names())}; or a task .yaml file)"
    )
