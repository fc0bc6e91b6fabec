"""Trainer callbacks and guards: the JSONL training log, TensorBoard, the non-finite loss stop, and the
models kept at chosen points of training (`keep_at`).

`train_log.jsonl` gets one JSON object per Trainer log event (training loss, learning rate, grad
norm, validation loss, ...) with the optimizer step, epoch and wall-clock time. Lines are appended
and flushed as they come, so a killed run keeps its log; on resume, lines past the checkpoint's step
are dropped first (they describe steps that will be redone).

With several processes (torchrun, accelerate launch) only the main one writes the log and the kept
models; every process sees the same logged values (the Trainer averages them across processes).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback

from retain.distributed import from_main, is_main
from retain.errors import UserError
from retain.io import atomic_write_text
from retain.training.checkpoints import last_complete_checkpoint


class NonFiniteLoss(UserError):
    """The loss (or gradient) became NaN or infinite; raised before that step's optimizer update."""

    def __init__(self, step: int, value: float, checkpoint: str | None = None, what: str = "loss"):
        self.step = step
        self.value = value
        self.checkpoint = checkpoint
        where = f"; the last good checkpoint is {checkpoint}" if checkpoint else "; no checkpoint was written yet"
        super().__init__(f"training stopped: the {what} is {value} at step {step}{where} "
                         "(try a lower learning rate or fp32)")


class NonFiniteGradGuard(TrainerCallback):
    """Stops before an optimizer step whose gradient holds NaN/inf (a finite loss can still have one).

    Without it such a step would write NaN weights, and possibly a NaN checkpoint, before the next
    loss showed the problem. Not used with fp16, where the loss scaler skips such steps by design.
    """

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        import torch

        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        if not bool(torch.isfinite(norm)):
            last = last_complete_checkpoint(args.output_dir)
            raise NonFiniteLoss(state.global_step + 1, float(norm), str(last) if last else None, what="gradient norm")


class JsonlLogger(TrainerCallback):
    """Appends every Trainer log event to a JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, record: dict) -> None:
        if not is_main():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_finite(record), ensure_ascii=False) + "\n")
            f.flush()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.write({"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                        "time": round(time.time(), 3), **logs})


def _finite(record: dict) -> dict:
    # JSON has no NaN/inf; write them as strings so the line stays valid JSON.
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def truncate_log(path: str | Path, last_step: int) -> None:
    """Drop log lines of steps after `last_step` (they are redone when resuming from it)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line).get("step", 0)
        except ValueError:
            continue  # a line cut by a kill
        if isinstance(step, int) and step <= last_step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_log(path: str | Path) -> list[dict]:
    """The records of a `train_log.jsonl` (skipping a line cut short by a kill)."""
    out = []
    path = Path(path)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


STEPS_DIR = "steps"


def kept_steps(points: list[float], total_steps: int) -> dict[int, float]:
    """{optimizer step: the point asked for} for each point of training before the last step.

    A fraction x becomes step round(x * total_steps) (at least 1); a whole number is a step. Points
    at or past the last step are the finished model itself and are not kept twice.
    """
    steps: dict[int, float] = {}
    for x in points:
        step = max(1, round(x * total_steps)) if x < 1 else int(x)
        if step < total_steps:
            steps.setdefault(step, x)
    return steps


def step_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / STEPS_DIR / f"step-{step}"


class KeepAt(TrainerCallback):
    """Writes the model (or, for PEFT methods, the adapter) after chosen optimizer steps to
    `OUT/steps/step-N`, with the tokenizer: each a model folder that `load_model` reads.

    The folder is written under a temporary name and renamed into place, so it is complete or absent.
    It is written at the end of the step, before that step's resumable checkpoint: a run resumed from
    a checkpoint at or after step N has step N's folder already.

    Only the main process writes. When the weights are sharded across processes (FSDP, DeepSpeed
    ZeRO-3) the training loop sets `state_dict`, which every process calls to gather them.
    """

    def __init__(self, out_dir: str | Path, points: list[float], tokenizer, use_cache: bool | None):
        self.out_dir, self.points, self.tokenizer, self.use_cache = Path(out_dir), points, tokenizer, use_cache
        self.steps: dict[int, float] = {}
        self.state_dict = None  # a zero-argument callable (all processes) -> the whole state dict

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps = kept_steps(self.points, state.max_steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step not in self.steps or from_main(step_dir(self.out_dir, step).is_dir):
            return
        whole = self.state_dict() if self.state_dict is not None else None
        if not is_main():
            return
        final, tmp = step_dir(self.out_dir, step), self.out_dir / STEPS_DIR / f".step-{step}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        config = getattr(model, "config", None)
        saved_use_cache = getattr(config, "use_cache", None)
        if config is not None and self.use_cache is not None:
            config.use_cache = self.use_cache  # the Trainer turns the KV cache off; the kept model generates
        try:
            if whole is None:
                model.save_pretrained(tmp, safe_serialization=True)
            else:
                model.save_pretrained(tmp, state_dict=whole, safe_serialization=True)
        finally:
            if config is not None and self.use_cache is not None:
                config.use_cache = saved_use_cache
        self.tokenizer.save_pretrained(tmp)
        os.replace(tmp, final)

    def kept(self) -> list[dict]:
        """What metadata.json records: each point, its step and its folder (relative to OUT)."""
        return [{"point": x, "step": step, "path": f"{STEPS_DIR}/step-{step}"} for step, x in sorted(self.steps.items())]


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_callback(log_dir: str | Path) -> TrainerCallback | None:
    """TensorBoard logging into `log_dir`, or None when tensorboard is not installed."""
    if not tensorboard_available():
        return None
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))
