"""The real-model study, end to end: the chat-behaviour probe, the study, the published report.

    .venv/bin/python -m bench.real_model.run                 # probe + study + report (make real-model-study)
    .venv/bin/python -m bench.real_model.run --compare-to docs/benchmarks/real-model/results.json

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
(every run and task's change against the base within the combined 95% CI half-widths). The rerun
evaluates with its own cache (OUT/rerun-cache), so nothing is read from the evaluations it checks; give
it its own `--out` so that nothing is reused from a finished study either. `--only full,lora` reruns
some runs (and the WiSE-FT points of those kept), for a check that fits in less time:

    .venv/bin/python -m bench.real_model.run --out bench/real_model/out-rerun --only full,lora \
        --compare-to docs/benchmarks/real-model/results.json

`--without-wise-ft` leaves the WiSE-FT points out. The study evaluates in bf16 autocast, which is fast
on a CPU with AMX/AVX512-BF16 and emulated, several times slower than float32, on one without:
`--dtype float32` evaluates everything (the probe included) in float32 there. The check then also
asks whether the changes survive another precision and machine; say so when citing it.

Two companion studies share the main study's evaluation (the same tasks, examples and settings, so
the base and any model already scored come from the evaluation cache):

- `--variant longer` (`make real-model-longer`): the longer regime, `full` and `lora` alone, three
  epochs each, their checkpoints after half an epoch, one and two epochs evaluated as derived runs
  (the forgetting trajectory); OUT/longer, docs/benchmarks/real-model-longer/.
- `--variant rates`: forgetting against the learning rate: `full` and `lora` at the other rates of
  the validation sweep (`lr_sweep.py`), beside the chosen ones. The sweep's trained runs are reused
  (hard-linked into the study's folders) when they exist, else trained; OUT/rates,
  docs/benchmarks/real-model-rates/.
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

from bench.common import machine_info
from bench.studies import run_and_report

CONFIG = HERE / "study.yaml"
PUBLISH = REPO / "docs" / "benchmarks" / "real-model"
PROBE = "bench/real_model/out/chat-probe"  # as the config names it, relative to the repository root
PROBE_PROMPTS = 150  # the study's eval.limit: the same prompts in the same batches as its own evaluation
# The longer regime: three epochs of the same 500 examples (63 steps each), checkpoints at half an epoch,
# one and two epochs. Each method keeps the learning rate the main study chose for it.
EPOCH_STEPS = 63
LORA = {"method": "lora", "options": {"r": 16, "alpha": 32}}
VARIANTS = {
    "longer": {"name": "real-model-longer", "methods": [
        {"method": "full", "name": "full-3ep", "train": {"epochs": 3},
         "checkpoints": [EPOCH_STEPS // 2 + 1, EPOCH_STEPS, 2 * EPOCH_STEPS]},
        {**LORA, "name": "lora-3ep", "train": {"epochs": 3, "learning_rate": 3.0e-3},
         "checkpoints": [EPOCH_STEPS // 2 + 1, EPOCH_STEPS, 2 * EPOCH_STEPS]},
    ]},
    # Named as lr_sweep.py names its runs, so that its trained folders are found.
    "rates": {"name": "real-model-rates", "methods": [
        {"method": "full", "name": "full-lr3e-05", "train": {"learning_rate": 3.0e-5}},
        {"method": "full", "name": "full-lr0.0001"},
        {**LORA, "name": "lora-lr0.0003", "train": {"learning_rate": 3.0e-4}},
        {**LORA, "name": "lora-lr0.001", "train": {"learning_rate": 1.0e-3}},
        {**LORA, "name": "lora-lr0.003", "train": {"learning_rate": 3.0e-3}},
    ]},
}


def reuse_sweep_runs(config, out: Path) -> None:
    """Hard-link lr_sweep.py's finished runs, and the main study's at the same settings, into the rates
    study's run folders (the training loop then finds them finished; nothing is trained twice)."""
    main = {"full-lr0.0001": out / "study" / "runs" / "full-s0" / "train",
            "lora-lr0.003": out / "study" / "runs" / "lora-s0" / "train"}
    for entry in config.methods:
        dest = out / "rates" / "runs" / f"{entry.run_name}-s0" / "train"
        source = main.get(entry.run_name, out / "lr-sweep" / entry.run_name)
        if not dest.exists() and (source / "metadata.json").is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, dest, copy_function=os.link)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=HERE / "out", help="where the probe and the study go")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--no-publish", action="store_true", help="leave docs/benchmarks alone")
    p.add_argument("--variant", choices=sorted(VARIANTS), default=None,
                   help="a companion study instead of the main one: longer (three epochs, checkpoints) or "
                        "rates (forgetting against the learning rate)")
    p.add_argument("--compare-to", type=Path, default=None,
                   help="a published results.json: report whether this run's changes agree within noise "
                        "(implies --no-publish; evaluates with its own cache, OUT/rerun-cache)")
    p.add_argument("--only", default=None, help="comma-separated run names: run only these (and their WiSE-FT "
                                                "points); needs --compare-to or --no-publish")
    p.add_argument("--without-wise-ft", action="store_true",
                   help="leave out the WiSE-FT points; needs --compare-to or --no-publish")
    p.add_argument("--dtype", default=None,
                   help="evaluation precision instead of the config's bf16-autocast, for the probe and every "
                        "model (float32 on a CPU without native bf16, where bf16 is emulated and several "
                        "times slower); needs --compare-to or --no-publish")
    args = p.parse_args(argv)
    partial = [flag for flag, given in (("--only", args.only), ("--without-wise-ft", args.without_wise_ft),
                                        ("--dtype", args.dtype)) if given]
    if partial and not (args.compare_to or args.no_publish):
        p.error(f"{partial[0]} changes the study: give --compare-to or --no-publish, not to replace the report")
    return args


