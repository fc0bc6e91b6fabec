"""Where file-backed task families find their data when only the family name is given.

`retain eval --task sentiment` reads `$RETAIN_DATA_DIR/sentiment/` (the layout of ../shared/data).
Nothing is ever copied into the repository; the data directory is always the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

from retain.errors import UserError

ENV_VAR = "RETAIN_DATA_DIR"


def data_dir() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value).expanduser() if value else None


def default_family_path(family: str) -> str:
    root = data_dir()
    if root is None:
        raise UserError(f"task {family!r} needs data: write {family}:PATH, or set {ENV_VAR} to a data folder")
    path = root / family
    if not path.is_dir():
        raise UserError(f"no {family!r} folder in the data directory ({ENV_VAR})", path)
    return str(path)
