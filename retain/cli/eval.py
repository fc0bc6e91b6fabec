"""`retain eval`: score a model (optionally with an adapter) on tasks and write results JSON."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retain.cli import app, quiet_libraries
from retain.cli.options import (batch_size_option, chat_option, device_option, dtype_option, limit_option,
                                max_new_tokens_option, split_option)
from retain.models.sources import MODEL_HELP


@app.command("eval")
def eval_command(
    model: str = typer.Option(..., "--model", "-m", help=f"Model: {MODEL_HELP}."),
    task: List[str] = typer.Option(..., "--task", "-t", help="Task: a name, FAMILY:PATH, a task .yaml, lm-eval:TASK[@SHOTS] "
                                   "or perplexity:PATH|TASK; repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the results JSON."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter folder to load on top of the model."),
    split: str = split_option(),
    limit: Optional[int] = limit_option(),
    batch_size: int = batch_size_option(),
    max_new_tokens: Optional[int] = max_new_tokens_option(),
    device: str = device_option(),
    dtype: str = dtype_option(),
    chat: str = chat_option(),
    fewshot: Optional[int] = typer.Option(
        None, help="Solved examples in each prompt, drawn from the task's train split (else validation), "
                   "never from the evaluated one. Default: each task's own (0 unless its YAML says)."),
    fewshot_seed: int = typer.Option(0, help="Seed of the few-shot draw (the same for every model)."),
    lm_eval_include: List[Path] = typer.Option(
        [], "--lm-eval-include", help="Folder of local lm-eval task YAMLs for lm-eval:TASK; repeatable."),
    cache_dir: Optional[Path] = typer.Option(None, help="Evaluation cache folder (default ~/.cache/retain/eval)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    allow_pickle: bool = typer.Option(False, help="Allow pickle (.bin) weights; they can run code."),
    trust_remote_code: bool = typer.Option(False, help="Run model code shipped with the checkpoint."),
) -> None:
    """Evaluate a model on tasks; scores come with 95% bootstrap confidence intervals."""
    quiet_libraries()
    from retain.distributed import is_main
    from retain.evaluation.cache import EvalCache
    from retain.evaluation.runner import EvalSettings, cache_key, eval_examples, evaluate
    from retain.io import atomic_write_json, check_output_file
    from retain.models.loading import LazyModel
    from retain.tasks import get_task

    # Everything the user can get wrong is checked before the model loads and before any output.
    settings = EvalSettings(split=split, limit=limit, batch_size=batch_size, chat=chat, fewshot=fewshot,
                            fewshot_seed=fewshot_seed)
    check_output_file(out)
    tasks = [get_task(t, lm_eval_include).with_max_new_tokens(max_new_tokens) for t in task]
    for t in tasks:
        eval_examples(t, settings)  # reads the data and draws the shots
    lm = LazyModel(model, adapter=adapter, device=device, dtype=dtype, allow_pickle=allow_pickle,
                    trust_remote_code=trust_remote_code)
    cache = EvalCache(cache_dir, enabled=not no_cache)
    if any(cache.get(cache_key(lm, t, settings)) is None for t in tasks):
        lm.model  # load now, so a broken model is one line before any progress bar is drawn
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        def factory(t, total):
            handle = bar.add_task(escape(t.name), total=total)
            return lambda n: bar.advance(handle, n)

        doc = evaluate(lm, tasks, settings, cache, progress_factory=factory)
    if is_main():  # launched as several processes, each holds the same document: one writes it
        atomic_write_json(out, doc)
    table = Table(title=escape(f"{model} ({lm.fingerprint})"))
    for col in ("task", "n", "metric", "value", "95% CI", "cached"):
        table.add_column(col)
    for name, res in doc["tasks"].items():
        m = res["metrics"][res["primary"]]
        table.add_row(escape(name), str(res["n"]), res["primary"], f"{m['value']:.4f}",
                      f"[{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]", "yes" if res["from_cache"] else "no")
    Console().print(table)
    Console().print(f"wrote {out}", markup=False)
