"""retain.distributed in a real launch of two processes (torchrun, gloo): broadcast, gather, the main
process first, and a failure of the main process releasing the others instead of leaving them waiting.
Without a launcher every function is the identity of one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import retain.distributed as dist

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from pathlib import Path
import retain.distributed as d

folder = Path(sys.argv[1])
d.join("cpu")
r = d.rank()
assert d.world_size() == 2 and d.launched() and d.joined()
assert d.broadcast(r * 10 + 1) == 1
assert d.gather({"rank": r}) == [{"rank": 0}, {"rank": 1}]
assert d.from_main(lambda: r) == 0
with d.main_first():  # the main process writes; the others then see the file
    if d.is_main():
        (folder / "written").write_text("by the main process")
    else:
        assert (folder / "written").read_text() == "by the main process"
try:
    with d.main_first():
        if d.is_main():
            raise ValueError("the main process fails")
    outcome = "went on"
except d.OtherProcessFailed:
    outcome = "released"
except ValueError:
    outcome = "failed"
print(f"rank {r}: {outcome}", flush=True)
d.leave()
"""


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="torch.distributed with gloo is not available")
def test_two_processes(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Two processes print to one pipe: their lines may interleave without a newline between them.
    assert sorted(__import__("re").findall(r"rank \d: \w+", done.stdout)) == ["rank 0: failed", "rank 1: released"], done.stdout


def test_one_process_without_a_launcher(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (dist.world_size(), dist.rank(), dist.is_main(), dist.launched()) == (1, 0, True, False)
    dist.join("cpu")
    assert not dist.joined()
    assert dist.broadcast(3) == 3 and dist.gather(3) == [3] and dist.from_main(lambda: 4) == 4
    with pytest.raises(ValueError):
        with dist.main_first():
            raise ValueError("raised as is")
