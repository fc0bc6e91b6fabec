"""Evaluation: retain's engine against lm-evaluation-harness (`lm-eval`, HF backend), same model, same data.

Two tasks, the same JSONL examples for both tools:

- choice: SST-2 sentiment (`../shared/data/sentiment/test.jsonl`), log-likelihood of `negative` /
  `positive`, accuracy;
- generate: DialogSum (`../shared/data/summarization/test.jsonl`), greedy, 64 new tokens.

lm-eval reads them through custom task YAMLs written at run time into a temporary folder
(`dataset_path: json` over the real files), with the prompt templates translated from retain's own
(`SENTIMENT_TEMPLATE`, `SUMMARIZATION_TEMPLATE`) to Jinja, so both tools see the same prompts
(checked per example). Both load the same local model folder on CPU in float32; nothing is
downloaded (the HF offline variables are set before anything is imported).

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

    python bench/peers/lmeval.py --eval-limit 32 --eval-reps 1 --threads 1   # quick, ~1-2 min
    python bench/peers/lmeval.py                                             # 300 examples, 3 reps
"""

from __future__ import annotations

import os

# Before transformers / datasets / huggingface_hub are imported (they read these at import time):
# lm-eval must not reach the network for anything.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import string  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

BENCH = Path(__file__).resolve().parents[1]
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
from common import CACHE, FLAN, REPO, RESULTS, SHARED, interleaved, load_average, machine_info, write_result  # noqa: E402

# Preferred model: the real-data study's full fine-tune on DialogSum (it writes summaries that end, as a
# model evaluated after fine-tuning does), else that study's base model.
REAL_MODELS = (REPO / "bench" / "real_study" / "out" / "study" / "runs" / "full-s0" / "train",
               REPO / "bench" / "real_study" / "out" / "base" / "model")
REAL_MODEL = REAL_MODELS[-1]
GOALS = {"choice": 2.0, "generate": 1.2}  # retain / lm-eval at equal batch size, at least
TASK_NAMES = {"choice": "retain_bench_sentiment", "generate": "retain_bench_summarization"}
WARMUP_EXAMPLES = 4

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- arguments -------------------------------------------------------------------------------------

def add_args(parser: argparse.ArgumentParser) -> None:
    """The section's flags (all `--eval-...`; torch threads are the driver's `--threads`)."""
    from retain.evaluation.runner import EvalSettings

    g = parser.add_argument_group("eval: retain's evaluation engine vs lm-evaluation-harness")
    g.add_argument("--eval-model", type=Path, default=None,
                   help=f"local HF seq2seq model folder (default: {REAL_MODEL.relative_to(REPO)} if it exists, "
                        "else a random-weight shrunk flan-t5-small built once under ~/.cache/retain/bench)")
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


# --- model ------------------------------------------------------------------------------------------

def resolve_model(path: Path | None, log: Log) -> tuple[Path, str]:
    """The model folder and where it came from; builds the random fallback once into the cache."""
    if path is not None:
        return path, "given"
    for real, what in zip(REAL_MODELS, ("real_study full fine-tune on DialogSum", "real_study base model")):
        if (real / "config.json").is_file() and any(real.glob("*.safetensors")):
            return real, what
    log(f"{REAL_MODEL} not there (yet): using the random-weight fallback model")
    out = CACHE / "flan-t5-small-shrunk-random"
    source = "random weights: flan-t5-small config + tokenizer shrunk by TINY_T5_SHRINK, PAD/UNK rows zeroed"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out, source
    from transformers import AutoModelForSeq2SeqLM

    from retain.models.loading import load_tokenizer
    from retain.models.tiny import TINY_T5_SHRINK, model_from_config_dir, save_model, zero_special_output_rows

    log(f"building the fallback model into {out} ...")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
    model_from_config_dir(FLAN, tmp, seed=0, shrink=TINY_T5_SHRINK)
    tokenizer = load_tokenizer(str(tmp))
    save_model(zero_special_output_rows(AutoModelForSeq2SeqLM.from_pretrained(tmp), tokenizer), tokenizer, tmp)
    if out.exists():  # a half-built folder from an interrupted run
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out, source


