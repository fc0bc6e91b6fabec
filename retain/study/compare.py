"""Compare a run with the base model on the same examples.

- `skill`: does the base have a protected skill at all? A protected task the base does no better
  than a constant answer is flagged, since forgetting there means nothing.
- `change`: the run's primary-metric delta against the base with a paired-bootstrap CI, and its
  `gain`: the delta signed so that positive is better (minus the delta for a lower-is-better metric
  such as a perplexity task's NLL), which the budget and the verdict read.
- `forgotten`: examples the base got right and the run gets wrong (and the count of the reverse); for
  a lower-is-better metric, documents whose NLL rose by at least `NLL_RISE` nats per token.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from retain.evaluation.bootstrap import confidence_interval, paired_bootstrap
from retain.evaluation.metrics import computed_from_text, higher_is_better, score
from retain.evaluation.runner import TaskResult

RIGHT = 0.5  # per-example primary score at or above which an answer counts as right
NLL_RISE = 0.5  # nats per token (perplexity x 1.65): a lower-is-better document counts as forgotten


def _better_up(result: TaskResult) -> bool:
    return higher_is_better(result.scores.metric, result.scores.primary)


def _chance(base: TaskResult) -> tuple[float | None, str, str]:
    """The chance baseline, its name and how it answers; None: the metric has none (a perplexity)."""
    if computed_from_text(base.task.metric):
        refs = [list(ex.references) for ex in base.examples]
        constant = Counter(ex.target for ex in base.examples).most_common(1)[0][0]
        return score(base.task.metric, [constant] * len(refs), refs).value(base.scores.primary), \
            "constant-answer baseline", f"answering {constant!r} every time"
    if not _better_up(base):
        return None, "", ""
    if all(ex.choices for ex in base.examples):  # lm-eval multiple choice: a uniform guess
        return float(np.mean([1 / len(ex.choices) for ex in base.examples])), "uniform-guess baseline", \
            "picking an option at random"
    return 0.0, "zero baseline", "scoring nothing"


def skill(base: TaskResult, n_boot: int, seed: int) -> dict:
    """Whether the base beats a constant-answer baseline on this task.

    The baseline ("chance") answers every example with the most common reference, which is the
    majority class for choice tasks and the most frequent answer (often `none`) otherwise. The base
    has the skill when the lower end of its 95% CI is above that baseline.
    """
    primary = base.scores.primary
    chance, baseline, constant = _chance(base)
    value = base.scores.value(primary)
    if chance is None:
        return {"has_skill": True, "chance": None, "value": float(value),
                "note": f"{primary} {value:.3f}: a lower-is-better score has no chance baseline"}
    low, _ = confidence_interval(base.scores, primary, n_boot=n_boot, seed=seed)
    has = bool(low > chance)
    note = (f"{primary} {value:.3f} (95% CI from {low:.3f}) is above the {baseline} {chance:.3f}"
            if has else
            f"{primary} {value:.3f} is not clearly above the {baseline} {chance:.3f} "
            f"({constant}): the base lacks this skill, so forgetting here means nothing")
    return {"has_skill": has, "chance": float(chance), "value": float(value), "note": note}


def change(base: TaskResult, run: TaskResult, n_boot: int, seed: int) -> dict:
    """Primary-metric change of `run` against `base`, paired on example ids."""
    primary = base.scores.primary
    test = paired_bootstrap(base.scores, run.scores, primary, n_boot=n_boot, seed=seed)
    b, r = base.scores.value(primary), run.scores.value(primary)
    up = _better_up(base)
    return {"metric": primary, "base": float(b), "value": float(r), "delta": float(test["delta"]),
            "higher_is_better": up, "gain": float(test["delta"] if up else -test["delta"]),
            "relative": float(test["delta"] / b) if b else None, "ci95": [float(x) for x in test["ci95"]],
            "p_value": float(test["p_value"]), "significant": bool(test["significant"])}


def forgotten(base: TaskResult, run: TaskResult, keep: int) -> tuple[list[dict], dict]:
    """Examples the base got right and the run gets wrong, worst first; and the counts.

    An example is forgotten when the base's per-example primary score is at least 0.5 and the run's is
    lower by at least 0.5; learned the other way round. Lower-is-better: see `NLL_RISE`.
    """
    primary = base.scores.primary
    b = np.asarray(base.scores.per_example[primary], dtype=float)
    by_id = {i: k for k, i in enumerate(run.scores.ids)}
    r = np.asarray([run.scores.per_example[primary][by_id[i]] for i in base.scores.ids], dtype=float)
    drop = b - r
    if _better_up(base):
        lost = np.where((b >= RIGHT) & (drop >= RIGHT))[0]
        gained = np.where((r >= RIGHT) & (-drop >= RIGHT))[0]
    else:  # lower is better: the NLL rose (forgotten) or fell (learned) by NLL_RISE or more
        drop = -drop
        lost, gained = np.where(drop >= NLL_RISE)[0], np.where(-drop >= NLL_RISE)[0]
    order = sorted(lost, key=lambda k: (-drop[k], k))[:keep]
    items = []
    for k in order:
        ex = base.examples[k]
        items.append({"id": ex.id, "prompt": ex.prompt, "reference": ex.target,
                      "base_prediction": base.predictions[k], "run_prediction": run.predictions[by_id[ex.id]],
                      "base_score": float(b[k]), "run_score": float(r[k])})
    return items, {"forgotten": int(len(lost)), "learned": int(len(gained)), "n": int(len(b))}
