"""Tasks: the Task type, the registry, built-in toy tasks, file-backed families and user YAML tasks.

Importing this package registers every built-in task and family.
"""

from retain.tasks.base import (  # noqa: F401
    SPLITS,
    Example,
    Task,
    family_names,
    register_family,
    register_task,
    render,
    task_names,
)

# Modules that register tasks where they are defined; importing them fills the registries.
from retain.tasks import toy, families  # noqa: E402,F401
from retain.tasks.resolve import get_task  # noqa: E402,F401
