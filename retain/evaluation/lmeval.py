"""Run an `lm-eval:` task through lm-evaluation-harness's Python API on the model already in memory.

retain's `LoadedModel` (its weights, adapter, tokenizer) is wrapped in lm-eval's `HFLM`, so nothing is
loaded twice and a study's base and runs are evaluated without reloading. By default the prompts are
lm-eval's own (no chat template unless `chat` is `on`; its default few-shot seed), so the scores equal
those of an lm-eval run on the same model. lm-eval builds the prompts
(few-shot context, chat template), runs its requests and scores every document with the task's
filters and metrics; `log_samples` gives those per-document scores, which become retain's outputs:

- ``stats``: output -> one statistics row per example (`retain.evaluation.measured`: ``[value]`` for a
  mean metric, ``[ll, weight]`` for a weighted perplexity), so bootstrap intervals, paired comparisons
  and forgotten examples come from the same code as every other task;
- ``corpus``: for a corpus-level metric (BLEU, chrF, TER), lm-eval's per-document items, which its own
  aggregation turns into the value on all documents and on each bootstrap resample;
- ``predictions``: the chosen option (multiple choice, with ``choice_logprobs``) or the filtered answer.

lm-eval's own request cache is never used (`cache_requests=False`, no `use_cache`): its key ignores
the model, and retain's evaluation cache, keyed on the model fingerprint, holds these outputs.
A metric whose aggregation lm-eval cannot name (a custom function), or whose direction disagrees with
retain's, is left out with a warning; a task left with no metric is an error.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

from retain.errors import UserError
from retain.evaluation.measured import AGGREGATION, lm_eval_aggregation
from retain.evaluation.metrics import higher_is_better
from retain.evaluation.settings import EvalSettings
from retain.models.formatting import uses_chat_template
from retain.models.loading import LoadedModel
from retain.tasks.base import Example
from retain.tasks.lmeval import LmEvalTask, quiet, require_lm_eval

log = logging.getLogger(__name__)
FEWSHOT_SEED = 1234  # lm-eval's default few-shot seed; retain's --fewshot-seed S draws with 1234 + S


def harness_model(lm: LoadedModel, batch_size: int):
    """lm-eval's `HFLM` around `lm`'s model and tokenizer (no copy, no reload)."""
    require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    with quiet():
        model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size,
                     backend="seq2seq" if lm.is_seq2seq else "causal")
    # retain draws the progress bar: lm-eval's own request bars off (the evaluator calls these by name)
    for request_type in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        setattr(model, request_type, functools.partial(getattr(model, request_type), disable_tqdm=True))
    return model


def _outputs_of(leaf) -> list[tuple[str, str, str, str | None]]:
    """(output, metric, filter, corpus aggregation or None) of every metric retain can resample, in order."""
    aggregation, better = leaf.aggregation(), leaf.higher_is_better()
    out = []
    filters = [f.name for f in leaf._filters] or ["none"]
    for metric in leaf._metric_fn_list:
        fn = aggregation.get(metric)
        name = getattr(fn, "__name__", None)
        corpus = None
        if name != AGGREGATION.get(metric, "mean"):
            known = metric not in AGGREGATION and name not in ("mean", None) and _registered(name) is fn
            if not known:
                log.warning("lm-eval task %s: metric %s (aggregation %s) is left out: retain cannot resample it",
                            leaf.config.task, metric, name or fn)
                continue
            corpus = name
        if bool(better.get(metric, True)) != higher_is_better("lm-eval", metric):
            log.warning("lm-eval task %s: metric %s is left out: its direction (higher_is_better=%s) is not "
                        "the one retain knows for that name", leaf.config.task, metric, better.get(metric))
            continue
        out += [(metric if f == "none" else f"{metric},{f}", metric, f, corpus) for f in filters]
    return out


def _registered(name: str):
    try:
        return lm_eval_aggregation(name)
    except (KeyError, ValueError, AttributeError):
        return None


def _plain(value):
    """A per-document item as JSON holds it (tuples as lists, numpy scalars as numbers): cached and fresh
    outputs are then the same."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _stats_row(value) -> list[float]:
    if isinstance(value, (tuple, list)):
        return [float(v) for v in value]
    return [float(value)]


