"""Resumable training checkpoints (`OUT/checkpoints/checkpoint-N`): which one is complete, and whether it
can be resumed from without unpickling anything.

Its own module, below the trainer and its callbacks, which both need it.
"""

from __future__ import annotations

import re
from pathlib import Path

from retain.errors import UserError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(folder: str | Path) -> Path | None:
    """The highest-step `checkpoint-N` in `folder` that was completely written, or None.

    The Trainer writes `trainer_state.json` last, so a checkpoint without it was cut short (kill -9
    while saving) and is skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


# Model weights a checkpoint may be resumed from without unpickling anything.
SAFE_CHECKPOINT_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def resumable_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint to resume from (`last_complete_checkpoint`), checked for pickle model weights.

    What a resume loads, and how: the Trainer reads the model (or adapter) weights from safetensors
    when the checkpoint has them and otherwise from `pytorch_model.bin` / `adapter_model.bin` with
    `torch.load`, so a checkpoint without safetensors weights is refused here. Optimizer, scheduler,
    scaler and RNG state (`optimizer.pt`, `scheduler.pt`, `scaler.pt`, `rng_state.pth`, which retain
    wrote itself) are read by the Trainer with `torch.load(weights_only=True)`: from torch 2.6 (the
    floor in pyproject.toml) that rebuilds tensors and plain containers only and cannot run code.
    `training_args.bin` is written but never loaded.

    Raises:
        UserError: the last complete checkpoint has only pickle model weights.
    """
    last = last_complete_checkpoint(folder)
    if last is None or any((last / name).is_file() for name in SAFE_CHECKPOINT_WEIGHTS):
        return last
    pickled = sorted(p.name for p in last.iterdir() if p.is_file() and p.name.endswith((".bin", ".pt", ".pth"))
                     and p.name.startswith(("pytorch_model", "adapter_model", "model")))
    if pickled:
        raise UserError(f"checkpoint has only pickle model weights ({pickled[0]}): pickle can run arbitrary code "
                        "when loaded, and retain resumes only from safetensors checkpoints; delete the checkpoint "
                        "to resume from an earlier one, or rerun without resuming", last)
    return last


def checkpoint_step(path: str | Path) -> int:
    m = CHECKPOINT_RE.match(Path(path).name)
    return int(m.group(1)) if m else 0
