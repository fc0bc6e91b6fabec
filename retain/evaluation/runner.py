"""Evaluate a model on tasks: requests -> engine -> cache -> per-example metrics -> results.

`evaluate_task` returns a `TaskResult` holding the predictions and the per-example `Scores`, from
which the JSON summary (values with 95% bootstrap CIs) and paired comparisons are made.
`evaluate` runs several tasks and returns the document `retain eval` writes (schema in
docs/results-schema.md).

Few-shot evaluation (`EvalSettings.fewshot`, or a task's own `fewshot`) gives each example solved
examples drawn from another split (`retain.tasks.fewshot`); the draw is part of the cache key. With
zero shots prompts and cache keys are exactly those of zero-shot evaluation before few-shot existed.

Two kinds are measured rather than scored from text: `perplexity` tasks (`retain.evaluation.rolling`)
and `lm-eval` tasks (`retain.evaluation.lmeval`, which draws its own shots). Their outputs carry
per-example statistics (``stats`` and ``primary``) instead of being re-scored from predictions; the
cache, bootstrap and paired comparisons treat them like every other task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from retain.errors import UserError
from retain.evaluation import engine
from retain.evaluation.bootstrap import summarize
from retain.evaluation.cache import EvalCache
from retain.evaluation.distributed import cached
from retain.evaluation.measured import scores_from_stats  # (importing it registers the measured families)
from retain.evaluation.metrics import Scores, computed_from_text, score
from retain.evaluation.settings import EvalSettings
from retain.models.loading import LoadedModel
from retain.tasks.base import Example, Task
from retain.tasks.fewshot import shots_hash

FEWSHOT_FORMAT = "1"  # bump when the few-shot prompt layout changes (retain.models.formatting)


def fewshot_k(task: Task, settings: EvalSettings) -> int:
    """How many shots `task` gets under `settings`."""
    return task.fewshot if settings.fewshot is None else settings.fewshot


def eval_examples(task: Task, settings: EvalSettings) -> list[Example]:
    """The examples evaluated under `settings`, with their shots when few-shot.

    Raises:
        UserError: a missing split, or no split to draw shots from.
    """
    return task.fewshot_examples(settings.split, settings.limit, fewshot_k(task, settings), settings.fewshot_seed)


def fewshot_setting(task: Task, settings: EvalSettings) -> dict:
    """The few-shot setting of a task, as results record it: k, seed and the split shots come from."""
    k = fewshot_k(task, settings)
    if not k:
        return {"k": 0, "seed": None, "split": None}
    return {"k": k, "seed": settings.fewshot_seed, "split": task.fewshot_source(settings.split)}


def task_key(task: Task, settings: EvalSettings) -> dict:
    """What identifies a task's evaluated prompts in cache and run keys.

    Zero-shot: exactly `task.identity(split, limit)`, so zero-shot keys are those from before few-shot
    existed. Few-shot adds k, seed, source split and a hash of every example's shots.
    """
    identity = task.identity(settings.split, settings.limit)
    if fewshot_k(task, settings):
        identity["fewshot"] = {**fewshot_setting(task, settings), "format": FEWSHOT_FORMAT,
                               "shots": shots_hash(eval_examples(task, settings))}
    return identity


@dataclass
class TaskResult:
    """One model's outputs and scores on one task split."""

    task: Task
    examples: list[Example]
    predictions: list[str]
    scores: Scores
    choice_logprobs: list[list[float]] | None = None
    from_cache: bool = False
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    fewshot: dict = field(default_factory=lambda: {"k": 0, "seed": None, "split": None})
    truncated: int | None = 0  # prompts cut to fit the context; None: unknown (an older cache entry)

    def outputs(self) -> dict:
        """The raw model outputs, enough to rebuild this result with `result_from_outputs`."""
        out = {"ids": [ex.id for ex in self.examples], "predictions": self.predictions}
        if self.choice_logprobs is not None:
            out["choice_logprobs"] = self.choice_logprobs
        if self.truncated is not None:
            out["truncated"] = self.truncated
        if not computed_from_text(self.scores.metric):  # measured: the statistics are the outputs
            corpus = self.scores.corpus
            out["stats"] = {k: v.tolist() for k, v in self.scores.stats.items() if k not in corpus}
            out["primary"] = self.scores.primary
            if corpus:
                out["corpus"] = corpus
        return out

    def to_json(self) -> dict:
        examples = []
        for i, (ex, pred) in enumerate(zip(self.examples, self.predictions)):
            item = {"id": ex.id, "prompt": ex.prompt, "prediction": pred, "reference": ex.target,
                    "references": list(ex.references),
                    "scores": {k: float(v[i]) for k, v in self.scores.per_example.items()}}
            if self.choice_logprobs is not None:
                item["choices"] = list(ex.choices)
                item["choice_logprobs"] = self.choice_logprobs[i]
            if ex.shots:
                item["shots"] = [shot.id for shot in ex.shots]
            examples.append(item)
        return {"n": len(self.examples), "kind": self.task.kind, "metric": self.task.metric,
                "primary": self.scores.primary, "metrics": self.metrics, "fewshot": self.fewshot,
                "truncated": self.truncated, "from_cache": self.from_cache,
                "seconds": round(self.seconds, 3), "examples": examples}


