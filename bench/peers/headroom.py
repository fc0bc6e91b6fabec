"""Headroom: retain's training throughput as a fraction of this machine's measured dense matmul peak.

    fraction = model FLOPs per real token x real tokens per second / peak FLOP/s

for the flan-t5-small-shaped T5 (the real config and tokenizer from `../shared/models/flan-t5-small-tokenizer`,
random weights under seed 0, built once into `--headroom-cache`) trained with `retain.training.train`
(method `full`, fp32 on CPU) on DialogSum, through `bench/train_speed.py`'s retain child (max source 512,
max target 128, learning rate 1e-4, no warmup, no eval, no checkpoints).

- **Peak**: the best median GFLOP/s of square fp32 `torch.mm` over `--headroom-sizes` (1024..4096), at
  the training run's torch thread count, measured in this process right before each training run
  (load on a shared machine moves both), so each run has its own peak and the fractions are pair by
  pair; the report gives their median.
- **Model FLOPs** (`t5_training_flops`): exact per example from its encoder length n and decoder
  length m (retain's own encoding: prompt + EOS, target + EOS); each run is one epoch over
  `steps x batch size` examples, so every example is counted once. Only real tokens count: FLOPs spent
  on padding are waste, and show up as a lower fraction. Backward = 2 x forward, so training = 3 x
  forward (the usual "6 x parameters per token" for the matmuls):

      P_enc = L_e (4 d h k + F d f) + L_d (2 d h k)    matmul parameters an encoder token touches
                                                        (its layers, plus the cross-attention K and V
                                                        projections of every decoder layer)
      P_dec = L_d (6 d h k + F d f) + d V              a decoder token: self-attention q k v o,
                                                        cross-attention q o, feed-forward, LM head
      FLOPs = 6 (n P_enc + m P_dec)
            + 12 h k [L_e n^2 + L_d (m (m + 1) / 2 + m n)]   attention scores and weighted values

  with d = d_model, h k = num_heads x d_kv, f = d_ff, F = 3 for gated feed-forward (flan-t5) else 2,
  V = vocab_size (the LM head's width), L_e / L_d = encoder / decoder layers. Decoder
  self-attention counts the causal half (the pairs a query may attend to); T5's eager attention
  computes all m^2 (`causal="full"`). Not counted: embeddings (lookups), norms, activations, softmax,
  relative position bias (all O(d) per token).

Run alone: `.venv/bin/python bench/peers/headroom.py --threads 2` (writes `bench/results/compare_headroom.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
from common import CACHE, FLAN, SHARED, RESULTS, load_average, machine_info, median, write_result  # noqa: E402

DATA = SHARED / "data" / "summarization" / "train.jsonl"
TASK = f"summarization:{DATA}"  # what bench/train_speed.py trains on
MAX_SOURCE, MAX_TARGET = 512, 128  # bench/train_speed.py's (and retain's default) max lengths
OUT = RESULTS / "compare_headroom.json"


# --- model FLOPs -------------------------------------------------------------------------------------

def t5_matmul_params(config) -> tuple[int, int]:
    """(P_enc, P_dec): matmul weights one encoder / decoder token is multiplied with (see module docstring).

    `config` is a `T5Config` (or anything with its fields: d_model, d_kv, num_heads, d_ff, num_layers,
    num_decoder_layers, vocab_size, and is_gated_act or feed_forward_proj).
    """
    d, hk, f = config.d_model, config.num_heads * config.d_kv, config.d_ff
    gated = getattr(config, "is_gated_act", None)
    if gated is None:
        gated = str(getattr(config, "feed_forward_proj", "")).startswith("gated")
    ff = (3 if gated else 2) * d * f
    n_enc, n_dec = config.num_layers, config.num_decoder_layers or config.num_layers
    p_enc = n_enc * (4 * d * hk + ff) + n_dec * 2 * d * hk
    p_dec = n_dec * (6 * d * hk + ff) + d * config.vocab_size
    return p_enc, p_dec


def t5_training_flops(config, enc_len: int, dec_len: int, causal: str = "half") -> float:
    """Model FLOPs of one training step (forward + backward) on one example of n encoder, m decoder tokens.

    Args:
        config: a `T5Config` (see `t5_matmul_params`).
        enc_len: n, encoder tokens (the prompt, EOS included).
        dec_len: m, decoder tokens (the target, EOS included; the labels).
        causal: `half` counts the m (m + 1) / 2 query-key pairs of causal decoder self-attention (the
            useful work), `full` the m^2 that eager attention computes.
    """
    if causal not in ("half", "full"):
        raise ValueError(f"causal must be 'half' or 'full', not {causal!r}")
    n, m = enc_len, dec_len
    p_enc, p_dec = t5_matmul_params(config)
    hk = config.num_heads * config.d_kv
    n_enc, n_dec = config.num_layers, config.num_decoder_layers or config.num_layers
    self_pairs = m * (m + 1) / 2 if causal == "half" else m * m
    pairs = n_enc * n * n + n_dec * (self_pairs + m * n)
    return 6.0 * (n * p_enc + m * p_dec) + 12.0 * hk * pairs


# --- peak --------------------------------------------------------------------------------------------

def matmul_peak(sizes=(1024, 2048, 3072, 4096), reps: int = 5, threads: int | None = None) -> dict:
    """Dense fp32 matmul GFLOP/s of this machine: median of `reps` timed `torch.mm` per size, best size.

    One untimed multiplication per size first (allocation, kernel selection). 2 n^3 FLOPs each.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    per_size = {}
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        a = torch.randn(n, n, generator=gen)
        b = torch.randn(n, n, generator=gen)
        c = torch.empty(n, n)
        torch.mm(a, b, out=c)
        rates = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
        per_size[str(n)] = round(statistics.median(rates), 2)
        del a, b, c
    best = max(per_size, key=per_size.get)
    return {"gflops": per_size[best], "best_size": int(best), "per_size_gflops": per_size,
            "threads": torch.get_num_threads(), "dtype": "float32", "reps": reps}


