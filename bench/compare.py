"""retain against the tools a user would otherwise pick, in one run: `bench/results/compare.json`.

    .venv/bin/python bench/compare.py                       # every section
    .venv/bin/python bench/compare.py --only eval train     # some sections
    .venv/bin/python bench/compare.py --help                # each section's own flags

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
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from common import RESULTS, machine_info, write_result  # noqa: E402

SECTIONS = {"eval": "peers.lmeval", "train": "peers.train", "headroom": "peers.headroom", "study": "peers.study_cost"}


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
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every contender")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare.json")
    modules = _modules(list(SECTIONS))
    for mod in modules.values():
        mod.add_args(parser)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from retain.cli import quiet_libraries

    quiet_libraries()
    doc = {"benchmark": "compare", "machine": machine_info(), "threads": args.threads, "sections": {}}
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