def _settings_key(lm: LoadedModel, settings: EvalSettings, kind: str) -> dict:
    key = {"dtype": str(lm.dtype), "device": lm.device.type, "chat": settings.chat}
    precision = lm.precision.generation if kind == "generate" else lm.precision
    if precision.autocast is not None:  # absent without autocast: plain-dtype keys are those from before autocast
        key["autocast"] = str(precision.autocast)
    return key


def cache_key(lm: LoadedModel, task: Task, settings: EvalSettings) -> str:
    """The evaluation cache key of `task` under `settings` for `lm`.

    The precision in the key is the one the task's request kind ran in: a generation task under
    `auto` on a bf16 CPU ran in fp32 and shares its entry with `float32`.
    """
    return EvalCache.key(lm.fingerprint, task_key(task, settings), _settings_key(lm, settings, task.kind))


def _shots(examples: list[Example]) -> list[list[tuple[str, str]]] | None:
    """Each example's shots as (prompt, answer) pairs; a choice shot's answer is its gold choice text."""
    if not any(ex.shots for ex in examples):
        return None
    return [[(shot.prompt, shot.target) for shot in ex.shots] for ex in examples]


def _run_perplexity(lm: LoadedModel, examples: list[Example], settings: EvalSettings, progress) -> dict:
    from retain.evaluation.rolling import loglikelihood_rolling

    values = loglikelihood_rolling(lm, [ex.prompt for ex in examples], batch_size=settings.batch_size,
                                   progress=progress)
    return {"predictions": [f"{nll / max(n, 1):.4f} nats/token over {n} tokens" for nll, n in values],
            "stats": {"nll": [[nll, n] for nll, n in values], "perplexity": [[nll, n] for nll, n in values]},
            "primary": "nll"}


def _run_engine(lm: LoadedModel, task: Task, examples: list[Example], settings: EvalSettings,
                progress) -> dict:
    if task.kind == "perplexity":
        return _run_perplexity(lm, examples, settings, progress)
    if task.kind == "lm-eval":
        from retain.evaluation import lmeval

        return lmeval.run(lm, task, examples, settings, fewshot_k(task, settings), progress)
    shots = _shots(examples)
    truncated: list[int] = []
    if task.kind == "choice":
        requests, owners = [], []
        for k, ex in enumerate(examples):
            if not ex.choices:
                raise UserError(f"task {task.name}: example {ex.id} has no choices")
            for choice in ex.choices:
                requests.append((ex.prompt, choice))
                owners.append(k)
        values = engine.loglikelihood(lm, requests, batch_size=settings.batch_size, chat=settings.chat,
                                      progress=(lambda n: progress(n / max(len(ex.choices), 1)))
                                      if progress else None,
                                      shots=[shots[k] for k in owners] if shots else None, truncated=truncated)
        logprobs: list[list[float]] = [[] for _ in examples]
        for k, v in zip(owners, values):
            logprobs[k].append(v)
        preds = [ex.choices[max(range(len(lp)), key=lp.__getitem__)] for ex, lp in zip(examples, logprobs)]
        # An example counts once however many of its options were cut.
        return {"predictions": preds, "choice_logprobs": logprobs, "truncated": len({owners[i] for i in truncated})}
    return _generate_once(lm, task.max_new_tokens, examples, shots, settings, progress)


def _memo_keys(lm: LoadedModel, max_new_tokens: int, examples: list[Example], shots, settings: EvalSettings) -> list:
    return [(lm.precision.generation.name, settings.chat, max_new_tokens, ex.prompt, tuple(shots[i]) if shots else ())
            for i, ex in enumerate(examples)]


def _remember(lm: LoadedModel, max_new_tokens: int, examples: list[Example], shots, settings: EvalSettings,
              entry: dict) -> None:
    """Put cached greedy answers into `lm.generations` (their truncation flags are not stored per example)."""
    if entry.get("truncated"):
        return  # which examples were cut is not stored: leave these to be generated
    for key, pred in zip(_memo_keys(lm, max_new_tokens, examples, shots, settings), entry["predictions"]):
        lm.generations.setdefault(key, (pred, False))


