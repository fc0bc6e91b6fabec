"""The real-data study, end to end: pre-train the base model, run the study, publish the report.

    .venv/bin/python -m bench.real_study.run                 # base (once) + study + report
    .venv/bin/python -m bench.real_study.run --data-dir DIR  # task data elsewhere than ../shared/data

Stages, each resumable after an interruption (results are written atomically, training checkpoints):

1. `base`: `bench/real_study/base.py` pre-trains a small T5 with the real flan-t5-small tokenizer on
   the real NER, sentiment, QA and instruction training data (`OUT/base/model`).
2. `study`: `retain study bench/real_study/study.yaml` on that base (`OUT/study`): target DialogSum
   (601 training examples), protected NER, sentiment and QA on their test splits.
3. `publish`: the report (markdown, plots), `results.json` and the stage timings go to
   `docs/benchmarks/real-study/` (no weights).

Timings of each stage, with the machine, are in `OUT/timings.json` and the published `timings.json`.

`--compare-to docs/benchmarks/real-study/results.json` checks a rerun against the committed report:
for every run and task, the rerun's change against the base must lie within the committed change's
95% confidence interval widened by the rerun's own (the difference of two noisy estimates).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

from bench.common import machine_info

from bench.real_study.base import RECORD, build_base
from bench.studies import run_and_report

CONFIG = HERE / "study.yaml"
PUBLISH = REPO / "docs" / "benchmarks" / "real-study"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--flan", type=Path, default=REPO.parent / "shared" / "models" / "flan-t5-small-tokenizer",
                   help="flan-t5-small config + tokenizer folder (no weights needed)")
    p.add_argument("--out", type=Path, default=HERE / "out")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--no-publish", action="store_true", help="leave docs/benchmarks alone")
    p.add_argument("--compare-to", type=Path, default=None,
                   help="a published results.json: report whether this run's changes agree within noise "
                        "(implies --no-publish)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.data_dir.is_dir():
        sys.exit(f"error: {args.data_dir}: no task data folder (give --data-dir)")
    os.environ["RETAIN_DATA_DIR"] = str(args.data_dir.resolve())
    import torch

    torch.set_num_threads(args.threads)
    from rich.console import Console

    from retain.cli import quiet_libraries
    from retain.io import read_json
    from retain.study.config import load_study_config

    quiet_libraries()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {"machine": machine_info(), "threads": args.threads, "stages": {}}
    t0 = time.perf_counter()
    model_dir = build_base(args.flan, args.out, log=console.print)
    timings["stages"]["base_seconds_this_call"] = round(time.perf_counter() - t0, 1)
    timings["stages"]["base_build_seconds"] = read_json(model_dir / RECORD).get("build_seconds")
    config = load_study_config(CONFIG, {"model": str(model_dir)})
    run_and_report(config, args.out, timings, args.compare_to, args.no_publish, PUBLISH, console)


if __name__ == "__main__":
    main()
