"""Run the `retain` CLI in-process and capture its exit code and output."""

from __future__ import annotations

import pytest

from retain.cli import main


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of `retain ARGS`."""
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exc.value.code or 0, captured.out, captured.err