# --- the model, the examples, the training runs ------------------------------------------------------

def ensure_t5(cache: Path = CACHE, seed: int = 0) -> Path:
    """flan-t5-small's config and tokenizer with random weights under `seed`, built once into `cache`."""
    folder = cache / f"flan-t5-small-random-seed{seed}"
    if (folder / "model.safetensors").is_file():
        return folder
    from retain.models.tiny import model_from_config_dir

    tmp = folder.with_name(folder.name + ".tmp")
    model_from_config_dir(FLAN, tmp, seed=seed)
    tmp.replace(folder)
    return folder


def example_lengths(model_dir: Path, n: int) -> list[tuple[int, int]]:
    """(encoder tokens, decoder tokens) of the first n training examples, as retain encodes them."""
    from retain.models.loading import load_tokenizer
    from retain.tasks import get_task
    from retain.training.data import Encoder, samples_from_examples

    enc = Encoder(load_tokenizer(str(model_dir)), is_seq2seq=True, max_source_length=MAX_SOURCE,
                  max_target_length=MAX_TARGET)
    items = enc.encode_all(samples_from_examples(get_task(TASK).examples("train", n), "train"))
    return [(len(x["input_ids"]), len(x["labels"])) for x in items]


def run_retain(model: Path, steps: int, batch_size: int, threads: int) -> dict:
    """One retain training run of `steps` x `batch_size` examples (one epoch), in a child of train_speed.py."""
    cmd = [sys.executable, str(BENCH / "train_speed.py"), "--child", "retain-full", "--model", str(model),
           "--steps", str(steps), "--batch-size", str(batch_size), "--examples", str(steps * batch_size),
           "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_VERBOSITY": "error",
           "CUDA_VISIBLE_DEVICES": ""}  # the peak is the CPU's, so the training runs on the CPU too
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"retain training failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("headroom: training FLOP/s over the matmul peak (--headroom-...)")
    g.add_argument("--headroom-reps", type=int, default=3, help="peak + training measurements (median reported)")
    g.add_argument("--headroom-steps", type=int, default=6, help="optimizer steps per training run (one epoch)")
    g.add_argument("--headroom-batch-size", type=int, default=8)
    g.add_argument("--headroom-sizes", default="1024,2048,3072,4096", help="square matmul sizes for the peak")
    g.add_argument("--headroom-matmul-reps", type=int, default=5, help="timed matmuls per size")
    g.add_argument("--headroom-cache", type=Path, default=CACHE, help="where the random-weight T5 is built once")


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    from transformers import AutoConfig

    threads = getattr(args, "threads", None) or 2
    sizes = tuple(int(s) for s in str(args.headroom_sizes).split(",") if s.strip())
    model = ensure_t5(Path(args.headroom_cache))
    config = AutoConfig.from_pretrained(str(model))
    n = args.headroom_steps * args.headroom_batch_size
    lengths = example_lengths(model, n)
    flops = sum(t5_training_flops(config, e, d) for e, d in lengths)
    flops_full = sum(t5_training_flops(config, e, d, causal="full") for e, d in lengths)
    tokens = sum(e + d for e, d in lengths)
    p_enc, p_dec = t5_matmul_params(config)
    log(f"[headroom] {args.headroom_reps} reps: fp32 matmul peak ({threads} threads), then retain on "
        f"{n} examples ({tokens} real tokens, {flops / tokens / 1e6:.1f} MFLOP per real token)")

    reps = []
    for rep in range(args.headroom_reps):
        peak = matmul_peak(sizes, args.headroom_matmul_reps, threads)
        load_before = load_average()
        r = run_retain(model, args.headroom_steps, args.headroom_batch_size, threads)
        if r["real_tokens"] != tokens:
            raise SystemExit(f"retain counted {r['real_tokens']} real tokens, the FLOPs count {tokens}")
        achieved = flops / r["train_seconds"] / 1e9
        reps.append({"peak": peak, "load_average_before": load_before,
                     "real_tokens_per_second": r["real_tokens_per_second"], "train_seconds": r["train_seconds"],
                     "padding_fraction": r["padding_fraction"], "achieved_gflops": round(achieved, 2),
                     "fraction_of_peak": achieved / peak["gflops"],
                     "rss_peak_delta": r["memory"]["rss_peak_delta"]})
        log(f"[headroom]   rep {rep + 1}: peak {peak['gflops']:.1f} GFLOP/s (n={peak['best_size']}), retain "
            f"{r['real_tokens_per_second']:.1f} real tokens/s = {achieved:.1f} GFLOP/s = "
            f"{achieved / peak['gflops']:.1%} of peak")
    fraction = median([r["fraction_of_peak"] for r in reps])
    log(f"[headroom] median: {fraction:.1%} of this machine's fp32 matmul peak")
    return {
        "what": "model FLOPs per real token x real tokens/s / dense fp32 matmul peak, pair by pair",
        "model": {"path": str(model), "config": str(FLAN), "weights": "random, seed 0",
                  "matmul_params_per_encoder_token": p_enc, "matmul_params_per_decoder_token": p_dec,
                  "formula": "6 (n P_enc + m P_dec) + 12 h d_kv [L_e n^2 + L_d (m (m+1)/2 + m n)] per example "
                             "(n encoder, m decoder tokens); see bench/peers/headroom.py"},
        "data": {"task": TASK, "examples": n, "real_tokens": tokens,
                 "encoder_tokens": sum(e for e, _ in lengths), "decoder_tokens": sum(d for _, d in lengths),
                 "max_source_length": MAX_SOURCE, "max_target_length": MAX_TARGET},
        "settings": {"reps": args.headroom_reps, "steps": args.headroom_steps,
                     "batch_size": args.headroom_batch_size, "threads": threads, "matmul_sizes": list(sizes),
                     "matmul_reps": args.headroom_matmul_reps, "precision": "fp32"},
        "model_flops_per_run": flops,
        "model_flops_per_real_token": flops / tokens,
        "model_flops_per_real_token_full_causal": flops_full / tokens,
        "peak_gflops_median": median([r["peak"]["gflops"] for r in reps]),
        "real_tokens_per_second_median": median([r["real_tokens_per_second"] for r in reps]),
        "achieved_gflops_median": median([r["achieved_gflops"] for r in reps]),
        "fraction_of_peak_median": fraction,
        "runs": reps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads of the peak and the training runs")
    p.add_argument("--out", type=Path, default=OUT)
    add_args(p)
    args = p.parse_args()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    import torch

    torch.set_num_threads(args.threads)
    doc = {"benchmark": "compare.headroom", "machine": machine_info(), "headroom": run(args, log),
           "load_average_after": load_average()}
    path = write_result(doc, args.out)
    h = doc["headroom"]
    print(json.dumps({k: h[k] for k in ("model_flops_per_real_token", "peak_gflops_median",
                                        "real_tokens_per_second_median", "achieved_gflops_median",
                                        "fraction_of_peak_median")}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()


def goals(section: dict) -> list[dict]:
    """Headroom has no goal to meet; it is reported so that the distance to the hardware is known."""
    return [{"goal": "headroom: training FLOP/s as a fraction of measured fp32 matmul peak (report only)",
             "value": round(section["fraction_of_peak_median"], 3), "met": True}]
