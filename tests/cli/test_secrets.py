"""A credential in the environment or in a message never reaches what retain prints or records."""

from __future__ import annotations

import subprocess

from retain.errors import redact
from tests.cli.test_console_script import retain

TOKEN = "hf_PlantedTokenAbcdefghijklmnopqrstuvwxyz12"


def test_redact_hides_env_values_and_hub_tokens(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "s3cret-wandb-key-value")
    text = f"GET https://huggingface.co/x?token={TOKEN} with key s3cret-wandb-key-value failed"
    assert redact(text) == "GET https://huggingface.co/x?token=*** with key *** failed"
    assert redact("hf_short and plain text") == "hf_short and plain text"


def test_a_planted_token_is_not_printed(tmp_path):
    # The token reaches an error message through a model name the user typed (a URL with a token).
    res = retain("eval", "--model", f"https://user:{TOKEN}@example.invalid/model", "--task", "toy-ner",
                 "--limit", "1", "--out", tmp_path / "r.json", "--debug",
                 env_extra={"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"})
    assert res.returncode != 0
    assert TOKEN not in res.stdout + res.stderr
    assert "user:***@example.invalid" in res.stderr  # the message did carry it, redacted
    leaked = subprocess.run(["grep", "-rl", TOKEN, str(tmp_path)], capture_output=True, text=True)
    assert leaked.stdout == ""
