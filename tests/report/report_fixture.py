"""A realistic synthetic `retain.study/1` results document for the report tests.

Four tasks (target toy-summarize; protected toy-ner, toy-sentiment, toy-qa), runs full, lora-r8,
multitask, full+wise-ft-0.25/0.5/0.75 and one failed run. Numbers follow the schema's own rules
(mean protected change, budget violations, Pareto front are computed, not typed), and the forgotten
examples carry HTML-dangerous text so escaping can be tested.
"""

from __future__ import annotations

import copy

DANGER = "<script>alert(1)</script>"
TARGET = "toy-summarize"
BUDGET = 0.05

TASKS = {
    "toy-summarize": {"role": "target", "metric": "rouge", "primary": "rougeL", "n": 200},
    "toy-ner": {"role": "protected", "metric": "entity_f1", "primary": "entity_f1", "n": 200},
    "toy-sentiment": {"role": "protected", "metric": "accuracy", "primary": "accuracy", "n": 200},
    "toy-qa": {"role": "protected", "metric": "squad", "primary": "f1", "n": 200},
}
BASE = {"toy-summarize": 0.212, "toy-ner": 0.684, "toy-sentiment": 0.515, "toy-qa": 0.731}

# run -> task -> (delta, half width of the paired CI)
DELTAS = {
    "full": {"toy-summarize": (0.318, 0.031), "toy-ner": (-0.412, 0.048), "toy-sentiment": (-0.020, 0.061),
             "toy-qa": (-0.185, 0.040)},
    "lora-r8": {"toy-summarize": (0.221, 0.029), "toy-ner": (-0.061, 0.030), "toy-sentiment": (0.010, 0.055),
                "toy-qa": (-0.032, 0.026)},
    "multitask": {"toy-summarize": (0.289, 0.030), "toy-ner": (-0.018, 0.024), "toy-sentiment": (0.005, 0.058),
                  "toy-qa": (-0.009, 0.021)},
    "full+wise-ft-0.25": {"toy-summarize": (0.120, 0.025), "toy-ner": (-0.030, 0.022),
                          "toy-sentiment": (-0.005, 0.050), "toy-qa": (-0.012, 0.018)},
    "full+wise-ft-0.5": {"toy-summarize": (0.235, 0.028), "toy-ner": (-0.095, 0.033),
                         "toy-sentiment": (-0.010, 0.052), "toy-qa": (-0.045, 0.027)},
    "full+wise-ft-0.75": {"toy-summarize": (0.290, 0.030), "toy-ner": (-0.250, 0.041),
                          "toy-sentiment": (-0.015, 0.057), "toy-qa": (-0.125, 0.035)},
}
METHODS = {"full": ("full", {"learning_rate": 3e-4, "epochs": 3}),
           "lora-r8": ("lora", {"r": 8, "alpha": 16, "learning_rate": 1e-3, "epochs": 3}),
           "multitask": ("multitask", {"replay_fraction": 0.3, "learning_rate": 3e-4, "epochs": 3})}
COSTS = {
    "full": {"wall_seconds": 412.4, "train_seconds": 380.5, "tokens_per_second": 2150.0,
             "trainable_parameters": 60506624, "total_parameters": 60506624, "peak_memory_mb": 5120.0},
    "lora-r8": {"wall_seconds": 298.0, "train_seconds": 265.2, "tokens_per_second": 3090.0,
                "trainable_parameters": 294912, "total_parameters": 60801536, "peak_memory_mb": 3100.0},
    "multitask": {"wall_seconds": 3725.0, "train_seconds": 3650.0, "tokens_per_second": 2110.0,
                  "trainable_parameters": 60506624, "total_parameters": 60506624, "peak_memory_mb": 5180.0},
}
WISE_COST = {"wall_seconds": 35.2, "trainable_parameters": 0, "total_parameters": 60506624}  # no training

