"""The one training loop: `train(model, target, method, settings, out_dir)` for every method.

Steps: validate config and data (errors before any model loads) -> load the base model -> the
method builds the mixture, prepares the model and its penalty -> `RetainTrainer` trains with
checkpoints every `save_steps` -> the model (full) or adapter (PEFT) is saved in the standard layout
-> the method's `finish` hook -> `metadata.json`, written last and atomically.

A run directory is resumable: after a kill (even -9) `train(...)` with the same config continues
from the last complete checkpoint; a directory with `metadata.json` is a finished run and is returned
without training again.

Run directory layout::

    OUT/config.yaml          resolved RunConfig (model, target, method options, settings)
    OUT/train_log.jsonl      one JSON object per log event (loss, lr, grad norm, eval loss)
    OUT/tensorboard/         TensorBoard events (when tensorboard is installed)
    OUT/checkpoints/         checkpoint-N folders while training (removed at the end by default)
    OUT/steps/step-N/        the model (or adapter) after step N, kept (`keep_at`)
    OUT/config.json, model.safetensors, tokenizer files         (full fine-tuning), or
    OUT/adapter_config.json, adapter_model.safetensors, tokenizer files   (PEFT methods)
    OUT/metadata.json        written last: the run finished

Decoder-only batches are packed (`retain.training.data.PackingCollator`) unless `packing` is off;
precision `auto` is bf16 autocast where bf16 is native (`retain.models.device`). Both are recorded in
`metadata.json` (`packing`, `padding_fraction`, `precision`).

Launched as several processes (`torchrun` or `accelerate launch -m retain train`), every process runs
this same function: the main one checks and prepares the folder first, all train together (DDP, or
FSDP / DeepSpeed from accelerate's config), and only the main one writes the log, kept steps, model and
metadata, which counts the tokens and examples of all processes (`retain.training.parallel`).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import torch

from retain.distributed import broadcast, is_main, join, launched, main_first
from retain.errors import UserError
from retain.models.memory import activation_bytes, is_out_of_memory
from retain.training import parallel
from retain.training import metadata as md
from retain.training.callbacks import (JsonlLogger, KeepAt, NonFiniteGradGuard, NonFiniteLoss, tensorboard_available,
                                       tensorboard_callback)
from retain.training.config import RunConfig, TrainSettings
from retain.training.hooks import TrainContext, TrainingMethod, check_runs_on, method_load_options
from retain.training.data import (Collator, EncodedDataset, Encoder, PackingCollator, attention_span,
                                  packing_honoured, samples_from_examples)
from retain.training.mixture import proportions
from retain.training.checkpoints import checkpoint_step
from retain.training.run_folder import (LOG, TrainResult, check_existing, finished_elsewhere,
                                        load_trained, prepare_folder)  # noqa: F401  (load_trained: re-exported)
from retain.training.trainer import RetainTrainer, mixed_precision, training_arguments, use_checkpointing

log = logging.getLogger(__name__)

def _split(task, settings: TrainSettings):
    """(train examples, validation examples, where validation came from)."""
    if not task.has_split("train"):
        raise UserError(f"task {task.name} has no 'train' split, so it cannot be a training target "
                        f"(it has: {', '.join(task.splits)})")
    limit, want = settings.train_examples, settings.eval_examples
    if want and task.has_split("validation"):
        return list(task.examples("train", limit)), list(task.examples("validation", want)), "validation"
    pool = list(task.examples("train", None if limit is None else limit + want))
    n_eval = min(want, len(pool) - limit) if limit and len(pool) > limit else min(want, len(pool) // 10)
    train = pool[: len(pool) - n_eval][:limit] if limit else pool[: len(pool) - n_eval]
    return train, pool[len(pool) - n_eval:], ("train slice" if n_eval else None)


def train(model: str, target, method: TrainingMethod, settings: TrainSettings | None, out_dir: str | Path,
          resume: bool = True, callbacks: list | None = None, replace_other: bool = False) -> TrainResult:
    """Fine-tune `model` on `target` with `method`; resumable, and a no-op on a finished run.

    Args:
        model: base model, hub id or local folder.
        target: the target task (spec such as `toy-ner` or `summarization:PATH`, or a `Task`).
        method: a method (`retain.methods.make_method("lora", {"r": 8})`): anything with the hooks of
            `retain.training.hooks.TrainingMethod`.
        settings: training settings (None: `TrainSettings()` defaults).
        out_dir: the run directory (see the module docstring for its layout).
        resume: continue from the last complete checkpoint in `out_dir` if there is one; False
            deletes checkpoints and log of an unfinished run first.
        callbacks: extra `TrainerCallback`s (e.g. for tests).
        replace_other: a run with another config in `out_dir` is deleted and trained again instead of
            refused (a study's own run folders, whose settings the user may change).

    Returns:
        The `TrainResult`; `result.load()` gives the trained model.

    Raises:
        UserError: bad config or data (before training starts), or a NaN/inf loss (`NonFiniteLoss`).
    """
    from retain.models import load_model, pick_device
    from retain.models.fingerprint import fingerprint_path, fingerprint_state
    from retain.models.quantization import describe as describe_quantization
    from retain.tasks import get_task
    from transformers import set_seed

    started = time.perf_counter()
    settings = settings or TrainSettings()
    if not isinstance(method, TrainingMethod):
        raise TypeError(f"method must be a TrainingMethod (e.g. retain.methods.make_method('full')), not {method!r}")
    task = get_task(target) if isinstance(target, str) else target
    out_dir = Path(out_dir)
    config = RunConfig(model=str(model), target=task.name, method=method.describe(), settings=settings)
    train_examples, eval_examples, eval_from = _split(task, settings)
    if not train_examples:
        raise UserError(f"task {task.name}: no training examples left after holding out validation examples")
    device = pick_device(settings.device)
    check_runs_on(method, device)  # e.g. QLoRA on a CPU: refused before anything is written
    # Several processes (torchrun, accelerate launch) join here, once the input is known to be good:
    # the main one then looks at the folder (and may delete it) before the others.
    join(device.type)
    with main_first():
        existing = check_existing(out_dir, config, resume, replace_other)
    if existing is not None:
        return existing

    if device.type == "cuda" and device.index not in (None, 0) and not launched():
        raise UserError(f"training runs on the first visible GPU; for {device} set CUDA_VISIBLE_DEVICES="
                        f"{device.index} and use device cuda")
    lm = load_model(str(model), device=settings.device, dtype="float32", **method_load_options(method))
    ctx = TrainContext(base=lm, target=task, settings=settings,
                       target_samples=samples_from_examples(train_examples, task.name), out_dir=out_dir)
    samples = method.training_samples(ctx)
    if not samples:
        raise UserError(f"method {method.name}: the training mixture is empty")
    encoder = Encoder(lm.tokenizer, lm.is_seq2seq, settings.max_source_length, settings.max_target_length,
                      settings.chat)
    train_ds = EncodedDataset(encoder.encode_all(samples))
    eval_ds = EncodedDataset(encoder.encode_all(samples_from_examples(eval_examples, task.name))) if eval_examples else None

    set_seed(settings.seed)  # adapter initialisation draws from the global RNG
    base_tensors = dict(lm.model.state_dict(keep_vars=True))  # references: re-hashed after training
    base_fp = fingerprint_state(base_tensors)
    use_cache = getattr(lm.model.config, "use_cache", None)
    quantization = describe_quantization(lm.model)
    trained = method.prepare_model(lm.model, ctx)
    penalty = method.make_penalty(trained, ctx)
    params = md.parameter_counts(trained)
    if params["trainable"] == 0:
        raise UserError(f"method {method.name}: no parameter is trainable")

    ckpt_dir, log_path = out_dir / "checkpoints", out_dir / LOG
    with main_first():
        last = prepare_folder(out_dir, config, resume) if is_main() else None
    last = broadcast(last)  # every process resumes from the checkpoint the main one chose

    precision = mixed_precision(settings, device, lm.is_seq2seq)
    packed_row = _packed_row_length(settings, lm, trained)
    checkpointing = use_checkpointing(settings, params["trainable"] / params["total"],
                                      activation_bytes(lm.model.config, _batch_tokens(train_ds, settings, packed_row,
                                                                                      lm.is_seq2seq)))
    args = training_arguments(settings, ckpt_dir, settings.learning_rate or method.learning_rate(), precision,
                              device, has_eval=eval_ds is not None, checkpointing=checkpointing)
    jsonl = JsonlLogger(log_path)
    keep = KeepAt(out_dir, settings.keep_at, lm.tokenizer, use_cache) if settings.keep_at else None
    trainer = RetainTrainer(model=trained, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                            data_collator=_collator(lm, trained, packed_row, device), processing_class=lm.tokenizer,
                            callbacks=[jsonl, *_callbacks(out_dir, precision, keep), *(callbacks or [])],
                            shift_labels=not lm.is_seq2seq, penalty=penalty)
    parallel.check_penalty(trainer, method.name, penalty)
    if keep is not None and parallel.sharded(trainer):
        keep.state_dict = lambda: parallel.full_state_dict(trainer)
    if not settings.progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    md.reset_peak_memory(device)
    output, train_seconds = _fit(trainer, jsonl, last, settings, out_dir)
    eval_loss = _final_eval_loss(trainer) if eval_ds is not None else None
    # Steps every process takes part in: totals over processes, the whole weights of a sharded model.
    totals = parallel.combined(trainer, train_seconds, md.peak_memory(device))
    state_dict = parallel.full_state_dict(trainer)
    launch = parallel.launch(trainer)
    if not is_main():
        _release(trainer)
        with main_first():  # the main process saves the model and writes metadata.json
            pass
        return finished_elsewhere(out_dir)

    if use_cache is not None:
        lm.model.config.use_cache = use_cache  # the Trainer turns the KV cache off for training
    with main_first():
        parallel.save_model(trained, out_dir, state_dict)
        lm.tokenizer.save_pretrained(out_dir)
        is_adapter = (out_dir / "adapter_config.json").is_file()
        unchanged = fingerprint_state(base_tensors) == base_fp
        extra = method.finish(trained, ctx, out_dir)
        if not settings.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)

        model_path = str(model) if is_adapter else str(out_dir)
        base_dir = lm.source_dir
        real, padded, seconds = totals["real_tokens"], totals["padded_tokens"], totals["train_seconds"]
        meta = {
            "status": "finished",
            "config": config.model_dump(mode="json"),
            "method": method.name,
            "model_path": model_path,
            "adapter_path": str(out_dir) if is_adapter else None,
            "base_model": str(model),
            "architecture": "seq2seq" if lm.is_seq2seq else "causal",
            "fingerprint": fingerprint_path(base_dir, out_dir) if is_adapter and base_dir else
            (fingerprint_path(out_dir) if not is_adapter else None),
            "base_fingerprint": base_fp,
            "base_weights_unchanged": unchanged,
            "seed": settings.seed,
            "parameters": {**params, "trainable_fraction": params["trainable"] / max(params["total"], 1)},
            "data": {"target": task.name, "train_samples": len(samples), "target_train_examples": len(train_examples),
                     "sources": proportions(samples), "validation_examples": len(eval_examples),
                     "validation_from": eval_from},
            "steps": output.global_step,
            "epochs": trainer.state.epoch,
            "train_loss": output.training_loss,
            "eval_loss": eval_loss,
            "resumed_from_step": checkpoint_step(last) if last else None,
            "kept": keep.kept() if keep is not None else [],
            "precision": precision,
            "base_quantization": quantization,  # the base trained on (QLoRA), not the one evaluated
            "gradient_checkpointing": checkpointing,
            "device": str(device),
            "learning_rate": args.learning_rate,
            # examples per optimizer step, all processes together
            "effective_batch_size": settings.batch_size * settings.grad_accum * launch["world_size"],
            "launch": launch,
            "real_tokens": real,
            "packing": {"enabled": bool(packed_row), "row_tokens": packed_row},
            "padding_fraction": 1 - real / padded if padded else None,
            "train_seconds": round(seconds, 3),
            "tokens_per_second": real / seconds if seconds > 0 else None,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "peak_memory": totals["peak"],
            "tensorboard": "tensorboard" if tensorboard_available() else None,
            "method_info": extra,
            "versions": md.package_versions(),
            "git_commit": md.git_commit(),
            "machine": md.machine(),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        md.write_metadata(out_dir, meta)
    _release(trainer)
    return TrainResult(out_dir, model_path, meta["adapter_path"], meta)


def _callbacks(out_dir: Path, precision: str, keep: KeepAt | None) -> list:
    """The loop's own callbacks besides the JSONL log: TensorBoard, the non-finite gradient guard, KeepAt."""
    cbs = [cb for cb in (tensorboard_callback(out_dir / "tensorboard"),) if cb is not None] if is_main() else []
    if not cbs and is_main():
        log.warning("tensorboard is not installed: logging to %s only", out_dir / LOG)
    if precision != "fp16":  # fp16's grad scaler skips non-finite steps itself
        cbs.append(NonFiniteGradGuard())
    return [*cbs, keep] if keep is not None else cbs


def _collator(lm, trained, packed_row: int | None, device: torch.device):
    """Packed rows for a decoder-only model with packing, else dynamic padding (to 8s on a GPU)."""
    if packed_row:
        return PackingCollator(lm.tokenizer.pad_token_id, packed_row, attention_span(lm.model.config))
    return Collator(lm.tokenizer.pad_token_id, decoder_start_id=_decoder_start(trained) if lm.is_seq2seq else None,
                    pad_to_multiple_of=8 if device.type == "cuda" else None)


def _fit(trainer, jsonl: JsonlLogger, last: Path | None, settings: TrainSettings, out_dir: Path):
    """(trainer output, seconds): train from `last` (or the start); a stop is logged, and running out
    of memory is a UserError saying what to lower."""
    t0 = time.perf_counter()
    try:
        output = trainer.train(resume_from_checkpoint=str(last) if last else None)
    except NonFiniteLoss as e:
        jsonl.write({"step": e.step, "event": "stopped", "reason": str(e)})
        raise
    except Exception as e:  # noqa: BLE001  (re-raised unless memory ran out)
        if not is_out_of_memory(e):
            raise
        step = trainer.state.global_step
        jsonl.write({"step": step, "event": "stopped", "reason": "out of memory"})
        raise UserError(
            f"out of memory at step {step + 1} (batch_size {settings.batch_size}, max length "
            f"{settings.max_seq_length or settings.max_source_length} tokens): lower batch_size (with "
            "grad_accum to keep the effective batch), max_source_length or max_seq_length, "
            "or turn on gradient_checkpointing; LoRA needs less memory than full fine-tuning. Rerun to "
            "resume from the last checkpoint", str(out_dir)) from None
    return output, time.perf_counter() - t0


def _release(trainer) -> None:
    """Free the model, optimizer and CUDA cache now: a study trains many runs in one process."""
    import gc

    trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _final_eval_loss(trainer) -> float:
    """Validation loss of the final weights (reusing the periodic evaluation at the last step)."""
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry and entry.get("step") == trainer.state.global_step:
            return entry["eval_loss"]
    return trainer.evaluate()["eval_loss"]


def _batch_tokens(dataset, settings: TrainSettings, packed_row: int | None, seq2seq: bool) -> int:
    """Tokens of the largest micro-batch: `batch_size` of the longest example (a packed row at most)."""
    longest = max((len(x["input_ids"]) + (len(x["labels"]) if seq2seq else 0) for x in dataset), default=0)
    return settings.batch_size * (min(longest, packed_row) if packed_row else longest)


def _packed_row_length(settings: TrainSettings, lm, model) -> int | None:
    """Tokens per packed row, or None when batches are padded (seq2seq, packing off, or a model that
    does not keep packed examples apart)."""
    if not settings.packing or lm.is_seq2seq:
        return None
    vocab = getattr(lm.model.config, "vocab_size", None) or len(lm.tokenizer)
    if not packing_honoured(model, vocab):
        log.warning("this model does not keep packed examples apart (its attention is not built from "
                    "position_ids): training with padded batches")
        return None
    return settings.max_seq_length or settings.max_source_length + settings.max_target_length


def _decoder_start(model) -> int:
    cfg = model.config if hasattr(model, "config") else model.get_base_model().config
    start = getattr(cfg, "decoder_start_token_id", None)
    return start if start is not None else cfg.pad_token_id