def only(config, names: str | None, wise_ft: bool = True):
    """`config` with only the runs named in `names` (comma-separated; all when None) and, unless
    `wise_ft` is False, the WiSE-FT points of those."""
    if not names and wise_ft:
        return config
    methods = config.methods
    if names:
        keep = {n.strip() for n in names.split(",") if n.strip()}
        known = {e.run_name for e in methods}
        if keep - known:
            sys.exit(f"error: --only: no run named {sorted(keep - known)[0]!r} (runs: {', '.join(sorted(known))})")
        methods = [e for e in methods if e.run_name in keep or (e.of is not None and e.of in keep)]
    if not wise_ft:
        methods = [e for e in methods if e.of is None]
    return config.model_copy(update={"methods": methods})


def adjust(config, args):
    """The study as this call runs it: `--only`, `--without-wise-ft` and `--dtype` applied."""
    config = only(config, args.only, wise_ft=not args.without_wise_ft)
    return config.model_copy(update={"dtype": args.dtype}) if args.dtype else config


def probe_length(config) -> int | None:
    """The answer length the study evaluates the probe at (its entry's `max_new_tokens`)."""
    entry = next(p for p in config.protect if p.task == f"instructions:{PROBE}")
    return entry.max_new_tokens


def probe_matches(made: dict, config) -> bool:
    """Whether a probe's SOURCE.json says it was made as `config` evaluates it (prompts, answer length,
    model, precision, batch size)."""
    dtype = made.get("dtype", made.get("model_info", {}).get("precision"))  # probes made before "dtype"
    settings = (made.get("limit"), made.get("max_new_tokens"), made.get("model"), dtype,
                made.get("batch_size", config.eval.batch_size))
    return settings == (PROBE_PROMPTS, probe_length(config), config.model, config.dtype, config.eval.batch_size)


def make_probe(config, data_dir: Path, threads: int) -> float:
    """Write the chat-behaviour probe with the installed `retain` command; seconds taken (0 if it exists).

    A probe made with other settings (prompts, answer length, model, precision) is made again: the
    base scored against its own answers made in another precision would not match itself."""
    probe, length = REPO / PROBE, probe_length(config)
    if (probe / "test.jsonl").is_file() and (probe / "SOURCE.json").is_file():
        if probe_matches(json.loads((probe / "SOURCE.json").read_text()), config):
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
    if args.compare_to:  # a rerun check reads none of the evaluations it checks
        os.environ["RETAIN_CACHE_DIR"] = str((args.out / "rerun-cache").resolve())
    config = adjust(load_study_config(CONFIG), args)
    from retain.models.device import fast_bf16
    from retain.models.loading import pick_device

    device = pick_device(config.device)
    if "bf16" in config.dtype and device.type == "cpu" and not fast_bf16(device):
        console.print(f"note: this CPU has no AMX-BF16 or AVX512-BF16, so the study's {config.dtype} evaluation is "
                      "emulated, about 4x slower than the times in docs/benchmarks/real-model.md; --dtype float32 "
                      "evaluates in float32 instead (see bench/real_model/README.md)", markup=False)
    timings = {"machine": machine_info(), "threads": args.threads, "dtype": config.dtype, "stages": {}}
    timings["stages"]["probe_seconds_this_call"] = make_probe(config, args.data_dir.resolve(), args.threads)
    if args.variant:
        variant = adjust(load_study_config(CONFIG, overrides=VARIANTS[args.variant]), args)
        if args.variant == "rates":
            reuse_sweep_runs(variant, args.out)
        run_and_report(variant, args.out, timings, args.compare_to, args.no_publish,
                       PUBLISH.with_name(f"real-model-{args.variant}"), console, name=args.variant)
    else:
        run_and_report(config, args.out, timings, args.compare_to, args.no_publish, PUBLISH, console)


if __name__ == "__main__":
    main()
