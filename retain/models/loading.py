"""Load a Hugging Face language model for evaluation or training.

`load_model` takes a hub id or a local folder, reads the config to choose `AutoModelForSeq2SeqLM`
(encoder-decoder, e.g. T5) or `AutoModelForCausalLM` (decoder-only, e.g. Llama, Qwen), loads the
tokenizer, optionally a PEFT adapter on top, and places it on the best device with a sensible dtype.

Security defaults: safetensors only (pickle checkpoints need `allow_pickle=True`), and
`trust_remote_code` stays off unless asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from retain.distributed import launched, local_rank
from retain.errors import UserError, one_line
from retain.models.checks import (ADAPTER_SAFETENSORS, check_adapter_folder, check_local_folder, check_vocabulary,
                                  describe_load_error, hub_unreachable, read_config)
from retain.models.fingerprint import fingerprint_model, fingerprint_path
from retain.models.device import BF16_AUTOCAST, BF16_SCORING, FP32, Precision, fast_bf16, warn_if_emulated
from retain.models.memory import check_model_fits
from retain.models.quantization import check_quantization, keep_cpu_layout, quantized_load_options
from retain.models.sources import AUTOCAST_NAMES, WEIGHT_DTYPES, resolve_model

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
assert tuple(DTYPES) == WEIGHT_DTYPES


@dataclass
class LoadedModel:
    """A model ready to use, with what identifies it.

    Attributes:
        model: the `transformers` model (a `PeftModel` when an adapter is loaded), in eval mode.
        tokenizer: its tokenizer (a pad token is always set).
        name: what the user passed (hub id or path).
        is_seq2seq: encoder-decoder (True) or decoder-only (False).
        fingerprint: identifies the exact weights (see `retain.models.fingerprint`).
        adapter: the adapter path, if any.
        source_dir: the local folder the weights came from (None for in-memory models).
        autocast: None, or the dtype matmuls run in under `torch.autocast` (weights stay as loaded);
            the evaluation engine enters `autocast_context()` around every forward pass.
        autocast_generation: whether greedy generation runs under `autocast` too (see `Precision`).
        generations: greedy answers already produced by these weights, by (precision, settings, prompt);
            two tasks with the same prompts (a task and a probe of it) generate once. Weights must not
            change while this object is in use: a trained model gets a new `LoadedModel`.
    """

    model: torch.nn.Module
    tokenizer: object
    name: str
    is_seq2seq: bool
    fingerprint: str
    adapter: str | None = None
    source_dir: str | None = None
    extra: dict = field(default_factory=dict)
    autocast: torch.dtype | None = None
    autocast_generation: bool = True
    generations: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def precision(self) -> Precision:
        return Precision(self.dtype, self.autocast, self.autocast_generation)

    def autocast_context(self):
        """Run forward passes in this model's precision (bf16 autocast, or nothing)."""
        return self.precision.context(self.device)

    def describe(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint, "adapter": self.adapter,
                "architecture": "seq2seq" if self.is_seq2seq else "causal",
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "precision": self.precision.name, "generation_precision": self.precision.generation.name,
                **({"source": self.extra["source"]} if self.extra.get("source") else {})}


def pick_device(device: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu.

    In a launch of several processes (torchrun, accelerate launch), `auto` and `cuda` mean this
    process's own GPU, `cuda:LOCAL_RANK`.
    """
    if device == "cuda" and launched():
        return torch.device("cuda", local_rank())
    if device != "auto":
        try:
            return torch.device(device)
        except RuntimeError:
            raise UserError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank()) if launched() else torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_precision(dtype: str, device: torch.device) -> Precision:
    """Weights dtype and autocast for an evaluation `dtype` setting on `device`.

    `auto`: bf16 weights on GPUs that support bf16; on a CPU with native bf16 (`cpu_has_fast_bf16`),
    fp32 weights with bf16 autocast for log-likelihood scoring (closer to fp32 than bf16 weights, see
    `retain.models.device`) and fp32 for greedy generation (`BF16_SCORING`); fp32 elsewhere.
    `bf16-autocast` runs everything, generation included, under bf16 autocast, on any device; the
    other names load weights in that dtype without autocast (`float32` opts out of bf16).

    Raises:
        UserError: an unknown dtype name.
    """
    if dtype == "auto":
        if not fast_bf16(device):
            return FP32
        return Precision(torch.bfloat16) if device.type == "cuda" else BF16_SCORING
    if dtype in AUTOCAST_NAMES:
        warn_if_emulated(f"dtype {dtype}", device)
        return BF16_AUTOCAST
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r} (use auto, {', '.join([*DTYPES, *AUTOCAST_NAMES])})")
    if DTYPES[dtype] == torch.bfloat16:
        warn_if_emulated(f"dtype {dtype}", device)
    return Precision(DTYPES[dtype])


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The dtype weights are loaded in for an evaluation `dtype` setting (see `pick_precision`)."""
    return pick_precision(dtype, device).weights


def is_seq2seq_config(config) -> bool:
    return bool(getattr(config, "is_encoder_decoder", False))


def _looks_local(name: str) -> bool:
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~"))


# A text any usable tokenizer turns into at least one ordinary token (Latin, digits, CJK, Cyrillic).
_PROBE_TEXT = "The cat sat on the mat. 0123456789 日本語 Привет"


def _has_vocabulary(tok) -> bool:
    try:
        if len(tok) == 0:
            return False
        ids = tok(_PROBE_TEXT, add_special_tokens=False)["input_ids"]
        special = set(tok.all_special_ids)
        # An empty tokenizer maps the probe to unknown tokens and bare word-boundary marks only.
        return any(i not in special and tok.decode([i]).strip() for i in ids)
    except Exception:  # a tokenizer that cannot encode text is not usable either
        return False


def check_tokenizer(tok, where: str):
    """Refuse an empty tokenizer; give one without a pad token its eos (or unk) token as pad.

    Raises:
        UserError: no vocabulary, or no pad, eos or unk token to pad with.
    """
    if not _has_vocabulary(tok):
        raise UserError("tokenizer is empty (no vocabulary to encode text with): the model folder lacks its "
                        "tokenizer files", where)
    if tok.pad_token is None:
        # Decoder-only models often ship without a pad token; padding is always masked out.
        fallback = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if fallback is None:
            raise UserError("tokenizer has no pad, eos or unk token to pad batches with: set pad_token in "
                            "tokenizer_config.json", where)
        tok.pad_token = fallback
    return tok


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The tokenizer of a model (hub id or folder), checked by `check_tokenizer`."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load tokenizer: {one_line(e)}", name_or_path) from None
    return check_tokenizer(tok, name_or_path)


