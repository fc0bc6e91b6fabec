"""GPU numbers for docs/benchmarks/gpu.md: the demo, and the real model trained full, LoRA and QLoRA.

Run on a machine with a CUDA GPU, from the repository root, after `make setup`:

    RETAIN_DATA_DIR=../shared/data .venv/bin/python -m bench.gpu --out bench/results/gpu

Each part runs the installed `retain` command in its own process, as a user would, and is timed:

1. `retain demo` end to end (the embedded tiny model and toy tasks), unless `--skip-demo`;
2. `retain train` of the real model (`--model`, default SmolLM2-135M-Instruct) on the first
   `--train-examples` DialogSum dialogues for one epoch at batch 8 with `full`, `lora` (r 16) and
   `qlora` (r 16, 4-bit NF4 base), in the precision `auto` picks: steps, tokens/s, peak memory and the
   precision from each run's metadata.json; a method the machine refuses (QLoRA without CUDA) is
   recorded with its one-line reason;
3. `retain eval` of the base on `--eval-limit` DialogSum test dialogues (greedy summaries), timed.

It writes OUT/gpu.json: machine_info() plus the GPU's name, capability and memory, and every part's
numbers. Ratios (LoRA / full, QLoRA / LoRA) are computed from runs of the same call. With `--device cpu`
and a tiny model it runs on a CPU (the test suite checks the script so); the numbers that matter come
from a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, machine_info

RETAIN = Path(sys.executable).parent / "retain"
METHODS = {"full": [], "lora": ["--set", "r=16", "--set", "alpha=32", "--learning-rate", "3e-3"],
           "qlora": ["--set", "r=16", "--set", "alpha=32", "--learning-rate", "3e-3"]}


def gpu_info() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "capability": list(torch.cuda.get_device_capability(0)),
            "memory_gib": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported(),
            "cuda": torch.version.cuda}


def run(args: list, log: Path) -> tuple[int, float, str]:
    """Run `retain ARGS`, its output into `log`; (exit code, seconds, last error line)."""
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run([str(RETAIN), *map(str, args)], stdout=out, stderr=subprocess.STDOUT).returncode
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    error = next((line for line in reversed(lines) if line.startswith("error: ")), "")
    return code, round(time.perf_counter() - started, 1), error


def train_part(opts, out: Path) -> dict:
    runs = {}
    for method in opts.methods.split(","):
        extra = METHODS[method]
        folder = out / "runs" / method
        code, seconds, error = run(["train", "--model", opts.model, "--task", opts.task, "--method", method,
                                    "--train-examples", opts.train_examples, "--epochs", 1, "--batch-size", 8,
                                    "--eval-examples", 0, "--device", opts.device, "--no-progress",
                                    *(["--max-steps", opts.max_steps] if opts.max_steps else []), *extra,
                                    "--out", folder], out / f"train-{method}.log")
        if code != 0:
            runs[method] = {"exit_code": code, "refused" if code == 2 else "failed": error, "wall_seconds": seconds}
            continue
        meta = json.loads((folder / "metadata.json").read_text())
        runs[method] = {"exit_code": 0, "wall_seconds": seconds, "train_seconds": meta["train_seconds"],
                        "steps": meta["steps"], "tokens_per_second": meta["tokens_per_second"],
                        "precision": meta["precision"], "peak_memory": meta["peak_memory"],
                        "trainable_parameters": meta["parameters"]["trainable"],
                        "base_quantization": meta.get("base_quantization"), "train_loss": meta["train_loss"]}
    done = {m: r for m, r in runs.items() if r.get("exit_code") == 0}
    ratios = {}
    for a, b in (("lora", "full"), ("qlora", "lora"), ("qlora", "full")):
        if a in done and b in done:
            ratios[f"{a}/{b} tokens_per_second"] = round(done[a]["tokens_per_second"] / done[b]["tokens_per_second"], 3)
    return {"runs": runs, "ratios": ratios}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--task", default="summarization", help="the training and evaluation task (DialogSum)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--train-examples", type=int, default=500)
    p.add_argument("--max-steps", type=int, default=None, help="cap the training steps (for a quick check)")
    p.add_argument("--eval-limit", type=int, default=150)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    p.add_argument("--skip-demo", action="store_true")
    opts = p.parse_args(argv)
    unknown = sorted(set(opts.methods.split(",")) - set(METHODS))
    if unknown:
        p.error(f"unknown method {unknown[0]!r} (use {', '.join(METHODS)})")
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine_info(), "gpu": gpu_info(), "device": opts.device, "model": opts.model,
           "task": opts.task, "data_dir": os.environ.get("RETAIN_DATA_DIR")}
    if not opts.skip_demo:
        code, seconds, error = run(["demo", "--out", out / "demo"], out / "demo.log")
        doc["demo"] = {"exit_code": code, "wall_seconds": seconds, **({"error": error} if code else {})}
    doc["train"] = train_part(opts, out)
    code, seconds, error = run(["eval", "--model", opts.model, "--task", opts.task, "--limit", opts.eval_limit,
                                "--device", opts.device, "--out", out / "eval-base.json"], out / "eval.log")
    doc["eval"] = {"exit_code": code, "wall_seconds": seconds, "examples": opts.eval_limit,
                   **({"error": error} if code else {})}
    tmp = out / "gpu.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out / "gpu.json")
    print(json.dumps({k: doc[k] for k in ("gpu", "train", "eval") if k in doc}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
