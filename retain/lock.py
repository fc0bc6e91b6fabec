"""One writer per output folder: a lock naming its holder, that a dead holder does not keep.

Two `retain study` processes on one `--out` would both train every run and append every training
step twice to the same logs. The first takes an exclusive `flock` on `OUT/.retain.lock` and writes
into it who it is (host, pid, since when, the command); a second process cannot take the lock,
reads that, and refuses at once naming the holder.

The kernel drops a `flock` when its holder exits, however it exits (`kill -9` included), so a dead
holder never blocks anyone and there is no stale-lock guessing. Where `fcntl` does not exist
(Windows) the folder is not locked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from retain.errors import UserError, redact

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".retain.lock"


def _me(command: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": redact(command)}


def describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


class FolderLock:
    """`with FolderLock(out, "retain study c.yaml"):` holds `out` for this process, or raises UserError."""

    def __init__(self, folder: str | Path, command: str = ""):
        self.path = Path(folder) / LOCK_NAME
        self.command = command or " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
        self._file = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
            except ValueError:
                holder = {}
            f.close()
            raise UserError(f"in use by {describe(holder if isinstance(holder, dict) else {})}; wait for it "
                            "to finish, or use another --out", self.path.parent) from None
        f.seek(0)
        f.truncate()
        json.dump(_me(self.command), f)
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()  # the file stays (removing it would race with a new holder); the lock goes
            self._file.close()
            self._file = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
