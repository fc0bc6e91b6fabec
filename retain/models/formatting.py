"""How a task prompt becomes model input, the same way for training and for evaluation.

Encoder-decoder models read the prompt as is. Decoder-only models read the prompt followed by the
completion; the two are joined by one space unless the prompt already ends in whitespace. Chat models
(a tokenizer with a chat template) get the prompt as a user turn with the generation prompt appended,
when `chat` is `auto` or `on`.

Few-shot prompts (evaluation only) put solved examples before the prompt: for chat models each shot is
a user turn (its prompt) and an assistant turn (its answer) before the final user turn; for other
models each shot is written as `prompt answer` (joined like a completion) and the shots are separated
from each other and from the prompt by a blank line. With no shots the text is exactly the zero-shot
text.
"""

from __future__ import annotations

from typing import Sequence

from retain.errors import UserError

CHAT_MODES = ("auto", "on", "off")

Shot = tuple[str, str]  # (prompt, answer) of one solved example
SHOT_SEPARATOR = "\n\n"


def uses_chat_template(tokenizer, is_seq2seq: bool, chat: str = "auto") -> bool:
    if chat not in CHAT_MODES:
        raise UserError(f"chat must be one of {', '.join(CHAT_MODES)}, not {chat!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat == "on" and not has_template:
        raise UserError("chat=on but the tokenizer has no chat template")
    return not is_seq2seq and has_template and chat != "off"


def format_prompt(tokenizer, prompt: str, is_seq2seq: bool, chat: str = "auto", shots: Sequence[Shot] = ()) -> str:
    """The text the model is conditioned on for a task prompt.

    Args:
        tokenizer: the model's tokenizer (its chat template, if any, is used).
        prompt: the task prompt.
        is_seq2seq: encoder-decoder model (never chat-formatted).
        chat: `auto`, `on` or `off`.
        shots: solved examples, (prompt, answer) pairs, placed before the prompt.
    """
    if uses_chat_template(tokenizer, is_seq2seq, chat):
        messages = []
        for shot_prompt, answer in shots:
            messages += [{"role": "user", "content": shot_prompt}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not shots:
        return prompt
    solved = [shot_prompt + completion_prefix(shot_prompt, False) + answer for shot_prompt, answer in shots]
    return SHOT_SEPARATOR.join([*solved, prompt])


def completion_prefix(formatted_prompt: str, is_seq2seq: bool) -> str:
    """What goes between a (formatted) prompt and its completion for decoder-only models."""
    if is_seq2seq or not formatted_prompt or formatted_prompt[-1].isspace():
        return ""
    return " "
