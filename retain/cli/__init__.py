"""The `retain` command line: thin wrappers that parse, call the library and print.

Each subcommand lives in its own module and registers itself on `app`. `main()` is the one place
where outcomes become exit codes (the contract is documented in the README):

====  ==========================================================================================
0     success
1     `--check` gate failed (no run within the forgetting budget), or an internal error: one line
      with the exception's type and message ("rerun with --debug for the traceback")
2     bad input or usage: one line naming the file, key or option (`retain.errors.UserError` and
      every usage error of the option parser)
130   interrupted by SIGINT (Ctrl-C); 143 terminated by SIGTERM: one line saying how to resume
141   standard output was closed by the reader (`retain tasks | head -1`): stopped quietly
====  ==========================================================================================

Launched as several processes (`torchrun`, `accelerate launch`), only the main process prints; the
others print nothing but their errors after the processes joined (running out of memory, a NaN
loss, internal errors), as "rank N: error: ...". Bad input found before they join is the same in
every process and said once, by the main one, as are interruptions. The launcher then decides the
exit code of the whole launch (torchrun exits 1 when any process failed).

Nothing here depends on a typer or click version: option-parser exceptions are recognised by what
they carry (`exit_code`, `format_message`), since typer 0.29 raises its own vendored copies of
click's exceptions while older typer raises click's.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path

import typer

from retain.distributed import OtherProcessFailed, is_main, joined, launched, leave, rank
from retain.errors import UserError, one_line, redact

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM, EXIT_PIPE = 130, 143, 141

app = typer.Typer(
    name="retain", add_completion=False, pretty_exceptions_enable=False,
    help="Fine-tune a language model on one task and measure what it forgot on the way.",
)


# The commands that run as several processes of one launch (torchrun, accelerate launch).
LAUNCHABLE = ("train", "eval")


@app.callback()
def _global_options(
    ctx: typer.Context,
    data_dir: str = typer.Option(None, "--data-dir", envvar="RETAIN_DATA_DIR", show_envvar=True,
                                 help="Folder with one sub-folder per task family (summarization/, ner/, ...): "
                                      "lets `--task ner` stand for `ner:DIR/ner`."),
    debug: bool = typer.Option(False, "--debug", envvar="RETAIN_DEBUG",
                               help="Show the full traceback of an error (may be given anywhere on the line)."),
) -> None:
    """Fine-tune a language model on one task and measure what it forgot on the way."""
    if launched() and ctx.invoked_subcommand not in LAUNCHABLE:
        raise UserError(f"retain {ctx.invoked_subcommand} runs as one process; of the commands only "
                        f"{' and '.join(LAUNCHABLE)} run under torchrun or accelerate launch (a study's "
                        "runs scale out as workers: retain study CONFIG --worker, see docs/scale-out.md)")
    if data_dir:
        from retain.tasks.data_dir import ENV_VAR

        if not Path(data_dir).expanduser().is_dir():
            raise UserError("--data-dir: no such folder", data_dir)
        os.environ[ENV_VAR] = data_dir


def quiet_libraries() -> None:
    """Silence library progress bars and warnings that would drown ours.

    Environment variables rather than library calls, so that a run served from the cache never
    imports `transformers` or `datasets` at all.
    """
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore")
    # The hub client's retry and HEAD-failure warnings: retain's one line says what went wrong.
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.logging.set_verbosity_error()
    if "transformers" in sys.modules:  # imported already (in-process use): the variables came too late
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    # peft imports bitsandbytes wherever it is installed, and bitsandbytes warns at import, on CPUs with
    # AVX512-BF16, that an optional kernel package is missing: nothing a retain user needs to act on.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so that no library's `except Exception` (nor the
    option parser's own KeyboardInterrupt handling) swallows it on the way to `main`."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StdoutClosed(BaseException):
    """The reader of standard output went away (a closed pipe)."""


class _PipeGuard:
    """Wraps sys.stdout so that a write to a closed pipe raises `StdoutClosed` (which the option
    parser does not intercept) instead of an OSError anywhere in the middle of a command."""

    def __init__(self, stream):
        self._stream = stream

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise StdoutClosed() from None

    def write(self, text):
        return self._guarded(self._stream.write, text)

    def flush(self):
        return self._guarded(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _on_signal(signum, _frame):
    raise Interrupted(signum)


# In a non-main process of a launch: (its rank, the real stderr); everything else it prints is dropped.
_other_process: tuple[int, object] | None = None


def _say(message: str, always: bool = False) -> None:
    """Print a line to stderr; in a non-main process of a launch only when `always`, with its rank."""
    stream = sys.stderr
    if _other_process is not None:
        if not always:
            return
        message, stream = f"rank {_other_process[0]}: {message}", _other_process[1]
    try:
        print(redact(message), file=stream, flush=True)
    except (OSError, ValueError):
        pass  # stderr closed too: the exit code still tells


def _parser_error(exc: BaseException) -> int | None:
    """Exit code for an option-parser exception (typer's vendored click or click), else None."""
    kind = type(exc).__name__
    if kind == "Exit" and isinstance(getattr(exc, "exit_code", None), int):
        return exc.exit_code
    if kind == "Abort":
        return EXIT_SIGINT
    if kind == "NoArgsIsHelpError":  # a group without its subcommand: the help, as a usage error
        text = exc.format_message()  # the help text; empty when typer's rich help already printed it
        if text:
            print(text)
        return EXIT_USAGE
    if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _say(f"error: {where}{one_line(exc.format_message())}{hint}")
        return exc.exit_code if exc.exit_code != EXIT_FAILED else EXIT_USAGE
    return None


def _resume_hint(argv: list[str]) -> str:
    return f"finished work is kept; rerun to resume: retain {shlex.join(argv)}"


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (the contract in the module docstring)."""
    global _other_process
    if not launched() or is_main():
        try:
            return _run(argv)
        finally:
            leave()
    saved = sys.stdout, sys.stderr
    _other_process = (rank(), sys.stderr)
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        sys.stdout = sys.stderr = devnull
        try:
            return _run(argv)
        finally:
            sys.stdout, sys.stderr = saved
            _other_process = None
            leave()


def _run(argv: list[str] | None) -> int:
    from retain.cli import commands  # noqa: F401  (registers the subcommands)

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RETAIN_DEBUG", "").lower() in ("1", "true", "yes")
    argv = [a for a in argv if a != "--debug"]
    if not argv:  # the help (typer's rich help prints itself to stdout), and a usage error's exit code
        command = typer.main.get_command(app)
        text = command.get_help(typer.Context(command, info_name="retain"))
        if text:
            print(text)
        return EXIT_USAGE
    handlers = {}
    if _main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, _on_signal)
    stdout = sys.stdout
    sys.stdout = _PipeGuard(stdout)
    try:
        code = app(args=argv, standalone_mode=False, prog_name="retain")
        sys.stdout.flush()
        return code if isinstance(code, int) else EXIT_OK
    except UserError as e:
        return _input_error(str(e), debug)
    except OtherProcessFailed:  # a non-main process of a launch: the main one says what failed
        return EXIT_FAILED
    except Interrupted as e:
        code = EXIT_SIGTERM if e.signum == signal.SIGTERM else EXIT_SIGINT
        _say(f"interrupted ({signal.Signals(e.signum).name}): {_resume_hint(argv)}")
        return code
    except KeyboardInterrupt:  # before the handler was installed, or from a non-main thread
        _say(f"interrupted: {_resume_hint(argv)}")
        return EXIT_SIGINT
    except StdoutClosed:
        _silence_stdout()
        return EXIT_PIPE
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (EXIT_OK if e.code is None else EXIT_FAILED)
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: an internal error like any other
            return _internal_error(e, debug)
        # A path the user named cannot be read or written (permissions, a file where a folder is
        # expected, a full disk): bad input for the contract, said in one line.
        return _input_error(f"{e.filename}: {e.strerror or str(e)}", debug)
    except Exception as e:  # noqa: BLE001  (the one catch-all: every error ends as one line)
        code = _parser_error(e)
        return code if code is not None else _internal_error(e, debug)
    finally:
        sys.stdout = stdout
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _raised_in(e: BaseException) -> str:
    """Which library (or retain module) raised `e`, from its innermost frame: `transformers
    (trainer.py:2281)`, `peft (...)`, `retain.training.loop (...)`."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return ""
    path = Path(frames[-1].filename)
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return f"{parts[parts.index(marker) + 1]} ({path.name}:{frames[-1].lineno})"
    if "retain" in parts:
        module = ".".join(parts[len(parts) - parts[::-1].index("retain") - 1:]).removesuffix(".py")
        return f"{module} ({path.name}:{frames[-1].lineno})"
    return f"{path.name}:{frames[-1].lineno}"


def _input_error(message: str, debug: bool) -> int:
    """Bad input: one line (after the traceback with --debug), exit 2.

    A non-main process of a launch says it only once the processes joined: before, every process
    checked the same input and the main one says it.
    """
    if debug:
        _say(traceback.format_exc().rstrip(), always=joined())  # redacted like every line retain prints
    _say(f"error: {one_line(message)}", always=joined())
    return EXIT_USAGE


def _internal_error(e: BaseException, debug: bool) -> int:
    if debug:
        _say(traceback.format_exc().rstrip(), always=True)  # redacted like every line retain prints
    else:
        where = _raised_in(e)
        _say(f"error: {type(e).__name__}{' in ' + where if where else ''}: {one_line(str(e))} "
             "(an internal error; rerun with --debug for the traceback)", always=True)
    return EXIT_FAILED


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    # Interpreter shutdown flushes stdout again: point the descriptor at /dev/null so it stays quiet.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `retain` command: runs it and exits with its code."""
    raise SystemExit(run(argv))