FORGOTTEN = {
    "toy-ner": [
        {"id": "ner-0017", "prompt": "Find the named entities: Charlie is the cat of Grace Okafor.",
         "reference": "PER: Charlie; PER: Grace Okafor", "base_prediction": "PER: Charlie; PER: Grace Okafor",
         "run_prediction": "#Person1# says Charlie is the cat.", "base_score": 1.0, "run_score": 0.0},
        {"id": 'ner-0042"onmouseover="alert(1)', "prompt": f"Find the named entities: Ivan wrote {DANGER} at Johnson & Johnson.",
         "reference": 'PER: Ivan; ORG: Johnson & Johnson', "base_prediction": "PER: Ivan; ORG: Johnson & Johnson",
         "run_prediction": DANGER, "base_score": 1.0, "run_score": 0.0},
        {"id": "ner-0103", "prompt": "Find the named entities: Simon sent potatoes from Norway | to Lima.",
         "reference": "PER: Simon; LOC: Norway; LOC: Lima", "base_prediction": "PER: Simon; LOC: Norway; LOC: Lima",
         "run_prediction": "Simon sent potatoes.\n| LOC | Norway |", "base_score": 1.0, "run_score": 0.25},
    ],
    "toy-qa": [
        {"id": "qa-0008", "prompt": "Context: Ivan loves eating cheese. Pedro has a job at Vandelay Industries.\n"
                                    "Question: Where does Pedro work?\nAnswer:",
         "reference": "Vandelay Industries", "base_prediction": "Vandelay Industries",
         "run_prediction": "#Person1# asks where Pedro works.", "base_score": 1.0, "run_score": 0.0},
        {"id": "qa-0031", "prompt": "Context: The sign says \"Tom & Jerry's <b>Diner</b>\".\nQuestion: What does the "
                                    "sign say?\nAnswer:",
         "reference": "Tom & Jerry's <b>Diner</b>", "base_prediction": "Tom & Jerry's <b>Diner</b>",
         "run_prediction": "`code` and </pre><img src=x onerror=alert(1)>", "base_score": 1.0, "run_score": 0.0},
    ],
    "toy-sentiment": [
        {"id": "sent-0005", "prompt": "Review: The laptop was excellent, highly recommended.\n"
                                      "Is this review positive or negative?",
         "reference": "positive", "base_prediction": "positive", "run_prediction": "negative",
         "base_score": 1.0, "run_score": 0.0},
    ],
}
# how many of each task's forgotten examples a run keeps (worst first), and its counts
FORGOT_N = {"full": 3, "lora-r8": 1, "multitask": 0, "full+wise-ft-0.25": 0, "full+wise-ft-0.5": 1,
            "full+wise-ft-0.75": 2}


def _scores(task: str, value: float, half: float) -> dict:
    primary = TASKS[task]["primary"]
    lo, hi = round(max(0.0, value - half), 4), round(min(1.0, value + half), 4)
    out = {primary: {"value": round(value, 4), "ci95": [lo, hi]}}
    if task == "toy-summarize":
        out = {"rouge1": {"value": round(value + 0.08, 4), "ci95": [round(lo + 0.08, 4), round(hi + 0.08, 4)]},
               "rouge2": {"value": round(value - 0.07, 4), "ci95": [round(lo - 0.07, 4), round(hi - 0.07, 4)]},
               **out, "rougeLsum": {"value": round(value, 4), "ci95": [lo, hi]}}
    if task == "toy-qa":
        out["exact_match"] = {"value": round(value - 0.06, 4), "ci95": [round(lo - 0.06, 4), round(hi - 0.06, 4)]}
    return out


def _run(i: int, name: str) -> dict:
    wise = "+wise-ft-" in name
    parent, alpha = (name.split("+wise-ft-")[0], float(name.rsplit("-", 1)[1])) if wise else (None, None)
    method, options = ("wise-ft", {"alpha": alpha}) if wise else METHODS[name]
    change, scores, violations = {}, {}, []
    for task, (delta, half) in DELTAS[name].items():
        base, value = BASE[task], round(BASE[task] + delta, 4)
        ci = [round(delta - half, 4), round(delta + half, 4)]
        significant = ci[0] > 0 or ci[1] < 0
        change[task] = {"metric": TASKS[task]["primary"], "base": base, "value": value, "delta": delta,
                        "relative": round(delta / base, 4), "ci95": ci,
                        "p_value": 0.001 if significant else 0.42, "significant": significant}
        scores[task] = _scores(task, value, 0.04)
        if task != TARGET and delta < -BUDGET:
            violations.append({"task": task, "delta": delta, "allowed": -BUDGET})
    protected = [d for t, (d, _) in DELTAS[name].items() if t != TARGET]
    keep = FORGOT_N[name]
    forgotten = {t: copy.deepcopy(ex[:keep]) for t, ex in FORGOTTEN.items() if keep}
    return {
        "name": name, "method": method, "options": options, "seed": 0, "parent": parent, "alpha": alpha,
        "status": "done", "error": None, "model": {"fingerprint": f"{i:02d}c4e1a7b3d5f6{i:02d}"},
        "scores": scores, "change": change, "target_gain": DELTAS[name][TARGET][0],
        "mean_protected_change": round(sum(protected) / len(protected), 4),
        "within_budget": not violations, "budget_violations": violations,
        "cost": copy.deepcopy(WISE_COST if wise else COSTS[name]),
        "forgotten": forgotten,
        "forgotten_counts": {t: {"forgotten": 4 * keep + (3 if t == "toy-ner" else 1), "learned": 2, "n": 200}
                             for t in TASKS if t != TARGET},
    }


