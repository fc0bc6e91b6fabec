"""Numeric precision per device: the one place retain decides whether bf16 is worth using.

bf16 pays only where the hardware multiplies it natively: CUDA GPUs that report bf16 support, and
x86 CPUs with AMX-BF16 or AVX512-BF16 (Sapphire Rapids and later, Zen 4 and later) when torch's
oneDNN backend can use them. Elsewhere bf16 is emulated and slower than fp32, so `auto` keeps fp32.
The check reads what the CPU reports at run time (`torch.cpu.get_capabilities()`, which asks
cpuinfo, or `/proc/cpuinfo` on torch builds without it); it never guesses from a model's name.

`Precision` is what a model runs in: its weights' dtype and, optionally, an autocast dtype
(weights stay fp32 and matmuls run in bf16: `torch.autocast`). Evaluation on a CPU with fast bf16
uses fp32 weights with bf16 autocast rather than bf16 weights, because autocast keeps the residual
stream, norms and softmax in fp32 and rounds only the matmul inputs, so scores stay closest to fp32;
greedy generation stays in fp32 under `auto`, because even autocast flips too many greedy answers
(`bench/precision_check.py` measures both forms).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

# CPU flags (as cpuinfo / the Linux kernel name them) of native bf16 matrix multiplication.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
ENV = "RETAIN_CPU_BF16"  # 0/off or 1/on overrides the detection

log = logging.getLogger(__name__)


def _cpu_flags() -> set[str]:
    """Flags of this CPU: from torch (>= 2.10 has `torch.cpu.get_capabilities`), else /proc/cpuinfo."""
    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if callable(get):
        try:
            return {name for name, value in get().items() if value is True}
        except Exception:  # an unusual build or platform: fall back to the kernel's view
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AMX-BF16 or AVX512-BF16) and torch's oneDNN can use it.

    `RETAIN_CPU_BF16=0` (or `off`) answers False and `=1` (or `on`) True without looking, for a
    machine whose detection is wrong and for tests whose numeric checks are written for fp32.
    """
    forced = os.environ.get(ENV, "auto").strip().lower()
    if forced in ("0", "off", "false", "no"):
        return False
    if forced in ("1", "on", "true", "yes"):
        return True
    return _detect_cpu_bf16()


@functools.lru_cache(maxsize=None)
def _detect_cpu_bf16() -> bool:
    # torch.ops.mkldnn._is_mkldnn_bf16_supported() alone is not enough: it is true on any AVX-512 CPU,
    # where bf16 is emulated and slower than fp32, so a native bf16 flag is required as well.
    try:
        if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    return any(flag in _cpu_flags() for flag in BF16_CPU_FLAGS)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 runs faster than fp32 on `device` (CUDA with bf16 support, or a CPU with native bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    return False


def warn_if_emulated(what: str, device: torch.device) -> bool:
    """Log (once per process and `what`) that bf16 asked for by name is emulated on this CPU; True if so.

    An explicit `bfloat16`/`bf16-autocast`/`bf16` setting is honoured everywhere (a study keeps its
    numerics on every machine), but without AMX-BF16 or AVX512-BF16 it runs several times slower
    than fp32: on a 2-core AMD EPYC without them, a 4x500-token forward pass of SmolLM2-135M took
    115 s under bf16 autocast against 18.5 s in fp32, and the study's chat probe 8.5 min against 2.2
    min on a CPU with AMX.
    """
    if device.type != "cpu" or cpu_has_fast_bf16():
        return False
    _warn_once(what)
    return True


@functools.lru_cache(maxsize=None)
def _warn_once(what: str) -> None:
    log.warning("%s asks for bf16, which this CPU does not multiply natively (no AMX-BF16 or AVX512-BF16): it is "
                "emulated, several times slower than float32; `auto` would use float32 here", what)


@dataclass(frozen=True)
class Precision:
    """How a model computes: the dtype of its weights and an optional autocast dtype.

    Attributes:
        weights: dtype the weights are loaded in.
        autocast: None, or the dtype `torch.autocast` runs matmuls in (weights stay `weights`).
        autocast_generation: whether greedy generation runs under that autocast too. `auto` on a CPU
            turns it off: one bf16 rounding that flips a near-tied token changes the rest of a greedy
            answer, and on SmolLM2-135M-Instruct only 32-72% of answers per task matched fp32 under
            bf16 autocast (bench/results/precision_check.json), against the 95% a user comparing
            with an fp32 run would expect. Log-likelihood scoring and training keep bf16.
    """

    weights: torch.dtype
    autocast: torch.dtype | None = None
    autocast_generation: bool = True

    @property
    def generation(self) -> "Precision":
        """The precision greedy generation runs in: this one, or its weights without autocast."""
        return self if self.autocast is None or self.autocast_generation else Precision(self.weights)

    @property
    def name(self) -> str:
        """`float32`, `bfloat16`, `float16`, or `bf16-autocast` (fp32 weights, bf16 matmuls)."""
        if self.autocast is not None:
            return f"{_short(self.autocast)}-autocast"
        return str(self.weights).replace("torch.", "")

    def context(self, device: torch.device | str):
        """A context that runs the model in this precision on `device` (autocast, or nothing)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
        return torch.autocast(device_type, dtype=self.autocast)


def _short(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, str(dtype))


FP32 = Precision(torch.float32)
BF16_AUTOCAST = Precision(torch.float32, torch.bfloat16)  # everything under bf16 autocast (`bf16-autocast`)
BF16_SCORING = Precision(torch.float32, torch.bfloat16, autocast_generation=False)  # `auto` on a bf16 CPU
