"""Self-references: a task file whose references are a model's own greedy answers.

A behaviour probe for a study. "Does the fine-tuned model still answer like the chat model it was?"
has no labelled data: the question is about the base model's own behaviour. So the base answers
held-out prompts once (greedy, in the evaluation engine), its answers are written as the reference
field of a copy of the task's records, and that file is protected like any other task
(`instructions:PROBE_DIR`): the base scores itself (ROUGE 1.0 when evaluated as it was here), and a
tuned model that summarises everything, or answers in another style, drifts away from 1.0.

Written as a file rather than built inside a study, so the probe is data a user can read, edit and
reuse, and its identity in caches is that of its contents, like every file task.

Only families whose reference is one text field can take self-references (`REFERENCE_FIELDS`).
"""

from __future__ import annotations

import json
from pathlib import Path

from retain.errors import UserError
from retain.evaluation.cache import EvalCache
from retain.evaluation.runner import EvalSettings, evaluate_task
from retain.io import atomic_write_json, atomic_write_text
from retain.tasks.base import Task

# Family -> the record field that holds the reference text.
REFERENCE_FIELDS = {"instructions": "output", "summarization": "summary"}
SOURCE_FILE = "SOURCE.json"


def reference_field(task: Task) -> str:
    """The field self-references go into, or a `UserError` naming the families that have one."""
    if task.kind != "generate" or task.family not in REFERENCE_FIELDS:
        raise UserError(f"task {task.name}: self-references need a generation task whose reference is one "
                        f"text field ({', '.join(f'{k}:PATH' for k in REFERENCE_FIELDS)})")
    return REFERENCE_FIELDS[task.family]


def self_references(lm, task: Task, settings: EvalSettings, cache: EvalCache) -> tuple[list[dict], list[str]]:
    """The task's records with `lm`'s greedy answers as references, and the ids left out (empty answers).

    Each record keeps every field of the original (so the family renders the same prompt from it)
    and its id; only the reference field changes. An empty answer cannot be a reference (the families
    refuse empty reference fields), so its example is left out and reported.
    """
    field = reference_field(task)
    result = evaluate_task(lm, task, settings, cache)
    records, dropped = [], []
    for example, answer in zip(result.examples, result.predictions):
        if not answer.strip():
            dropped.append(example.id)
            continue
        records.append({**example.fields, "id": example.id, field: answer})
    if not records:
        raise UserError(f"task {task.name}: the model answered no prompt (all answers empty); nothing to write")
    return records, dropped


def write_self_references(out_dir: str | Path, split: str, records: list[dict], source: dict) -> Path:
    """Write `records` as `out_dir/SPLIT.jsonl` and what made them as `SOURCE.json`; returns the data file.

    The data file is written last, atomically, so a folder with it is complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SOURCE_FILE, source)
    data = out / f"{split}.jsonl"
    atomic_write_text(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return data
