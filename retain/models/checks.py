"""Model files checked as untrusted input before any library parses them.

A model folder comes from a download that may have stopped half way, a colleague's disk, or a hand
edit. `transformers`, `safetensors` and `peft` report such damage as a `JSONDecodeError`, a
`SafetensorError` or an allocation of a few exabytes (a garbage header length). Here each file is
checked cheaply first (a config is parsed, a safetensors header is read, never the tensors) and
every problem is one `UserError` naming the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from retain.errors import UserError, one_line

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
