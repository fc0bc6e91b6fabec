"""Learning rates for the real-model study, chosen on DialogSum's validation split.

For full fine-tuning and LoRA (the two methods whose best rates differ by an order of magnitude; the
other methods are full fine-tuning with more data or a penalty, and take full's rate), train with the
study's own settings (500 examples, one epoch, batch 8, bf16 autocast where the CPU has it) at three
rates each, and keep the rate with the lowest validation loss on 64 held-out DialogSum dialogues
(teacher-forced cross-entropy of the reference summaries, logged by every run). Validation loss, not
ROUGE: it needs no generation (seconds instead of minutes) and ranks rates the same way when, as
here, the decoding is greedy and the summaries short. The test split is never looked at.

    .venv/bin/python -m bench.real_model.lr_sweep [--rates full=3e-5,1e-4,3e-4 --rates lora=3e-4,1e-3,3e-3,1e-2]

Writes bench/results/real_model_lr.json (machine info, every run's validation loss and time, the pick).
The runs at the study's own rates are the study's runs (trained once, reused from its folder); the
others go to bench/real_model/out/lr-sweep. Each run is resumable; about 7 minutes per run on the
2-core CPU.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

from bench.common import RESULTS, SHARED, machine_info, write_result

DEFAULT_RATES = {"full": [3e-5, 1e-4, 3e-4], "lora": [3e-4, 1e-3, 3e-3, 1e-2]}


def parse_rates(items: list[str] | None) -> dict[str, list[float]]:
    rates = dict(DEFAULT_RATES)
    for item in items or []:
        name, _, values = item.partition("=")
        rates[name.strip()] = [float(v) for v in values.split(",") if v.strip()]
    return rates


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", action="append", help="METHOD=LR,LR,... (a study method entry name)")
    p.add_argument("--out", type=Path, default=HERE / "out" / "lr-sweep", help="runs at the other rates")
    p.add_argument("--study-out", type=Path, default=HERE / "out" / "study",
                   help="the study's folder: its runs at the study's own rates are reused, not retrained")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    os.environ.setdefault("RETAIN_DATA_DIR", str(SHARED / "data"))
    import torch

    torch.set_num_threads(args.threads)
    from retain.cli import quiet_libraries
    from retain.study.config import load_study_config
    from retain.study.run import Study
    from retain.training.loop import train
    from retain.training.config import make_settings

    quiet_libraries()
    config = load_study_config(HERE / "study.yaml")
    os.chdir(REPO)  # the study names its probe relative to the repository root
    study = Study(config, args.study_out, log=lambda *_: None)
    seed = config.seeds[0]
    entries = {m.run_name: m for m in config.methods}
    rows, picks = [], {}
    for name, rates in parse_rates(args.rates).items():
        entry = entries[name]
        method = entry.method_config
        settings = study.train_settings(entry, seed)
        used = settings.learning_rate or method.learning_rate()  # the rate the study trains with
        for lr in rates:
            if lr == used:  # the study's own run: trained once, reused here (train() on a finished run)
                run = train(config.model, study.target.task, method, settings, study.run_dir(name, seed) / "train")
            else:
                other = make_settings({**settings.model_dump(), "learning_rate": lr})
                run = train(config.model, study.target.task, method, other, args.out / f"{name}-lr{lr:g}")
            meta = run.metadata
            rows.append({"method": name, "learning_rate": lr, "validation_loss": meta.get("eval_loss"),
                         "train_seconds": meta.get("train_seconds"), "study_run": lr == used})
            print(f"{name} lr {lr:g}: validation loss {meta.get('eval_loss')}", flush=True)
        scored = [r for r in rows if r["method"] == name and r["validation_loss"] is not None]
        picks[name] = min(scored, key=lambda r: r["validation_loss"])["learning_rate"] if scored else None
    doc = {"benchmark": "real_model_lr", "machine": machine_info(), "threads": args.threads,
           "model": config.model, "target": config.target.task, "train": config.train,
           "criterion": "lowest DialogSum validation loss (64 examples) after one epoch", "runs": rows,
           "picked": picks}
    print(f"picked: {picks}")
    write_result(doc, RESULTS / "real_model_lr.json")


if __name__ == "__main__":
    main()
