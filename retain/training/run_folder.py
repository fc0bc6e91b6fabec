"""The run folder of `train`: what it holds, whether it already holds this run, and getting it ready.

A folder with `metadata.json` is a finished run (`load_trained`); one with `config.yaml` but no
metadata is an unfinished run, resumed from its last complete checkpoint when its config matches.
With several processes only the main one calls `check_existing` first and `prepare_folder` at all
(`retain.training.loop`): they delete and write.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from retain.distributed import world_size
from retain.errors import UserError
from retain.io import atomic_write_text
from retain.training import metadata as md
from retain.training.callbacks import STEPS_DIR, truncate_log
from retain.training.checkpoints import checkpoint_step, resumable_checkpoint
from retain.training.config import RunConfig

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
LOG = "train_log.jsonl"
# Settings that change how a run is executed but not what it computes: a finished or partial run
# is reused even if they differ.
RUNTIME_ONLY = {"progress", "num_workers", "keep_checkpoints", "device"}


@dataclass
class TrainResult:
    """A finished run.

    Attributes:
        out_dir: the run directory.
        model_path: what to pass to `load_model` as the model (out_dir for full fine-tuning, the base
            model for adapters).
        adapter_path: the adapter folder (out_dir) for PEFT methods, else None.
        metadata: the content of `metadata.json`.
        reused: True when the run was already finished and nothing was trained.
    """

    out_dir: Path
    model_path: str
    adapter_path: str | None
    metadata: dict = field(repr=False)
    reused: bool = False

    def load(self, device: str = "auto", dtype: str = "auto"):
        """The trained model as a `LoadedModel` (base + adapter for PEFT methods)."""
        from retain.models import load_model

        return load_model(self.model_path, adapter=self.adapter_path, device=device, dtype=dtype)


def load_trained(out_dir: str | Path) -> TrainResult:
    """The `TrainResult` of a finished run directory.

    The trained weights are found in `out_dir` itself, wherever it was trained: a run folder can be
    moved or copied (metadata.json keeps the paths it was written with; the base model of an adapter
    is still found where it was).

    Raises:
        UserError: the directory holds no finished run.
    """
    out_dir = Path(out_dir)
    meta = md.read_metadata(out_dir)
    if meta is None:
        raise UserError("no finished training run here (metadata.json is missing)", out_dir)
    if meta["adapter_path"] is not None:
        return TrainResult(out_dir, meta["model_path"], str(out_dir), meta, reused=True)
    return TrainResult(out_dir, str(out_dir), None, meta, reused=True)


def comparable(config: dict) -> dict:
    # keep_at: [] is left out, so that runs recorded before the setting existed still match.
    settings = {k: v for k, v in config.get("settings", {}).items()
                if k not in RUNTIME_ONLY and not (k == "keep_at" and not v)}
    return {**config, "settings": settings}


def check_existing(out_dir: Path, config: RunConfig, resume: bool, replace_other: bool) -> TrainResult | None:
    """Return the finished run in `out_dir`, or None to train; refuse (or, with `replace_other`,
    delete) a run with another config."""
    wanted = comparable(config.model_dump(mode="json"))
    meta = md.read_metadata(out_dir)
    saved = out_dir / CONFIG
    if meta is not None:
        other = comparable(meta.get("config", {})) != wanted
    else:
        other = resume and saved.is_file() and comparable(RunConfig.from_yaml(saved).model_dump(mode="json")) != wanted
    if other and replace_other:
        log.info("%s holds a run with another config: training again", out_dir)
        shutil.rmtree(out_dir)
        return None
    if meta is not None:
        if other:
            raise UserError("holds a finished run with a different config; choose another output folder", out_dir)
        return load_trained(out_dir)
    if other:
        raise UserError("holds an unfinished run with a different config; delete it, choose another output "
                        "folder, or pass resume=False (--no-resume) to start over", out_dir)
    return None


def prepare_folder(out_dir: Path, config: RunConfig, resume: bool) -> Path | None:
    """Write config.yaml; the checkpoint to resume from (None: start), after clearing an unfinished
    run's checkpoints, kept steps and log (`resume` off) or the log lines past the checkpoint."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / CONFIG, config.to_yaml())
    ckpt_dir, log_path = out_dir / "checkpoints", out_dir / LOG
    last = resumable_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        _check_processes(last)
    if not resume:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        shutil.rmtree(out_dir / STEPS_DIR, ignore_errors=True)
        log_path.unlink(missing_ok=True)
    truncate_log(log_path, checkpoint_step(last) if last else 0)
    return last


def _check_processes(checkpoint: Path) -> None:
    """Refuse to resume a checkpoint with another number of processes than wrote it.

    The Trainer saves each process's random state (`rng_state.pth` alone, `rng_state_R.pth` per
    process of a launch), and the examples per optimizer step are `batch_size * grad_accum *
    processes`: with another number of processes the run would go on as a different run.
    """
    alone = (checkpoint / "rng_state.pth").is_file()
    ranks = len(list(checkpoint.glob("rng_state_*.pth")))
    written = 1 if alone else ranks
    if written and written != world_size():
        raise UserError(f"this checkpoint was written by {written} process{'es' if written > 1 else ''} and this "
                        f"launch has {world_size()}: resume with {written} (the examples per optimizer step "
                        "count the processes), or start over with --no-resume", checkpoint)


def finished_elsewhere(out_dir: Path) -> TrainResult:
    """The run the main process just finished, as a process that did not write it sees it."""
    result = load_trained(out_dir)
    result.reused = False
    return result
