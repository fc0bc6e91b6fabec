"""GGUF files as a model source: read their metadata, convert them once into a safetensors folder.

A GGUF file (llama.cpp's format) holds a whole model in one file: config as metadata, the tokenizer
(vocabulary, merges, chat template) and the weights, usually quantized (Q4_1, Q8_0, ...).
`transformers` reads it with `from_pretrained(folder, gguf_file=name)` and dequantizes the weights,
which takes tens of seconds and leaves a GGUF `quantization_config` on the model that `Trainer`, PEFT
and `save_pretrained` refuse. So retain converts a GGUF file once into a standard model folder
(config, safetensors weights, tokenizer with its chat template) and loads that folder afterwards:

- `read_gguf_info(path)` checks the file at the boundary (magic bytes, a readable header, an
  architecture transformers supports) and says which quantization it holds;
- `convert_gguf(path, out, dtype)` writes the folder atomically (a temporary folder, then rename)
  with `retain_source.json` recording the GGUF's SHA-256 and quantization;
- `cached_conversion(path, dtype)` is that folder under retain's cache, keyed on the file's SHA-256
  and the dtype, built on first use.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from retain.errors import UserError, one_line
from retain.io import atomic_write_json, read_json
from retain.models.fingerprint import cache_root, file_hash

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
SOURCE_FILE = "retain_source.json"  # written into every converted folder
SOURCE_FORMAT = "retain-gguf-conversion/1"
CONVERT_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                  "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
# Tensor types that are plain floats, not quantized blocks.
FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}
# Peak memory of a conversion per dequantized parameter byte: the float32 arrays transformers
# dequantizes into, plus the model's own parameters (measured 2.2x on SmolLM2-135M).
CONVERT_MEMORY_FACTOR = 2.5


@dataclass
class GgufInfo:
    """What a GGUF file's header says.

    Attributes:
        path: the file.
        architecture: `general.architecture` (e.g. `llama`).
        name: `general.name`, if set.
        quantization: the file type, e.g. `Q4_1` (from `general.file_type`, else the commonest
            quantized tensor type; `F32`/`F16` for unquantized files).
        tensor_types: tensor count per GGML type, e.g. `{"Q4_1": 210, "F32": 61, "Q8_0": 1}`.
        parameters: number of weights (elements over all tensors).
        license: `general.license`, if set.
    """

    path: Path
    architecture: str
    name: str | None
    quantization: str
    tensor_types: dict = field(default_factory=dict)
    parameters: int = 0
    license: str | None = None

    @property
    def quantized(self) -> bool:
        return any(t not in FLOAT_TYPES for t in self.tensor_types)


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    return f.contents()


def _supported_architectures() -> set[str]:
    """GGUF architectures this transformers can load (its legacy loader and its newer GGUF path)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    names = set(GGUF_SUPPORTED_ARCHITECTURES)
    try:
        from transformers.integrations.gguf.gguf_conversion_mapping import GGUF_ARCHS

        names |= set(GGUF_ARCHS)
    except ImportError:  # older transformers: the legacy loader only
        pass
    return names


def _architecture_supported(arch: str) -> bool:
    supported = _supported_architectures()
    # transformers renames a few on the way in (modeling_gguf_pytorch_utils.load_gguf_checkpoint).
    aliases = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2",
               "t5encoder": "t5"}
    return arch in supported or aliases.get(arch) in supported


def read_gguf_info(path: str | Path) -> GgufInfo:
    """Check that `path` is a GGUF file transformers can load, and read what it holds.

    Raises:
        UserError: missing file, not a GGUF file (wrong magic), a corrupt or truncated file, or an
            architecture this transformers cannot read.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError("GGUF file not found", path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise UserError(f"not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})", path)
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UserError("reading GGUF files needs the `gguf` package: pip install gguf") from None
    try:
        reader = GGUFReader(path)
        arch = _field(reader, "general.architecture")
        types = collections.Counter(t.tensor_type.name for t in reader.tensors)
        parameters = int(sum(int(t.n_elements) for t in reader.tensors))
        file_type = _field(reader, "general.file_type")
        name, licence = _field(reader, "general.name"), _field(reader, "general.license")
    # GGUFReader parses with numpy views into a memmap: a truncated or garbled file surfaces as one
    # of these while reading the header or laying out the tensors.
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, OSError) as e:
        raise UserError(f"corrupt or truncated GGUF file ({one_line(e)})", path) from None
    if not arch:
        raise UserError("GGUF file has no general.architecture", path)
    if not _architecture_supported(arch):
        import transformers

        raise UserError(f"GGUF architecture {arch!r} cannot be read by transformers {transformers.__version__} "
                        f"(it reads: {', '.join(sorted(_supported_architectures()))})", path)
    return GgufInfo(path=path, architecture=str(arch), name=name, quantization=_quantization(file_type, types),
                    tensor_types=dict(sorted(types.items())), parameters=parameters, license=licence)


def _quantization(file_type, types: collections.Counter) -> str:
    from gguf import LlamaFileType

    if file_type is not None:
        try:
            return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    quantized = [(n, t) for t, n in types.items() if t not in FLOAT_TYPES]
    return max(quantized)[1] if quantized else (max((n, t) for t, n in types.items())[1] if types else "unknown")


def dtype_name(dtype: torch.dtype | str) -> str:
    """`float32` / `bfloat16` / `float16` for a torch dtype or one of `CONVERT_DTYPES`' names."""
    if isinstance(dtype, str):
        if dtype not in CONVERT_DTYPES:
            raise UserError(f"unknown dtype {dtype!r} for a GGUF conversion (use {', '.join(CONVERT_DTYPES)})")
        dtype = CONVERT_DTYPES[dtype]
    return str(dtype).replace("torch.", "")


