"""Turn a finished run into a clean model folder: weights, config and tokenizer, plus a build record.

A run directory holds checkpoints, logs and metadata beside the model. Models that other code builds
on (the demo base, the real-data benchmark's base) are exported into their own folder, atomically:
written to `DEST.tmp`, then renamed, so a folder that exists is always complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from retain.io import atomic_write_json, read_json

MODEL_SUFFIXES = (".json", ".safetensors", ".model", ".txt")
RUN_ONLY_FILES = ("metadata.json", "trainer_state.json", "training_args.json")


def model_files(run_dir: str | Path) -> list[Path]:
    """The files of a run folder that make up its model (weights, configs, tokenizer), not its records."""
    return [f for f in sorted(Path(run_dir).iterdir())
            if f.is_file() and f.suffix in MODEL_SUFFIXES and f.name not in RUN_ONLY_FILES]


def export_model(run_dir: str | Path, dest: str | Path, record_name: str, record: Mapping[str, Any]) -> Path:
    """Copy the model files of a finished run into `dest` with a JSON build record.

    Args:
        run_dir: the run directory (`TrainResult.out_dir`) of a full fine-tuning run.
        dest: the model folder to create (replaced if it exists).
        record_name: file name of the build record inside `dest`, e.g. `demo-base.json`.
        record: what to record; the run's `metadata.json` is added as `train_metadata`.

    Returns:
        `dest`.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in model_files(run_dir):
        shutil.copy(f, tmp / f.name)
    meta = run_dir / "metadata.json"
    atomic_write_json(tmp / record_name, {**record, "train_metadata": read_json(meta) if meta.is_file() else None})
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
