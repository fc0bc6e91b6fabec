"""Fingerprints cover everything that changes outputs, and nothing that does not.

Everything that changes a model's outputs (weights, config, tokenizer, chat template, generation
config, adapter) changes its fingerprint, so the evaluation cache never serves one model's outputs
to another; paths, library versions and files beside the model (logs, results) do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import EvalSettings, evaluate_task
from retain.models import fingerprint as fpmod
from retain.models.fingerprint import fingerprint_model, fingerprint_path
from retain.models.loading import LazyModel, load_model, wrap_model
from retain.tasks import get_task
from tests.models.conftest import copy_model

SETTINGS = EvalSettings(limit=4)
TEMPLATE = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}A:{% endif %}"


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def _eval(folder: Path, cache: EvalCache, task: str = "toy-qa"):
    return evaluate_task(LazyModel(str(folder)), get_task(task), SETTINGS, cache)


def test_swapped_tokenizer_changes_fingerprint_and_misses_cache(tiny_llama_dir, swapped_llama_dir, cache_dir):
    assert (swapped_llama_dir / "model.safetensors").read_bytes() == (tiny_llama_dir / "model.safetensors").read_bytes()
    assert fingerprint_path(swapped_llama_dir) != fingerprint_path(tiny_llama_dir)
    cache = EvalCache(cache_dir / "eval")
    for task in ("toy-qa", "toy-sentiment"):  # generation and choice tasks
        original = _eval(tiny_llama_dir, cache, task)
        assert _eval(tiny_llama_dir, cache, task).from_cache  # the cache works at all
        swapped = _eval(swapped_llama_dir, cache, task)
        assert not swapped.from_cache
        fresh = evaluate_task(load_model(str(swapped_llama_dir)), get_task(task), SETTINGS, cache=None)
        assert swapped.predictions == fresh.predictions
        assert swapped.predictions != original.predictions


@pytest.mark.parametrize("change", ["generation_config", "chat_template.jinja", "chat_template in tokenizer_config",
                                    "special token", "added_tokens.json"])
def test_each_output_changing_file_changes_fingerprint_and_misses_cache(change, tiny_llama_dir, tmp_path, cache_dir):
    folder = copy_model(tiny_llama_dir, tmp_path / "changed")
    if change == "generation_config":
        _edit_json(folder / "generation_config.json", eos_token_id=5)
    elif change == "chat_template.jinja":
        (folder / "chat_template.jinja").write_text(TEMPLATE)
    elif change == "chat_template in tokenizer_config":
        _edit_json(folder / "tokenizer_config.json", chat_template=TEMPLATE)
    elif change == "special token":
        _edit_json(folder / "tokenizer_config.json", eos_token="<unk>")
    else:
        from transformers import AutoTokenizer

        token, token_id = next(iter(AutoTokenizer.from_pretrained(folder).get_vocab().items()))
        (folder / "added_tokens.json").write_text(json.dumps({token: token_id}))  # an id the embeddings have
    assert fingerprint_path(folder) != fingerprint_path(tiny_llama_dir)
    cache = EvalCache(cache_dir / "eval")
    _eval(tiny_llama_dir, cache)
    assert not _eval(folder, cache).from_cache


def test_chat_template_file_changes_fingerprint_by_content(tiny_llama_dir, tmp_path):
    a = copy_model(tiny_llama_dir, tmp_path / "a")
    (a / "chat_template.jinja").write_text(TEMPLATE)
    b = copy_model(a, tmp_path / "b")
    assert fingerprint_path(b) == fingerprint_path(a)
    (b / "chat_template.jinja").write_text(TEMPLATE.replace("A:", "Answer:"))
    assert fingerprint_path(b) != fingerprint_path(a)
    c = copy_model(a, tmp_path / "c")
    (c / "additional_chat_templates").mkdir()
    (c / "additional_chat_templates" / "tool_use.jinja").write_text(TEMPLATE)
    assert fingerprint_path(c) != fingerprint_path(a)


def test_vocabulary_files_are_covered(tiny_t5_dir, tmp_path):
    """Slow-tokenizer vocabularies (sentencepiece, BPE merges) count as much as tokenizer.json."""
    base = copy_model(tiny_t5_dir, tmp_path / "base")
    for name in ("spiece.model", "merges.txt", "vocab.json", "vocab.txt", "qwen.tiktoken"):
        changed = copy_model(base, tmp_path / name)
        (changed / name).write_bytes(b"some vocabulary")
        assert fingerprint_path(changed) != fingerprint_path(base), name


def test_what_does_not_change_outputs_keeps_the_fingerprint(tiny_llama_dir, tmp_path):
    folder = copy_model(tiny_llama_dir, tmp_path / "m")
    before = fingerprint_path(folder)
    _edit_json(folder / "config.json", transformers_version="0.0.1", _name_or_path="/elsewhere")
    _edit_json(folder / "generation_config.json", transformers_version="0.0.1")
    _edit_json(folder / "tokenizer_config.json", name_or_path="/elsewhere", tokenizer_file="/elsewhere/tokenizer.json")
    (folder / "README.md").write_text("a model card")
    (folder / "metadata.json").write_text("{}")
    (folder / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-1" / "optimizer.pt").write_bytes(b"state")
    assert fingerprint_path(folder) == before


def test_fingerprint_version_is_in_the_payload(tiny_llama_dir, monkeypatch):
    """Cache entries keyed on an older, narrower fingerprint are never served again."""
    before = fingerprint_path(tiny_llama_dir)
    monkeypatch.setattr(fpmod, "FINGERPRINT_VERSION", fpmod.FINGERPRINT_VERSION + 1)
    assert fingerprint_path(tiny_llama_dir) != before


def _lora_adapter(base_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    model = load_model(str(base_dir)).model
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj", "k_proj", "o_proj"],
                                     init_lora_weights=False)).save_pretrained(out)
    return out


def test_fingerprint_stable_across_processes_and_paths(tiny_llama_dir, tmp_path, cache_dir):
    """A copy elsewhere, read by another process with another hash seed and working dir: same fingerprint."""
    adapter = _lora_adapter(tiny_llama_dir, tmp_path / "adapter")
    here = (fingerprint_path(tiny_llama_dir), fingerprint_path(tiny_llama_dir, adapter))
    model_copy = copy_model(tiny_llama_dir, tmp_path / "elsewhere" / "model")
    adapter_copy = copy_model(adapter, tmp_path / "elsewhere" / "adapter")
    code = ("import json, sys; from retain.models.fingerprint import fingerprint_path as f; "
            "print(json.dumps([f(sys.argv[1]), f(sys.argv[1], sys.argv[2])]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "RETAIN_CACHE_DIR": str(tmp_path / "other-cache")}
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code, str(model_copy), str(adapter_copy)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert tuple(json.loads(res.stdout)) == here
    assert here[0] != here[1]


def test_lazy_fingerprint_needs_no_model_loading(swapped_llama_dir, tmp_path):
    """Cache hits stay cheap: the fingerprint of a folder comes from its files, without transformers' models."""
    code = ("import sys; from retain.models.loading import LazyModel; lm = LazyModel(sys.argv[1]); "
            "print(lm.fingerprint); assert 'transformers.modeling_utils' not in sys.modules, 'loaded a model'")
    env = {**os.environ, "RETAIN_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-c", code, str(swapped_llama_dir)], env=env, capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == fingerprint_path(swapped_llama_dir)
    assert LazyModel(str(swapped_llama_dir)).fingerprint == load_model(str(swapped_llama_dir)).fingerprint


def test_in_memory_fingerprint_covers_the_tokenizer(tiny_llama_dir, causal_tokenizer, other_causal_tokenizer):
    model = load_model(str(tiny_llama_dir)).model
    same = fingerprint_model(model, causal_tokenizer)
    assert fingerprint_model(model, causal_tokenizer) == same
    assert fingerprint_model(model, other_causal_tokenizer) != same
    assert wrap_model(model, other_causal_tokenizer).fingerprint != wrap_model(model, causal_tokenizer).fingerprint
    model.generation_config.eos_token_id = 5
    assert fingerprint_model(model, causal_tokenizer) != same
