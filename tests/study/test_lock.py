"""One process per output folder: a second study refuses at once naming the holder; a killed holder
leaves nothing that blocks."""

from __future__ import annotations

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
