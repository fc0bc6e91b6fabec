"""Model fingerprints: which exact weights were evaluated.

A fingerprint is a SHA-256 over the model config, the hashes of its weight files and the hash of the
adapter (config + weights) when one is loaded. Evaluation caches key on it, so a fine-tuned model
never receives its base model's cached scores (lm-evaluation-harness issues #2715, #4063).

Hashing multi-GB weight files on every call would be slow, so file hashes are memoised in a small
JSON side cache keyed by (absolute path, size, mtime_ns).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import torch

from retain.io import atomic_write_json, sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CONFIG_FILES = ("config.json", "adapter_config.json", "generation_config.json")


def cache_root() -> Path:
    """Root of retain's on-disk caches (`RETAIN_CACHE_DIR`, default `~/.cache/retain`)."""
    return Path(os.environ.get("RETAIN_CACHE_DIR", Path.home() / ".cache" / "retain")).expanduser()


def _memo_path() -> Path:
    return cache_root() / "file-hashes.json"


def file_hash(path: Path) -> str:
    """SHA-256 of a file, memoised on (path, size, mtime)."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = _memo_path()
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    digest = sha256_file(path)
    if st.st_size > (8 << 20):  # only worth remembering for big files
        memo[key] = digest
        try:
            atomic_write_json(memo_file, memo, indent=None)
        except OSError:
            pass  # a read-only cache only costs speed
    return digest


def _folder_parts(folder: Path, names: Iterable[str]) -> dict:
    parts = {}
    for name in names:
        p = folder / name
        if p.is_file():
            try:
                parts[name] = json.loads(p.read_text())
            except ValueError:
                parts[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES:
            parts[p.name] = file_hash(p)
    return parts


def _drop_volatile(cfg: dict) -> dict:
    # Paths and library versions do not change the weights' behaviour.
    return {k: v for k, v in cfg.items() if k not in ("_name_or_path", "transformers_version", "base_model_name_or_path")}


def fingerprint_path(model_dir: str | Path, adapter_dir: str | Path | None = None) -> str:
    """Fingerprint of a model folder (and optional adapter folder): 16 hex digits of a SHA-256."""
    parts = _folder_parts(Path(model_dir), ("config.json",))
    if "config.json" in parts and isinstance(parts["config.json"], dict):
        parts["config.json"] = _drop_volatile(parts["config.json"])
    payload = {"model": parts}
    if adapter_dir is not None:
        adapter = _folder_parts(Path(adapter_dir), ("adapter_config.json",))
        if isinstance(adapter.get("adapter_config.json"), dict):
            # peft writes sets (e.g. target_modules) as lists in hash order, which changes with
            # PYTHONHASHSEED from process to process: order must not change the fingerprint.
            adapter["adapter_config.json"] = {
                k: sorted(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else v
                for k, v in _drop_volatile(adapter["adapter_config.json"]).items()}
        payload["adapter"] = adapter
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_state(state: Mapping[str, torch.Tensor] | torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) over a state dict's names, dtypes, shapes and bytes.

    Used for in-memory models and to prove that training left the base weights byte-identical.
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
