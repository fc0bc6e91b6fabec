"""Model files checked as untrusted input before any library parses them.

A model folder comes from a download that may have stopped half way, a colleague's disk, or a hand
edit. `transformers`, `safetensors` and `peft` report such damage as a `JSONDecodeError`, a
`SafetensorError` or an allocation of a few exabytes (a garbage header length). Here each file is
checked cheaply first (a config is parsed, a safetensors header is read, never the tensors) and
every problem is one `UserError` naming the file.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

from retain.errors import UserError, one_line
from retain.models.fingerprint import PICKLE_SUFFIXES, has_tokenizer_files

log = logging.getLogger(__name__)

ADAPTER_SAFETENSORS = "adapter_model.safetensors"
PICKLE_REASON = ("pickle can run arbitrary code when loaded; pass --allow-pickle if you trust the files, "
                 "or convert them to safetensors")
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on a header


def read_config(path: Path, what: str = "config") -> dict:
    """A JSON object from `path` (config.json, adapter_config.json), or a UserError naming the file."""
    try:
        raw = path.read_bytes() if path.stat().st_size <= MAX_CONFIG_BYTES else None
    except OSError as e:
        raise UserError(f"cannot read {what}: {e.strerror or e}", path) from None
    if raw is None:
        raise UserError(f"{what} is larger than {MAX_CONFIG_BYTES // 2**20} MB: not a config file", path)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UserError(f"{what} is not UTF-8 text", path) from None
    except json.JSONDecodeError as e:
        raise UserError(f"{what} is not valid JSON ({e.msg}, line {e.lineno})" if raw.strip()
                        else f"{what} is empty", path) from None
    if not isinstance(data, dict):
        raise UserError(f"{what} must hold a JSON object, not {type(data).__name__}", path)
    return data


def check_safetensors(path: Path) -> dict:
    """The header of a safetensors file, after checking that the file is whole; else a UserError.

    The format is an 8-byte little-endian header length, a JSON header mapping each tensor to its
    dtype, shape and byte range, then the data. A download cut short has a header whose ranges run
    past the end of the file.
    """
    size = path.stat().st_size
    bad = "is not a safetensors file, or is damaged: download or save it again"
    if size < 8:
        raise UserError(bad, path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n == 0 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise UserError(bad, path)
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise UserError(bad, path) from None
    if not isinstance(header, dict):
        raise UserError(bad, path)
    end = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        offsets = meta.get("data_offsets") if isinstance(meta, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise UserError(bad, path)
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise UserError(f"is truncated: its header needs {8 + n + end:,} bytes and the file has {size:,} "
                        "(an interrupted download or copy?)", path)
    return header


def describe_load_error(e: BaseException) -> str:
    """A one-line reason for a weights file that transformers could not load into the model."""
    text = one_line(e)
    if "mismatched" in text or "size mismatch" in text or "ignore_mismatched_sizes" in text:
        return ("the weights do not match config.json (a tensor's shape differs from what the config "
                "describes): the config or the weights belong to another model")
    return text


def check_local_folder(path: Path, allow_pickle: bool) -> None:
    """A local model folder has a config, weights that may be loaded, and tokenizer files."""
    if not path.is_dir():
        raise UserError("model folder not found", path)
    if not (path / "config.json").is_file():
        raise UserError("model folder has no config.json", path)
    read_config(path / "config.json")
    for weights in sorted(path.glob("*.safetensors")):
        check_safetensors(weights)
    files = [p.name for p in path.iterdir()]
    if not any(f.endswith(".safetensors") or f == "model.safetensors.index.json" for f in files):
        pickled = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if not pickled:
            raise UserError("model folder has no weights (*.safetensors)", path)
        if not allow_pickle:
            raise UserError(f"model folder has only pickle weights ({pickled[0]}): {PICKLE_REASON}", path)
    if not has_tokenizer_files(path):
        raise UserError("model folder has no tokenizer files (tokenizer.json, tokenizer_config.json, a vocabulary "
                        "or sentencepiece model): copy the base model's tokenizer files into it", path)

def check_adapter_folder(path: Path, allow_pickle: bool) -> None:
    """A local adapter folder has adapter_config.json and weights that may be loaded.

    peft falls back to `adapter_model.bin` (loaded with `torch.load`) when no safetensors file is
    there, so pickle is refused here, before peft sees the folder.
    """
    if not path.is_dir():
        raise UserError("adapter folder not found", path)
    if not (path / "adapter_config.json").is_file():
        raise UserError("adapter folder has no adapter_config.json", path)
    read_config(path / "adapter_config.json", "adapter config")
    if (path / ADAPTER_SAFETENSORS).is_file():
        check_safetensors(path / ADAPTER_SAFETENSORS)
        return
    pickled = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if not pickled:
        raise UserError(f"adapter folder has no weights ({ADAPTER_SAFETENSORS})", path)
    if not allow_pickle:
        raise UserError(f"adapter folder has only pickle weights ({pickled[0]}): {PICKLE_REASON}", path)

def hub_unreachable(e: BaseException) -> bool:
    """Whether a loading error means the hub could not be reached (offline, DNS, refused), not a bad id."""
    text = str(e)
    return any(s in text for s in ("couldn't connect to", "Name or service not known", "offline mode",
                                   "Temporary failure in name resolution", "Connection refused"))

def check_vocabulary(model, tokenizer, where: str) -> None:
    """The tokenizer's ids fit the embedding matrix (else the first such token crashes the forward pass
    with an index error, or on a GPU a device-side assert).

    Refused: a base vocabulary larger than the matrix (the tokenizer of another model), or a special
    token retain uses (pad, eos, bos, unk) without a row. Added tokens without a row (GGUF conversion
    adds `<|endoftext|>` to tokenizers that lack it) are a warning: text rarely contains them.
    """
    embeddings = model.get_input_embeddings()
    if embeddings is None:
        return
    rows = embeddings.num_embeddings
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    base_top = max((i for i in tokenizer.get_vocab().values() if i not in added), default=-1)
    if base_top >= rows:
        raise UserError(f"the tokenizer's vocabulary has ids up to {base_top:,} but the model's embedding has "
                        f"{rows:,} rows: the tokenizer belongs to another model", where)
    for name in ("pad", "eos", "bos", "unk"):
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        if isinstance(token_id, int) and token_id >= rows:
            raise UserError(f"the {name} token has id {token_id:,} but the model's embedding has {rows:,} rows: "
                            "resize the embeddings after adding tokens, or set another "
                            f"{name}_token in tokenizer_config.json", where)
    beyond = sorted(i for i in added if i >= rows)
    if beyond:
        log.warning("%s: %d added token(s) have no embedding row (ids %s...); text containing them would fail",
                    where, len(beyond), beyond[:3])
