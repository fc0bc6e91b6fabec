"""`lm-eval:TASK` and `lm-eval:TASK@K`: an lm-evaluation-harness task (or group) as a retain task.

lm-evaluation-harness ("lm-eval", an optional extra: `pip install 'retain[lm-eval]'`) defines the
benchmarks people name when they ask what a fine-tune forgot (MMLU, HellaSwag, ARC, IFEval, ...).
Here such a task becomes a retain `Task` of kind `lm-eval`: its documents are the task's examples
(prompt: the document's zero-shot text; target and choices as lm-eval reads them), so ids, data
hashes, forgotten examples and paired comparisons work as for any task. The model is run by
`retain.evaluation.lmeval` through lm-eval's own Python API, which scores each document with the
task's own prompts, few-shot context, filters and metrics.

- `@K` sets the shots (else the task YAML's `num_fewshot`, else 0); lm-eval draws them itself.
- A group (`mmlu`) is flattened into its tasks; example ids are then `SUBTASK/DOC`.
- lm-eval evaluates one split (its `test_split`, else `validation_split`): retain calls it `test`.
- `include` folders (`--lm-eval-include DIR`, a study's `lm_eval_include:`) add local task YAMLs;
  they are searched before lm-eval's built-in tasks, which are indexed only when a name is not local.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from retain.errors import UserError
from retain.io import sha256_json
from retain.tasks.base import Example, Task

PREFIX = "lm-eval"
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<k>\d+))?$")
HARNESS_SPLIT = "test"


def require_lm_eval():
    """The `lm_eval` module, or one line saying how to install it."""
    try:
        import lm_eval
    except ImportError:
        raise UserError("lm-eval tasks need the lm-eval extra, which is not installed: "
                        "pip install 'retain[lm-eval]'") from None
    return lm_eval


@contextlib.contextmanager
def quiet():
    """lm-eval's INFO logging and the datasets progress bars off while lm-eval loads or runs tasks."""
    import datasets

    logger = logging.getLogger("lm_eval")
    level, bars = logger.level, datasets.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


@functools.lru_cache(maxsize=8)
def _manager(include: tuple[str, ...], defaults: bool):
    from lm_eval.tasks import TaskManager

    with quiet():
        return TaskManager(include_path=list(include) or None, include_defaults=defaults)


def _load(name: str, include: tuple[str, ...]) -> dict:
    """lm-eval's `{"tasks", "groups", "group_map"}` for `name`, local folders first."""
    for defaults in ((False, True) if include else (True,)):
        manager = _manager(include, defaults)
        if name in manager.all_tasks:
            break
    else:
        where = f" (nor in {', '.join(include)})" if include else " (add local task YAMLs with --lm-eval-include DIR)"
        raise UserError(f"unknown lm-eval task {name!r}: not one of lm-eval's tasks or groups{where}")
    try:
        with quiet():
            return manager.load(name)
    except UserError:
        raise
    except Exception as e:  # a bad YAML, a dataset that cannot be read (offline, missing file)
        raise UserError(f"lm-eval task {name!r} could not be loaded: {type(e).__name__}: {e}".splitlines()[0]) from None


def _config_of(leaf) -> dict:
    return json.loads(json.dumps(leaf.config.to_dict(), default=str, sort_keys=True))


