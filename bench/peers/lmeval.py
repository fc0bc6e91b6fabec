"""Evaluation: retain's engine against lm-evaluation-harness (`lm-eval`, HF backend), same model, same data.

Two tasks, the same JSONL examples for both tools:

- choice: SST-2 sentiment (`../shared/data/sentiment/test.jsonl`), log-likelihood of `negative` /
  `positive`, accuracy;
- generate: DialogSum (`../shared/data/summarization/test.jsonl`), greedy, 64 new tokens.

lm-eval reads them through custom tasks written at run time into a temporary folder, whose documents
hold the prompts as retain renders them (`bench/peers/lmeval_tasks.py`), so both tools see the same
text (checked per example). Both load the same local model folder on CPU; nothing is downloaded (the
HF offline variables are set before anything is imported).

- seq2seq models (the default: the real-data study's T5): float32 on both sides, zero-shot; goals 2x
  on choice, 1.2x on generation.
- decoder-only models (`--eval-model` / compare.py's `--model`, e.g. `smollm2-135m-instruct`, issue
  11): HF backend `causal`; retain at its default precision (`auto`: fp32 weights under bf16 autocast
  on a CPU with AMX / AVX512-BF16) and lm-eval in the same precision (`HFLM(dtype="float32",
  mixed_precision_dtype="bfloat16")`: autocast around its forward passes); retain's chat template for
  chat models; SST-2 with 3 shots (retain's draw); goals 2x on choice, 1.5x on generation.

Three contenders, in turns (retain, lm-eval at retain's batch size, lm-eval with its default batch
size of 1), `--eval-reps` rounds after a small warm-up:

- retain: `retain.evaluation.engine.loglikelihood` / `generate`, as the runner calls them, without
  the cache (every rep computes);
- lm-eval: `lm_eval.simple_evaluate` on a pre-loaded `HFLM`; the time compared is the time spent in
  `HFLM.loglikelihood` / `HFLM.generate_until` (tokenising, batching, the model, decoding), i.e.
  without task building, dataset loading, metrics and sample logging, which are reported apart as
  `simple_evaluate_s`.

Speed-ups are computed pair by pair (rep i of lm-eval / rep i of retain) and their median reported.
The default-batch-size run may use fewer examples (`--eval-default-limit`); it is then compared per
example.

    python -m bench.peers.lmeval --eval-limit 32 --eval-reps 1 --threads 1   # quick, ~1-2 min
    python -m bench.peers.lmeval                                             # 300 examples, 3 reps
"""

from __future__ import annotations

import os

# Before transformers / datasets / huggingface_hub are imported (they read these at import time):
# lm-eval must not reach the network for anything.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parents[1]
from bench.common import REPO, RESULTS, SHARED, load_average, machine_info, write_result
from bench.peers.lmeval_compare import WARMUP_EXAMPLES, Compared, compare_task
from bench.peers.lmeval_contenders import ScoringTimer, WorkCounter
from bench.peers.lmeval_tasks import REAL_MODEL, option_delimiter, rendered_prompts, resolve_model, write_tasks

# retain / lm-eval at equal batch size, at least: seq2seq (the real-data study's T5), decoder-only (issue 11)
GOALS = {"choice": 2.0, "generate": 1.2}
GOALS_DECODER = {"choice": 2.0, "generate": 1.5}
CHOICE_SHOTS_DECODER = 3  # SST-2 solved examples per prompt for decoder-only models (issue 11)

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- arguments -------------------------------------------------------------------------------------

