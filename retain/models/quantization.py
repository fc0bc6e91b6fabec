"""A base model loaded in 4 bits for training adapters on it (QLoRA), through bitsandbytes.

QLoRA (Dettmers et al. 2023) keeps the frozen base in 4-bit NormalFloat (`nf4`, or plain `fp4`), with
the quantization constants quantized again ("double quantization"), and trains LoRA adapters in a
higher precision on top. transformers loads such a base with a `BitsAndBytesConfig`; this module is
the one place retain builds that config and decides whether it may be used here:

- **CUDA only by default.** bitsandbytes' 4-bit kernels are CUDA kernels. Recent bitsandbytes also
  runs 4-bit layers on a CPU, but by dequantizing the weights at every matmul: it saves memory and
  costs time, which is the opposite of why anyone fine-tunes on a CPU. A CPU run is therefore
  refused with one line saying so; `RETAIN_QLORA_CPU=1` allows it (the test suite uses it to run the
  whole QLoRA path on tiny models). On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit layer
  for inference at its first forward pass in eval mode (retain's packing check is one) and keeps it so
  when training resumes, then trains through a kernel without autograd: the gradients would be wrong.
  `load_model` turns that repacking off for a 4-bit model on a CPU (`keep_cpu_layout`).
- **One device.** The quantized weights are placed on the run's device while they load
  (`device_map={"": device}`: the whole model on that device, no offload, no splitting over GPUs);
  with several processes each process loads its own copy on its own GPU, as data parallelism wants.
- **Compute dtype** follows the device: bf16 where it is native (`retain.models.device.fast_bf16`),
  fp16 on older GPUs, fp32 on a CPU without bf16.

The adapter trained on the 4-bit base is saved as an ordinary PEFT adapter. retain evaluates it on
the base as it is normally loaded (not quantized), which is how QLoRA adapters are usually merged and
served; the run's metadata records the quantization it was trained under.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from retain.errors import UserError
from retain.models.device import fast_bf16

QUANT_TYPES = ("nf4", "fp4")
CPU_ENV = "RETAIN_QLORA_CPU"  # 1/on: allow bitsandbytes' CPU backend (slow; for tests)


def cpu_allowed() -> bool:
    return os.environ.get(CPU_ENV, "").strip().lower() in ("1", "on", "true", "yes")


def check_quantization(quantize: str | None, device: torch.device) -> None:
    """Refuse, with one line, a 4-bit base this machine cannot train on (before anything is loaded).

    Raises:
        UserError: an unknown quantization, a device without CUDA (unless `RETAIN_QLORA_CPU=1`), or
            bitsandbytes not installed.
    """
    if quantize is None:
        return
    if quantize not in QUANT_TYPES:
        raise UserError(f"unknown quantization {quantize!r} (use {' or '.join(QUANT_TYPES)})")
    if device.type != "cuda" and not (device.type == "cpu" and cpu_allowed()):
        raise UserError(f"QLoRA (a 4-bit {quantize} base) needs a CUDA GPU: bitsandbytes' 4-bit kernels are CUDA "
                        f"kernels and this run's device is {device.type}; use lora (the same adapters on the "
                        f"unquantized base) here")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("QLoRA needs bitsandbytes, which is not installed: pip install 'retain[qlora]'")


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype the 4-bit layers compute in on `device`."""
    if fast_bf16(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.float32


def quantized_load_options(quantize: str, device: torch.device) -> dict:
    """`from_pretrained` keyword arguments for a 4-bit base on `device` (call `check_quantization` first)."""
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantize, bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=compute_dtype(device))
    # accelerate's form of "everything on this one device": a GPU's index, or the device's name.
    place = (device.index if device.index is not None else 0) if device.type == "cuda" else device.type
    return {"quantization_config": config, "device_map": {"": place}}


def keep_cpu_layout(model) -> None:
    """Keep bitsandbytes' 4-bit layers on a CPU in their training layout (see the module docstring)."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def is_quantized(model) -> bool:
    """Whether `model` was loaded with 4-bit (or 8-bit) bitsandbytes weights."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def describe(model) -> dict | None:
    """The quantization of a loaded model, as metadata records it (None when not quantized)."""
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if not is_quantized(model) or config is None:
        return None
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    dtype = get("bnb_4bit_compute_dtype")
    return {"bits": 4 if getattr(model, "is_loaded_in_4bit", False) else 8, "quant_type": get("bnb_4bit_quant_type"),
            "double_quant": get("bnb_4bit_use_double_quant"), "compute_dtype": str(dtype).replace("torch.", "")}
