"""Training speed: retain vs TRL's `SFTTrainer` (its defaults) vs a pad-to-max-length tutorial `Trainer`.

Same model, same examples, same batch size, optimizer steps and learning rate for every contender;
the figure is **real (non-padding) tokens per second of training**.

- **Model**: TRL's `SFTTrainer` is for decoder-only models, so this uses a Llama-architecture model of
  about flan-t5-small's compute (hidden 512, 8 layers, 8 heads of 64, MLP 1376, 58M parameters; a
  flan-t5-small token touches 22-38M matmul parameters, this one 42M), random weights under seed 0,
  built once into `--train-cache` and loaded from there by every contender (nothing is downloaded).
- **Tokenizer**: flan-t5-small's (`../shared/models/flan-t5-small-tokenizer`, same vocabulary and
  sentencepiece model) without T5's automatic `</s>` after every text: a decoder-only tokenizer must
  not end the prompt with EOS, and TRL (which appends the EOS text to the completion) would otherwise
  train on two EOS tokens per example while retain trains on one.
- **Examples**: DialogSum train through retain's task (`summarization:../shared/data/summarization`),
  prompt = the task's prompt, completion = `" " + target` (retain's decoder-only formatting,
  `retain.models.formatting`) + EOS. Only examples that no contender truncates are kept (prompt +
  completion + EOS <= `--train-max-length`, prompt <= max length - `--train-max-target`, target + EOS <=
  `--train-max-target`; at the default 1024 / 160 that is all 601). Each run trains one epoch over the
  first `steps x batch size` of them, so every contender processes the very same real tokens.
- **Contenders** (`--train-contenders`):
  - `tutorial`: plain `transformers.Trainer`, every example padded to `--train-max-length` at
    tokenisation, `default_data_collator`, labels -100 on prompt and padding, fp32;
  - `trl`: `trl.SFTTrainer` on a prompt/completion dataset with `SFTConfig` defaults except the shared
    settings (batch size, steps, learning rate = TRL's default 2e-5, seed, no saving or reporting) and
    `max_length` (= 1024, TRL's default, unless `--train-max-length` says otherwise). Its defaults
    include `gradient_checkpointing=True` and `bf16=True` (autocast, also on CPU), `packing=False`,
    `padding_free=False`, completion-only loss for prompt/completion data, dynamic padding, random order;
  - `trl-fp32`: the same with retain's precision and memory settings (`bf16=False`,
    `gradient_checkpointing=False`): the like-for-like comparison of the two training loops;
  - `trl-best`: TRL's fastest configuration that runs on a CPU: `bf16=True` (autocast),
    `gradient_checkpointing=False`, `padding_free=True` (each batch's examples concatenated into one
    row, position ids restarting per example: the same packing as retain's, with the same number of
    examples per optimizer step; `packing=True` would change how many examples a step sees) and
    `completion_only_loss=True`, `max_length=None` (TRL requires it for padding-free rows without packing;
    every example fits `--train-max-length` anyway);
  - `retain`: `retain.training.train` with method `full` (fp32 on CPU, length-grouped batches, packed
    rows for decoder-only models, completion-only loss), warmup 0 (TRL's default), no eval, no
    checkpoints; with `--model` at retain's default precision (`auto`: bf16 autocast where the CPU has
    it), i.e. what `retain train` does;
  - `retain-bf16`: the same with `precision=bf16` (what TRL uses by default);
  - `retain-full-logits`: `retain` with its LM head run at every position, as before
    `retain.training.trainer.LabelPositionsHead` (for measuring what that change brings).
- **Timing**: from the Trainer's `on_train_begin` to `on_train_end` (optimizer steps, data loading and
  collation, logging; not model loading or dataset preprocessing, which are reported as `setup_seconds`:
  child start, libraries already imported, to `on_train_begin`). Real tokens are counted the same way
  for all (attention mask 1, inside `compute_loss`; retain counts them in its trainer the same way);
  padded tokens are all input positions, so `padding_fraction = 1 - real / padded`. Peak RSS as in
  `bench/train_speed.py`.
- Each contender runs in its own child process (clean memory, no shared allocator state), contenders
  interleaved (`bench/common.py: interleaved`) `--train-reps` times; the figure is the median, and the
  ratios are computed within each repetition (retain's run over the other contender's run of the same
  round) and then their median reported.

With `--model` (from `bench/compare.py`, or `--model` here: an embedded name such as
`smollm2-135m-instruct`, or a local folder) every contender trains that model with its own tokenizer
(chat template applied to the prompts, as `retain train` does for chat models), and the contenders
default to `trl,trl-best,retain`.

Run alone: `.venv/bin/python -m bench.peers.train --threads 2` (writes `bench/results/compare_train.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
from bench.common import (CACHE, FLAN, RESULTS, interleaved, load_average, machine_info, median,
                    model_folder, write_result)
from bench.peers.train_setup import DATA, SHAPE, describe_model, ensure_data, ensure_model
from bench.tutorial import counting_trainer, padded_rows, train_tutorial

OUT = RESULTS / "compare_train.json"
CONTENDERS = ("tutorial", "trl", "trl-fp32", "trl-best", "retain", "retain-bf16", "retain-full-logits")
DEFAULT_CONTENDERS = "tutorial,trl,trl-fp32,retain"
MODEL_CONTENDERS = "trl,trl-best,retain"  # with --model (issue 11)
GOAL_OVER_TRL_BEST = 1.5  # with --model: retain's real tokens/s over TRL's best configuration, at least
# TRL's fastest configuration on a CPU (see the module docstring), over its defaults.
# TRL refuses padding_free without packing unless max_length is None; every example fits max_length anyway.
TRL_BEST = {"bf16": True, "gradient_checkpointing": False, "padding_free": True, "completion_only_loss": True,
            "max_length": None}
RATIOS = {  # name -> (numerator, denominator): each computed per repetition, then the median
    "retain_over_trl_best": ("retain", "trl-best"),
    "retain_over_trl": ("retain", "trl"),
    "retain_over_trl_fp32": ("retain", "trl-fp32"),
    "retain_over_tutorial": ("retain", "tutorial"),
    "retain_bf16_over_trl": ("retain-bf16", "trl"),
    "retain_over_retain_full_logits": ("retain", "retain-full-logits"),
}


# --- children: one contender per process ------------------------------------------------------------

def _callbacks():
    """(timing callback, memory callback, RSS sampler): on_train_begin -> on_train_end wall time, peak RSS."""
    from transformers import TrainerCallback
    from bench.train_speed import RssSampler, memory_callback

    sampler = RssSampler()

    class Clock(TrainerCallback):
        begin = end = None

        def on_train_begin(self, args, state, control, **kwargs):
            Clock.begin = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            Clock.end = time.perf_counter()

    return Clock(), memory_callback(sampler), sampler


def _result(kind, started, clock, mem_cb, sampler, steps, real, padded, train_loss, precision, checkpointing,
            **extra) -> dict:
    from bench.train_speed import memory_report

    seconds = clock.end - clock.begin
    return {"contender": kind, "steps": steps, "real_tokens": real, "padded_tokens": padded,
            "padding_fraction": 1 - real / padded if padded else None, "train_seconds": round(seconds, 3),
            "real_tokens_per_second": real / seconds, "setup_seconds": round(clock.begin - started, 3),
            "train_loss": train_loss, "precision": precision, "gradient_checkpointing": checkpointing,
            "memory": memory_report(sampler, mem_cb), **extra}


def _texts(tok, task_spec: str, n: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs as retain builds them for a decoder-only model (EOS not included)."""
    from retain.models.formatting import completion_prefix, format_prompt
    from retain.tasks import get_task

    out = []
    for ex in get_task(task_spec).examples("train", n):
        prompt = format_prompt(tok, ex.prompt, False)
        out.append((prompt, completion_prefix(prompt, False) + ex.target))
    return out


