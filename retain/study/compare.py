"""Compare a run with the base model on the same examples.

- `skill`: does the base have a protected skill at all? A protected task the base does no better
  than a constant answer is flagged, since forgetting there means nothing.
- `change`: the run's primary-metric delta against the base with a paired-bootstrap CI.
- `forgotten`: examples the base got right and the run gets wrong (and the count of the reverse).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from retain.evaluation.bootstrap import confidence_interval, paired_bootstrap
from retain.evaluation.metrics import score
from retain.evaluation.runner import TaskResult

RIGHT = 0.5  # per-example primary score at or above which an answer counts as right


def skill(base: TaskResult, n_boot: int, seed: int) -> dict:
    """Whether the base beats a constant-answer baseline on this task.

    The baseline ("chance") answers every example with the most common reference, which is the
    majority class for choice tasks and the most frequent answer (often `none`) otherwise. The base
    has the skill when the lower end of its 95% CI is above that baseline.
    """
    primary = base.scores.primary
    refs = [list(ex.references) for ex in base.examples]
    constant = Counter(ex.target for ex in base.examples).most_common(1)[0][0]
    chance = score(base.task.metric, [constant] * len(refs), refs).value(primary)
    value = base.scores.value(primary)
    low, _ = confidence_interval(base.scores, primary, n_boot=n_boot, seed=seed)
    has = bool(low > chance)
    note = (f"{primary} {value:.3f} (95% CI from {low:.3f}) is above the constant-answer baseline {chance:.3f}"
            if has else
            f"{primary} {value:.3f} is not clearly above the constant-answer baseline {chance:.3f} "
            f"(answering {constant!r} every time): the base lacks this skill, so forgetting here means nothing")
    return {"has_skill": has, "chance": float(chance), "value": float(value), "note": note}


def change(base: TaskResult, run: TaskResult, n_boot: int, seed: int) -> dict:
    """Primary-metric change of `run` against `base`, paired on example ids."""
    primary = base.scores.primary
    test = paired_bootstrap(base.scores, run.scores, primary, n_boot=n_boot, seed=seed)
    b, r = base.scores.value(primary), run.scores.value(primary)
    return {"metric": primary, "base": float(b), "value": float(r), "delta": float(test["delta"]),
            "relative": float(test["delta"] / b) if b else None, "ci95": [float(x) for x in test["ci95"]],
            "p_value": float(test["p_value"]), "significant": bool(test["significant"])}


def forgotten(base: TaskResult, run: TaskResult, keep: int) -> tuple[list[dict], dict]:
    """Examples the base got right and the run gets wrong, worst first; and the counts.

    An example is forgotten when the base's per-example primary score is at least 0.5 and the run's is
    lower by at least 0.5; learned the other way round.
    """
    primary = base.scores.primary
    b = np.asarray(base.scores.per_example[primary], dtype=float)
    by_id = {i: k for k, i in enumerate(run.scores.ids)}
    r = np.asarray([run.scores.per_example[primary][by_id[i]] for i in base.scores.ids], dtype=float)
    drop = b - r
    lost = np.where((b >= RIGHT) & (drop >= RIGHT))[0]
    gained = np.where((r >= RIGHT) & (-drop >= RIGHT))[0]
    order = sorted(lost, key=lambda k: (-drop[k], k))[:keep]
    items = []
    for k in order:
        ex = base.examples[k]
        items.append({"id": ex.id, "prompt": ex.prompt, "reference": ex.target,
                      "base_prediction": base.predictions[k], "run_prediction": run.predictions[by_id[ex.id]],
                      "base_score": float(b[k]), "run_score": float(r[k])})
    return items, {"forgotten": int(len(lost)), "learned": int(len(gained)), "n": int(len(b))}