def _prediction(ex: Example, sample: dict, output_type: str) -> tuple[str, list[float] | None]:
    resps = sample["filtered_resps"]
    if output_type == "multiple_choice":
        logprobs = [float(r[0]) for r in resps]
        best = max(range(len(logprobs)), key=logprobs.__getitem__)
        return (ex.choices[best] if best < len(ex.choices) else str(best)), logprobs
    first = resps[0] if isinstance(resps, list) and resps else resps
    if isinstance(first, tuple):  # loglikelihood: (log-likelihood, greedy?)
        return f"loglikelihood {float(first[0]):.4f}{' (greedy)' if first[1] else ''}", None
    return (first if isinstance(first, str) else str(first)), None


def run(lm: LoadedModel, task: LmEvalTask, examples: list[Example], settings: EvalSettings, k: int,
        progress: Callable[[float], None] | None = None) -> dict:
    """Evaluate `examples` of `task` with lm-eval; returns retain's outputs (see the module docstring).

    Args:
        k: shots per prompt (lm-eval draws them, seeded by `FEWSHOT_SEED + settings.fewshot_seed`).
    """
    require_lm_eval()
    from lm_eval import evaluator

    task_dict, samples = task.selection(examples)
    outputs: list[tuple[str, str, str, str | None]] = []
    for leaf in task_dict["tasks"].values():
        leaf.set_config(key="num_fewshot", value=k)
        leaf.set_fewshot_seed(seed=FEWSHOT_SEED + settings.fewshot_seed)
        outputs += [o for o in _outputs_of(leaf) if o not in outputs]
    if not outputs:
        raise UserError(f"task {task.name}: none of its metrics is a per-example score retain can resample")
    # lm-eval's defaults, so scores match its own runs: no chat template unless asked (`chat: on`)
    chat = settings.chat == "on" and uses_chat_template(lm.tokenizer, lm.is_seq2seq, settings.chat)
    model = harness_model(lm, settings.batch_size)
    try:
        with quiet(), lm.autocast_context():
            result = evaluator.evaluate(lm=model, task_dict=task_dict, samples=samples, cache_requests=False,
                                        bootstrap_iters=0, log_samples=True, apply_chat_template=chat,
                                        fewshot_as_multiturn=chat)
    except UserError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AssertionError) as e:
        raise UserError(f"lm-eval could not evaluate {task.name}: {type(e).__name__}: {e}".splitlines()[0]) from None
    by_doc: dict[tuple[str, int, str], dict] = {}
    for leaf_name, logged in result["samples"].items():
        for sample in logged:
            by_doc[(leaf_name, int(sample["doc_id"]), sample.get("filter", "none"))] = sample
    stats = {name: [] for name, _, _, corpus in outputs if corpus is None}
    items = {name: [] for name, _, _, corpus in outputs if corpus is not None}
    predictions, choice_logprobs = [], []
    first_filter = outputs[0][2]
    for ex in examples:
        leaf, doc = ex.fields["task"], ex.fields["doc_id"]
        for name, metric, filt, corpus in outputs:
            sample = by_doc.get((leaf, doc, filt))
            if sample is None or metric not in sample:
                raise UserError(f"task {task.name}: lm-eval returned no {name} for document {ex.id}")
            if corpus is None:
                stats[name].append(_stats_row(sample[metric]))
            else:
                items[name].append(_plain(sample[metric]))
        pred, logprobs = _prediction(ex, by_doc[(leaf, doc, first_filter)], task.output_type)
        predictions.append(pred)
        choice_logprobs.append(logprobs)
    if progress:
        progress(len(examples))
    entry = {"predictions": predictions, "stats": stats, "primary": outputs[0][0]}
    if items:
        entry["corpus"] = {name: {"aggregation": corpus, "items": items[name]}
                           for name, _, _, corpus in outputs if corpus is not None}
    if task.output_type == "multiple_choice":
        entry["choice_logprobs"] = choice_logprobs
    return entry