def child_retain(a, started: float) -> dict:
    from retain.methods import make_method
    from retain.training.loop import train
    from retain.training.config import make_settings

    clock, mem_cb, sampler = _callbacks()
    if a.child == "retain-full-logits":
        from retain.training import trainer

        trainer.LabelPositionsHead.attach = classmethod(lambda cls, model: None)
    precision = "bf16" if a.child == "retain-bf16" else a.retain_precision
    settings = make_settings({
        "max_steps": a.steps, "batch_size": a.batch_size, "train_examples": a.steps * a.batch_size,
        "eval_examples": 0, "learning_rate": a.lr, "warmup": 0.0, "save_steps": 10**6, "logging_steps": a.steps,
        "progress": False, "max_source_length": a.max_length - a.max_target, "max_target_length": a.max_target,
        "seed": 0, "precision": precision, "device": "cpu"})
    with tempfile.TemporaryDirectory() as tmp:
        r = train(a.model, a.task, make_method("full", {}), settings, Path(tmp) / "run", callbacks=[clock, mem_cb])
    m = r.metadata
    real, padded = m["real_tokens"], round(m["real_tokens"] / (1 - m["padding_fraction"]))
    return _result(a.child, started, clock, mem_cb, sampler, m["steps"], real, padded, m["train_loss"],
                   m["precision"], m["gradient_checkpointing"], packing=m["packing"])


