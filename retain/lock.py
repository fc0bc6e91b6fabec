"""Locks on an output folder: one plain study per folder, and claims on the jobs of a shared study.

`FolderLock`: one writer per output folder, a lock naming its holder, that a dead holder does not keep.

Two `retain study` processes on one `--out` would both train every run and append every training
step twice to the same logs. The first takes an exclusive `flock` on `OUT/.retain.lock` and writes
into it who it is (host, pid, since when, the command); a second process cannot take the lock,
reads that, and refuses at once naming the holder.

The kernel drops a `flock` when its holder exits, however it exits (`kill -9` included), so a dead
holder never blocks anyone and there is no stale-lock guessing. Where `fcntl` does not exist
(Windows) the folder is not locked. Study workers (`retain study --worker`) hold it *shared*: any
number of workers together, never with a plain study.

`Claim`: one job (a run, the base evaluation) of a study that several processes, on one machine or
many, complete together. A claim is a lock file created with `O_CREAT | O_EXCL` (atomic, also on NFS)
holding who made it: host, pid, start time, a random token and its lease. `flock` is not used here:
it is not dependable across machines on every shared file system. So a dead holder is detected:

- on the same host (and in the same pid namespace: containers can share a host name), its pid no
  longer runs (or is a zombie): stale at once;
- on any host, the file's modification time, which the holder touches every `lease / 10` seconds
  from a background thread, is older than the holder's lease: stale. The lease (default 600 s) must
  exceed the clock skew between machines and any pause of a live holder.

A stale claim is broken under a second `O_EXCL` file (`NAME.break`), so that of two processes seeing
the same stale claim only one removes it, and never a fresh claim made in between.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

from retain.errors import UserError, redact

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".retain.lock"


def _command() -> str:
    return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])


def _me(command: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": redact(command)}


def describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


class FolderLock:
    """`with FolderLock(out, "retain study c.yaml"):` holds `out` for this process, or raises UserError."""

    def __init__(self, folder: str | Path, command: str = "", shared: bool = False):
        self.path = Path(folder) / LOCK_NAME
        self.command = command or _command()
        self.shared = shared  # study workers: many together, never with an exclusive holder
        self._file = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as e:
            if self.shared and e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                f.close()  # a shared file system without flock: the claims alone keep workers apart
                return
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
            if not self.shared:  # other workers may still hold a shared lock: their note stays
                self._file.seek(0)
                self._file.truncate()  # the file stays (removing it would race with a new holder); the lock goes
            self._file.close()
            self._file = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


CLAIM_LEASE = 600.0  # seconds without a heartbeat after which any holder is taken for dead
UNWRITTEN_GRACE = 30.0  # a claim file still empty after this long: its maker died while writing it


def _pid_space() -> str:
    """This process's pid namespace (Linux; '' elsewhere): a pid means something only within it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) is the answer


class Claim:
    """A claim on one job of a shared study, held by this process (see the module docstring).

    `claim = Claim(path, "full (seed 0)")`; `claim.take()` returns None when this process now holds
    it, or the holder's record when a live process does; `claim.release()` (or leaving `with claim:`)
    removes it. `claim.took_over` describes the dead holder it replaced, if any.
    """

    def __init__(self, path: str | Path, what: str, lease: float = CLAIM_LEASE, command: str = ""):
        self.path = Path(path)
        self.what = what
        self.lease = float(lease)
        self.command = command or _command()
        self.took_over: str | None = None
        self._token: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.lost = False  # set by the heartbeat if the file stopped being ours (a lease that ran out)

    # --- reading ------------------------------------------------------------------------------------

    def _read(self) -> tuple[dict | None, float] | None:
        """(holder record or None when not written yet, age in seconds), or None when there is no file."""
        try:
            age = time.time() - self.path.stat().st_mtime
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
        except ValueError:
            holder = None
        return (holder if isinstance(holder, dict) else None), age

    def stale(self, holder: dict | None, age: float) -> str | None:
        """Why the claim of `holder` (its file `age` seconds since the last heartbeat) is dead, or None."""
        if holder is None:
            return f"left unwritten for {age:.0f}s" if age > UNWRITTEN_GRACE else None
        here = holder.get("host") == socket.gethostname() and holder.get("pid_space", "") == _pid_space()
        if here and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
            return "that process is gone"
        lease = holder.get("lease") if isinstance(holder.get("lease"), (int, float)) else CLAIM_LEASE
        if age > lease:
            return f"no heartbeat for {age:.0f}s (lease {lease:g}s)"
        return None

    def holder(self) -> tuple[dict | None, str | None] | None:
        """(holder record, why it is stale or None when live), or None when nobody holds the claim."""
        found = self._read()
        return None if found is None else (found[0], self.stale(*found))

    # --- taking and giving back ----------------------------------------------------------------------

    def take(self) -> dict | None:
        """Claim the job: None when this process holds it now, else the live holder's record."""
        for _ in range(3):  # a stale claim broken by us or another process: try to create again
            me = {**_me(self.command), "pid_space": _pid_space(), "token": secrets.token_hex(8), "lease": self.lease}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                found = self._read()
                if found is None:
                    continue  # released between our open and our read
                holder, age = found
                why = self.stale(holder, age)
                if why is None:
                    return holder or {"what": "being claimed"}
                if self._break(holder):
                    self.took_over = f"{describe(holder or {})}: {why}"
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            self._token = me["token"]
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name=f"claim {self.what}", daemon=True)
            self._beat.start()
            return None
        found = self._read()
        return (found[0] if found and found[0] else None) or {"what": "claimed by another process"}

    def _break(self, holder: dict | None) -> bool:
        """Remove the stale claim of `holder`, unless another process is doing so or it changed."""
        mutex = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:  # a breaker that died in the instant it held the mutex must not block forever
                if time.time() - mutex.stat().st_mtime > UNWRITTEN_GRACE:
                    mutex.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        try:
            found = self._read()
            if found is None or found[0] != holder:
                return False  # released or replaced since we judged it
            self.path.unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)
            mutex.unlink(missing_ok=True)

    def _mine(self) -> bool:
        found = self._read()
        return found is not None and found[0] is not None and found[0].get("token") == self._token

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(self.lease / 10, 0.05)):
            if not self._mine():
                self.lost = True
                return
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        if self._token is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._mine():
            self.path.unlink(missing_ok=True)
        self._token = None

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
