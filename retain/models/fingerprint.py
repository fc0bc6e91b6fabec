"""Model fingerprints: which exact model was evaluated.

A fingerprint is a SHA-256 over everything in a model folder that changes its outputs: the config,
the weight files, the tokenizer (tokenizer.json, tokenizer_config.json, vocab / merges /
sentencepiece / tiktoken files, special and added tokens), the chat template (chat_template.jinja,
chat_template.json, or inside tokenizer_config.json) and generation_config.json; plus the adapter
(config + weights) when one is loaded. Evaluation caches key on it, so a fine-tuned model never
receives its base model's cached scores (lm-evaluation-harness issues #2715, #4063), and a folder
with the same weights but another tokenizer or template never receives the original's.

JSON settings files are compared by content with volatile keys (paths, library versions) dropped, so
copying or re-saving a model keeps its fingerprint; other files are compared by bytes. Files that do
not change outputs (logs, metadata, checkpoints in subfolders) are left out, so writing a result next
to a model does not change it either. Hashing multi-GB weight files on every call would be slow, so
file hashes are memoised in a small JSON side cache keyed by (absolute path, size, mtime_ns).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Mapping

import torch

from retain.io import atomic_write_json, sha256_file

# Bump when what a fingerprint covers changes: every fingerprint changes with it, so cache entries
# keyed on an older, narrower fingerprint (v1: config + weights only) are never served again.
FINGERPRINT_VERSION = 2

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
# JSON files compared by content (volatile keys dropped).
SETTINGS_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
                  "added_tokens.json", "chat_template.json", "processor_config.json")
# Tokenizer data compared by bytes: fast tokenizers, BPE / WordPiece vocabularies, sentencepiece and
# tiktoken models, Jinja chat templates (`additional_chat_templates/` holds named extra templates).
TOKENIZER_DATA_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "merges.txt", "bpe.codes")
TOKENIZER_DATA_SUFFIXES = (".model", ".spm", ".tiktoken", ".jinja")
TEMPLATE_FOLDER = "additional_chat_templates"
# Files a tokenizer can be built from. tokenizer_config.json alone can be enough (byte-level ByT5, CANINE);
# a folder with none of these gets an empty tokenizer from transformers, which must be refused.
TOKENIZER_SOURCES = ("tokenizer_config.json",) + TOKENIZER_DATA_FILES
# Keys that name where or with which library version a file was written, not what the model does.
VOLATILE_KEYS = ("_name_or_path", "name_or_path", "transformers_version", "peft_version", "base_model_name_or_path",
                 "tokenizer_file", "special_tokens_map_file")


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


def is_tokenizer_data(name: str) -> bool:
    return name in TOKENIZER_DATA_FILES or name.endswith(TOKENIZER_DATA_SUFFIXES)


def has_tokenizer_files(folder: str | Path) -> bool:
    """Whether `folder` holds anything a tokenizer can be built from (see `TOKENIZER_SOURCES`)."""
    folder = Path(folder)
    return any((folder / n).is_file() for n in TOKENIZER_SOURCES) or any(
        p.is_file() and is_tokenizer_data(p.name) for p in folder.iterdir())


def _drop_volatile(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in VOLATILE_KEYS}


def _settings_hash(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return sha256_file(path)  # not JSON: compare the bytes
    if isinstance(data, dict):
        data = _drop_volatile(data)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def model_parts(folder: str | Path, memo: bool = True) -> dict[str, str]:
    """Name -> hash of every file in a model folder that changes the model's outputs.

    `memo=False` for temporary folders, whose paths are not worth remembering.
    """
    folder = Path(folder)
    hash_bytes = file_hash if memo else sha256_file
    parts = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if p.name in SETTINGS_FILES:
            parts[p.name] = _settings_hash(p)
        elif p.suffix in WEIGHT_SUFFIXES or is_tokenizer_data(p.name):
            parts[p.name] = hash_bytes(p)
    templates = folder / TEMPLATE_FOLDER
    if templates.is_dir():
        for p in sorted(templates.iterdir()):
            if p.is_file():
                parts[f"{TEMPLATE_FOLDER}/{p.name}"] = hash_bytes(p)
    return parts


def adapter_parts(folder: str | Path) -> dict[str, str]:
    """Name -> hash of an adapter folder's config and weights (its tokenizer copy is not loaded)."""
    folder = Path(folder)
    parts = {p.name: file_hash(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in WEIGHT_SUFFIXES}
    cfg_path = folder / "adapter_config.json"
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            parts["adapter_config.json"] = sha256_file(cfg_path)
        else:
            # peft writes sets (e.g. target_modules) as lists in hash order, which changes with
            # PYTHONHASHSEED from process to process: order must not change the fingerprint.
            cfg = {k: sorted(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else v
                   for k, v in _drop_volatile(cfg).items()} if isinstance(cfg, dict) else cfg
            parts["adapter_config.json"] = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()
    return parts


def _digest(payload: dict) -> str:
    payload = {"fingerprint_version": FINGERPRINT_VERSION, **payload}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_path(model_dir: str | Path, adapter_dir: str | Path | None = None) -> str:
    """Fingerprint of a model folder (and optional adapter folder): 16 hex digits of a SHA-256.

    Reads files only (no `transformers` import), so a cache hit never pays for loading the model.
    """
    payload = {"model": model_parts(model_dir)}
    if adapter_dir is not None:
        payload["adapter"] = adapter_parts(adapter_dir)
    return _digest(payload)


def fingerprint_state(state: Mapping[str, torch.Tensor] | torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) over a state dict's names, dtypes, shapes and bytes.

    Weights only: used to prove that training left the base weights byte-identical, and as the
    weights part of `fingerprint_model`.
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def fingerprint_model(model: torch.nn.Module, tokenizer) -> str:
    """Fingerprint of an in-memory model: its weights, config, generation config and tokenizer.

    The tokenizer (with its chat template) is saved to a temporary folder and hashed like a model
    folder's tokenizer files, so two in-memory models differing only in tokenizer differ here too.
    """
    payload: dict = {"weights": fingerprint_state(model)}
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_diff_dict"):
        payload["config"] = _drop_volatile(config.to_diff_dict())
    gen = getattr(model, "generation_config", None)
    if gen is not None and hasattr(gen, "to_diff_dict"):
        payload["generation_config"] = _drop_volatile(gen.to_diff_dict())
    if tokenizer is not None:
        with tempfile.TemporaryDirectory(prefix="retain-tok-") as tmp:
            tokenizer.save_pretrained(tmp)
            payload["tokenizer"] = model_parts(tmp, memo=False)
    return _digest(json.loads(json.dumps(payload, sort_keys=True, default=str)))
