"""Helpers shared by the benchmark scripts: what machine a number came from, and how it was timed.

Every bench writes one JSON file under `bench/results/` that carries `machine_info()` (CPU, cores,
memory, load, library versions, git commit, time), so a number can always be traced to where and on
what code it was measured. Timings are medians over repetitions after a warm-up; `interleaved` runs
the contenders in turns (A, B, A, B, ...) so that background load on a shared machine falls on all of
them alike instead of on whichever happened to run during a busy minute.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # real task data and the flan-t5-small config (never in the repository)
FLAN = SHARED / "models" / "flan-t5-small-tokenizer"
# Models the benches build once (random weights from local configs): beside retain's own cache.
CACHE = Path(os.environ.get("RETAIN_CACHE_DIR", Path.home() / ".cache" / "retain")).expanduser() / "bench"
RESULTS = REPO / "bench" / "results"
REAL_MODEL = "smollm2-135m-instruct"  # `compare.py --model` for issue 11's real-model comparison


def model_folder(spec: str | Path) -> Path:
    """A `--model` value as a local model folder every tool can load.

    An embedded model name (`smollm2-135m-instruct`) or a GGUF file is converted once by retain
    (`retain.models.sources.resolve_model`); a folder is returned as is.
    """
    from retain.models.sources import resolve_model

    folder = Path(resolve_model(str(spec)).path)
    if not (folder / "config.json").is_file():
        raise SystemExit(f"--model {spec}: {folder} is not a local model folder (config.json missing)")
    return folder


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (runnable processes); None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict:
    """Where and on what code a benchmark ran: hardware, load, versions, git commit, UTC time."""
    import torch

    try:
        import transformers

        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "ram_gib": _ram_gib(),
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers_version,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def median(values) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[..., Any], *args, **kwargs) -> tuple[float, Any]:
    """Run `fn` once; returns (seconds of wall-clock time, its result)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


@dataclass
class Timing:
    """Wall-clock seconds of each repetition of one contender, and the result of its last run."""

    times: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median(self) -> float:
        return median(self.times)

    def to_json(self) -> dict:
        return {"median_s": round(self.median, 4), "times_s": [round(t, 4) for t in self.times]}


def interleaved(contenders: Mapping[str, Callable[[], Any]], reps: int = 3,
                warmups: Mapping[str, Callable[[], Any]] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Timing]:
    """Time several contenders in turns: warm each up once, then `reps` rounds of one run each.

    Args:
        contenders: name -> zero-argument callable doing the measured work.
        reps: timed runs per contender (report the median).
        warmups: name -> callable run once, untimed, before the rounds (e.g. the same work on a few
            inputs); by default the contender itself.
        log: called with one line per timed run.

    Returns:
        name -> Timing, with the result of each contender's last run.
    """
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    for name, fn in contenders.items():
        (warmups or {}).get(name, fn)()
    timings = {name: Timing() for name in contenders}
    for rep in range(reps):
        for name, fn in contenders.items():
            seconds, timings[name].result = timed(fn)
            timings[name].times.append(seconds)
            if log:
                log(f"  {name:<8} rep {rep + 1}/{reps}: {seconds:.2f} s")
    return timings


def write_result(doc: dict, path: str | Path) -> Path:
    """Write a result document as indented JSON (creating folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a result
    return path
