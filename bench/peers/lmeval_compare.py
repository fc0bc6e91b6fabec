"""One task of the lm-eval comparison (`bench.peers.lmeval`): the contenders timed in turns, their
agreement checked example by example, and a profile when the goal is missed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

from bench.common import interleaved, load_average
from bench.peers.lmeval_check import choice_agreement, generate_agreement, profile
from bench.peers.lmeval_contenders import lmeval_run, retain_choice, retain_generate

WARMUP_EXAMPLES = 4

Log = Callable[[str], None]


def _ms_per_example(times: list[float], n: int) -> float:
    return round(1000 * statistics.median(times) / n, 3)


def _prompt_tokens(lm, prompts: list[str]) -> dict:
    lengths = [len(ids) for ids in lm.tokenizer(prompts)["input_ids"]]
    return {"mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths)}


def _ratios(numer: list[float], denom: list[float], scale: float = 1.0) -> dict:
    per = [round(a * scale / b, 3) for a, b in zip(numer, denom)]
    return {"per_rep": per, "median": round(statistics.median(per), 3)}



@dataclass(frozen=True)
class Compared:
    """One task as both tools get it: its examples, the prompts retain renders for them, and the goal."""

    kind: str
    task: Any
    examples: list
    prompts: list[str]
    delimiter: str  # between a prompt and an option (choice)
    goal: float


def compare_task(c: Compared, lm, peers, timers, counters, task_manager, args, default_limit, max_new_tokens,
             log: Log) -> dict:
    """Time retain and lm-eval on one task, in turns, and check that they agree; the task's result entry."""
    kind, task, examples, goal = c.kind, c.task, c.examples, c.goal
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
        agree = choice_agreement(task, examples, c.prompts, c.delimiter, r_out, same_out)
        summary_ok = agree["identical_accuracy"] and agree["chosen_option_mismatches"] == 0
    else:
        agree = generate_agreement(task, examples, c.prompts, r_out, same_out, lm)
        summary_ok = agree["identical_predictions"] == agree["n"]
    res: dict[str, Any] = {
        "task": task.name, "kind": kind, "n_examples": n, "prompt_tokens": _prompt_tokens(lm, c.prompts),
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
    res["speedup_same_batch"] = {**ratio, "goal": goal, "goal_met": ratio["median"] >= goal}
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
            agreement["defaults"] = choice_agreement(task, examples, c.prompts, c.delimiter, r_out, d_out)
            summary_ok = summary_ok and agreement["defaults"]["chosen_option_mismatches"] == 0
        else:
            agreement["defaults"] = generate_agreement(task, examples, c.prompts, r_out, d_out, lm)
            summary_ok = summary_ok and agreement["defaults"]["identical_predictions"] == agreement["defaults"]["n"]
    agreement["summary"] = "identical" if summary_ok else "differs (see first_mismatch / first_difference)"
    res["agreement"] = agreement
    log(f"  speedup at equal batch size: {ratio['median']}x (goal {goal}x); "
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
