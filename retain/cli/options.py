"""Options shared by the commands that run a model over a task's prompts (`retain eval`, `retain references`).

One definition each, so their names, defaults and help read the same in every command. Each is a
function returning a fresh `typer.Option`, used as a parameter default.
"""

from __future__ import annotations

import typer


def split_option():
    return typer.Option("test", help="Which split of each task (held out from training).")


def limit_option():
    return typer.Option(None, help="The first N examples of each task.")


def max_new_tokens_option():
    return typer.Option(None, "--max-new-tokens", min=1,
                        help="Cap on generated tokens for generation tasks (default: each task's own).")


def batch_size_option():
    return typer.Option(16, help="Prompts per forward pass.")


def device_option():
    return typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps.")


def dtype_option():
    return typer.Option("auto", help="auto, float32, bfloat16, float16 or bf16-autocast (auto: bf16 autocast for "
                                     "scoring where the hardware has fast bf16, fp32 for greedy generation on a CPU).")


def chat_option():
    return typer.Option("auto", help="Chat template for decoder-only chat models: auto, on, off.")