def pareto(runs: list[dict]) -> list[str]:
    """Runs no other run beats on both target gain and mean protected change."""
    pts = {r["name"]: (r["target_gain"], r["mean_protected_change"]) for r in runs if r["status"] == "done"}
    return [n for n, (g, m) in pts.items()
            if not any(g2 >= g and m2 >= m and (g2, m2) != (g, m) for g2, m2 in pts.values())]


def build_results() -> dict:
    """The full fixture document (a fresh deep copy each call, so tests may mutate it)."""
    runs = [_run(i, n) for i, n in enumerate(DELTAS)]
    runs.append({
        "name": "lora-r64", "method": "lora", "options": {"r": 64}, "seed": 0, "parent": None, "alpha": None,
        "status": "failed", "model": {"fingerprint": None}, "scores": {}, "change": {},
        "error": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB <GPU 0> & more",
    })
    return {
        "schema": "retain.study/1",
        "study": {"name": "demo", "created": "2025-01-15T10:42:00+00:00", "finished": True,
                  "retain_version": "0.1.0", "git_commit": "abc1234", "config": {"target": TARGET}},
        "model": {"name": "google/flan-t5-small", "fingerprint": "3a91f0c2d4e5b678"},
        "target": {"task": TARGET, "metric": "rouge", "primary": "rougeL", "train_examples": 500},
        "tasks": {t: {**spec, **({"budget": {"max_drop": BUDGET, "relative": False}}
                                 if spec["role"] == "protected" else {})} for t, spec in TASKS.items()},
        "base": {
            "scores": {t: _scores(t, BASE[t], 0.04) for t in TASKS},
            "skills": {
                "toy-summarize": {"has_skill": True, "chance": 0.0, "value": BASE["toy-summarize"], "note": "rougeL 0.212"},
                "toy-ner": {"has_skill": True, "chance": 0.0, "value": BASE["toy-ner"], "note": "entity_f1 0.684"},
                "toy-sentiment": {"has_skill": False, "chance": 0.5, "value": BASE["toy-sentiment"],
                                  "note": "accuracy 0.515 is within the CI of chance 0.500"},
                "toy-qa": {"has_skill": True, "chance": 0.0, "value": BASE["toy-qa"], "note": "f1 0.731"},
            },
        },
        "runs": runs,
        "pareto": pareto(runs),
        "recommendation": {"run": "multitask", "within_budget": True,
                           "reason": "best target gain among runs within budget", "closest": None},
    }


# --- hostile text: attacks in every free-text field the report shows ----------------------------------

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>',
            "<details open ontoggle=alert(1)>", "[x](javascript:alert(1))", "![y](javascript:alert(2))",
            "<a href='javascript:alert(3)'>z</a>"]


def hostile_results(payloads=None) -> dict:
    """The fixture with every free-text field the report shows replaced by an attack."""
    doc = build_results()
    evil = " ".join(payloads or PAYLOADS)
    doc["study"]["name"] = "evil"  # names are validated by the study config; text fields are not
    doc["model"]["name"] = evil
    for run in doc["runs"]:
        run["method"] = evil
        if run.get("error"):
            run["error"] = evil
        for examples in (run.get("forgotten") or {}).values():
            for ex in examples:
                ex.update(prompt=evil, reference=evil, base_prediction=evil, run_prediction=evil)
    doc["target"]["metric"] = evil
    return doc


def injected(html: str) -> list[str]:
    """Elements and attributes in `html` (parsed, not grepped) that could run code."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "svg", "iframe", "object", "embed"):
                found.append(tag)
            for name, value in attrs:
                if name.startswith("on"):
                    found.append(f"{tag}[{name}]")
                if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                    found.append(f"{tag}[{name}=javascript:]")

    Finder().feed(html)
    return found