def child_trl(a, started: float) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    clock, mem_cb, sampler = _callbacks()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    ds = datasets.Dataset.from_list([{"prompt": p, "completion": c}
                                     for p, c in _texts(tok, a.task, a.steps * a.batch_size)])
    counts = {"real": 0, "padded": 0}
    extra = {"trl-fp32": {"bf16": False, "gradient_checkpointing": False}, "trl-best": TRL_BEST}.get(a.child, {})
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"max_length": a.max_length, **extra}
        cfg = SFTConfig(output_dir=tmp, per_device_train_batch_size=a.batch_size, max_steps=a.steps,
                        learning_rate=a.lr, seed=0, save_strategy="no", report_to="none",
                        logging_steps=a.steps, disable_tqdm=True, use_cpu=True, **settings)
        trainer = counting_trainer(SFTTrainer, counts)(model=model, args=cfg, train_dataset=ds, processing_class=tok,
                                                callbacks=[clock, mem_cb])
        out = trainer.train()
    return _result(a.child, started, clock, mem_cb, sampler, trainer.state.global_step, counts["real"],
                   counts["padded"], out.training_loss, "bf16" if cfg.bf16 else "fp32", cfg.gradient_checkpointing,
                   padding_free=cfg.padding_free)


def child_tutorial(a, started: float) -> dict:
    """The usual recipe (`bench.tutorial`): tokenise with padding="max_length", plain Trainer, default collator."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    clock, mem_cb, sampler = _callbacks()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    rows = padded_rows(tok, _texts(tok, a.task, a.steps * a.batch_size), is_seq2seq=False, max_length=a.max_length)
    run = train_tutorial(model, tok, rows, batch_size=a.batch_size, steps=a.steps, learning_rate=a.lr,
                         callbacks=[clock, mem_cb])
    return _result(a.child, started, clock, mem_cb, sampler, run["steps"], run["real"], run["padded"],
                   run["train_loss"], "fp32", False)


def child_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=CONTENDERS, required=True)
    for name in ("--model", "--task"):
        p.add_argument(name, required=True)
    for name in ("--steps", "--batch-size", "--max-length", "--max-target", "--threads"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--retain-precision", default="fp32", help="retain's precision setting (auto: its default)")
    a = p.parse_args(argv)
    import torch
    import transformers  # noqa: F401  (imported before the clock starts, like trl below)

    torch.set_num_threads(a.threads)
    if a.child.startswith("trl"):
        import trl  # noqa: F401
    else:
        import retain.training.loop  # noqa: F401
    started = time.perf_counter()
    fn = child_tutorial if a.child == "tutorial" else child_trl if a.child.startswith("trl") else child_retain
    print(json.dumps(fn(a, started)))


# --- driver --------------------------------------------------------------------------------------------

def add_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training vs TRL and the tutorial (--train-...)")
    g.add_argument("--train-reps", type=int, default=3, help="runs per contender, interleaved (median reported)")
    g.add_argument("--train-steps", type=int, default=12, help="optimizer steps per run (one epoch of "
                                                                 "steps x batch size examples)")
    g.add_argument("--train-batch-size", type=int, default=8)
    g.add_argument("--train-lr", type=float, default=2e-5, help="learning rate of every contender (TRL's default)")
    g.add_argument("--train-max-length", type=int, default=1024,
                   help="max prompt + completion tokens for every contender (TRL's default max_length); the "
                        "tutorial pads to it")
    g.add_argument("--train-max-target", type=int, default=160, help="retain's max_target_length (its "
                                                                     "max_source_length is the rest)")
    g.add_argument("--train-contenders", default=None,
                   help=f"comma-separated, from {', '.join(CONTENDERS)} (default: {DEFAULT_CONTENDERS}; with "
                        f"--model: {MODEL_CONTENDERS})")
    g.add_argument("--train-cache", type=Path, default=CACHE, help="where the model and data copy are built once")


def run_child(kind: str, args, model: Path, task: str, threads: int, retain_precision: str = "fp32") -> dict:
    """One contender's training run in a child process (`args`: the `--train-...` settings); its result."""
    cmd = [sys.executable, "-m", "bench.peers.train", "--child", kind, "--model", str(model), "--task", task,
           "--steps", str(args.train_steps), "--batch-size", str(args.train_batch_size),
           "--max-length", str(args.train_max_length), "--max-target", str(args.train_max_target),
           "--threads", str(threads), "--lr", str(args.train_lr), "--retain-precision", retain_precision]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_VERBOSITY": "error"}
    load_before = load_average()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_average_before"] = load_before
    return result


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    """Interleaved runs of every contender; medians of real tokens/s and per-repetition ratios."""
    threads = getattr(args, "threads", None) or 2
    given = getattr(args, "model_dir", None)  # --model: that model, at retain's default precision
    names = args.train_contenders or (MODEL_CONTENDERS if given else DEFAULT_CONTENDERS)
    contenders = [c.strip() for c in names.split(",") if c.strip()]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        raise SystemExit(f"unknown --train-contenders {sorted(unknown)} (use {', '.join(CONTENDERS)})")
    if args.train_max_target >= args.train_max_length:
        raise SystemExit("--train-max-target must be below --train-max-length")
    cache = Path(args.train_cache)
    model = Path(given) if given else ensure_model(cache, max_positions=max(1024, args.train_max_length))
    retain_precision = "auto" if given else "fp32"
    data, n_fit = ensure_data(model, cache, args.train_max_length, args.train_max_target)
    n = args.train_steps * args.train_batch_size
    if n > n_fit:
        raise SystemExit(f"{args.train_steps} steps x {args.train_batch_size} = {n} examples, but only {n_fit} fit")
    task = f"summarization:{data}"
    log(f"[train] {', '.join(contenders)}: {args.train_reps} reps x {args.train_steps} steps x batch "
        f"{args.train_batch_size}, {threads} threads, model {model}")

    runs: dict[str, list[dict]] = {c: [] for c in contenders}

    def contender(kind: str):
        def go():
            r = run_child(kind, args, model, task, threads, retain_precision)
            runs[kind].append(r)
            log(f"[train]   {kind:<11} {r['real_tokens_per_second']:7.1f} real tokens/s, train "
                f"{r['train_seconds']:.1f} s, setup {r['setup_seconds']:.1f} s, padding {r['padding_fraction']:.1%}")
            return r
        return go

    timings = interleaved({c: contender(c) for c in contenders}, reps=args.train_reps,
                          warmups={c: (lambda: None) for c in contenders}, log=log)
    summary = {}
    for c, rs in runs.items():
        summary[c] = {
            "real_tokens_per_second_median": median([r["real_tokens_per_second"] for r in rs]),
            "train_seconds_median": median([r["train_seconds"] for r in rs]),
            "setup_seconds_median": median([r["setup_seconds"] for r in rs]),
            "process_seconds_median": timings[c].median,
            "real_tokens": rs[0]["real_tokens"], "padding_fraction": rs[0]["padding_fraction"],
            "precision": rs[0]["precision"], "gradient_checkpointing": rs[0]["gradient_checkpointing"],
            "rss_peak_delta_median": median([r["memory"]["rss_peak_delta"] for r in rs]),
            **{k: rs[0][k] for k in ("packing", "padding_free") if k in rs[0]},
        }
    ratios = {}
    for name, (num, den) in RATIOS.items():
        if num in runs and den in runs:
            per_rep = [a["real_tokens_per_second"] / b["real_tokens_per_second"] for a, b in zip(runs[num], runs[den])]
            ratios[name] = {"median": median(per_rep), "per_rep": per_rep}
    goals = {}
    if "retain_over_trl_best" in ratios:
        goals["retain_at_least_1.5x_trl_best"] = ratios["retain_over_trl_best"]["median"] >= GOAL_OVER_TRL_BEST
    if "retain_over_trl" in ratios:
        goals["retain_at_least_trl_defaults"] = ratios["retain_over_trl"]["median"] >= 1.0
    if "retain_over_trl_fp32" in ratios:
        goals["retain_at_least_trl_same_precision"] = ratios["retain_over_trl_fp32"]["median"] >= 1.0
    if "retain_over_tutorial" in ratios:
        goals["retain_at_least_2x_tutorial"] = ratios["retain_over_tutorial"]["median"] >= 2.0
    for name, r in ratios.items():
        log(f"[train] {name}: {r['median']:.2f}x (per rep {', '.join(f'{x:.2f}' for x in r['per_rep'])})")
    import trl

    return {
        "what": "real (non-padding) tokens per second of training (on_train_begin -> on_train_end)",
        "model": describe_model(model) if given else {
            "path": str(model), "architecture": "LlamaForCausalLM, random weights, seed 0", **SHAPE,
            "tokenizer": f"{FLAN} without the automatic trailing </s>"},
        "data": {"task": task, "source": str(DATA / "train.jsonl"), "examples_that_fit": n_fit,
                 "examples_per_run": n, "epochs": 1},
        "settings": {"reps": args.train_reps, "steps": args.train_steps, "batch_size": args.train_batch_size,
                     "learning_rate": args.train_lr, "max_length": args.train_max_length,
                     "retain_max_source_length": args.train_max_length - args.train_max_target,
                     "retain_max_target_length": args.train_max_target, "threads": threads,
                     "contenders": contenders, "trl_version": trl.__version__,
                     "retain_precision_setting": retain_precision, "trl_best": TRL_BEST},
        "summary": summary,
        "ratios": ratios,
        "goals": goals,
        "runs": runs,
    }


