"""`retain train`: fine-tune a model on a target task with a method, into a run folder.

Thin: flags -> `RunConfig`-shaped options -> `retain.training.train`. Every `TrainSettings` field is
a flag (`--max-steps`, `--train-examples`, ...), generated from the settings class so that `--help`
shows each field's own description. Method options come from `--set key=value` (YAML scalars,
validated against the method's config) on top of an optional `--config file.yaml`, which has the
layout of a run's saved `config.yaml` (`model`, `target`, `method: {name, ...}`, `settings`), so
`retain train --config OUT/config.yaml --out NEW` repeats a run.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from retain.cli import app, quiet_libraries
from retain.models.sources import MODEL_HELP
from retain.training.config import TrainSettings


def train_command(**kwargs) -> None:
    """Fine-tune MODEL on TASK with METHOD; writes the model or adapter, config, log and metadata to OUT."""
    quiet_libraries()
    from retain.config import parse_set, read_yaml
    from retain.errors import UserError
    from retain.io import check_output_folder
    from retain.methods import make_method
    from retain.models.loading import pick_device
    from retain.training.hooks import check_runs_on
    from retain.training.loop import train
    from retain.training.config import make_settings

    base = read_yaml(kwargs["config"]) if kwargs["config"] else {}
    unknown = sorted(set(base) - {"model", "target", "task", "method", "settings"})
    if unknown:
        raise UserError(f"unknown key {unknown[0]!r} (expected model, target, method, settings)", kwargs["config"])
    model = kwargs["model"] or base.get("model")
    target = kwargs["task"] or base.get("target") or base.get("task")
    if not model or not target:
        raise UserError("give --model and --task (or a --config file that names them)")
    method_opts = dict(base.get("method") or {})
    if isinstance(base.get("method"), str):
        method_opts = {"name": base["method"]}
    name = kwargs["method"] or method_opts.get("name") or "full"
    if str(method_opts.get("name", name)).lower() != name.lower():
        method_opts = {}  # the file's options belong to another method
    method_opts.pop("name", None)
    method_opts.update(parse_set(kwargs["set_"]))
    method = make_method(name, method_opts)

    settings_opts = dict(base.get("settings") or {})
    settings_opts.update({k: kwargs[k] for k in TrainSettings.model_fields if kwargs.get(k) not in (None, [], ())})
    settings = make_settings(settings_opts)
    check_output_folder(kwargs["out"])
    check_runs_on(method, pick_device(settings.device))  # e.g. QLoRA on a CPU, before the first line is printed

    # User strings (model, task, paths) are printed as text, never interpreted as rich markup.
    console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    console.print(f"training {model} on {target} with {method.name} -> {kwargs['out']}")
    result = train(model, target, method, settings, kwargs["out"], resume=kwargs["resume"])
    meta = result.metadata
    if result.reused:
        console.print(f"{kwargs['out']} already holds this finished run; nothing to do")
    tps = meta.get("tokens_per_second")
    Console(soft_wrap=True, markup=False, highlight=False).print(f"done: {meta['steps']} steps, train loss {meta['train_loss']:.4f}"
                    + (f", validation loss {meta['eval_loss']:.4f}" if meta.get("eval_loss") is not None else "")
                    + (f", {tps:,.0f} tokens/s" if tps else "")
                    + f"; wrote {kwargs['out']}")


def _settings_parameters() -> list[inspect.Parameter]:
    """One `--field-name` option per `TrainSettings` field, help text from its description."""
    params = []
    for name, info in TrainSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = _option_type(info.annotation)
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        default_text = info.default if info.default is not None else "none"
        option = typer.Option(None, *decls, help=f"{info.description} (default: {default_text})",
                              show_default=False, rich_help_panel="Training settings")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
    return params


def _option_type(annotation):
    """The plain type of a settings field (Literal -> str, `int | None` -> int, `list[float]` -> a
    repeatable float option)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list:
        return List[_option_type(args[0])]
    if typing.get_origin(annotation) is typing.Literal:
        return str
    if args and typing.get_origin(annotation) is not None:
        return _option_type(args[0])
    return annotation


# Written out so that `retain --help` need not import the methods (and torch); a test keeps it in sync.
METHODS_HELP = "full, lora, qlora (CUDA), multitask, replay, l2sp, ewc, wise-ft, or any PEFT method name (default: full)."

_FIXED = [
    inspect.Parameter("model", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                      default=typer.Option(None, "--model", "-m", help=f"Base model: {MODEL_HELP}.")),
    inspect.Parameter("task", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                      default=typer.Option(None, "--task", "-t", help="Target task: a name, FAMILY:PATH or a task .yaml.")),
    inspect.Parameter("method", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                      default=typer.Option(None, "--method", help=METHODS_HELP)),
    inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[str]],
                      default=typer.Option(None, "--set", help="Method option key=value (YAML value); repeatable.")),
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                      default=typer.Option(None, "--config", help="YAML with model, target, method, settings "
                                                                  "(a run's config.yaml works); flags override it.")),
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                      default=typer.Option(..., "--out", "-o", help="Run folder to write (resumed if unfinished).")),
    inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(True, "--resume/--no-resume",
                                           help="Continue an unfinished run from its last checkpoint.")),
]

train_command.__signature__ = inspect.Signature([*_FIXED, *_settings_parameters()])
app.command("train")(train_command)
