"""bf16 against fp32 on the real model: do predictions and training losses stay the same?

What `dtype: auto` / `precision: auto` choose on a CPU with native bf16 (AMX-BF16 / AVX512-BF16) is
bf16 (`retain.models.device`). This script checks, on the embedded SmolLM2-135M-Instruct, that the
choice changes no conclusion:

1. Evaluation: the same 40 test examples of each real task (sentiment: choice with 3 shots; qa:
   1 shot; NER: 3 shots; DialogSum: zero-shot) evaluated in three precisions, with the cache off:
   - `float32`: fp32 weights, no autocast (the reference);
   - `auto`: what retain runs by default on such a CPU: bf16 autocast for log-likelihood scoring
     (LM head in fp32) and fp32 for greedy generation (`retain.models.device.Precision.generation`);
   - `bf16-autocast`: fp32 weights, bf16 matmuls under `torch.autocast`, generation included;
   - `bfloat16`: weights cast to bf16 (what `auto` picks on a GPU).
   Reported per task: the share of examples whose greedy prediction (or chosen option) equals fp32's,
   the metric under each precision, and for the choice task the accuracy difference and the largest
   log-likelihood difference. Goals: agreement >= 0.95 on every task, choice accuracy within 0.01.
2. Training: `retain train` (full fine-tuning, packed batches) for `--train-steps` steps on DialogSum
   (batch 2, prompts cut to 256 tokens: a few minutes on 2 cores), `precision=fp32` and `precision=bf16`
   (autocast), same seed and batches (logging every step); reported: both loss curves and their
   largest absolute and relative differences.

Seconds are recorded for orientation only: this is not a timing benchmark (the machine may be
shared; `bench/compare.py` times things).

Run: `.venv/bin/python -m bench.precision_check` (writes `bench/results/precision_check.json`);
`--sections eval` or `--sections train` reruns one part and keeps the other's results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


from bench.common import RESULTS, SHARED, machine_info, write_result

MODEL = "smollm2-135m-instruct"
DATA = SHARED / "data"
TASKS = {"sentiment": 3, "qa": 1, "ner": 3, "summarization": 0}  # family -> shots
PRECISIONS = ("float32", "auto", "bf16-autocast", "bfloat16")
OUT = RESULTS / "precision_check.json"


def check_eval(limit: int, batch_size: int, families: list[str], precisions: list[str]) -> dict:
    from retain.evaluation.cache import EvalCache
    from retain.evaluation.runner import EvalSettings, evaluate_task
    from retain.models.loading import load_model
    from retain.tasks import get_task

    no_cache = EvalCache(enabled=False)
    runs: dict[str, dict[str, dict]] = {}
    for precision in precisions:
        lm = load_model(MODEL, device="cpu", dtype=precision)
        for family in families:
            shots = TASKS[family]
            task = get_task(f"{family}:{DATA / family}")
            settings = EvalSettings(limit=limit, batch_size=batch_size, fewshot=shots, n_boot=200)
            t0 = time.perf_counter()
            result = evaluate_task(lm, task, settings, no_cache)
            runs.setdefault(family, {})[precision] = {
                "predictions": result.predictions, "logprobs": result.choice_logprobs,
                "metric": task.metric, "value": result.metrics[result.scores.primary]["value"],
                "seconds": round(time.perf_counter() - t0, 1), "kind": task.kind}
            print(f"{family:14s} {precision:14s} {runs[family][precision]['value']:.4f} "
                  f"{runs[family][precision]['seconds']:.0f}s", flush=True)
        del lm
    commit = machine_info()["git_commit"]  # rows kept from earlier runs keep their own
    out = {}
    for family, by_precision in runs.items():
        ref = by_precision["float32"]
        entry = {"kind": ref["kind"], "shots": TASKS[family], "metric": ref["metric"], "n": len(ref["predictions"]),
                 "precisions": {}}
        for precision, run in by_precision.items():
            same = sum(a == b for a, b in zip(run["predictions"], ref["predictions"]))
            item = {"value": run["value"], "agreement_with_fp32": same / len(ref["predictions"]),
                    "seconds": run["seconds"], "git_commit": commit,
                    "differing": [{"fp32": b, precision: a} for a, b in zip(run["predictions"], ref["predictions"])
                                  if a != b][:5]}
            if run["logprobs"] is not None:
                diffs = [abs(x - y) for lp, lq in zip(run["logprobs"], ref["logprobs"]) for x, y in zip(lp, lq)]
                item["max_abs_logprob_diff"] = max(diffs)
                item["accuracy_diff"] = run["value"] - ref["value"]
            entry["precisions"][precision] = item
        out[family] = entry
    return out


def check_train(steps: int, batch_size: int, max_source_length: int) -> dict:
    from retain.methods import make_method
    from retain.training.config import TrainSettings
    from retain.training.loop import train

    curves, meta = {}, {}
    for precision in ("fp32", "bf16"):
        settings = TrainSettings(max_steps=steps, batch_size=batch_size, logging_steps=1, eval_examples=0,
                                 train_examples=steps * batch_size, precision=precision, progress=False,
                                 save_steps=10_000, learning_rate=1e-4, max_source_length=max_source_length)
        with tempfile.TemporaryDirectory() as tmp:
            result = train(MODEL, f"summarization:{DATA / 'summarization'}", make_method("full"), settings, Path(tmp) / "run")
            log = [json.loads(line) for line in (Path(tmp) / "run" / "train_log.jsonl").read_text().splitlines()]
        curves[precision] = [e["loss"] for e in log if "loss" in e and "eval_loss" not in e]
        meta[precision] = {k: result.metadata[k] for k in ("precision", "train_loss", "train_seconds",
                                                          "padding_fraction", "real_tokens")}
        print(f"train {precision}: {curves[precision]}", flush=True)
    a, b = curves["fp32"], curves["bf16"]
    abs_diff = [abs(x - y) for x, y in zip(a, b)]
    return {"model": MODEL, "method": "full", "steps": steps, "batch_size": batch_size, "learning_rate": 1e-4,
            "max_source_length": max_source_length,
            "loss_fp32": a, "loss_bf16": b, "max_abs_diff": max(abs_diff),
            "max_rel_diff": max(d / abs(x) for d, x in zip(abs_diff, a)),
            "mean_abs_diff": sum(abs_diff) / len(abs_diff), "runs": meta}


def goals(doc: dict) -> list[dict]:
    out = []
    for family, entry in doc.get("eval", {}).items():
        for precision in PRECISIONS[1:]:
            if precision not in entry["precisions"]:
                continue
            item = entry["precisions"][precision]
            value = item["agreement_with_fp32"]
            out.append({"goal": f"{family} ({precision}): predictions agree with fp32 on >= 95% of examples",
                        "value": value, "met": value >= 0.95})
            if "accuracy_diff" in item:
                out.append({"goal": f"{family} ({precision}): choice accuracy within 0.01 of fp32",
                            "value": item["accuracy_diff"], "met": abs(item["accuracy_diff"]) <= 0.01 + 1e-9})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="eval,train")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--tasks", default=",".join(TASKS), help="families to (re)evaluate; others are kept")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="float32 first (the reference)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--train-batch-size", type=int, default=2)
    parser.add_argument("--train-max-source-length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from retain.models.device import cpu_has_fast_bf16

    doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
    sections = set(args.sections.split(","))
    doc["machine"] = {**machine_info(), "cpu_has_fast_bf16": cpu_has_fast_bf16()}
    doc["note"] = "seconds are for orientation only (shared 2-core machine), not a timing benchmark"
    if "eval" in sections:
        precisions = args.precisions.split(",")
        if precisions[0] != "float32":
            parser.error("--precisions must start with float32, the reference")
        fresh = check_eval(args.limit, args.batch_size, args.tasks.split(","), precisions)
        kept = doc.get("eval", {})
        for family, entry in fresh.items():  # precisions not rerun keep their results
            if family in kept:
                entry["precisions"] = {**kept[family]["precisions"], **entry["precisions"]}
        doc["eval"] = {**kept, **fresh}
        doc["eval_settings"] = {"limit": args.limit, "batch_size": args.batch_size, "model": MODEL}
    if "train" in sections:
        doc["train"] = check_train(args.train_steps, args.train_batch_size, args.train_max_source_length)
    doc["goals"] = goals(doc)
    write_result(doc, args.out)
    for g in doc["goals"]:
        print(("met  " if g["met"] else "MISS ") + f"{g['goal']}: {g['value']}")


if __name__ == "__main__":
    main()
