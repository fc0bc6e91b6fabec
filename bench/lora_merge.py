"""LoRA evaluation: the adapter merged into the weights (what evaluation does) against the PeftModel as
loaded, on the same prompts, in turns.

    .venv/bin/python -m bench.lora_merge --adapter bench/real_model/out/study/runs/lora-s0/train

Generates greedy answers for the first `--limit` test prompts of `--task` with SmolLM2-135M-Instruct
plus the adapter (r 16 on every linear layer: 210 adapted layers, two extra small matmuls each per
forward step), under the precision `--dtype` picks, and reports the median time of each, their ratio
and whether the answers agree. Writes bench/results/lora_merge.json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

from bench.common import REAL_MODEL, RESULTS, SHARED, interleaved, machine_info, write_result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", type=Path, required=True, help="a LoRA run folder (adapter_config.json)")
    p.add_argument("--model", default=REAL_MODEL)
    p.add_argument("--task", default="qa")
    p.add_argument("--limit", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default="bf16-autocast")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    os.environ.setdefault("RETAIN_DATA_DIR", str(SHARED / "data"))
    from retain.evaluation.engine import generate
    from retain.evaluation.runner import EvalSettings, eval_examples
    from retain.models.loading import load_model
    from retain.tasks import get_task

    task = get_task(args.task)
    prompts = [ex.prompt for ex in eval_examples(task, EvalSettings(limit=args.limit))]
    models = {name: load_model(args.model, adapter=str(args.adapter), dtype=args.dtype, merge_adapter=merge)
              for name, merge in (("peft", False), ("merged", True))}

    def answer(name):
        return lambda: generate(models[name], prompts, task.max_new_tokens, batch_size=args.batch_size)

    timings = interleaved({name: answer(name) for name in models}, reps=args.reps, log=print)
    agree = sum(a == b for a, b in zip(timings["peft"].result, timings["merged"].result))
    doc = {"benchmark": "lora_merge", "machine": machine_info(), "model": args.model, "adapter": str(args.adapter),
           "task": task.name, "prompts": len(prompts), "max_new_tokens": task.max_new_tokens,
           "batch_size": args.batch_size, "dtype": args.dtype,
           "precision": models["merged"].describe().get("generation_precision"),
           "seconds": {name: t.to_json() for name, t in timings.items()},
           "speedup_merged": round(timings["peft"].median / timings["merged"].median, 3),
           "same_answers": f"{agree}/{len(prompts)}"}
    print(f"peft {timings['peft'].median:.2f} s, merged {timings['merged'].median:.2f} s: "
          f"{doc['speedup_merged']:.2f}x; same answers {doc['same_answers']}")
    write_result(doc, RESULTS / "lora_merge.json")


if __name__ == "__main__":
    main()
