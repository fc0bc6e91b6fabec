"""`retain references`: write a task file whose references are a model's own greedy answers (a probe)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from retain.cli import app, quiet_libraries
from retain.cli.options import (batch_size_option, chat_option, device_option, dtype_option, limit_option,
                                max_new_tokens_option, split_option)
from retain.models.sources import MODEL_HELP


@app.command("references")
def references_command(
    model: str = typer.Option(..., "--model", "-m", help=f"Model whose answers become the references: {MODEL_HELP}."),
    task: str = typer.Option(..., "--task", "-t", help="instructions:PATH or summarization:PATH: the prompts."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write SPLIT.jsonl and SOURCE.json into."),
    split: str = split_option(),
    limit: Optional[int] = limit_option(),
    batch_size: int = batch_size_option(),
    max_new_tokens: Optional[int] = max_new_tokens_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    chat: str = chat_option(),
    cache_dir: Optional[Path] = typer.Option(None, help="Evaluation cache folder (default ~/.cache/retain/eval)."),
) -> None:
    """Answer a task's prompts with MODEL and write them as a task whose references are those answers.

    Protect the result (`instructions:OUT`) in a study to see whether a fine-tuned model still answers
    as the base did: the base scores itself, a model that changed its behaviour drifts away.
    """
    quiet_libraries()
    from retain.evaluation.cache import EvalCache
    from retain.evaluation.references import reference_field, self_references, write_self_references
    from retain.evaluation.runner import EvalSettings, eval_examples
    from retain.io import check_output_folder
    from retain.models.loading import LazyModel
    from retain.tasks import get_task

    check_output_folder(out)
    settings = EvalSettings(split=split, limit=limit, batch_size=batch_size, chat=chat, fewshot=0)
    t = get_task(task).with_max_new_tokens(max_new_tokens)
    reference_field(t)
    eval_examples(t, settings)  # reads the data before the model loads
    lm = LazyModel(model, device=device, dtype=dtype)
    records, dropped = self_references(lm, t, settings, EvalCache(cache_dir))
    source = {"model": model, "fingerprint": lm.fingerprint, "model_info": lm.describe(), "task": t.name,
              "split": split, "limit": limit, "batch_size": batch_size, "dtype": dtype, "chat": chat,
              "max_new_tokens": t.max_new_tokens, "examples": len(records), "left_out_empty": dropped,
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    data = write_self_references(out, split, records, source)
    note = f" ({len(dropped)} empty answers left out)" if dropped else ""
    Console().print(f"wrote {data}: {len(records)} references by {model}{note}; "
                    f"use it as {t.family}:{out}", markup=False)
