"""What the exit-code handler says about an internal error: the library that raised it."""

from __future__ import annotations

import pytest
import yaml

from retain.cli import _raised_in


def test_names_the_library_that_raised():
    with pytest.raises(yaml.YAMLError) as exc:
        yaml.safe_load("[unclosed")
    assert _raised_in(exc.value).startswith("yaml (")


def test_names_the_retain_module_that_raised():
    from retain.tasks import get_task

    with pytest.raises(Exception) as exc:
        get_task("no-such-task-anywhere")
    assert _raised_in(exc.value).startswith("retain.tasks.resolve (resolve.py:")
