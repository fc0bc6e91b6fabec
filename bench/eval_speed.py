"""Evaluation speed: retain's batched engine against a naive per-example loop, in the same run.

Both sides use the same model, the same examples and the same greedy / log-likelihood definitions, so
their predictions must be identical (checked and recorded); only the time differs. The naive side is
written as a tutorial would: one `model.generate` per prompt, and one forward pass per (prompt,
choice) pair. The retain side calls `retain.evaluation.engine` (`generate`, `loglikelihood`) with a
batch size, exactly as `retain.evaluation.runner` does, but without the cache and without metrics.

Models (random weights; nothing is downloaded):

- flan-t5-small: the real config and tokenizer from `../shared/models/flan-t5-small-tokenizer`, full
  size, and the same shrunk by `TINY_T5_SHRINK`;
- tiny-llama: `tiny_llama` (decoder-only) with a byte-level BPE tokenizer trained on the task texts.

Random weights emit garbage (often PAD forever); the output rows of PAD/UNK/BOS are zeroed, as the test
fixtures do, so greedy decoding produces ordinary tokens. Generation length is whatever the model
produces up to `max_new_tokens`; the tokens generated (up to EOS) and the rows x steps actually decoded
(batched decoding keeps finished rows until the whole batch is done) are recorded for both sides.

Tasks: `summarization` (generate) and `sentiment` (choice) from `../shared/data`, or `toy-summarize`
and `toy-sentiment` when that folder is absent.

    python -m bench.eval_speed            # ~5 min on 2 idle CPU cores -> bench/results/eval_speed.json
    python -m bench.eval_speed --quick    # ~15 s -> bench/results/eval_speed.quick.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bench.common import RESULTS, SHARED, interleaved, load_average, machine_info, write_result

from retain.evaluation import engine
from retain.models.formatting import completion_prefix
from retain.models.loading import LoadedModel, load_model
from retain.models.tiny import (
    TINY_T5_SHRINK, model_from_config_dir, save_model, tiny_llama, train_tokenizer, zero_special_output_rows,
)
from retain.tasks import Example, Task, get_task

GOAL = 5.0  # the speed-up retain should reach over the naive loop on CPU, for each task kind


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the naive baseline: one prompt, one (prompt, choice) at a time -------------------------------

@torch.inference_mode()
def naive_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, is_seq2seq: bool) -> list[str]:
    """Greedy completions, one `model.generate` call per prompt."""
    predictions = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new_tokens = output[0] if is_seq2seq else output[0, inputs["input_ids"].shape[1]:]
        predictions.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())
    return predictions


@torch.inference_mode()
def naive_choice(model, tokenizer, examples: list[Example], is_seq2seq: bool) -> list[list[float]]:
    """Summed log-probability of every choice of every example, one forward pass per pair."""
    all_scores = []
    for ex in examples:
        scores = []
        for choice in ex.choices:
            if is_seq2seq:
                inputs = tokenizer(ex.prompt, return_tensors="pt").to(model.device)
                target = tokenizer(choice, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
                logits = model(**inputs, labels=target).logits
            else:
                # The answer follows the prompt after one space (retain's `completion_prefix`).
                context = tokenizer(ex.prompt)["input_ids"]
                whole = tokenizer(ex.prompt + completion_prefix(ex.prompt, False) + choice,
                                  return_tensors="pt")["input_ids"].to(model.device)
                n_answer = max(whole.shape[1] - len(context), 1)
                logits = model(input_ids=whole).logits[:, :-1][:, -n_answer:]
                target = whole[:, 1:][:, -n_answer:]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            scores.append(logprobs.gather(-1, target.unsqueeze(-1)).sum().item())
        all_scores.append(scores)
    return all_scores


# --- retain: the engine, batched, as the runner calls it ------------------------------------------

def retain_generate(lm: LoadedModel, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    return engine.generate(lm, prompts, max_new_tokens, batch_size=batch_size)


def retain_choice(lm: LoadedModel, examples: list[Example], batch_size: int) -> list[list[float]]:
    requests = [(ex.prompt, choice) for ex in examples for choice in ex.choices]
    values = iter(engine.loglikelihood(lm, requests, batch_size=batch_size))
    return [[next(values) for _ in ex.choices] for ex in examples]


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


# --- counting the work each side does --------------------------------------------------------------

class WorkCounter:
    """Counts model forward calls and, for `model.generate`, tokens generated and rows x steps decoded.

    It wraps the model instance's `generate` (the code under test is unchanged) and hooks `forward`;
    in greedy decoding with a KV cache each forward call is one decoding step for the whole batch.
    """

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self._generate = lm.model.generate
        lm.model.generate = self._counting_generate
        lm.model.register_forward_pre_hook(self._count_forward)
        self.reset()

    def reset(self) -> None:
        self.forward_calls = 0
        self.generated_tokens = 0  # tokens up to and including EOS, summed over prompts
        self.decoded_slots = 0  # batch rows x generated positions, finished rows included

    def snapshot(self) -> dict:
        return {"forward_calls": self.forward_calls, "generated_tokens": self.generated_tokens,
                "decoded_slots": self.decoded_slots}

    def _count_forward(self, module, args):
        self.forward_calls += 1

    def _counting_generate(self, *args, **kwargs):
        output = self._generate(*args, **kwargs)
        # seq2seq rows start with the decoder start token; decoder-only rows with the prompt.
        new = output[:, 1:] if self.lm.is_seq2seq else output[:, kwargs["input_ids"].shape[1]:]
        eos = self.lm.tokenizer.eos_token_id
        for row in new.tolist():
            self.generated_tokens += row.index(eos) + 1 if eos in row else len(row)
        self.decoded_slots += new.numel()
        return output


# --- models and tasks ------------------------------------------------------------------------------

def build_flan_t5(config_dir: Path, out: Path, shrink: dict | None) -> LoadedModel:
    from transformers import AutoModelForSeq2SeqLM

    from retain.models.loading import load_tokenizer

    model_from_config_dir(config_dir, out, seed=0, shrink=shrink)
    tokenizer = load_tokenizer(str(out))
    save_model(zero_special_output_rows(AutoModelForSeq2SeqLM.from_pretrained(out), tokenizer), tokenizer, out)
    return load_model(str(out), device="cpu", dtype="float32")


def build_tiny_llama(texts: list[str], out: Path) -> LoadedModel:
    tokenizer = train_tokenizer(texts, vocab_size=2000, append_eos=False)
    # Dialogues in a 2,000-token BPE vocabulary run to ~560 tokens: leave room for them and the answer.
    model = tiny_llama(tokenizer, max_positions=4096)
    save_model(zero_special_output_rows(model, tokenizer), tokenizer, out)
    return load_model(str(out), device="cpu", dtype="float32")


def pick_tasks(data: Path) -> tuple[Task, Task]:
    if (data / "summarization").is_dir() and (data / "sentiment").is_dir():
        return (get_task(f"summarization:{data / 'summarization' / 'test.jsonl'}"),
                get_task(f"sentiment:{data / 'sentiment' / 'test.jsonl'}"))
    log(f"{data} not found: using the built-in toy-summarize and toy-sentiment tasks instead")
    return get_task("toy-summarize"), get_task("toy-sentiment")


def tokenizer_texts(tasks: tuple[Task, ...]) -> list[str]:
    texts = []
    for task in tasks:
        split = "train" if "train" in task.splits else "test"
        for ex in task.examples(split, 1000):
            texts += [ex.prompt, ex.target]
    return texts


# Examples per model: (generate, choice). Full size flan-t5-small reads long dialogues (~215 tokens)
# one by one at ~1 s per example, the slow part of the run: it gets one full batch of prompts.
EXAMPLES = {"flan-t5-small": (32, 128), "flan-t5-small-shrunk": (64, 128), "tiny-llama": (64, 128)}
QUICK_EXAMPLES = {"flan-t5-small-shrunk": (16, 32), "tiny-llama": (16, 32)}


# --- one comparison --------------------------------------------------------------------------------

def _prompt_tokens(lm: LoadedModel, prompts: list[str]) -> dict:
    lengths = [len(ids) for ids in lm.tokenizer(prompts)["input_ids"]]
    return {"mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths)}


def compare_generate(lm: LoadedModel, counter: WorkCounter, examples: list[Example], max_new_tokens: int,
                     batch_size: int, reps: int) -> dict:
    prompts = [ex.prompt for ex in examples]
    tok, model = lm.tokenizer, lm.model

    def naive(ps=prompts):
        counter.reset()
        return naive_generate(model, tok, ps, max_new_tokens, lm.is_seq2seq), counter.snapshot()

    def batched(ps=prompts):
        counter.reset()
        return retain_generate(lm, ps, max_new_tokens, batch_size), counter.snapshot()

    warm = prompts[:4]
    t = interleaved({"naive": naive, "retain": batched}, reps=reps,
                    warmups={"naive": lambda: naive(warm), "retain": lambda: batched(warm)}, log=log)
    (naive_preds, naive_work), (retain_preds, retain_work) = t["naive"].result, t["retain"].result
    mismatches = sum(a != b for a, b in zip(naive_preds, retain_preds))
    return {
        "kind": "generate", "n_examples": len(prompts), "max_new_tokens": max_new_tokens,
        "prompt_tokens": _prompt_tokens(lm, prompts),
        "naive": {**t["naive"].to_json(), **naive_work},
        "retain": {**t["retain"].to_json(), **retain_work, "batch_size": batch_size},
        "speedup": round(t["naive"].median / t["retain"].median, 2),
        "identical": mismatches == 0, "mismatches": mismatches,
        "sample_prediction": retain_preds[0][:80],
    }


def compare_choice(lm: LoadedModel, counter: WorkCounter, examples: list[Example], batch_size: int,
                   reps: int) -> dict:
    tok, model = lm.tokenizer, lm.model

    def naive(exs=examples):
        counter.reset()
        return naive_choice(model, tok, exs, lm.is_seq2seq), counter.snapshot()

    def batched(exs=examples):
        counter.reset()
        return retain_choice(lm, exs, batch_size), counter.snapshot()

    warm = examples[:4]
    t = interleaved({"naive": naive, "retain": batched}, reps=reps,
                    warmups={"naive": lambda: naive(warm), "retain": lambda: batched(warm)}, log=log)
    (naive_lp, naive_work), (retain_lp, retain_work) = t["naive"].result, t["retain"].result
    mismatches = sum(argmax(a) != argmax(b) for a, b in zip(naive_lp, retain_lp))
    max_diff = max(abs(x - y) for a, b in zip(naive_lp, retain_lp) for x, y in zip(a, b))
    return {
        "kind": "choice", "n_examples": len(examples), "n_requests": sum(len(ex.choices) for ex in examples),
        "prompt_tokens": _prompt_tokens(lm, [ex.prompt for ex in examples]),
        "naive": {**t["naive"].to_json(), "forward_calls": naive_work["forward_calls"]},
        "retain": {**t["retain"].to_json(), "forward_calls": retain_work["forward_calls"],
                   "batch_size": batch_size},
        "speedup": round(t["naive"].median / t["retain"].median, 2),
        "identical": mismatches == 0, "mismatches": mismatches,
        "max_abs_logprob_diff": float(f"{max_diff:.3g}"),
    }


# --- main ------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer examples and tokens, small models only (~15 s)")
    p.add_argument("--batch-size", type=int, default=32, help="retain's batch size (prompts per forward pass)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="generation length limit (default: the task's own, 64 for summarization; 16 with --quick)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per side (the median is reported)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's own, recorded in the result; 1 helps on a shared machine)")
    p.add_argument("--shared", type=Path, default=SHARED, help="folder holding data/ and models/")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of flan-t5-small,flan-t5-small-shrunk,tiny-llama")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/eval_speed[.quick].json)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    examples = QUICK_EXAMPLES if args.quick else EXAMPLES
    max_new_tokens = args.max_new_tokens or (16 if args.quick else None)  # None: the task's own
    if args.models:
        wanted = args.models.split(",")
        unknown = set(wanted) - set(examples)
        if unknown:
            sys.exit(f"unknown model(s) {', '.join(sorted(unknown))}; choose from {', '.join(examples)}")
        examples = {name: n for name, n in examples.items() if name in wanted}

    gen_task, choice_task = pick_tasks(args.shared / "data")
    flan = args.shared / "models" / "flan-t5-small-tokenizer"
    doc = {"bench": "eval_speed", "command": " ".join(["python", "-m", "bench.eval_speed", *sys.argv[1:]]),
           "quick": args.quick, "machine": machine_info(), "goal_speedup": GOAL,
           "settings": {"batch_size": args.batch_size, "reps": args.reps, "statistic": "median",
                        "warmup": "each side once on the first 4 examples", "device": "cpu", "dtype": "float32",
                        "max_new_tokens": max_new_tokens or gen_task.max_new_tokens},
           "tasks": {"generate": gen_task.name, "choice": choice_task.name},
           "notes": [], "results": []}
    log(f"torch threads: {torch.get_num_threads()}, load average: {load_average()}")
    busy = (load_average() or [0])[0]
    if busy > (os.cpu_count() or 1):
        # Other processes on the cores slow the naive side far more than the batched one (its many
        # tiny ops each wait for every OpenMP thread), so speed-ups on a busy machine run high.
        log(f"warning: load average {busy} on {os.cpu_count()} cores; timings will be noisy")
    with tempfile.TemporaryDirectory(prefix="retain-bench-") as tmp:
        for name, (n_generate, n_choice) in examples.items():
            if name.startswith("flan") and not flan.is_dir():
                note = f"{name}: skipped, {flan} not found"
                log(note)
                doc["notes"].append(note)
                continue
            log(f"building {name} ...")
            if name == "flan-t5-small":
                lm = build_flan_t5(flan, Path(tmp) / name, None)
            elif name == "flan-t5-small-shrunk":
                lm = build_flan_t5(flan, Path(tmp) / name, TINY_T5_SHRINK)
            else:
                lm = build_tiny_llama(tokenizer_texts((gen_task, choice_task)), Path(tmp) / name)
            counter = WorkCounter(lm)
            info = {"model": name, "architecture": "seq2seq" if lm.is_seq2seq else "decoder-only",
                    "parameters": lm.model.num_parameters()}
            gen_examples = gen_task.examples("test", n_generate)
            max_new = max_new_tokens or gen_task.max_new_tokens
            log(f"{name}: generate, {len(gen_examples)} examples, max_new_tokens {max_new}")
            load = load_average()
            row = compare_generate(lm, counter, gen_examples, max_new, args.batch_size, args.reps)
            row["load_average_before"] = load
            doc["results"].append({**info, "task": gen_task.name, **row})
            log(f"  speedup {row['speedup']}x, identical {row['identical']}")
            choice_examples = choice_task.examples("test", n_choice)
            log(f"{name}: choice, {len(choice_examples)} examples")
            load = load_average()
            row = compare_choice(lm, counter, choice_examples, args.batch_size, args.reps)
            row["load_average_before"] = load
            doc["results"].append({**info, "task": choice_task.name, **row})
            log(f"  speedup {row['speedup']}x, identical {row['identical']}")
            del lm, counter
    doc["machine"]["load_average_end"] = load_average()
    summary = {}
    for kind in ("generate", "choice"):
        speedups = {r["model"]: r["speedup"] for r in doc["results"] if r["kind"] == kind}
        if speedups:
            summary[kind] = {"speedups": speedups, "min_speedup": min(speedups.values()),
                             "goal_met": min(speedups.values()) >= GOAL}
    summary["all_identical"] = all(r["identical"] for r in doc["results"])
    doc["summary"] = summary
    out = args.out or RESULTS / ("eval_speed.quick.json" if args.quick else "eval_speed.json")
    write_result(doc, out)
    log(f"wrote {out}")
    for r in doc["results"]:
        log(f"{r['model']:<22} {r['kind']:<9} naive {r['naive']['median_s']:7.2f} s  retain "
            f"{r['retain']['median_s']:6.2f} s  speedup {r['speedup']:5.1f}x  identical {r['identical']}")
    return doc


if __name__ == "__main__":
    main()
