"""What a study costs: adding a method to a finished study, scaling with data, and where time goes.

Three measurements on the demo's base model (a 1.3M-parameter T5 shipped with the package) and the
toy tasks, which exist at any size (so the scaling sweep is not limited by a dataset's size):

- **incremental**: a finished study (`full`) gets one more method (`lora`) and is run again. Its wall
  time (base evaluations served from the cache, the finished run reused, results and report
  rewritten) is divided by what that method costs alone: training it with `retain.training.train`
  and evaluating it on the same tasks with no cache. Goal: at most 1.1x.
- **scaling**: whole-study wall time (one method, fresh cache) against the number of training
  examples (250, 500, 1,000, 2,000 at one epoch) and against the number of evaluation examples per
  task (50 to 400); the exponent b of time = a * n^b is fitted by least squares in log-log space,
  for the study and for the part that scales (training time, evaluation time).
- **profile**: one study under cProfile, its time split into training, generation, choice scoring,
  metric scoring (with bootstrap), report rendering, file I/O and the rest.

All in-process (no interpreter start-up on either side of a ratio); repetitions are interleaved.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

TARGET = "toy-summarize"
PROTECT = ("toy-ner", "toy-sentiment", "toy-qa")
TRAIN = {"epochs": 1, "batch_size": 32, "learning_rate": 2e-3, "warmup": 0.05, "eval_examples": 0,
         "save_steps": 1000, "logging_steps": 50, "progress": False}
LORA = {"method": "lora", "options": {"r": 8, "alpha": 16}, "train": {"learning_rate": 4e-3}}


def add_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("study cost")
    g.add_argument("--study-reps", type=int, default=3, help="repetitions of the incremental measurement")
    g.add_argument("--study-train-sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    g.add_argument("--study-eval-sizes", type=int, nargs="+", default=[50, 100, 200, 400])
    g.add_argument("--study-incremental-examples", type=int, default=2000,
                   help="training examples of the incremental study's runs")


def _config(model: Path, n_train: int, limit: int, methods: list, cache: Path):
    from retain.study.config import StudyConfig

    return StudyConfig(name="cost", model=str(model), target={"task": TARGET, "train_examples": n_train},
                       protect=[{"task": t} for t in PROTECT], methods=methods, train=TRAIN,
                       eval={"limit": limit, "batch_size": 64, "n_boot": 1000}, cache_dir=str(cache))


def _quiet(*_a, **_k) -> None:
    pass


def _fresh_process_state() -> None:
    """Forget in-process memos (ROUGE tokenisation) so no measurement profits from an earlier one."""
    from retain.evaluation import text_metrics

    text_metrics._rouge_scorer.cache_clear()


def _study(model: Path, out: Path, n_train: int, limit: int, methods: list, cache: Path) -> tuple[float, dict]:
    from retain.study.run import run_study

    _fresh_process_state()
    t = time.perf_counter()
    doc = run_study(_config(model, n_train, limit, methods, cache), out, log=_quiet)
    return time.perf_counter() - t, doc


def _alone(model: Path, out: Path, n_train: int, limit: int) -> float:
    """The added method on its own: train it, evaluate it on every study task (no cache)."""
    from retain.evaluation.runner import EvalSettings, evaluate_task
    from retain.methods import make_method
    from retain.tasks import get_task
    from retain.training.loop import train
    from retain.training.config import make_settings

    _fresh_process_state()
    t = time.perf_counter()
    result = train(str(model), TARGET, make_method("lora", LORA["options"]),
                   make_settings({**TRAIN, **LORA["train"], "train_examples": n_train}), out)
    lm = result.load()
    settings = EvalSettings(limit=limit, batch_size=64)
    for name in (TARGET, *PROTECT):
        evaluate_task(lm, get_task(name), settings, cache=None)
    return time.perf_counter() - t


def incremental(model: Path, args, log) -> dict:
    n, limit = args.study_incremental_examples, 200
    rows = []
    for rep in range(args.study_reps):
        with tempfile.TemporaryDirectory(prefix="retain-inc-") as tmp:
            tmp = Path(tmp)
            first, _ = _study(model, tmp / "study", n, limit, [{"method": "full"}], tmp / "cache")
            added, doc = _study(model, tmp / "study", n, limit, [{"method": "full"}, LORA], tmp / "cache")
            alone = _alone(model, tmp / "alone", n, limit)
            lora = next(r for r in doc["runs"] if r["name"] == "lora")
            rows.append({"first_study_seconds": round(first, 2), "rerun_with_added_method_seconds": round(added, 2),
                         "method_alone_seconds": round(alone, 2), "ratio": round(added / alone, 3),
                         "overhead_seconds": round(added - alone, 2),
                         "added_run_train_seconds": lora["cost"]["train_seconds"],
                         "added_run_eval_seconds": lora["cost"]["eval_seconds"]})
            log(f"  incremental rep {rep}: rerun {added:.1f}s, alone {alone:.1f}s, ratio {added / alone:.3f}")
    ratios = [r["ratio"] for r in rows]
    return {"train_examples": n, "eval_limit": limit, "reps": rows, "median_ratio": statistics.median(ratios),
            "goal": "<= 1.1", "met": statistics.median(ratios) <= 1.1}


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): b in y = a * x^b."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def scaling(model: Path, args, log) -> dict:
    def one(n_train: int, limit: int) -> dict:
        with tempfile.TemporaryDirectory(prefix="retain-scale-") as tmp:
            wall, doc = _study(model, Path(tmp) / "s", n_train, limit, [{"method": "full"}], Path(tmp) / "cache")
        run = doc["runs"][0]["cost"]
        return {"train_examples": n_train, "eval_examples_per_task": limit, "study_seconds": round(wall, 2),
                "train_seconds": run["train_seconds"], "run_eval_seconds": run["eval_seconds"]}

    by_train = []
    for n in args.study_train_sizes:
        by_train.append(one(n, 100))
        log(f"  scaling: {n} training examples -> {by_train[-1]['study_seconds']:.1f}s")
    by_eval = []
    for limit in args.study_eval_sizes:
        by_eval.append(one(250, limit))
        log(f"  scaling: {limit} eval examples per task -> {by_eval[-1]['study_seconds']:.1f}s")
    xs_t = [r["train_examples"] for r in by_train]
    xs_e = [r["eval_examples_per_task"] for r in by_eval]
    return {
        "by_train_examples": by_train, "by_eval_examples": by_eval,
        "exponent": {
            "study_vs_train_examples": fit_exponent(xs_t, [r["study_seconds"] for r in by_train]),
            "training_vs_train_examples": fit_exponent(xs_t, [r["train_seconds"] for r in by_train]),
            "study_vs_eval_examples": fit_exponent(xs_e, [r["study_seconds"] for r in by_eval]),
            "evaluation_vs_eval_examples": fit_exponent(xs_e, [r["run_eval_seconds"] for r in by_eval]),
        },
    }


# Where time goes: (bucket, module path fragment, function name) of the outermost call of each kind.
BUCKETS = [
    ("training", "retain/training/loop.py", "train"),
    ("generation", "retain/evaluation/engine.py", "generate"),
    ("choice scoring", "retain/evaluation/engine.py", "loglikelihood"),
    ("metrics + bootstrap", "retain/evaluation/runner.py", "result_from_outputs"),
    ("report", "retain/report/__init__.py", "render_report"),
    ("model loading", "retain/models/loading.py", "load_model"),
    ("file I/O", "retain/io.py", "atomic_write_json"),
    ("file I/O", "retain/io.py", "atomic_write_text"),
]


def profile(model: Path, log) -> dict:
    with tempfile.TemporaryDirectory(prefix="retain-prof-") as tmp:
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        _study(model, Path(tmp) / "s", 500, 200, [{"method": "full"}], Path(tmp) / "cache")
        prof.disable()
        wall = time.perf_counter() - t
    stats = pstats.Stats(prof).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    buckets: dict[str, float] = {}
    for name, fragment, func in BUCKETS:
        total = sum(ct for (file, _, fn), (_, _, _, ct, _) in stats.items()
                    if fn == func and file.replace("\\", "/").endswith(fragment))
        buckets[name] = buckets.get(name, 0.0) + total
    # metrics run inside generation's caller, not inside generate: no double counting among buckets,
    # except that training's own evaluation is part of training.
    other = wall - sum(buckets.values())
    shares = {k: round(v / wall, 3) for k, v in buckets.items()}
    shares["other (imports, config, caching, bookkeeping)"] = round(other / wall, 3)
    log("  profile: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    return {"study": {"train_examples": 500, "eval_examples_per_task": 200, "method": "full"},
            "wall_seconds": round(wall, 2), "seconds": {k: round(v, 2) for k, v in buckets.items()},
            "share": shares}


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    from retain.demo.base import build_base

    model = build_base(log=log)
    log("study cost: incremental study")
    inc = incremental(model, args, log)
    log("study cost: scaling")
    scale = scaling(model, args, log)
    log("study cost: profile")
    prof = profile(model, log)
    return {"model": f"demo base ({model})", "tasks": {"target": TARGET, "protected": list(PROTECT)},
            "train": TRAIN, "incremental": inc, "scaling": scale, "profile": prof}


def goals(result: dict) -> list[dict]:
    inc, exp = result["incremental"], result["scaling"]["exponent"]
    return [
        {"goal": "incremental study <= 1.1x the added method alone", "value": round(inc["median_ratio"], 3),
         "met": inc["met"]},
        {"goal": "study time ~ linear in training examples (fitted exponent of training time)",
         "value": round(exp["training_vs_train_examples"], 3), "met": 0.8 <= exp["training_vs_train_examples"] <= 1.2},
        {"goal": "evaluation time ~ linear in evaluation examples (fitted exponent)",
         "value": round(exp["evaluation_vs_eval_examples"], 3), "met": 0.8 <= exp["evaluation_vs_eval_examples"] <= 1.2},
    ]


def main() -> None:
    from bench.common import machine_info, write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    add_args(parser)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from retain.cli import quiet_libraries

    quiet_libraries()
    result = {"benchmark": "study_cost", "machine": machine_info(), **run(args, print)}
    write_result(result, Path(__file__).resolve().parents[1] / "results" / "study_cost.json")


if __name__ == "__main__":
    main()
