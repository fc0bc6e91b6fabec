"""One process per output folder: a second study refuses at once naming the holder; a killed holder
leaves nothing that blocks. Claims on a shared study's jobs: one holder at a time, a dead holder taken
over (same host: its pid; another host: its lease), a live holder's heartbeat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from retain.errors import UserError
from retain.lock import FolderLock
from tests.cli_helpers import run_cli

HOLD = """
import sys, time
from retain.lock import FolderLock
lock = FolderLock(sys.argv[1], "the holder")
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture()
def holder(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    proc.kill()
    proc.wait()


def test_a_second_holder_is_refused_naming_the_first(holder):
    out, proc = holder
    with pytest.raises(UserError) as e:
        FolderLock(out).acquire()
    assert f"pid {proc.pid}" in str(e.value) and "the holder" in str(e.value) and str(out) in str(e.value)


def test_a_killed_holder_blocks_nothing(holder):
    out, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with FolderLock(out, "me") as lock:
        assert lock._file is not None
    with FolderLock(out, "me again"):  # released on exit
        pass


def test_a_second_study_on_one_folder_refuses_at_once(holder, tiny_t5_dir, capsys):
    out, proc = holder
    config = out.parent / "study.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_t5_dir), "target": "toy-summarize",
                                      "protect": ["toy-ner"], "methods": ["full"]}))
    before = sorted(p.name for p in out.iterdir())
    code, _, stderr = run_cli(["study", str(config), "--out", str(out)], capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and f"pid {proc.pid}" in lines[0], stderr
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written


# --- claims on a shared study's jobs (retain.lock.Claim) ------------------------------------------------

def _foreign(path, age: float, lease: float = 60) -> None:
    """A claim made by a process on another machine, last touched `age` seconds ago."""
    import json
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": "another-host", "pid": 1, "since": "then", "token": "t", "lease": lease}))
    os.utime(path, (time.time() - age, time.time() - age))


def test_a_claim_is_held_by_one_process_at_a_time(tmp_path):
    from retain.lock import Claim

    first, second = Claim(tmp_path / "run.lock", "run"), Claim(tmp_path / "run.lock", "run")
    assert first.take() is None
    assert second.take()["pid"] == os.getpid()  # held (by this very process, through `first`)
    first.release()
    assert not (tmp_path / "run.lock").exists()
    with second:
        assert second.take() is None and second.took_over is None
    assert not (tmp_path / "run.lock").exists()


def test_a_dead_local_holder_is_taken_over_at_once(tmp_path):
    from retain.lock import Claim

    proc = subprocess.Popen([sys.executable, "-c", "from retain.lock import Claim; import sys, time; "
                             "Claim(sys.argv[1], 'run').take(); print('held', flush=True); time.sleep(120)",
                             str(tmp_path / "run.lock")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    claim = Claim(tmp_path / "run.lock", "run")
    assert claim.take()["pid"] == proc.pid  # alive: held
    proc.kill()
    proc.wait()
    assert claim.take() is None and f"pid {proc.pid}" in claim.took_over and "gone" in claim.took_over
    claim.release()


def test_another_hosts_claim_is_stale_only_after_its_lease(tmp_path):
    from retain.lock import Claim

    path = tmp_path / "run.lock"
    _foreign(path, age=5, lease=60)
    assert Claim(path, "run").take()["host"] == "another-host"  # pid 1 is not ours to judge: the lease is
    _foreign(path, age=90, lease=60)
    claim = Claim(path, "run")
    assert claim.take() is None and "no heartbeat for 90s (lease 60s)" in claim.took_over
    claim.release()


def test_a_pid_from_another_pid_namespace_is_not_judged_here(tmp_path):
    """A container on this host (same host name, its own pids): only its lease says it is dead."""
    import socket

    from retain.lock import Claim, _pid_space

    claim = Claim(tmp_path / "run.lock", "run")
    holder = {"host": socket.gethostname(), "pid": 2**22 + 1, "pid_space": "pid:[1]", "lease": 60}  # no such pid here
    assert claim.stale(holder, age=5) is None
    assert "lease" in claim.stale(holder, age=90)
    assert "gone" in claim.stale({**holder, "pid_space": _pid_space()}, age=5)  # the same namespace: judged


def test_a_holder_keeps_its_claim_fresh(tmp_path):
    import time

    from retain.lock import Claim

    path = tmp_path / "run.lock"
    with Claim(path, "run", lease=0.5) as mine:
        assert mine.take() is None
        time.sleep(1.0)  # twice the lease: only the heartbeat keeps it alive
        assert time.time() - path.stat().st_mtime < 0.5 and not mine.lost
        # Judged from elsewhere, the claim is live.
        holder = json.loads(path.read_text())
        assert Claim(path, "run").stale({**holder, "host": "another-host"}, time.time() - path.stat().st_mtime) is None


def test_workers_share_the_folder_lock_and_a_plain_study_is_refused(tmp_path):
    out = tmp_path / "out"
    first, second = FolderLock(out, "worker 1", shared=True), FolderLock(out, "worker 2", shared=True)
    first.acquire()
    second.acquire()  # workers together
    with pytest.raises(UserError, match="in use by"):
        FolderLock(out, "plain study").acquire()
    first.release()
    second.release()
    with FolderLock(out, "plain study"):
        with pytest.raises(UserError, match="plain study"):
            FolderLock(out, "worker 3", shared=True).acquire()
