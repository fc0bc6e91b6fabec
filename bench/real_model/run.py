"""The real-model study, end to end: the chat-behaviour probe, the study, the published report.

    .venv/bin/python bench/real_model/run.py                 # probe + study + report (make real-model-study)
    .venv/bin/python bench/real_model/run.py --compare-to docs/benchmarks/real-model/results.json

Stages, each resumable after an interruption (a finished stage or run is not redone):

1. `probe`: `retain references` answers the first 150 held-out Self-Instruct prompts with the base
   (SmolLM2-135M-Instruct) exactly as the study evaluates them (same prompts, batch size and
   precision, so the same batches) and writes them as the task
   `instructions:bench/real_model/out/chat-probe`: does a tuned model still answer as the base did?
   In bf16 a greedy answer depends on which prompts share its batch; with other batches the base
   would not even match itself (a first run with 160 prompts scored the base 0.747 against itself).
2. `study`: `retain study bench/real_model/study.yaml` (`OUT/study`).
3. `publish`: the report (markdown, plots), `results.json` and the stage timings go to
   `docs/benchmarks/real-model/` (no weights).

`--compare-to docs/benchmarks/real-model/results.json` checks a rerun against the committed report
(every run and task's change against the base within the combined 95% CI half-widths).

`--longer` runs the longer regime instead (`make real-model-longer`): the same study with `full` and
`lora` alone, three epochs each, their checkpoints after half an epoch, one and two epochs evaluated
as derived runs (the forgetting trajectory), into OUT/longer and docs/benchmarks/real-model-longer/.
The base's evaluation is shared with the main study through the evaluation cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from common import machine_info  # noqa: E402
from studies import run_and_report  # noqa: E402

CONFIG = HERE / "study.yaml"
PUBLISH = REPO / "docs" / "benchmarks" / "real-model"
PROBE = "bench/real_model/out/chat-probe"  # as the config names it, relative to the repository root
PROBE_PROMPTS = 150  # the study's eval.limit: the same prompts in the same batches as its own evaluation
# The longer regime: three epochs of the same 500 examples (63 steps each), checkpoints at half an epoch,
# one and two epochs. Each method keeps the learning rate the main study chose for it.
EPOCH_STEPS = 63
LONGER = {"name": "real-model-longer", "methods": [
    {"method": "full", "name": "full-3ep", "train": {"epochs": 3},
     "checkpoints": [EPOCH_STEPS // 2 + 1, EPOCH_STEPS, 2 * EPOCH_STEPS]},
    {"method": "lora", "name": "lora-3ep", "options": {"r": 16, "alpha": 32},
     "train": {"epochs": 3, "learning_rate": 3.0e-3},
     "checkpoints": [EPOCH_STEPS // 2 + 1, EPOCH_STEPS, 2 * EPOCH_STEPS]},
]}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=HERE / "out", help="where the probe and the study go")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--no-publish", action="store_true", help="leave docs/benchmarks alone")
    p.add_argument("--longer", action="store_true",
                   help="the longer regime (full and LoRA, three epochs, checkpoints) instead of the main study")
    p.add_argument("--compare-to", type=Path, default=None,
                   help="a published results.json: report whether this run's changes agree within noise "
                        "(implies --no-publish)")
    return p.parse_args(argv)


def probe_length(config) -> int | None:
    """The answer length the study evaluates the probe at (its entry's `max_new_tokens`)."""
    entry = next(p for p in config.protect if p.task == f"instructions:{PROBE}")
    return entry.max_new_tokens


def make_probe(config, data_dir: Path, threads: int) -> float:
    """Write the chat-behaviour probe with the installed `retain` command; seconds taken (0 if it exists).

    A probe made with other settings (prompts, answer length, precision) is made again."""
    probe, length = REPO / PROBE, probe_length(config)
    if (probe / "test.jsonl").is_file() and (probe / "SOURCE.json").is_file():
        made = json.loads((probe / "SOURCE.json").read_text())
        if (made.get("limit"), made.get("max_new_tokens"), made.get("model")) == (PROBE_PROMPTS, length, config.model):
            return 0.0
        shutil.rmtree(probe)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "retain", "references", "--model", config.model,
           "--task", f"instructions:{data_dir / 'instructions'}", "--split", "test",
           "--limit", str(PROBE_PROMPTS), "--batch-size", str(config.eval.batch_size),
           "--dtype", config.dtype, "--device", config.device, "--out", str(probe)]
    if length is not None:
        cmd += ["--max-new-tokens", str(length)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, cwd=REPO, env=env)
    return round(time.perf_counter() - start, 1)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.data_dir.is_dir():
        sys.exit(f"error: {args.data_dir}: no task data folder (give --data-dir)")
    os.environ["RETAIN_DATA_DIR"] = str(args.data_dir.resolve())
    os.chdir(REPO)  # the config names the probe relative to the repository root
    import torch

    torch.set_num_threads(args.threads)
    from rich.console import Console

    from retain.cli import quiet_libraries
    from retain.study.config import load_study_config

    quiet_libraries()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    config = load_study_config(CONFIG)
    timings = {"machine": machine_info(), "threads": args.threads, "stages": {}}
    timings["stages"]["probe_seconds_this_call"] = make_probe(config, args.data_dir.resolve(), args.threads)
    if args.longer:
        longer = load_study_config(CONFIG, overrides=LONGER)
        run_and_report(longer, args.out, timings, args.compare_to, args.no_publish,
                       PUBLISH.with_name("real-model-longer"), console, name="longer")
    else:
        run_and_report(config, args.out, timings, args.compare_to, args.no_publish, PUBLISH, console)


if __name__ == "__main__":
    main()