def _generate_once(lm: LoadedModel, max_new_tokens: int, examples: list[Example], shots, settings: EvalSettings,
                   progress) -> dict:
    """Greedy answers for `examples`, generating only prompts these weights have not answered yet.

    Greedy decoding is a function of the weights, the precision, the formatted prompt and the length
    limit, so an answer is remembered on the `LoadedModel` (`lm.generations`) and reused by any task
    that asks the same: a chat-behaviour probe built from a task's prompts costs no generation.
    """
    memo = lm.generations
    keys = _memo_keys(lm, max_new_tokens, examples, shots, settings)
    todo = [i for i, key in enumerate(keys) if key not in memo]
    if progress and len(todo) < len(keys):
        progress(len(keys) - len(todo))
    if todo:
        cut: list[int] = []
        preds = engine.generate(lm, [examples[i].prompt for i in todo], max_new_tokens,
                                batch_size=settings.batch_size, chat=settings.chat, progress=progress,
                                shots=[shots[i] for i in todo] if shots else None, truncated=cut)
        cut_rows = {todo[j] for j in cut}
        for i, pred in zip(todo, preds):
            memo[keys[i]] = (pred, i in cut_rows)
    answers = [memo[key] for key in keys]
    return {"predictions": [pred for pred, _ in answers], "truncated": sum(was_cut for _, was_cut in answers)}


def evaluate_task(lm: LoadedModel, task: Task, settings: EvalSettings = EvalSettings(),
                  cache: EvalCache | None = None, progress: Callable[[float], None] | None = None) -> TaskResult:
    """Evaluate one task split, reusing cached outputs for the same model, data and settings."""
    start = time.perf_counter()
    examples = eval_examples(task, settings)
    key = cache_key(lm, task, settings)
    entry = cached(cache, key) if cache is not None else None  # the main process reads it for all
    from_cache = entry is not None and entry.get("ids") == [ex.id for ex in examples]
    if not from_cache:
        entry = _run_engine(lm, task, examples, settings, progress)
        entry["ids"] = [ex.id for ex in examples]
        if cache is not None:
            cache.put(key, entry)
    else:
        if task.kind == "generate":  # answers read from the cache count as answered (a probe reuses them)
            _remember(lm, task.max_new_tokens, examples, _shots(examples), settings, entry)
        if progress:
            progress(len(examples))
    result = result_from_outputs(task, examples, entry, settings)
    result.from_cache = from_cache
    result.seconds = time.perf_counter() - start
    return result


def result_from_outputs(task: Task, examples: list[Example], outputs: dict, settings: EvalSettings) -> TaskResult:
    """Score stored outputs (`{"predictions": [...], "choice_logprobs": [...]?, "truncated": N?}`).

    Metrics are cheap, so they are always recomputed from outputs (cached or saved in a study); measured
    kinds store per-example statistics (``stats``, ``primary``) instead.
    Outputs stored before truncation was counted have no `truncated`: it is reported as None.
    """
    ids = [ex.id for ex in examples]
    if "stats" in outputs:  # measured by the model (perplexity, lm-eval), not scored from text
        scores = scores_from_stats(task.metric, ids, outputs["stats"], outputs["primary"], outputs.get("corpus"))
    else:
        scores = score(task.metric, outputs["predictions"], [list(ex.references) for ex in examples], ids=ids)
    result = TaskResult(task=task, examples=examples, predictions=list(outputs["predictions"]), scores=scores,
                        choice_logprobs=outputs.get("choice_logprobs"), fewshot=fewshot_setting(task, settings),
                        truncated=outputs.get("truncated"))
    result.metrics = summarize(scores, n_boot=settings.n_boot, seed=settings.seed)
    return result


def evaluate(lm: LoadedModel, tasks: list[Task], settings: EvalSettings = EvalSettings(),
             cache: EvalCache | None = None, progress_factory=None) -> dict:
    """Evaluate `lm` on every task; returns the `retain eval` results document.

    Args:
        progress_factory: optional `factory(task, total) -> callable(advance)` for progress bars.
    """
    doc = {"model": lm.describe(), "settings": {"split": settings.split, "limit": settings.limit,
                                                "batch_size": settings.batch_size, "chat": settings.chat,
                                                "n_boot": settings.n_boot, "seed": settings.seed,
                                                "fewshot": settings.fewshot, "fewshot_seed": settings.fewshot_seed},
           "tasks": {}}
    for task in tasks:
        progress = progress_factory(task, len(eval_examples(task, settings))) if progress_factory else None
        doc["tasks"][task.name] = evaluate_task(lm, task, settings, cache, progress).to_json()
    return doc
