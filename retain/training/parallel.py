"""What the one training loop does differently when several processes train one model.

`torchrun --nproc_per_node N -m retain train ...` or `accelerate launch -m retain train ...` start N
copies of the same command; the Trainer (through accelerate) wraps the model in DDP, or FSDP or
DeepSpeed when accelerate's config says so, and gives each process its share of every batch. The
user's config does not change: `batch_size` stays the micro-batch of one process, so the examples per
optimizer step are `batch_size * grad_accum * world_size`.

The loss is exactly the single-process loss of the whole step: transformers counts the label tokens
of the step on every process and sums them across processes (`average_tokens_across_devices`, on by
default), each process divides its summed token losses by that global count and scales by the world
size, and DDP averages the gradients. So 2 processes x batch B compute the gradient of 1 process x
batch 2B, up to the order of float additions (see tests/training/test_distributed.py).

Only the main process writes; this module holds the steps where the others must take part: the
whole weights of a sharded model (FSDP, DeepSpeed ZeRO-3) are gathered by all processes before the
main process saves them, and token counts, time and memory are combined for `metadata.json`.
"""

from __future__ import annotations

from pathlib import Path

from retain.distributed import gather, is_main, world_size
from retain.errors import UserError


def sharded(trainer) -> bool:
    """Whether FSDP or DeepSpeed holds the weights: accelerate gathers them, with every process."""
    return bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))


def splits_weights(trainer) -> bool:
    """Whether each process holds only a shard of every weight (FSDP, DeepSpeed ZeRO-3)."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None) if sharded(trainer) else None
    return plugin is not None and plugin.zero_stage == 3


def check_penalty(trainer, method_name: str, penalty) -> None:
    """Refuse a weight penalty (L2-SP, EWC) on split weights: it reads whole weights in every process.

    Raises:
        UserError: a penalty under FSDP or DeepSpeed ZeRO-3.
    """
    if penalty is not None and splits_weights(trainer):
        raise UserError(f"method {method_name} adds a penalty on the whole weights, which FSDP and DeepSpeed "
                        "ZeRO-3 split across processes: train it with plain DDP (torchrun) or ZeRO-2")


def full_state_dict(trainer) -> dict | None:
    """The whole state dict of a sharded model, on the main process (every process must call this);
    None when each process holds the whole model (one process, DDP), which then saves itself.

    DeepSpeed ZeRO-3 needs `stage3_gather_16bit_weights_on_model_save: true` in its config for this.
    """
    if not sharded(trainer):
        return None
    return trainer.accelerator.get_state_dict(trainer.model_wrapped)


def save_model(model, out_dir: str | Path, state_dict: dict | None) -> None:
    """The main process saves `model` (or its adapter) as safetensors, from `state_dict` when gathered."""
    if not is_main():
        return
    if state_dict is None:
        model.save_pretrained(out_dir, safe_serialization=True)
    else:
        model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)


def combined(trainer, train_seconds: float, peak: dict) -> dict:
    """Totals over all processes (every process must call this).

    Returns:
        `real_tokens` and `padded_tokens` summed over processes (the tokens of every optimizer step),
        `train_seconds` of the slowest process (they wait for each other at every step), and `peak`
        memory: the largest of one process's peaks (each process holds its own copy or shard).
    """
    parts = gather((trainer.real_tokens, trainer.padded_tokens, train_seconds, peak["bytes"]))
    return {"real_tokens": sum(p[0] for p in parts), "padded_tokens": sum(p[1] for p in parts),
            "train_seconds": max(p[2] for p in parts), "peak": {**peak, "bytes": max(p[3] for p in parts)}}


def launch(trainer) -> dict:
    """What `metadata.json` records of the launch: processes and how they share the model."""
    state = trainer.accelerator.state
    kind = getattr(state.distributed_type, "value", str(state.distributed_type))
    return {"world_size": world_size(), "distributed_type": kind,
            "backend": getattr(state, "backend", None) if world_size() > 1 else None}
