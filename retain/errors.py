"""User-facing errors.

Anything the user can fix (a missing file, a malformed line, an unknown task or option) raises
`UserError`. The CLI prints its message as one line and exits with code 2, without a traceback;
library callers can catch it like any other exception.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


class UserError(Exception):
    """An error in the user's input, reported as one line naming where and what.

    Args:
        message: what is wrong.
        where: the file (and line or key) the problem is in, if any, e.g. ``data.jsonl:12``.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | Path | None = None):
        self.where = str(where) if where is not None else None
        self.message = message
        super().__init__(f"{self.where}: {message}" if self.where else message)


def one_line(text: str) -> str:
    """Collapse a message onto one line (CLI errors must stay one line)."""
    return " ".join(str(text).split())


# Environment variables whose values are credentials, and the shape of a Hugging Face token.
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def redact(text: str) -> str:
    """`text` with credentials replaced by `***`: the values of `SECRET_ENV` variables and hub tokens.

    Applied to what retain prints on errors and records about a command line (a token can reach an
    exception message through a URL or an argument), so logs and bug reports can be shared.
    """
    text = str(text)
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, "***")
    return _HF_TOKEN.sub("***", text)
