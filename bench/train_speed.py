"""Training speed and memory: retain's loop vs a tutorial-style padded `Trainer`, and LoRA vs full.

What is measured, on a flan-t5-small-shaped T5 (the real config and tokenizer from
`../shared/models/flan-t5-small-tokenizer`, random weights, full size) and the same DialogSum
training examples (`summarization:../shared/data/summarization/train.jsonl`):

1. Speed: real (non-padding) tokens per second of training, for
   - `tutorial`: a plain `transformers.Trainer` script that pads every example to the maximum length
     (inputs to 512, labels to 128, pad labels -100), as the Hugging Face summarization tutorials do;
   - `retain-full`: `retain.training.train` with method `full` (dynamic padding, length-grouped batches).
   Same examples, batch size, optimizer steps (default: one epoch, so both see every example once and
   count the same real tokens), learning rate and precision. Real tokens are counted the same way for
   both (encoder tokens with attention mask 1 plus decoder label tokens != -100), inside
   `compute_loss`, over the wall time of `trainer.train()`. The two run interleaved `--repeats`
   times; the best run of each is compared (on a shared machine, load only ever slows a run down).
2. Memory: `retain-full` vs `retain-lora` (r=8 on q,v), same batches, at two settings: the speed
   setting (batch 8, inputs up to 512 tokens: activations dominate a 60M-parameter model) and a
   small batch with gradient checkpointing (weights, gradients and optimizer state dominate, as they
   do for larger models).
   - GPU: `torch.cuda.max_memory_allocated` (peak of all tensors: weights, grads, optimizer, activations).
   - CPU: process RSS, sampled every 5 ms by a thread from `on_train_begin` to `on_train_end`. We report
     the peak RSS during training (`peak_total`) and its increase over the RSS just before training
     (`peak_delta`: gradients, optimizer state and activations; the weights, the data and the Python /
     torch runtime are already resident). Each configuration runs in its own subprocess so that
     allocator caches and the lifetime `ru_maxrss` of one run never leak into another. tracemalloc is
     not used: it does not see torch's C++ allocations.

Run: `.venv/bin/python -m bench.train_speed` (writes `bench/results/train_speed.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FLAN = SHARED / "models" / "flan-t5-small-tokenizer"
DATA = SHARED / "data" / "summarization" / "train.jsonl"
TASK = f"summarization:{DATA}"
OUT = ROOT / "bench" / "results" / "train_speed.json"
MAX_SOURCE, MAX_TARGET = 512, 128  # the tutorial's max lengths, and retain's (its defaults)


# --- measurement helpers (run inside each child) -------------------------------------------------

class RssSampler:
    """Peak RSS of this process while `active`, sampled every 5 ms by a daemon thread."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.active = False
        self.baseline = 0
        self.peak = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            if self.active:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def start(self):
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self.active = True

    def stop(self):
        self.active = False
        self.peak = max(self.peak, self.proc.memory_info().rss)


def memory_callback(sampler: RssSampler):
    import torch
    from transformers import TrainerCallback

    class Memory(TrainerCallback):
        cuda_before = 0

        def on_train_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                Memory.cuda_before = torch.cuda.memory_allocated()
            sampler.start()

        def on_train_end(self, args, state, control, **kwargs):
            sampler.stop()

    return Memory()


def memory_report(sampler: RssSampler, cb) -> dict:
    import torch

    out = {"rss_before_train": sampler.baseline, "rss_peak_total": sampler.peak,
           "rss_peak_delta": sampler.peak - sampler.baseline}
    if torch.cuda.is_available():
        out["cuda_before_train"] = type(cb).cuda_before
        out["cuda_peak_total"] = torch.cuda.max_memory_allocated()
        out["cuda_peak_delta"] = out["cuda_peak_total"] - out["cuda_before_train"]
    return out


def child_retain(args) -> dict:
    from retain.methods import make_method
    from retain.training.config import TrainSettings
    from retain.training.loop import train

    sampler = RssSampler()
    cb = memory_callback(sampler)
    method = make_method("lora", {"r": 8}) if args.child == "retain-lora" else make_method("full")
    settings = TrainSettings(max_steps=args.steps, batch_size=args.batch_size, train_examples=args.examples,
                             eval_examples=0, learning_rate=1e-4, warmup=0.0, save_steps=10 ** 6,
                             logging_steps=args.steps, progress=False, max_source_length=MAX_SOURCE,
                             max_target_length=MAX_TARGET, seed=0, gradient_checkpointing=args.checkpointing)
    with tempfile.TemporaryDirectory() as tmp:
        r = train(args.model, TASK, method, settings, Path(tmp) / "run", callbacks=[cb])
    m = r.metadata
    return {"steps": m["steps"], "real_tokens": m["real_tokens"], "padding_fraction": m["padding_fraction"],
            "train_seconds": m["train_seconds"], "real_tokens_per_second": m["tokens_per_second"],
            "precision": m["precision"], "trainable_parameters": m["parameters"]["trainable"],
            "memory": memory_report(sampler, cb)}


