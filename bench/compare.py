"""retain against the tools a user would otherwise pick, in one run: `bench/results/compare.json`.

    .venv/bin/python -m bench.compare                       # every section
    .venv/bin/python -m bench.compare --only eval train     # some sections
    .venv/bin/python -m bench.compare --help                # each section's own flags
    .venv/bin/python -m bench.compare --model smollm2-135m-instruct   # issue 11: the real model
                                                            # -> bench/results/compare-real.json

Sections (one module each in `bench/peers/`, each with `add_args(parser)` and `run(args, log)`):

- `eval`: evaluation against lm-evaluation-harness (HF backend, same model folder, a local custom task
  over the same JSONL examples): SST-2 log-likelihood choice and DialogSum greedy generation, with
  lm-eval's defaults and at retain's batch size; scores and predictions compared example by example.
- `train`: training throughput (real tokens/s) against TRL's `SFTTrainer` with its defaults and the
  pad-to-max-length tutorial `Trainer`, same model and examples.
- `headroom`: training FLOP/s as a fraction of this machine's measured dense matmul peak.
- `study`: adding a method to a finished study against that method alone; study time against
  training and evaluation examples (fitted exponent); where a study's time goes.

Every timing is a median of several interleaved runs and every ratio is taken pair by pair
(repetition i of one side against repetition i of the other), so a noisy machine moves both sides.
The result file holds the machine (`bench/common.py: machine_info`) and a `goals` table.

`--model` (an embedded name such as `smollm2-135m-instruct`, or a local model folder) switches the
eval, train and headroom sections to that one model, each at retain's default settings (bf16 autocast
where the CPU has it, packed decoder-only training) against the peers' like-for-like and default
configurations, with issue 11's goals. The study section measures study overheads on the demo base and
toy tasks only, so it is left out with `--model`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from bench.common import REAL_MODEL, RESULTS, machine_info, model_folder, write_result

SECTIONS = {"eval": "bench.peers.lmeval", "train": "bench.peers.train", "headroom": "bench.peers.headroom",
            "study": "bench.peers.study_cost"}
MODEL_SECTIONS = ("eval", "train", "headroom")  # the sections that take --model


def _modules(names):
    return {n: importlib.import_module(SECTIONS[n]) for n in names}


def goals(results: dict) -> list[dict]:
    """The issue's goals, read off the sections' results (sections that did not run are left out)."""
    out = []
    for name, mod in _modules([n for n in SECTIONS if n in results]).items():
        if hasattr(mod, "goals"):
            out += mod.goals(results[name])
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=None,
                        help=f"sections to run (default: all; with --model: {' '.join(MODEL_SECTIONS)})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every contender")
    parser.add_argument("--model", default=None,
                        help=f"one model for every section: an embedded name ({REAL_MODEL}) or a local model "
                             "folder (default: each section's built models)")
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default: bench/results/compare.json; with --model "
                             f"{REAL_MODEL}: compare-real.json; with another --model: compare-FOLDER.json)")
    modules = _modules(list(SECTIONS))
    for mod in modules.values():
        mod.add_args(parser)
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = list(MODEL_SECTIONS if args.model else SECTIONS)
    if args.model and set(args.only) - set(MODEL_SECTIONS):
        parser.error(f"--model applies to the sections {', '.join(MODEL_SECTIONS)}; the study section runs on "
                     "the demo base and toy tasks only")
    # The sections read args.model_dir (None: their built models).
    args.model_dir = model_folder(args.model) if args.model else None
    if args.out is None:
        name = "compare" if not args.model else "compare-real" if args.model == REAL_MODEL else \
            f"compare-{args.model_dir.name}"
        args.out = RESULTS / f"{name}.json"

    import torch

    torch.set_num_threads(args.threads)
    from retain.cli import quiet_libraries

    quiet_libraries()
    doc = {"benchmark": "compare", "command": " ".join(["python", "-m", "bench.compare", *(argv or sys.argv[1:])]),
           "machine": machine_info(), "threads": args.threads,
           "model": {"spec": args.model, "path": str(args.model_dir)} if args.model else None, "sections": {}}
    out = args.out
    for name in args.only:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        doc["sections"][name] = modules[name].run(args, lambda m: print(m, flush=True))
        doc["sections"][name]["section_seconds"] = round(time.perf_counter() - t0, 1)
        doc["goals"] = goals(doc["sections"])
        write_result(doc, out)  # after each section: an interrupted run keeps what it measured
    for g in doc["goals"]:
        print(f"{'met ' if g['met'] else 'MISS'}  {g['goal']}: {g['value']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
