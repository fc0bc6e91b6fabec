"""The embedded real model end to end: `retain eval` on the shared real data, a tiny study with full,
LoRA and WiSE-FT runs, and the LoRA adapter read back with plain `peft`.

Kept small for a 2-core CPU: a handful of examples per task and two optimizer steps per run. The scores
are not checked (a few examples say nothing); that the commands work on a real pre-trained chat model
and say where its weights came from is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import DATA, needs_data
from tests.real.conftest import NAME

RETAIN = Path(sys.executable).parent / "retain"
pytestmark = pytest.mark.slow


def retain(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(RETAIN), *map(str, args)], capture_output=True, text=True, timeout=900, cwd=cwd,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})


@needs_data
def test_eval_on_shared_data(embedded_dir, tmp_path):
    out = tmp_path / "results.json"
    res = retain("eval", "--model", NAME, "--task", f"sentiment:{DATA / 'sentiment'}", "--task",
                 f"ner:{DATA / 'ner'}", "--limit", 2, "--out", out, "--cache-dir", tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    source = doc["model"]["source"]
    assert doc["model"]["name"] == NAME and doc["model"]["architecture"] == "causal"
    assert (source["embedded"], source["quantization"], source["dequantized"]) == (NAME, "Q4_1", True)
    assert len(doc["tasks"]) == 2


def test_gguf_file_and_embedded_name_are_the_same_model(embedded_dir):
    from retain.models.loading import LazyModel
    from retain.models.sources import embedded_gguf

    by_name, by_file = LazyModel(NAME), LazyModel(str(embedded_gguf(NAME)))
    assert by_name.fingerprint == by_file.fingerprint
    assert by_file.describe()["source"]["gguf_sha256"] == by_name.describe()["source"]["gguf_sha256"]


@pytest.fixture(scope="module")
def study(embedded_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("real-study")
    config = {
        "name": "smollm2", "model": NAME,
        "target": {"task": "toy-qa", "train_examples": 16},
        "protect": ["toy-sentiment"],
        "methods": [{"method": "full"}, {"method": "lora", "options": {"r": 4}},
                    {"method": "wise-ft", "of": "full", "alphas": [0.5]}],
        "train": {"max_steps": 2, "batch_size": 2, "eval_examples": 0, "learning_rate": 1e-4, "progress": False},
        "eval": {"limit": 3, "batch_size": 4, "n_boot": 50},
        "cache_dir": str(root / "eval-cache"),
    }
    (root / "study.yaml").write_text(yaml.safe_dump(config))
    res = retain("study", root / "study.yaml", "--out", root / "out")
    assert res.returncode == 0, res.stderr
    return root / "out"


def test_tiny_study_runs_end_to_end(study):
    doc = json.loads((study / "results.json").read_text())
    assert [r["name"] for r in doc["runs"]] == ["full", "lora", "full+wise-ft-0.5"]
    assert all(r["status"] == "done" for r in doc["runs"])
    assert doc["model"]["name"] == NAME
    assert (study / "report.html").is_file()


def test_lora_adapter_loads_with_plain_peft(study, embedded_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from retain.models.loading import load_model

    adapter = next(study.glob("runs/lora*/**/adapter_config.json")).parent
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(embedded_dir)
    ours = load_model(NAME, adapter=str(adapter), dtype="float32")
    base = AutoModelForCausalLM.from_pretrained(embedded_dir, dtype=torch.float32)
    plain = PeftModel.from_pretrained(base, str(adapter)).eval()
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    ids = tok("Context: Ivan loves cheese.\nQuestion: What does Ivan love?\nAnswer:", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(ours.model(**ids).logits, plain(**ids).logits)