def child_tutorial(args) -> dict:
    """The usual tutorial recipe (`bench.tutorial`): pad everything to max length, plain Trainer."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from bench.tutorial import padded_rows, train_tutorial
    from retain.models import pick_device
    from retain.tasks import get_task
    from retain.training.config import TrainSettings
    from retain.training.trainer import mixed_precision

    sampler = RssSampler()
    cb = memory_callback(sampler)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model)
    pairs = [(ex.prompt, ex.target) for ex in get_task(TASK).examples("train", args.examples)]
    rows = padded_rows(tok, pairs, is_seq2seq=True, max_length=MAX_SOURCE, max_target=MAX_TARGET)
    device = pick_device("auto")
    precision = mixed_precision(TrainSettings(), device, is_seq2seq=True)
    run = train_tutorial(model, tok, rows, batch_size=args.batch_size, steps=args.steps, learning_rate=1e-4,
                         callbacks=[cb], use_cpu=device.type == "cpu", precision=precision)
    del torch  # imported for the memory report's CUDA check
    return {"steps": run["steps"], "real_tokens": run["real"], "padding_fraction": 1 - run["real"] / run["padded"],
            "train_seconds": round(run["seconds"], 3), "real_tokens_per_second": run["real"] / run["seconds"],
            "precision": precision, "memory": memory_report(sampler, cb)}


# --- driver ----------------------------------------------------------------------------------------

def run_child(kind: str, model: Path, args, batch_size: int | None = None, steps: int | None = None,
              checkpointing: bool = False) -> dict:
    cmd = [sys.executable, "-m", "bench.train_speed", "--child", kind, "--model", str(model), "--steps", str(steps or args.steps),
           "--batch-size", str(batch_size or args.batch_size), "--examples", str(args.examples)]
    if checkpointing:
        cmd.append("--checkpointing")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        cmd += ["--threads", str(args.threads)]
    print(f"[train_speed] {' '.join(cmd[4:])} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[train_speed] {kind}: {result['real_tokens_per_second']:.0f} real tokens/s, "
          f"{result['train_seconds']:.1f} s", file=sys.stderr, flush=True)
    return result


def _ratio(lora: dict, full: dict, key: str) -> float:
    return lora["memory"][key] / full["memory"][key]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=128, help="DialogSum training examples")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: one epoch)")
    p.add_argument("--repeats", type=int, default=2, help="speed runs per configuration, interleaved")
    p.add_argument("--memory-steps", type=int, default=None,
                   help="steps of each memory run (default: the speed runs' steps; the longest batch comes "
                        "first, but the optimizer state of full fine-tuning only exists from step 2 on)")
    p.add_argument("--small-batch", type=int, default=2, help="batch size of the second memory pair")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per run (0: torch's default). One thread avoids OpenMP spin-waiting on a "
                        "shared machine; the same for every configuration either way.")
    args = p.parse_args()
    args.steps = args.steps or -(-args.examples // args.batch_size)
    args.memory_steps = args.memory_steps or args.steps

    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        fn = child_tutorial if args.child == "tutorial" else child_retain
        print(json.dumps(fn(args)))
        return

    if not FLAN.is_dir() or not DATA.is_file():
        raise SystemExit(f"needs {FLAN} and {DATA}")
    from retain.models.tiny import model_from_config_dir
    from retain.training.metadata import git_commit, machine, package_versions

    load_before = os.getloadavg()
    speed: dict[str, list[dict]] = {"tutorial": [], "retain-full": []}
    with tempfile.TemporaryDirectory() as tmp:
        model = model_from_config_dir(FLAN, Path(tmp) / "flan-t5-small-random", seed=0)
        for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit both alike
            for kind in speed:
                speed[kind].append(run_child(kind, model, args))
        memory = {
            f"batch{args.batch_size}": {k: run_child(k, model, args, steps=args.memory_steps)
                                        for k in ("retain-full", "retain-lora")},
            f"batch{args.small_batch}-checkpointing": {
                k: run_child(k, model, args, batch_size=args.small_batch, steps=args.memory_steps, checkpointing=True)
                for k in ("retain-full", "retain-lora")},
        }
    best = {k: max(r["real_tokens_per_second"] for r in v) for k, v in speed.items()}
    speedup = best["retain-full"] / best["tutorial"]
    paired = [r["real_tokens_per_second"] / t["real_tokens_per_second"]
              for r, t in zip(speed["retain-full"], speed["tutorial"])]
    mem_key = "cuda" if "cuda_peak_total" in speed["retain-full"][0]["memory"] else "rss"
    ratios = {name: {"peak_total": _ratio(pair["retain-lora"], pair["retain-full"], f"{mem_key}_peak_total"),
                     "peak_delta": _ratio(pair["retain-lora"], pair["retain-full"], f"{mem_key}_peak_delta")}
              for name, pair in memory.items()}
    doc = {
        "benchmark": "train_speed",
        "model": "flan-t5-small config, random weights (full size)",
        "data": f"{TASK} (first {args.examples} examples)",
        "settings": {"batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
                     "threads": args.threads or "torch default",
                     "max_source_length": MAX_SOURCE, "max_target_length": MAX_TARGET, "learning_rate": 1e-4,
                     "memory_steps": args.memory_steps, "small_batch": args.small_batch},
        "speed": speed,
        "best_real_tokens_per_second": best,
        "speedup_real_tokens_per_second": speedup,
        "speedup_per_pair": paired,
        "memory": memory,
        "memory_measure": mem_key,
        "lora_over_full": ratios,
        "goals": {"speedup_at_least_2x": speedup >= 2.0,
                  **{f"lora_peak_total_at_most_0.6x_full[{k}]": v["peak_total"] <= 0.6 for k, v in ratios.items()}},
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "versions": package_versions(),
        "git_commit": git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("best_real_tokens_per_second", "speedup_real_tokens_per_second",
                                          "speedup_per_pair", "lora_over_full", "goals")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
