"""The `retain` command line: thin wrappers that parse, call the library and print.

Each subcommand lives in its own module and registers itself on `app`. Every user error
(`retain.errors.UserError`, bad options) is printed as ONE line on stderr with exit code 2, no
traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from retain.errors import UserError, one_line

app = typer.Typer(
    name="retain", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Fine-tune a language model on one task and measure what it forgot on the way.",
)


@app.callback()
def _global_options(
    data_dir: str = typer.Option(None, "--data-dir", envvar="RETAIN_DATA_DIR", show_envvar=True,
                                 help="Folder with one sub-folder per task family (summarization/, ner/, ...): "
                                      "lets `--task ner` stand for `ner:DIR/ner`."),
) -> None:
    """Fine-tune a language model on one task and measure what it forgot on the way."""
    if data_dir:
        import os
        from pathlib import Path

        from retain.tasks.data_dir import ENV_VAR

        if not Path(data_dir).expanduser().is_dir():
            raise UserError("--data-dir: no such folder", data_dir)
        os.environ[ENV_VAR] = data_dir


def quiet_libraries() -> None:
    """Silence library progress bars and warnings that would drown ours.

    Environment variables rather than library calls, so that a run served from the cache never
    imports `transformers` or `datasets` at all.
    """
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore")


def fail(message: str, code: int = 2) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `retain` command."""
    from retain.cli import commands  # noqa: F401  (registers the subcommands)

    try:
        app(args=argv, standalone_mode=False)
    except UserError as e:
        fail(str(e))
    except click.exceptions.NoArgsIsHelp:
        raise SystemExit(0)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as e:
        fail(e.format_message() if hasattr(e, "format_message") else str(e), e.exit_code or 2)
    except click.exceptions.Exit as e:
        raise SystemExit(e.exit_code)
