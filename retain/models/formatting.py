"""How a task prompt becomes model input, the same way for training and for evaluation.

Encoder-decoder models read the prompt as is. Decoder-only models read the prompt followed by the
completion; the two are joined by one space unless the prompt already ends in whitespace. Chat models
(a tokenizer with a chat template) get the prompt as a user turn with the generation prompt appended,
when `chat` is `auto` or `on`.
"""

from __future__ import annotations

from retain.errors import UserError

CHAT_MODES = ("auto", "on", "off")


def uses_chat_template(tokenizer, is_seq2seq: bool, chat: str = "auto") -> bool:
    if chat not in CHAT_MODES:
        raise UserError(f"chat must be one of {', '.join(CHAT_MODES)}, not {chat!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat == "on" and not has_template:
        raise UserError("chat=on but the tokenizer has no chat template")
    return not is_seq2seq and has_template and chat != "off"


def format_prompt(tokenizer, prompt: str, is_seq2seq: bool, chat: str = "auto") -> str:
    """The text the model is conditioned on for a task prompt."""
    if uses_chat_template(tokenizer, is_seq2seq, chat):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt


def completion_prefix(formatted_prompt: str, is_seq2seq: bool) -> str:
    """What goes between a (formatted) prompt and its completion for decoder-only models."""
    if is_seq2seq or not formatted_prompt or formatted_prompt[-1].isspace():
        return ""
    return " "
