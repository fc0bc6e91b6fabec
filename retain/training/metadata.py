"""What a finished run records in `metadata.json`: versions, commit, parameters, speed and memory.

`metadata.json` is written last and atomically: its presence means the run finished and its model or
adapter is complete. A study can skip a run whose `metadata.json` exists.
"""

from __future__ import annotations

import platform
import resource
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch

from retain.io import atomic_write_json, read_json

METADATA = "metadata.json"
PACKAGES = ("retain", "torch", "transformers", "peft", "accelerate", "tokenizers", "datasets")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit checked out where retain's code lives (read from `.git`, no subprocess), or None."""
    here = Path(start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: PATH"
            text = git.read_text().strip()
            if text.startswith("gitdir:"):
                git = (folder / text.split(":", 1)[1].strip()).resolve()
        if git.is_dir():
            return _resolve_head(git)
    return None


def _resolve_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.split(":", 1)[1].strip()
    common = git
    if (git / "commondir").is_file():
        common = (git / (git / "commondir").read_text().strip()).resolve()
    for base in (git, common):
        if (base / ref).is_file():
            return (base / ref).read_text().strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return None


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": _cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict:
    """Peak memory: CUDA max allocated bytes on GPU; else the process's peak RSS (whole life, bytes)."""
    if device.type == "cuda":
        return {"kind": "cuda_max_allocated", "bytes": int(torch.cuda.max_memory_allocated(device))}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return {"kind": "process_peak_rss", "bytes": int(rss * scale)}


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and total parameters (each tensor counted once, even if tied)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"trainable": trainable, "total": total}


def write_metadata(out_dir: str | Path, data: dict) -> Path:
    path = Path(out_dir) / METADATA
    atomic_write_json(path, data)
    return path


def read_metadata(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / METADATA
    return read_json(path) if path.is_file() else None


def provenance(settings) -> dict:
    """What a study run's result.json records about how it was made: its resolved training settings (None
    for a derived run; the evaluation settings are in the study's config.yaml beside it), the package
    versions and the git commit of the code that ran it."""
    return {"settings": settings.model_dump(mode="json") if settings is not None else None,
            "versions": package_versions(), "git_commit": git_commit()}
