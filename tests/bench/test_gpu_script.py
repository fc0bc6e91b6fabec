"""bench/gpu.py on a CPU with the tiny Llama: the parts run through the `retain` command, QLoRA's refusal
is recorded with its reason, and gpu.json carries what docs/benchmarks/gpu.md quotes."""

from __future__ import annotations

import json

from bench.gpu import main


def test_gpu_bench_records_every_part(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIN_QLORA_CPU", "0")
    monkeypatch.setenv("RETAIN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "gpu"
    assert main(["--out", str(out), "--model", str(tiny_llama_dir), "--task", "toy-summarize", "--device", "cpu",
                 "--train-examples", "8", "--max-steps", "2", "--eval-limit", "4", "--skip-demo",
                 "--methods", "full,qlora"]) == 0
    doc = json.loads((out / "gpu.json").read_text())
    assert doc["machine"]["git_commit"] and doc["device"] == "cpu" and "demo" not in doc
    runs = doc["train"]["runs"]
    assert set(runs) == {"full", "qlora"}
    assert runs["full"]["exit_code"] == 0 and runs["full"]["steps"] == 2, runs["full"]
    assert runs["full"]["tokens_per_second"] > 0 and runs["full"]["base_quantization"] is None
    assert runs["qlora"]["exit_code"] == 2 and "CUDA" in runs["qlora"]["refused"]
    assert doc["train"]["ratios"] == {}, "a ratio needs both of its runs"
    assert doc["eval"]["exit_code"] == 0 and (out / "eval-base.json").is_file()