# --- lm-eval task YAMLs -----------------------------------------------------------------------------

def jinja_template(template: str) -> str:
    """retain's `{field}` prompt template as the equivalent lm-eval (Jinja) template."""
    out = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        if any(tag in literal for tag in ("{{", "{%", "{#")):
            raise ValueError(f"template literal {literal!r} would be read as Jinja syntax")
        out.append(literal)
        if name is not None:
            if spec or conv:
                raise ValueError(f"template field {name!r} has a format spec; not translatable")
            out.append("{{" + name + "}}")
    return "".join(out)


def write_task_yamls(folder: Path, data: Path, max_new_tokens: int, fix_max_length: bool) -> dict[str, Path]:
    """Write the two custom lm-eval tasks over the real JSONL files; returns kind -> YAML path."""
    import yaml

    from retain.tasks.families import SENTIMENT_CHOICES, SENTIMENT_TEMPLATE, SUMMARIZATION_TEMPLATE

    cache_dir = str(folder / "hf-datasets")
    common = {"dataset_path": "json", "test_split": "test", "num_fewshot": 0, "metadata": {"version": 1.0}}
    choice = {
        "task": TASK_NAMES["choice"], **common,
        "dataset_kwargs": {"data_files": {"test": str(data / "sentiment" / "test.jsonl")}, "cache_dir": cache_dir},
        "output_type": "multiple_choice",
        "doc_to_text": jinja_template(SENTIMENT_TEMPLATE),
        "doc_to_choice": list(SENTIMENT_CHOICES),
        "doc_to_target": "label",  # "negative" / "positive": lm-eval takes its index in doc_to_choice
        # retain scores the bare option after the prompt (seq2seq: the decoder reads only the option);
        # lm-eval's default delimiter " " would make the continuation " negative".
        "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    gen_kwargs: dict[str, Any] = {"until": [], "do_sample": False, "max_gen_toks": max_new_tokens}
    if fix_max_length:
        # lm-eval passes max_length=context_len+max_gen_toks to model.generate; for a seq2seq model that
        # bounds the *decoder* length, so rows without EOS would run past max_gen_toks. max_length in
        # generation_kwargs overrides it: decoder start token + max_new_tokens.
        gen_kwargs["max_length"] = 1 + max_new_tokens
    generate = {
        "task": TASK_NAMES["generate"], **common,
        "dataset_kwargs": {"data_files": {"test": str(data / "summarization" / "test.jsonl")},
                           "cache_dir": cache_dir},
        "output_type": "generate_until",
        "doc_to_text": jinja_template(SUMMARIZATION_TEMPLATE),
        "doc_to_target": "summary",
        "generation_kwargs": gen_kwargs,
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    }
    paths = {}
    for kind, config in (("choice", choice), ("generate", generate)):
        path = folder / f"{config['task']}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        paths[kind] = path
    return paths


# --- the contenders ---------------------------------------------------------------------------------

class ScoringTimer:
    """Wraps an HFLM instance's request methods to time the scoring inside `simple_evaluate`.

    `around`, when set, is called as `around(thunk)` in place of `thunk()` (used to profile only the
    scoring part of a `simple_evaluate`).
    """

    def __init__(self, hflm):
        self.seconds = 0.0
        self.around: Callable[[Callable[[], Any]], Any] | None = None
        for name in ("loglikelihood", "generate_until"):
            setattr(hflm, name, self._timed(getattr(hflm, name)))

    def _timed(self, method):
        def call(requests, disable_tqdm: bool = False):
            def thunk():
                return method(requests, disable_tqdm=True)

            start = time.perf_counter()
            try:
                return self.around(thunk) if self.around else thunk()
            finally:
                self.seconds += time.perf_counter() - start
        return call


class WorkCounter:
    """Counts what an encoder-decoder model computes: calls and token rows of its encoder and decoder.

    Forward hooks on the two stacks (negligible cost) record, per call, batch x length of the input:
    for the encoder the padded tokens (and the real ones, from the attention mask); for the decoder
    the rows x positions run (one position per step when generating with the KV cache); and the
    wall-clock time spent inside each stack.
    """

    def __init__(self, model):
        self.reset()
        self._started: dict[str, float] = {}
        for part, stack, count in (("encoder", model.get_encoder(), self._encoder),
                                   ("decoder", model.get_decoder(), self._decoder)):
            stack.register_forward_pre_hook(count, with_kwargs=True)
            stack.register_forward_pre_hook(self._start(part))
            stack.register_forward_hook(self._stop(part))

    def reset(self) -> None:
        self.counts = {"encoder_calls": 0, "encoder_tokens_padded": 0, "encoder_tokens_real": 0,
                       "decoder_calls": 0, "decoder_row_positions": 0}
        self.seconds = {"encoder": 0.0, "decoder": 0.0}

    def snapshot(self) -> dict:
        # Time in the decoder stack excludes the LM head and log-softmax (outside the stack).
        return {**self.counts, **{f"{k}_stack_s": round(v, 4) for k, v in self.seconds.items()}}

    def _start(self, part):
        def hook(module, args):
            self._started[part] = time.perf_counter()
        return hook

    def _stop(self, part):
        def hook(module, args, output):
            self.seconds[part] += time.perf_counter() - self._started.pop(part, time.perf_counter())
        return hook

    @staticmethod
    def _shape(args, kwargs):
        x = kwargs.get("input_ids", args[0] if args else None)
        if x is None:
            x = kwargs.get("inputs_embeds")
        return tuple(x.shape[:2]) if x is not None else (0, 0)

    def _encoder(self, module, args, kwargs):
        b, n = self._shape(args, kwargs)
        mask = kwargs.get("attention_mask")
        self.counts["encoder_calls"] += 1
        self.counts["encoder_tokens_padded"] += b * n
        self.counts["encoder_tokens_real"] += int(mask.sum()) if mask is not None else b * n

    def _decoder(self, module, args, kwargs):
        b, n = self._shape(args, kwargs)
        self.counts["decoder_calls"] += 1
        self.counts["decoder_row_positions"] += b * n


def retain_choice(lm, examples, batch_size: int) -> dict:
    from retain.evaluation import engine

    start = time.perf_counter()
    requests = [(ex.prompt, choice) for ex in examples for choice in ex.choices]
    values = iter(engine.loglikelihood(lm, requests, batch_size=batch_size))
    logprobs = [[next(values) for _ in ex.choices] for ex in examples]
    predictions = [ex.choices[max(range(len(lp)), key=lp.__getitem__)] for ex, lp in zip(examples, logprobs)]
    return {"scoring_s": time.perf_counter() - start, "predictions": predictions, "logprobs": logprobs}


def retain_generate(lm, examples, max_new_tokens: int, batch_size: int) -> dict:
    from retain.evaluation import engine

    start = time.perf_counter()
    predictions = engine.generate(lm, [ex.prompt for ex in examples], max_new_tokens, batch_size=batch_size)
    return {"scoring_s": time.perf_counter() - start, "predictions": predictions}


def lmeval_run(hflm, timer: ScoringTimer, task_manager, kind: str, limit: int) -> dict:
    """One `simple_evaluate` of one task; scoring time, total time, per-example outputs."""
    import lm_eval

    timer.seconds = 0.0
    start = time.perf_counter()
    out = lm_eval.simple_evaluate(model=hflm, tasks=[TASK_NAMES[kind]], task_manager=task_manager, limit=limit,
                                  log_samples=True, bootstrap_iters=0, use_cache=None, cache_requests=False)
    total = time.perf_counter() - start
    name = TASK_NAMES[kind]
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    res = {"scoring_s": timer.seconds, "simple_evaluate_s": total, "metrics": out["results"][name],
           "contexts": [s["arguments"][0][0] for s in samples]}
    if kind == "choice":
        res["continuations"] = [[a[1] for a in s["arguments"]] for s in samples]
        res["logprobs"] = [[float(r[0][0]) for r in s["resps"]] for s in samples]
        res["acc"] = [float(s["acc"]) for s in samples]
    else:
        res["predictions"] = [s["filtered_resps"][0] for s in samples]
        res["raw_predictions"] = [s["resps"][0][0] for s in samples]
    return res


# --- agreement --------------------------------------------------------------------------------------

def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def choice_agreement(task, examples, retain_out: dict, peer: dict) -> dict:
    n = len(peer["logprobs"])
    exs = examples[:n]
    r_lp = retain_out["logprobs"][:n]
    r_pred = retain_out["predictions"][:n]
    p_pred = [ex.choices[_argmax(lp)] for ex, lp in zip(exs, peer["logprobs"])]
    refs = [list(ex.references) for ex in exs]
    acc_retain = _accuracy(task, r_pred, refs)
    acc_peer_by_retain = _accuracy(task, p_pred, refs)
    acc_peer = round(float(statistics.fmean(peer["acc"])), 6)
    mismatches = [i for i in range(n) if r_pred[i] != p_pred[i]]
    diffs = [abs(a - b) for x, y in zip(r_lp, peer["logprobs"]) for a, b in zip(x, y)]
    return {
        "n": n,
        "prompts_identical": all(c == ex.prompt for c, ex in zip(peer["contexts"], exs)),
        "continuations_identical": all(list(c) == list(ex.choices) for c, ex in zip(peer["continuations"], exs)),
        "accuracy_retain": acc_retain, "accuracy_lmeval": acc_peer,
        "accuracy_lmeval_rescored_by_retain": acc_peer_by_retain,
        "correct_retain": sum(p == ex.target for p, ex in zip(r_pred, exs)),
        "correct_lmeval": int(sum(peer["acc"])),
        "identical_accuracy": acc_retain == acc_peer,
        "chosen_option_mismatches": len(mismatches),
        "first_mismatch": None if not mismatches else {
            "id": exs[mismatches[0]].id, "retain_logprobs": r_lp[mismatches[0]],
            "lmeval_logprobs": peer["logprobs"][mismatches[0]]},
        "max_abs_logprob_diff": float(f"{max(diffs):.3g}") if diffs else None,
    }


def _accuracy(task, predictions, refs) -> float:
    from retain.evaluation.metrics import score

    scores = score(task.metric, predictions, refs)
    return round(scores.value(scores.primary), 6)


def _primary(task, predictions, examples) -> tuple[str, float]:
    from retain.evaluation.metrics import score

    scores = score(task.metric, predictions, [list(ex.references) for ex in examples])
    return scores.primary, round(scores.value(scores.primary), 6)


def generate_agreement(task, examples, retain_out: dict, peer: dict, lm) -> dict:
    n = len(peer["predictions"])
    exs = examples[:n]
    r_pred = retain_out["predictions"][:n]
    p_pred = peer["predictions"]
    stripped = [p.strip() for p in p_pred]
    differ = [i for i in range(n) if r_pred[i] != stripped[i]]
    metric, value_r = _primary(task, r_pred, exs)
    _, value_p = _primary(task, stripped, exs)
    res = {
        "n": n,
        "prompts_identical": all(c == ex.prompt for c, ex in zip(peer["contexts"], exs)),
        "identical_predictions": n - len(differ),
        "identical_predictions_before_strip": sum(r_pred[i] == p_pred[i] for i in range(n)),
        "metric": metric, "retain": value_r, "lmeval_rescored_by_retain": value_p,
        "identical_score": value_r == value_p,
        "lmeval_exact_match": peer["metrics"].get("exact_match,none"),
        "first_difference": None,
    }
    if differ:
        i = differ[0]
        tok = lm.tokenizer
        r_ids = tok(r_pred[i], add_special_tokens=False)["input_ids"]
        p_ids = tok(stripped[i], add_special_tokens=False)["input_ids"]
        prompt_len = len(tok(exs[i].prompt)["input_ids"])
        common_prefix = next((k for k, (a, b) in enumerate(zip(r_ids, p_ids)) if a != b), min(len(r_ids), len(p_ids)))
        res["first_difference"] = {
            "id": exs[i].id, "prompt_tokens": prompt_len, "retain": _clip(r_pred[i]), "lmeval": _clip(p_pred[i]),
            "retain_tokens": len(r_ids), "lmeval_tokens": len(p_ids), "same_first_tokens": common_prefix,
            "reason": _difference_reason(r_ids, p_ids, common_prefix),
        }
    return res


def _clip(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[:n] + f"... [{len(text)} chars]"


def _difference_reason(r_ids, p_ids, common_prefix: int) -> str:
    if common_prefix == min(len(r_ids), len(p_ids)):
        longer = "lm-eval" if len(p_ids) > len(r_ids) else "retain"
        return (f"one output is a prefix of the other ({longer} longer): a length bound or stop sequence "
                "differs (see lmeval_max_length in settings)")
    return ("the outputs diverge after a shared prefix: a near-tie between two tokens decided differently by "
            "float rounding (different padding / batch composition), or a truncated context")


# --- profiling --------------------------------------------------------------------------------------

def profile(run_with: Callable[[Callable], Any], top: int = 12) -> dict:
    """Profile the scoring part of one run, twice: cProfile (Python functions) and torch.profiler (ops).

    `run_with(around)` must do one run calling `around(thunk)` for the part to profile.
    """
    import torch

    prof = cProfile.Profile()
    walls = {"cprofile": 0.0, "torch": 0.0}

    def with_cprofile(thunk):
        start = time.perf_counter()
        prof.enable()
        try:
            return thunk()
        finally:
            prof.disable()
            walls["cprofile"] += time.perf_counter() - start

    run_with(with_cprofile)
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if file != "~" else "builtin"
        rows.append({"function": f"{where}:{func}", "calls": ncalls,
                     "own_s": round(tottime, 4), "cumulative_s": round(cumtime, 4)})
    events = []

    def with_torch(thunk):
        start = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tprof:
            out = thunk()
        walls["torch"] += time.perf_counter() - start
        events.extend(tprof.key_averages())
        return out

    run_with(with_torch)
    ops: dict[str, list] = {}
    for e in events:
        agg = ops.setdefault(e.key, [0, 0.0])
        agg[0] += e.count
        agg[1] += e.self_cpu_time_total / 1e6
    total_ops = sum(v[1] for v in ops.values())
    return {
        "scope": "the scoring call only (retain: engine call; lm-eval: HFLM.loglikelihood / generate_until)",
        "wall_s_under_cprofile": round(walls["cprofile"], 3),
        "python_by_own_time": sorted(rows, key=lambda r: -r["own_s"])[:top],
        "python_by_cumulative_time": sorted(rows, key=lambda r: -r["cumulative_s"])[:top],
        "wall_s_under_torch_profiler": round(walls["torch"], 3),
        "torch_ops_self_cpu_s_total": round(total_ops, 3),
        "torch_ops_by_self_cpu": [{"op": k, "calls": v[0], "self_cpu_s": round(v[1], 4)}
                                  for k, v in sorted(ops.items(), key=lambda kv: -kv[1][1])[:top]],
    }


# --- the section -----------------------------------------------------------------------------------

def _ms_per_example(times: list[float], n: int) -> float:
    return round(1000 * statistics.median(times) / n, 3)


def _prompt_tokens(lm, examples) -> dict:
    lengths = [len(ids) for ids in lm.tokenizer([ex.prompt for ex in examples])["input_ids"]]
    return {"mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths)}


def _ratios(numer: list[float], denom: list[float], scale: float = 1.0) -> dict:
    per = [round(a * scale / b, 3) for a, b in zip(numer, denom)]
    return {"per_rep": per, "median": round(statistics.median(per), 3)}


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

    from retain.models.loading import load_model
    from retain.tasks import get_task

    kinds = [k.strip() for k in args.eval_tasks.split(",") if k.strip()]
    unknown = set(kinds) - set(GOALS)
    if unknown:
        raise ValueError(f"--eval-tasks: unknown {', '.join(sorted(unknown))} (choose from choice, generate)")
    if args.eval_limit <= 0 or args.eval_reps <= 0 or args.eval_batch_size <= 0:
        raise ValueError("--eval-limit, --eval-reps and --eval-batch-size must be positive")
    default_limit = min(args.eval_default_limit, args.eval_limit)

    model_dir, model_source = resolve_model(args.eval_model, log)
    log(f"eval: model {model_dir} ({model_source}); torch threads {torch.get_num_threads()}")
    lm = load_model(str(model_dir), device="cpu", dtype="float32")
    if not lm.is_seq2seq:
        raise ValueError(f"{model_dir}: this section compares seq2seq (T5-style) models; got a decoder-only one")
    tasks = {"choice": get_task(f"sentiment:{args.eval_data / 'sentiment'}"),
             "generate": get_task(f"summarization:{args.eval_data / 'summarization'}")}
    examples = {k: tasks[k].examples("test", args.eval_limit) for k in kinds}
    max_new_tokens = tasks["generate"].max_new_tokens
    n_positions = getattr(lm.model.config, "n_positions", None)
    longest = max(max(len(ids) for ids in lm.tokenizer([ex.prompt for ex in exs])["input_ids"])
                  for exs in examples.values())
    # lm-eval left-truncates contexts to max_length (T5 configs say n_positions=512); retain never
    # truncates at evaluation, and T5's relative attention reads longer inputs. Raise lm-eval's limit
    # to the longest prompt so both read every token.
    lmeval_max_length = max(longest, n_positions or 0)

    doc: dict[str, Any] = {
        "section": "eval", "peer": "lm-evaluation-harness", "peer_version": lm_eval.__version__,
        "model": {"path": str(model_dir), "source": model_source, "parameters": lm.model.num_parameters(),
                  "n_positions": n_positions},
        "settings": {
            "device": "cpu", "dtype": "float32", "torch_threads": torch.get_num_threads(),
            "limit": args.eval_limit, "default_limit": default_limit if default_limit > 0 else None,
            "reps": args.eval_reps, "statistic": "median; speed-ups pair by pair (rep i / rep i), then median",
            "batch_size_retain": args.eval_batch_size, "batch_size_lmeval_same": args.eval_batch_size,
            "batch_size_lmeval_default": 1, "max_new_tokens": max_new_tokens,
            "lmeval_max_length": lmeval_max_length,
            "lmeval_generation_max_length": "1 + max_gen_toks (fix)" if args.eval_lmeval_max_length == "fix"
            else "lm-eval stock: context tokens + max_gen_toks",
            "warmup": f"each contender once on the first {WARMUP_EXAMPLES} examples",
            "timed": "retain: engine.loglikelihood / engine.generate incl. tokenising and decoding (no cache); "
                     "lm-eval: time inside HFLM.loglikelihood / generate_until during simple_evaluate (tokenising, "
                     "batching, model, decoding); simple_evaluate_s adds task building, dataset loading, "
                     "metrics, sample logging",
        },
        "goals": {k: GOALS[k] for k in kinds},
        "tasks": {},
        "notes": [
            f"lm-eval max_length set to {lmeval_max_length} (its default is the config's n_positions="
            f"{n_positions}) so that no context is left-truncated: retain does not truncate at evaluation; "
            "the same in both lm-eval runs",
            "lm-eval 'defaults' run: HFLM without batch_size (its default, 1); other settings as the equal-batch run",
            "choice task: target_delimiter '' so lm-eval scores the bare option as retain does (for T5's "
            "SentencePiece ' negative' and 'negative' encode alike anyway)",
            "generate task: until [] (lm-eval adds EOS '</s>'), do_sample false, max_gen_toks "
            f"{max_new_tokens}; lm-eval's output is compared after .strip() (retain strips its outputs)",
        ],
        "offline": _offline_flags(),
        "load_average_start": load_average(),
    }
    if not all(doc["offline"].values()):
        log(f"warning: HF offline mode not in effect everywhere {doc['offline']} (import bench/peers/lmeval.py before "
            "transformers / datasets, or set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1); only local files are read anyway")
    if args.eval_lmeval_max_length == "fix":
        doc["notes"].append(
            "lm-eval's HF backend calls model.generate(max_length=context_tokens + max_gen_toks); for an "
            "encoder-decoder model max_length bounds the decoder output, so outputs without EOS run up to "
            "context+64 tokens instead of 64. The task passes max_length=1+max_gen_toks in generation_kwargs "
            "(which lm-eval forwards) so both tools generate at most the same 64 tokens.")

    with tempfile.TemporaryDirectory(prefix="retain-lmeval-") as tmp:
        yamls = write_task_yamls(Path(tmp), args.eval_data, max_new_tokens, args.eval_lmeval_max_length == "fix")
        doc["settings"]["task_yaml"] = {k: p.read_text() for k, p in yamls.items()}
        task_manager = TaskManager(include_path=tmp, include_defaults=False)
        hf_args = {"pretrained": str(model_dir), "backend": "seq2seq", "device": "cpu", "dtype": "float32",
                   "max_length": lmeval_max_length}
        peers = {"same": HFLM(**hf_args, batch_size=args.eval_batch_size)}
        if default_limit > 0:
            peers["default"] = HFLM(**hf_args)  # lm-eval's default batch size
        timers = {name: ScoringTimer(h) for name, h in peers.items()}
        counters = {"retain": WorkCounter(lm.model),
                    **{f"lmeval-{name}": WorkCounter(h.model) for name, h in peers.items()}}
        for kind in kinds:
            doc["tasks"][kind] = _compare(kind, lm, tasks[kind], examples[kind], peers, timers, counters,
                                          task_manager, args, default_limit, max_new_tokens, log)
    doc["load_average_end"] = load_average()
    doc["summary"] = {kind: {"speedup_same_batch": t["speedup_same_batch"]["median"], "goal": GOALS[kind],
                             "goal_met": t["speedup_same_batch"]["goal_met"],
                             "speedup_vs_defaults_per_example": (t.get("speedup_vs_defaults") or {}).get("median"),
                             "agreement": t["agreement"]["summary"]}
                      for kind, t in doc["tasks"].items()}
    return doc


def _compare(kind, lm, task, examples, peers, timers, counters, task_manager, args, default_limit,
             max_new_tokens, log: Log) -> dict:
    n, bs = len(examples), args.eval_batch_size
    log(f"eval {kind}: {task.name}, {n} examples (lm-eval defaults run: {default_limit}), batch size {bs}, "
        f"{args.eval_reps} reps")

    def retain(exs=examples):
        if kind == "choice":
            return retain_choice(lm, exs, bs)
        return retain_generate(lm, exs, max_new_tokens, bs)

    def peer(name, limit):
        return lambda: lmeval_run(peers[name], timers[name], task_manager, kind, limit)

    contenders = {"retain": retain, "lmeval-same": peer("same", n)}
    warmups = {"retain": lambda: retain(examples[:WARMUP_EXAMPLES]),
               "lmeval-same": peer("same", min(WARMUP_EXAMPLES, n))}
    if "default" in peers:
        contenders["lmeval-default"] = peer("default", default_limit)
        warmups["lmeval-default"] = peer("default", min(WARMUP_EXAMPLES, default_limit))
    scoring: dict[str, list[float]] = {name: [] for name in contenders}
    work: dict[str, dict] = {}

    def recording(name, fn):
        def call():
            counters[name].reset()
            out = fn()
            work[name] = counters[name].snapshot()
            scoring[name].append(out["scoring_s"])
            return out
        return call

    load_before = load_average()
    timings = interleaved({name: recording(name, fn) for name, fn in contenders.items()}, reps=args.eval_reps,
                          warmups=warmups, log=log)
    for name in contenders:
        log(f"  {name:<14} scoring: " + ", ".join(f"{s:.2f}" for s in scoring[name]) + " s")
    r_out, same_out = timings["retain"].result, timings["lmeval-same"].result
    if kind == "choice":
        agree = choice_agreement(task, examples, r_out, same_out)
        summary_ok = agree["identical_accuracy"] and agree["chosen_option_mismatches"] == 0
    else:
        agree = generate_agreement(task, examples, r_out, same_out, lm)
        summary_ok = agree["identical_predictions"] == agree["n"]
    res: dict[str, Any] = {
        "task": task.name, "kind": kind, "n_examples": n, "prompt_tokens": _prompt_tokens(lm, examples),
        "load_average_before": load_before,
        "retain": {"median_s": round(statistics.median(scoring["retain"]), 4),
                   "times_s": [round(t, 4) for t in scoring["retain"]], "batch_size": bs,
                   "ms_per_example": _ms_per_example(scoring["retain"], n), "work": work["retain"]},
        "lmeval_same_batch": {"median_s": round(statistics.median(scoring["lmeval-same"]), 4),
                              "times_s": [round(t, 4) for t in scoring["lmeval-same"]], "batch_size": bs,
                              "ms_per_example": _ms_per_example(scoring["lmeval-same"], n),
                              "work": work["lmeval-same"],
                              "simple_evaluate_s": timings["lmeval-same"].to_json()},
    }
    if kind == "generate":
        lengths = [len(ids) for ids in lm.tokenizer(r_out["predictions"], add_special_tokens=False)["input_ids"]]
        res["output_tokens_retokenized"] = {"mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths),
                                "at_limit": sum(n_ >= max_new_tokens for n_ in lengths)}
    ratio = _ratios(scoring["lmeval-same"], scoring["retain"])
    res["speedup_same_batch"] = {**ratio, "goal": GOALS[kind], "goal_met": ratio["median"] >= GOALS[kind]}
    agreement = {"same_batch": agree}
    if "lmeval-default" in contenders:
        d_out = timings["lmeval-default"].result
        res["lmeval_default"] = {"n_examples": default_limit, "batch_size": 1,
                                 "median_s": round(statistics.median(scoring["lmeval-default"]), 4),
                                 "times_s": [round(t, 4) for t in scoring["lmeval-default"]],
                                 "ms_per_example": _ms_per_example(scoring["lmeval-default"], default_limit),
                                 "work": work["lmeval-default"],
                                 "simple_evaluate_s": timings["lmeval-default"].to_json()}
        # Per example when the defaults run reads fewer examples than retain did.
        res["speedup_vs_defaults"] = {**_ratios(scoring["lmeval-default"], scoring["retain"], n / default_limit),
                                      "basis": "per example" if default_limit != n else "same examples"}
        if kind == "choice":
            agreement["defaults"] = choice_agreement(task, examples, r_out, d_out)
            summary_ok = summary_ok and agreement["defaults"]["chosen_option_mismatches"] == 0
        else:
            agreement["defaults"] = generate_agreement(task, examples, r_out, d_out, lm)
            summary_ok = summary_ok and agreement["defaults"]["identical_predictions"] == agreement["defaults"]["n"]
    agreement["summary"] = "identical" if summary_ok else "differs (see first_mismatch / first_difference)"
    res["agreement"] = agreement
    log(f"  speedup at equal batch size: {ratio['median']}x (goal {GOALS[kind]}x); "
        f"defaults: {res.get('speedup_vs_defaults', {}).get('median')}x; agreement: {agreement['summary']}")

    if args.eval_profile == "on" or (args.eval_profile == "auto" and not res["speedup_same_batch"]["goal_met"]):
        sub = min(n, 64)
        log(f"  profiling one run of retain and lm-eval-same on {sub} examples ...")

        def peer_with(around):
            timers["same"].around = around
            try:
                peer("same", sub)()
            finally:
                timers["same"].around = None

        res["profile"] = {"n_examples": sub,
                          "retain": profile(lambda around: around(lambda: retain(examples[:sub]))),
                          "lmeval_same_batch": profile(peer_with)}
    return res


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
           "command": " ".join(["python", "bench/peers/lmeval.py", *sys.argv[1:]]),
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