def load_model(
    name_or_path: str,
    adapter: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    merge_adapter: bool = False,
    quantize: str | None = None,
) -> LoadedModel:
    """Load a model by hub id or local folder, with its tokenizer and an optional PEFT adapter.

    Args:
        name_or_path: hub id (e.g. `google/flan-t5-small`), a local folder, a `.gguf` file (or a folder
            holding one) or an embedded model name (see `retain.models.sources`).
        adapter: optional PEFT adapter folder (or hub id) to load on top.
        device: `auto`, `cpu`, `cuda`, `cuda:N` or `mps`.
        dtype: `auto`, `float32`, `bfloat16`, `float16` or `bf16-autocast` (see `pick_precision`).
        allow_pickle: allow `.bin`/`.pt` checkpoints (pickle can execute code).
        trust_remote_code: run model code shipped with the checkpoint.
        merge_adapter: merge a mergeable adapter (LoRA, DoRA, IA3, ...) into the weights after loading,
            for inference: the same function without the adapter layers' per-layer overhead (LoRA
            evaluation on a CPU: see docs/benchmarks/speed.md). The fingerprint is the adapter's all the
            same. Prompt-learning adapters cannot be merged and stay as they are.
        quantize: `nf4` or `fp4`: load the weights in 4 bits through bitsandbytes, placed on `device`
            as they load, for training adapters on them (QLoRA: `retain.models.quantization`; CUDA
            only unless `RETAIN_QLORA_CPU=1`).

    Raises:
        UserError: missing folder or weights, unreadable config, incompatible adapter, a quantization
            this machine cannot run.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    dev = pick_device(device)
    precision = pick_precision(dtype, dev)
    check_quantization(quantize, dev)
    name, source = name_or_path, resolve_model(name_or_path, precision.weights)
    name_or_path = source.path
    local = Path(name_or_path)
    if local.exists() or name_or_path.startswith((".", "/", "~")):
        check_local_folder(local.expanduser(), allow_pickle)
        check_model_fits(local.expanduser(), torch.uint8 if quantize else precision.weights, dev, name)
    adapter_dir = _adapter_dir(adapter, allow_pickle) if adapter is not None else None
    try:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if hub_unreachable(e):
            raise UserError("cannot reach the hub for this model id; use a local folder (or check the network, "
                            "or HF_HUB_OFFLINE)", name_or_path) from None
        raise UserError(f"cannot load model config: {one_line(e)}", name_or_path) from None
    tokenizer = load_tokenizer(name_or_path, trust_remote_code)  # before the weights: fails fast
    seq2seq = is_seq2seq_config(config)
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    torch_dtype = precision.weights
    placed = quantized_load_options(quantize, dev) if quantize else {}
    try:
        model = auto.from_pretrained(
            name_or_path, config=config, dtype=torch_dtype, trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True, **placed,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"cannot load model weights: {describe_load_error(e)}", name_or_path) from None
    check_vocabulary(model, tokenizer, name_or_path)
    source_dir = str(local) if local.is_dir() else _hub_snapshot_dir(name_or_path)
    if adapter_dir is not None:
        model = _attach_adapter(model, adapter_dir)
    if not placed:  # a quantized model is on its device already
        model.to(dev)
    elif dev.type == "cpu":
        keep_cpu_layout(model)
    model.eval()
    fp = _fingerprint(model, tokenizer, source_dir, adapter_dir)
    if merge_adapter and adapter_dir is not None and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
        model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, is_seq2seq=seq2seq, fingerprint=fp,
                       adapter=adapter, source_dir=source_dir, extra={"source": source.origin} if source.origin else {},
                       autocast=precision.autocast, autocast_generation=precision.autocast_generation)




def _adapter_dir(adapter: str, allow_pickle: bool) -> Path:
    """The adapter's local folder, checked by `check_adapter_folder`.

    A hub adapter is downloaded first, without its pickle weights unless `allow_pickle`, so peft is
    only ever given a folder that passed the same checks as a local one.
    """
    if _looks_local(adapter):
        path = Path(adapter).expanduser()
    else:
        from huggingface_hub import snapshot_download

        patterns = ["adapter_config.json", ADAPTER_SAFETENSORS] + (["adapter_model.bin"] if allow_pickle else [])
        try:
            path = Path(snapshot_download(adapter, allow_patterns=patterns))
        except Exception as e:  # network, auth, offline, not found: all one line for the user
            raise UserError(f"cannot download adapter: {one_line(e)}", adapter) from None
    check_adapter_folder(path, allow_pickle)
    return path


def _attach_adapter(model, adapter_dir: Path):
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise UserError(f"cannot load adapter: {one_line(e)}", adapter_dir) from None


def _hub_snapshot_dir(name: str) -> str | None:
    try:
        from transformers.utils import cached_file

        cfg = cached_file(name, "config.json", local_files_only=True)
        return str(Path(cfg).parent) if cfg else None
    except Exception:  # not in the local hub cache: fall back to hashing the tensors
        return None


def _fingerprint(model, tokenizer, source_dir: str | None, adapter_dir: Path | None) -> str:
    if source_dir is not None:
        return fingerprint_path(source_dir, adapter_dir)
    return fingerprint_model(model, tokenizer)  # weights not in a folder we can read: hash what was loaded


class LazyModel:
    """A model identified by its files but loaded only when first used.

    Evaluation fully served from the cache never pays for importing `transformers` and loading
    weights: the fingerprint of a local folder comes from its files alone.
    """

    def __init__(self, name_or_path: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
                 allow_pickle: bool = False, trust_remote_code: bool = False, merge_adapter: bool = True):
        self.name, self.adapter = name_or_path, adapter
        # It is loaded to be evaluated: a mergeable adapter is merged (see `load_model`).
        self._kwargs = dict(adapter=adapter, device=device, dtype=dtype, allow_pickle=allow_pickle,
                            trust_remote_code=trust_remote_code, merge_adapter=merge_adapter)
        self._loaded: LoadedModel | None = None
        self._device = pick_device(device)
        self._precision = pick_precision(dtype, self._device)
        self.generations: dict = {}  # greedy answers known for these weights (see LoadedModel), before loading
        source = resolve_model(name_or_path, self._precision.weights)
        self._origin = source.origin
        local = Path(source.path).expanduser()
        adapter_ok = adapter is None or Path(adapter).is_dir()
        if local.is_dir() and adapter_ok:
            check_local_folder(local, allow_pickle)
            if adapter is not None:
                check_adapter_folder(Path(adapter), allow_pickle)
            self.fingerprint = fingerprint_path(local, adapter)
            self._seq2seq = bool(read_config(local / "config.json").get("is_encoder_decoder"))
        else:  # hub ids: the weights must be fetched (or found in the hub cache) to be identified
            self._load()

    def _load(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.name, **self._kwargs)
            self._loaded.generations = self.generations  # one memo, whether filled before or after loading
            self.fingerprint = self._loaded.fingerprint
            self._device, self._precision = self._loaded.device, self._loaded.precision
        return self._loaded

    def __getattr__(self, attr):  # model, tokenizer, is_seq2seq, ... load on first use
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._load(), attr)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._precision.weights

    @property
    def autocast(self) -> torch.dtype | None:
        return self._precision.autocast

    @property
    def precision(self) -> Precision:
        return self._precision

    def autocast_context(self):
        return self._precision.context(self._device)

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def describe(self) -> dict:
        if self._loaded is not None:
            return self._loaded.describe()
        return {"name": self.name, "fingerprint": self.fingerprint, "adapter": self.adapter,
                "architecture": "seq2seq" if self._seq2seq else "causal", "device": str(self._device), "dtype": str(self.dtype).replace("torch.", ""),
                "precision": self._precision.name, "generation_precision": self._precision.generation.name,
                **({"source": self._origin} if self._origin else {})}


def wrap_model(model, tokenizer, name: str = "in-memory") -> LoadedModel:
    """Wrap an in-memory model (e.g. straight after training) for evaluation."""
    return LoadedModel(model=model, tokenizer=tokenizer, name=name,
                       is_seq2seq=is_seq2seq_config(model.config), fingerprint=fingerprint_model(model, tokenizer))
