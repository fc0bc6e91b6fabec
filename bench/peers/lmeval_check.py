"""lm-eval comparison, the checks: do both tools agree example by example, and where does the time go.

- `choice_agreement`: prompts and options identical, the chosen option per example, accuracy by each
  tool's own metric, log-likelihoods and their margins (each option's minus the first option's);
- `generate_agreement`: identical greedy predictions, retain's metric on both, and the first
  difference with its likely reason;
- `profile`: one scoring call under cProfile and torch.profiler.

Used by `bench/peers/lmeval.py`.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from pathlib import Path
from typing import Any, Callable


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def choice_agreement(task, examples, prompts: list[str], delimiter: str, retain_out: dict, peer: dict) -> dict:
    """retain against one lm-eval run on a choice task (`prompts`: the texts retain renders, `delimiter`:
    what goes between a prompt and an option)."""
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
    # Margins (option minus first option) cancel what both options share, e.g. a context token that one
    # tool scores as part of every continuation (lm-eval moves a context's trailing whitespace there).
    margins = [abs((a - x[0]) - (b - y[0])) for x, y in zip(r_lp, peer["logprobs"]) for a, b in zip(x, y)]
    return {
        "n": n,
        "prompts_identical": all(c == p for c, p in zip(peer["contexts"], prompts)),
        "continuations_identical": all(list(c) == [delimiter + o for o in ex.choices]
                                       for c, ex in zip(peer["continuations"], exs)),
        "accuracy_retain": acc_retain, "accuracy_lmeval": acc_peer,
        "accuracy_lmeval_rescored_by_retain": acc_peer_by_retain,
        "correct_retain": sum(p == ex.target for p, ex in zip(r_pred, exs)),
        "correct_lmeval": int(sum(peer["acc"])),
        "identical_accuracy": acc_retain == acc_peer,
        "chosen_option_mismatches": len(mismatches),
        # lm-eval under autocast computes its LM head in bf16: near options can come out exactly equal, and
        # it then picks the first; retain's head runs in fp32 (retain.models.heads.Fp32Head).
        "mismatches_lmeval_exact_ties": sum(len(set(peer["logprobs"][i])) < len(peer["logprobs"][i])
                                            for i in mismatches),
        "first_mismatch": None if not mismatches else {
            "id": exs[mismatches[0]].id, "retain_logprobs": r_lp[mismatches[0]],
            "lmeval_logprobs": peer["logprobs"][mismatches[0]],
            "reason": _mismatch_reason(peer["logprobs"][mismatches[0]])},
        "max_abs_logprob_diff": float(f"{max(diffs):.3g}") if diffs else None,
        "max_abs_margin_diff": float(f"{max(margins):.3g}") if margins else None,
    }


def _mismatch_reason(peer_logprobs: list[float]) -> str:
    if len(set(peer_logprobs)) < len(peer_logprobs):
        return ("lm-eval's options tie exactly (its LM head runs in bf16 under autocast, which quantises the "
                "logits; it then picks the first option); retain's head runs in fp32 and separates them")
    return ("the two options' log-likelihoods are within float rounding of each other (different batch "
            "composition and padding, bf16 matmuls)")


def _accuracy(task, predictions, refs) -> float:
    from retain.evaluation.metrics import score

    scores = score(task.metric, predictions, refs)
    return round(scores.value(scores.primary), 6)


def _primary(task, predictions, examples) -> tuple[str, float]:
    from retain.evaluation.metrics import score

    scores = score(task.metric, predictions, [list(ex.references) for ex in examples])
    return scores.primary, round(scores.value(scores.primary), 6)


def generate_agreement(task, examples, prompts: list[str], retain_out: dict, peer: dict, lm) -> dict:
    """retain against one lm-eval run on a generation task (`prompts`: the texts retain renders)."""
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
        "prompts_identical": all(c == p for c, p in zip(peer["contexts"], prompts)),
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
        prompt_len = len(tok(prompts[i])["input_ids"])
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
            "float rounding (different padding / batch composition, bf16 matmuls), or a truncated context")


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
