"""retain: fine-tune a language model on one task and measure what it forgot on the way."""

__version__ = "0.1.0"
