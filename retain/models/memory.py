"""Will the model fit? A check before loading, so that a model too large for memory is one line;
and what to do when a batch does not fit after all (`memory_safe`).

Without it, a model larger than RAM gets the process killed by the kernel's OOM killer part way
through loading (no message at all), or swaps the machine to a halt. The estimate is the weights
alone at the dtype they are loaded in, counted from the safetensors headers (a few KB read, no
weights), against the memory free now (`psutil`) or on the GPU (`torch.cuda.mem_get_info`).
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path
from typing import Callable

import torch

from retain.errors import UserError

log = logging.getLogger(__name__)

# Loading holds the weights once plus buffers and the process itself.
LOAD_FACTOR = 1.1
_SAFETENSORS_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                      "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def available_bytes(device: torch.device | None = None) -> int:
    """Memory free now: RAM for the CPU (and MPS, which shares it), free memory of a CUDA device."""
    if device is not None and device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check_memory(needed: int, what: str, device: torch.device | None = None) -> None:
    """Raise a one-line `UserError` when `needed` bytes exceed what is free.

    Args:
        needed: estimated peak bytes.
        what: what needs them, e.g. `loading MODEL in float32`.
        device: where they are needed (None or cpu: RAM).
    """
    free = available_bytes(device)
    if needed > free:
        where = "GPU memory" if device is not None and device.type == "cuda" else "memory"
        raise UserError(f"{what} needs about {_gb(needed)} of {where} and only {_gb(free)} is free: "
                        "use a smaller model, a smaller --dtype (bfloat16), or free memory")


def parameter_count(folder: str | Path) -> int | None:
    """Number of weights in a folder's safetensors files, read from their headers; None if it has none."""
    total, found = 0, False
    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > f.stat().st_size:  # a damaged file: reading n bytes could ask for exabytes
                    return None
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            return None  # unreadable: let the loader report it
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for d in meta.get("shape", []):
                    count *= int(d)
                total += count
        found = True
    return total if found else None


def check_model_fits(folder: str | Path, dtype: torch.dtype, device: torch.device, name: str) -> None:
    """Raise `UserError` before loading when the folder's weights at `dtype` cannot fit on `device`."""
    if device.type not in ("cpu", "cuda"):
        return
    params = parameter_count(folder)
    if params is None:
        return
    needed = int(params * torch.finfo(dtype).bits / 8 * LOAD_FACTOR) if dtype.is_floating_point else params
    check_memory(needed, f"loading {name} ({params / 1e6:.0f}M parameters in {str(dtype).replace('torch.', '')})",
                 device)


# Activations a transformer layer keeps for backward, per token, in units of its hidden size (16-bit
# values: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
# 34 * hidden bytes per token and layer without the attention scores, which SDPA does not keep).
ACTIVATION_HIDDEN_FACTOR = 34


def activation_bytes(config, tokens: int) -> int:
    """Rough bytes of activations kept for backward when `tokens` tokens go through the model at once.

    `tokens` is what one micro-batch holds (rows times their length). The estimate counts every layer
    (encoder and decoder for seq2seq) at 16-bit width; mixed precision keeps some values in fp32, so
    the true figure is somewhat higher. It decides whether gradient checkpointing is worth its cost,
    not whether something fits.
    """
    def count(*keys):
        return next((getattr(config, k) for k in keys if isinstance(getattr(config, k, None), int)), 0)

    layers = count("num_hidden_layers", "num_layers", "n_layer")
    if getattr(config, "is_encoder_decoder", False):  # T5: num_layers (encoder) plus num_decoder_layers
        layers = count("num_layers", "encoder_layers") + count("num_decoder_layers", "decoder_layers")
    hidden = count("hidden_size", "d_model", "n_embd")
    return int(tokens * layers * hidden * ACTIVATION_HIDDEN_FACTOR)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation failure: CUDA/MPS out of memory, or a CPU allocator failure."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def memory_safe(run: Callable[[list], None], batch: list, what: str) -> None:
    """`run(batch)`, halving the batch (and running both halves) each time memory runs out.

    An evaluation of hours should not die on its longest batch: the batch is split and evaluation
    goes on, with a warning. The retry happens outside the `except` block so that the failed
    attempt's tensors (held by the traceback) are freed first. One item that does not fit is a
    UserError saying what to change.
    """
    try:
        run(batch)
        return
    except Exception as e:  # noqa: BLE001  (re-raised unless it is an allocation failure)
        if not is_out_of_memory(e):
            raise
        if len(batch) == 1:
            raise UserError(f"out of memory on a single one of the {what}, even at batch size 1: use a "
                            "smaller max length, a smaller model or more memory") from None
    log.warning("out of memory on a batch of %d %s; splitting it in two and going on", len(batch), what)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    half = len(batch) // 2
    memory_safe(run, batch[:half], what)
    memory_safe(run, batch[half:], what)