def add_args(parser: argparse.ArgumentParser) -> None:
    """The section's flags (all `--eval-...`; torch threads are the driver's `--threads`)."""
    from retain.evaluation.runner import EvalSettings

    g = parser.add_argument_group("eval: retain's evaluation engine vs lm-evaluation-harness")
    g.add_argument("--eval-model", default=None,
                   help=f"a local model folder or an embedded model name, seq2seq or decoder-only (default: "
                        f"compare.py's --model, else {REAL_MODEL.relative_to(REPO)} if it exists, else a "
                        "random-weight shrunk flan-t5-small built once under ~/.cache/retain/bench)")
    g.add_argument("--eval-choice-shots", type=int, default=None,
                   help=f"solved examples per SST-2 prompt, retain's draw (default: {CHOICE_SHOTS_DECODER} for "
                        "decoder-only models, 0 for seq2seq)")
    g.add_argument("--eval-dtype", default=None,
                   help="retain's dtype, and lm-eval's likewise (default: auto, retain's default, for decoder-only "
                        "models; float32 for seq2seq)")
    g.add_argument("--eval-data", type=Path, default=SHARED / "data",
                   help="folder with sentiment/test.jsonl and summarization/test.jsonl")
    g.add_argument("--eval-limit", type=int, default=300,
                   help="examples per task for retain and lm-eval at equal batch size (first N of test)")
    g.add_argument("--eval-default-limit", type=int, default=100,
                   help="examples per task for lm-eval at its default batch size 1 (first N; capped at "
                        "--eval-limit; compared per example when smaller); 0 skips that run")
    g.add_argument("--eval-reps", type=int, default=3, help="timed repetitions per contender (median reported)")
    g.add_argument("--eval-batch-size", type=int, default=EvalSettings().batch_size,
                   help="retain's batch size, and lm-eval's in the equal-batch run (default: retain's "
                        "EvalSettings default)")
    g.add_argument("--eval-tasks", default="choice,generate", help="comma-separated subset of choice,generate")
    g.add_argument("--eval-profile", choices=("auto", "on", "off"), default="auto",
                   help="profile one retain and one lm-eval run per task (cProfile + torch.profiler, on up "
                        "to 64 examples): always (on), when retain misses a goal (auto), never (off)")
    g.add_argument("--eval-lmeval-max-length", choices=("fix", "stock"), default="fix",
                   help="fix: pass max_length=1+max_gen_toks in the task's generation_kwargs, since "
                        "lm-eval's HF backend otherwise bounds a seq2seq output by context length + "
                        "max_gen_toks decoder tokens; stock: leave lm-eval as is")


# --- the section -----------------------------------------------------------------------------------

def _offline_flags() -> dict:
    import datasets
    import huggingface_hub.constants

    return {"huggingface_hub": bool(huggingface_hub.constants.HF_HUB_OFFLINE),
            "datasets": bool(datasets.config.HF_DATASETS_OFFLINE)}


