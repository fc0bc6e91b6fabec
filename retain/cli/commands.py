"""Imports every subcommand module so each registers itself on the app."""

from retain.cli import eval as _eval  # noqa: F401
from retain.cli import tasks as _tasks  # noqa: F401
from retain.cli import train as _train  # noqa: F401
from retain.cli import study as _study  # noqa: F401
from retain.cli import models as _models  # noqa: F401
from retain.cli import references as _references  # noqa: F401