@dataclass
class LmEvalTask(Task):
    """A retain task whose documents and scoring come from lm-eval (see the module docstring).

    Attributes:
        harness_name: the lm-eval task or group name.
        include: local task folders searched before lm-eval's own.
        loaded: lm-eval's loaded `{"tasks", "groups", "group_map"}` (task objects are reused).
        output_type: lm-eval's request kind of the first task (`multiple_choice`, `generate_until`, ...).
        config_hash: hash of every task's full config as loaded (prompts, filters, metrics), taken
            before any evaluation sets its shots.
    """

    harness_name: str = ""
    include: tuple[str, ...] = ()
    loaded: dict = field(default_factory=dict, repr=False, compare=False)
    output_type: str = ""
    config_hash: str = ""

    def fewshot_examples(self, split: str = "test", limit: int | None = None, k: int = 0,
                         seed: int = 0) -> list[Example]:
        """The documents: lm-eval adds the shots to each prompt itself when it builds its requests."""
        return self.examples(split, limit)

    def fewshot_source(self, split: str) -> str:
        return "lm-eval"

    def identity(self, split: str = "test", limit: int | None = None) -> dict:
        """Task identity plus lm-eval's version and every task's full config (prompts, filters, metrics)."""
        import lm_eval

        return {**super().identity(split, limit), "lm_eval": lm_eval.__version__, "config": self.config_hash}

    def selection(self, examples: Sequence[Example]) -> tuple[dict, dict[str, list[int]]]:
        """lm-eval's task dict holding the tasks of `examples`, and `samples` naming their documents."""
        samples: dict[str, list[int]] = {}
        for ex in examples:
            samples.setdefault(ex.fields["task"], []).append(ex.fields["doc_id"])
        tasks = {n: t for n, t in self.loaded["tasks"].items() if n in samples}
        return {"tasks": tasks, "groups": {}, "group_map": {}}, samples


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _example(leaf, name: str, doc_id: int, doc, prefix: str) -> Example:
    prompt = _text(leaf.doc_to_text(doc))
    target = leaf.doc_to_target(doc)
    fields = {"task": name, "doc_id": doc_id}
    ex_id = f"{prefix}{doc_id}"
    if leaf.OUTPUT_TYPE == "multiple_choice":
        choices = tuple(_text(c) for c in leaf.doc_to_choice(doc))
        gold = target[0] if isinstance(target, list) and target else target
        label = gold if isinstance(gold, int) else choices.index(gold) if gold in choices else None
        answer = choices[label] if label is not None and 0 <= label < len(choices) else _text(gold)
        return Example(ex_id, prompt, answer, choices=choices, label=label, fields=fields)
    if leaf.OUTPUT_TYPE == "loglikelihood_rolling":  # the scored text is the target: show it as the document
        prompt = prompt or _text(target)
    refs = tuple(_text(t) for t in target) if isinstance(target, list) else (_text(target),)
    return Example(ex_id, prompt, refs[0] if refs else "", references=refs or ("",), fields=fields)


def lm_eval_task(spec: str, include: Sequence[str | Path] = ()) -> LmEvalTask:
    """Resolve `TASK` or `TASK@K` (what follows `lm-eval:`) to a retain task.

    Raises:
        UserError: lm-eval missing, a malformed spec, an unknown task, or a task that cannot be loaded.
    """
    match = _SPEC.match(spec.strip())
    if not match:
        raise UserError(f"bad lm-eval task {spec!r}: write lm-eval:TASK or lm-eval:TASK@SHOTS, e.g. lm-eval:arc_easy@5")
    lm_eval = require_lm_eval()
    folders = []
    for d in include:
        if not Path(d).is_dir():
            raise UserError("lm-eval include folder not found", d)
        folders.append(str(Path(d).resolve()))
    name = match["name"]
    loaded = _load(name, tuple(folders))
    leaves = loaded["tasks"]
    if not leaves:
        raise UserError(f"lm-eval task {name!r} has no tasks to evaluate")
    first = next(iter(leaves.values()))
    kinds = {(leaf.OUTPUT_TYPE, tuple(leaf._metric_fn_list)) for leaf in leaves.values()}
    if len(kinds) > 1:  # one retain task has one set of metrics: MMLU's subjects share theirs
        raise UserError(f"lm-eval group {name!r} mixes request kinds or metrics ({len(kinds)} different); "
                        f"protect its tasks one by one: {', '.join(sorted(leaves))}")
    k = int(match["k"]) if match["k"] is not None else (first.get_config("num_fewshot") or 0)
    prefixed = len(leaves) > 1 or name not in leaves

    def loader(split: str, limit: int | None) -> list[Example]:
        out = []
        for leaf_name, leaf in leaves.items():
            for doc_id, doc in enumerate(leaf.eval_docs):
                if limit is not None and len(out) >= limit:
                    return out
                out.append(_example(leaf, leaf_name, doc_id, doc, f"{leaf_name}/" if prefixed else ""))
        return out

    versions = sorted({str(leaf.VERSION) for leaf in leaves.values()})
    gen = (first.config.generation_kwargs or {}) if first.OUTPUT_TYPE == "generate_until" else {}
    return LmEvalTask(
        name=f"{PREFIX}:{spec.strip()}", family=f"{PREFIX}:{name}", version=f"2/{'+'.join(versions)}",
        kind="lm-eval", metric="lm-eval", prompt_template=_text(first.config.doc_to_text),
        max_new_tokens=int(gen.get("max_gen_toks", 256)), splits=(HARNESS_SPLIT,), loader=loader,
        description=f"lm-evaluation-harness {lm_eval.__version__}: {name} ({len(leaves)} task"
                    f"{'s' if len(leaves) > 1 else ''}, {first.OUTPUT_TYPE})",
        fewshot=k, harness_name=name, include=tuple(folders), loaded=loaded, output_type=first.OUTPUT_TYPE,
        config_hash=sha256_json({n: _config_of(leaves[n]) for n in sorted(leaves)}))