def source_record(info: GgufInfo, sha256: str, dtype: str) -> dict:
    """What `retain_source.json` holds: deterministic for a given file, dtype and library versions."""
    import gguf
    import transformers

    return {"format": SOURCE_FORMAT, "kind": "gguf", "gguf_file": info.path.name, "gguf_sha256": sha256,
            "architecture": info.architecture, "gguf_name": info.name, "license": info.license,
            "quantization": info.quantization, "tensor_types": info.tensor_types, "parameters": info.parameters,
            "dequantized": info.quantized, "dtype": dtype,
            "converted_with": {"transformers": transformers.__version__,
                               "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf")}}


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def read_source(folder: str | Path) -> dict | None:
    """The `retain_source.json` of a converted folder, or None for any other folder."""
    p = Path(folder) / SOURCE_FILE
    return read_json(p) if p.is_file() else None


def _load_from_gguf(path: Path, dtype: torch.dtype):
    """(model, tokenizer) read from a GGUF file by transformers, weights dequantized and the
    quantization config removed (so the model trains and saves like any other)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    folder, name = str(path.parent), path.name
    stage = "config"
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        stage = "tokenizer"
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        stage = "weights"
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        # dequantize=True: plain dense weights even where transformers could keep GGUF blocks packed.
        model = auto.from_pretrained(folder, gguf_file=name, config=config, dtype=dtype,
                                     quantization_config=GgufConfig(dequantize=True))
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError, RuntimeError) as e:
        raise UserError(f"transformers cannot load the GGUF {stage}: {one_line(e)}", path) from None
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def convert_gguf(path: str | Path, out: str | Path, dtype: torch.dtype | str = torch.float32,
                 info: GgufInfo | None = None, sha256: str | None = None) -> Path:
    """Convert a GGUF file into a standard safetensors model folder at `out`, atomically.

    The folder is written under a temporary name next to `out` and renamed at the end: a killed or
    failed conversion leaves no folder at `out` (and its temporary folder is removed on failure,
    or by the next conversion of the same file after a kill).

    Args:
        path: the `.gguf` file.
        out: the folder to create; must not exist yet.
        dtype: dtype of the saved weights (`float32` keeps the dequantized values exactly).
        info, sha256: already computed `read_gguf_info(path)` / file hash, if any.

    Returns:
        `out`.

    Raises:
        UserError: a bad file (see `read_gguf_info`), too little memory, a failure inside transformers,
            or `out` already exists.
    """
    from retain.models.memory import check_memory

    path, out = Path(path).expanduser(), Path(out).expanduser()
    info = info or read_gguf_info(path)
    name = dtype_name(dtype)
    if out.exists():
        raise UserError("output folder already exists; choose another or delete it", out)
    check_memory(int(info.parameters * torch.finfo(torch.float32).bits / 8 * CONVERT_MEMORY_FACTOR),
                 f"converting {path.name} ({info.parameters / 1e6:.0f}M parameters)")
    sha256 = sha256 or file_hash(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed conversion
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model, tokenizer = _load_from_gguf(path, CONVERT_DTYPES[name] if name in CONVERT_DTYPES else dtype)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / SOURCE_FILE, source_record(info, sha256, name))
        del model
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if out.is_dir() and (out / SOURCE_FILE).is_file():
            return out  # another process finished the same conversion first
        raise
    return out


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def conversion_dir(sha256: str, dtype: torch.dtype | str, stem: str) -> Path:
    """Where `cached_conversion` keeps the folder for a file with this hash at this dtype."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:60]
    return cache_root() / "models" / f"{safe}-{sha256[:16]}-{dtype_name(dtype)}"


def cached_conversion(path: str | Path, dtype: torch.dtype | str = torch.float32) -> tuple[Path, dict]:
    """The converted folder of a GGUF file under retain's cache, converted on first use.

    Returns:
        (folder, its `retain_source.json` record).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError("GGUF file not found", path)
    sha256 = file_hash(path)  # memoised on (path, size, mtime): the converted folder is found in milliseconds
    folder = conversion_dir(sha256, dtype, path.stem)
    if not (folder / SOURCE_FILE).is_file():
        info = read_gguf_info(path)
        if folder.exists():  # not one of ours (written atomically, so never half-done): rebuild it
            shutil.rmtree(folder)
        log.warning("converting %s to a safetensors folder (once): %s", path.name, folder)
        convert_gguf(path, folder, dtype, info=info, sha256=sha256)
    return folder, read_json(folder / SOURCE_FILE)


def describe_source(record: dict) -> dict:
    """The part of a `retain_source.json` record that goes into results (`model.source`)."""
    keep = ("kind", "gguf_file", "gguf_sha256", "architecture", "quantization", "dequantized", "dtype", "license")
    out = {k: record.get(k) for k in keep if k in record}
    if record.get("dequantized"):
        out["note"] = f"weights dequantized from a {record.get('quantization')}-quantized GGUF file"
    return out