class _QuietMaxLength(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "`max_length` in generation kwargs" not in record.getMessage()


def run(args: argparse.Namespace, log: Log = _stderr) -> dict:
    """Run the section; returns its JSON-able result."""
    import torch

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    # One line per batch, and expected: the task sets max_length on purpose (see the notes).
    logging.getLogger("lm_eval.models.huggingface").addFilter(_QuietMaxLength())
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoConfig

    from retain.models.loading import load_model
    from retain.tasks import get_task

    kinds = [k.strip() for k in args.eval_tasks.split(",") if k.strip()]
    unknown = set(kinds) - set(GOALS)
    if unknown:
        raise ValueError(f"--eval-tasks: unknown {', '.join(sorted(unknown))} (choose from choice, generate)")
    if args.eval_limit <= 0 or args.eval_reps <= 0 or args.eval_batch_size <= 0:
        raise ValueError("--eval-limit, --eval-reps and --eval-batch-size must be positive")
    default_limit = min(args.eval_default_limit, args.eval_limit)

    model_dir, model_source = resolve_model(args.eval_model or getattr(args, "model_dir", None), log)
    seq2seq = bool(AutoConfig.from_pretrained(str(model_dir)).is_encoder_decoder)
    goals = GOALS if seq2seq else GOALS_DECODER
    dtype = args.eval_dtype or ("float32" if seq2seq else "auto")
    lm = load_model(str(model_dir), device="cpu", dtype=dtype)
    log(f"eval: model {model_dir} ({model_source}, {'seq2seq' if seq2seq else 'decoder-only'}, "
        f"{lm.precision.name}); torch threads {torch.get_num_threads()}")
    shots = args.eval_choice_shots if args.eval_choice_shots is not None else 0 if seq2seq else CHOICE_SHOTS_DECODER
    tasks = {"choice": get_task(f"sentiment:{args.eval_data / 'sentiment'}"),
             "generate": get_task(f"summarization:{args.eval_data / 'summarization'}")}
    examples = {k: tasks[k].fewshot_examples("test", args.eval_limit, shots if k == "choice" else 0, seed=0)
                for k in kinds}
    prompts = {k: rendered_prompts(lm, exs) for k, exs in examples.items()}
    delimiter = option_delimiter(lm, prompts["choice"]) if "choice" in prompts else ""
    max_new_tokens = tasks["generate"].max_new_tokens
    config = lm.model.config
    n_positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    longest = max(max(len(ids) for ids in lm.tokenizer(ps)["input_ids"]) for ps in prompts.values())
    # seq2seq: lm-eval left-truncates contexts to max_length (T5 configs say n_positions=512); retain never
    # truncates a seq2seq input, and T5's relative attention reads longer inputs, so lm-eval's limit is raised
    # to the longest prompt. Decoder-only: both keep the model's context (max_position_embeddings).
    lmeval_max_length = max(longest, n_positions or 0) if seq2seq else n_positions
    fix = seq2seq and args.eval_lmeval_max_length == "fix"
    # lm-eval in retain's precision: the same weights dtype, and autocast where retain uses it: under
    # `auto` on a bf16 CPU retain scores under bf16 autocast and generates in fp32 (Precision.generation).
    weights = str(lm.dtype).replace("torch.", "")
    kind_precision = {"choice": lm.precision, "generate": lm.precision.generation}
    mixed_by_kind = {k: str(p.autocast).replace("torch.", "") if p.autocast is not None else None
                     for k, p in kind_precision.items()}
    mixed = mixed_by_kind["choice"]

    doc: dict[str, Any] = {
        "section": "eval", "peer": "lm-evaluation-harness", "peer_version": lm_eval.__version__,
        "model": {"path": str(model_dir), "source": model_source, "kind": "seq2seq" if seq2seq else "decoder-only",
                  "parameters": lm.model.num_parameters(), "n_positions": n_positions},
        "settings": {
            "device": "cpu", "dtype_setting": dtype, "precision": lm.precision.name,
            "generation_precision": lm.precision.generation.name,
            "lmeval_hflm": {"backend": "seq2seq" if seq2seq else "causal", "dtype": weights,
                            "mixed_precision_dtype": {k: mixed_by_kind[k] for k in kinds}},
            "torch_threads": torch.get_num_threads(),
            "limit": args.eval_limit, "default_limit": default_limit if default_limit > 0 else None,
            "choice_shots": shots, "fewshot_seed": 0, "chat_template": not seq2seq and
            bool(getattr(lm.tokenizer, "chat_template", None)), "option_delimiter": delimiter,
            "reps": args.eval_reps, "statistic": "median; speed-ups pair by pair (rep i / rep i), then median",
            "batch_size_retain": args.eval_batch_size, "batch_size_lmeval_same": args.eval_batch_size,
            "batch_size_lmeval_default": 1, "max_new_tokens": max_new_tokens,
            "lmeval_max_length": lmeval_max_length,
            "lmeval_generation_max_length": "1 + max_gen_toks (fix)" if fix
            else "lm-eval stock: context tokens + max_gen_toks",
            "warmup": f"each contender once on the first {WARMUP_EXAMPLES} examples",
            "timed": "retain: engine.loglikelihood / engine.generate incl. tokenising and decoding (no cache); "
                     "lm-eval: time inside HFLM.loglikelihood / generate_until during simple_evaluate (tokenising, "
                     "batching, model, decoding); simple_evaluate_s adds task building, dataset loading, "
                     "metrics, sample logging",
        },
        "goals": {k: goals[k] for k in kinds},
        "tasks": {},
        "notes": _notes(seq2seq, lmeval_max_length, n_positions, max_new_tokens, shots, fix, weights, mixed),
        "offline": _offline_flags(),
        "load_average_start": load_average(),
    }
    if not all(doc["offline"].values()):
        log(f"warning: HF offline mode not in effect everywhere {doc['offline']} (import bench/peers/lmeval.py before "
            "transformers / datasets, or set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1); only local files are read anyway")

    with tempfile.TemporaryDirectory(prefix="retain-lmeval-") as tmp:
        answer = {"choice": lambda ex: ex.target, "generate": lambda ex: ex.target}
        docs = {k: [{"id": ex.id, "text": p, "answer": answer[k](ex)} for ex, p in zip(examples[k], prompts[k])]
                for k in kinds}
        yamls = write_tasks(Path(tmp), docs, delimiter, max_new_tokens, fix)
        doc["settings"]["task_yaml"] = {k: p.read_text() for k, p in yamls.items()}
        task_manager = TaskManager(include_path=tmp, include_defaults=False)
        hf_args = {"pretrained": str(model_dir), "backend": "seq2seq" if seq2seq else "causal", "device": "cpu",
                   "dtype": weights, "max_length": lmeval_max_length}
        retain_counter = WorkCounter(lm.model)  # hooks on retain's model: once, for every kind
        for kind in kinds:
            kind_args = {**hf_args, **({"mixed_precision_dtype": mixed_by_kind[kind]} if mixed_by_kind[kind] else {})}
            peers = {"same": HFLM(**kind_args, batch_size=args.eval_batch_size)}
            if default_limit > 0:
                peers["default"] = HFLM(**kind_args)  # lm-eval's default batch size
            timers = {name: ScoringTimer(h) for name, h in peers.items()}
            counters = {"retain": retain_counter,
                        **{f"lmeval-{name}": WorkCounter(h.model) for name, h in peers.items()}}
            compared = Compared(kind, tasks[kind], examples[kind], prompts[kind], delimiter, goals[kind])
            doc["tasks"][kind] = compare_task(compared, lm, peers, timers, counters, task_manager, args, default_limit,
                                          max_new_tokens, log)
    doc["load_average_end"] = load_average()
    doc["summary"] = {kind: {"speedup_same_batch": t["speedup_same_batch"]["median"], "goal": goals[kind],
                             "goal_met": t["speedup_same_batch"]["goal_met"],
                             "speedup_vs_defaults_per_example": (t.get("speedup_vs_defaults") or {}).get("median"),
                             "agreement": t["agreement"]["summary"]}
                      for kind, t in doc["tasks"].items()}
    return doc


def _notes(seq2seq: bool, lmeval_max_length, n_positions, max_new_tokens: int, shots: int, fix: bool,
           weights: str, mixed: str | None) -> list[str]:
    """What had to be set for both tools to compute the same thing, and what still differs (in the JSON)."""
    notes = [
        "lm-eval reads documents holding retain's rendered prompts (task template, retain's few-shot draw, chat "
        "template for chat models) with num_fewshot 0 and no apply_chat_template, so both read the same text "
        "(prompts_identical checks it per example)",
        "lm-eval 'defaults' run: HFLM without batch_size (its default, 1); other settings as the equal-batch run",
        "generate task: until [] (lm-eval stops at the EOS text), do_sample false, max_gen_toks "
        f"{max_new_tokens}; lm-eval's output is compared after .strip() (retain strips its outputs)",
        f"precision: lm-eval HFLM(dtype={weights!r}, mixed_precision_dtype={mixed!r}) for scoring, retain's "
        "precision; for generation lm-eval runs in retain's generation precision (fp32 under auto: bf16 autocast "
        "flips greedy answers)",
    ]
    if seq2seq:
        notes.append(f"lm-eval max_length set to {lmeval_max_length} (its default is the config's n_positions="
                     f"{n_positions}) so that no context is left-truncated: retain does not truncate at evaluation")
        notes.append("choice task: target_delimiter '' so lm-eval scores the bare option as retain does (for T5's "
                     "SentencePiece ' negative' and 'negative' encode alike anyway)")
    else:
        notes.append(f"choice task: {shots} solved examples per prompt drawn by retain (retain.tasks.fewshot: per "
                     "example, seeded by (0, id), from SST-2 train) instead of lm-eval's sampler")
        notes.append("choice task: lm-eval moves a context's trailing whitespace into the continuation "
                     "(lm_eval.api.model._encode_pair); a chat prompt ends in '\\n', so lm-eval's log-likelihood of "
                     "each option also holds log P('\\n' | context), the same for both options: chosen options "
                     "are unaffected, and max_abs_margin_diff compares the options' differences instead")
        notes.append(f"both keep the model's context of {lmeval_max_length} tokens (no prompt here is longer)")
    if fix:
        notes.append(
            "lm-eval's HF backend calls model.generate(max_length=context_tokens + max_gen_toks); for an "
            "encoder-decoder model max_length bounds the decoder output, so outputs without EOS run up to "
            "context+64 tokens instead of 64. The task passes max_length=1+max_gen_toks in generation_kwargs "
            "(which lm-eval forwards) so both tools generate at most the same 64 tokens.")
    return notes


def goals(section: dict) -> list[dict]:
    """The issue's goals for this section, for bench/compare.py's goals table."""
    out = []
    for kind, summary in section.get("summary", {}).items():
        out.append({"goal": f"eval {kind}: retain >= {summary['goal']}x lm-eval at equal batch size "
                            f"(scores {summary['agreement']})",
                    "value": summary["speedup_same_batch"], "met": bool(summary["goal_met"])})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(p)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, default=RESULTS / "compare_eval.json", help="result file")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    doc = {"bench": "compare (eval section alone)",
           "command": " ".join(["python", "-m", "bench.peers.lmeval", *sys.argv[1:]]),
           "machine": machine_info(), "eval": run(args, _stderr)}
    write_result(doc, args.out)
    _stderr(f"wrote {args.out}")
    print(json_summary(doc["eval"]))
    return doc


def json_summary(section: dict) -> str:
    import json

    return json.dumps(section["summary"], indent=2)


if __name__ == "__main__":
    main()