def main() -> None:
    if "--child" in sys.argv:
        child_main(sys.argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads of every contender")
    p.add_argument("--model", default=None, help="an embedded model name or a local model folder (default: the "
                                                 "built Llama)")
    p.add_argument("--out", type=Path, default=OUT)
    add_args(p)
    args = p.parse_args()
    args.model_dir = model_folder(args.model) if args.model else None
    import torch

    torch.set_num_threads(args.threads)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    before = machine_info()
    doc = {"benchmark": "compare.train", "machine": before, "train": run(args, log),
           "load_average_after": load_average()}
    path = write_result(doc, args.out)
    print(json.dumps({"summary": doc["train"]["summary"], "ratios": doc["train"]["ratios"],
                      "goals": doc["train"]["goals"]}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()


def goals(section: dict) -> list[dict]:
    """The issue's goals for this section, for bench/compare.py's goals table."""
    r = section["ratios"]
    out = []
    if "retain_over_trl_best" in r:
        out.append({"goal": f"train: retain real tokens/s >= {GOAL_OVER_TRL_BEST}x TRL SFTTrainer, its best CPU "
                            "configuration (bf16, padding_free, completion-only loss)",
                    "value": round(r["retain_over_trl_best"]["median"], 3),
                    "met": r["retain_over_trl_best"]["median"] >= GOAL_OVER_TRL_BEST})
    if "retain_over_trl" not in r:
        return out
    out.append({"goal": "train: retain real tokens/s >= TRL SFTTrainer (its defaults)",
                "value": round(r["retain_over_trl"]["median"], 3), "met": r["retain_over_trl"]["median"] >= 1.0})
    if "retain_over_tutorial" in r:
        out.append({"goal": "train: retain real tokens/s >= 2x the pad-to-max tutorial Trainer",
                    "value": round(r["retain_over_tutorial"]["median"], 3),
                    "met": r["retain_over_tutorial"]["median"] >= 2.0})
    return out
