"""The demo's study config is valid and asks for what the demo promises."""

from __future__ import annotations

from pathlib import Path

from retain.demo.base import SKILLS, TARGET
from retain.demo.study import demo_config


def test_demo_config_is_valid_and_complete():
    cfg = demo_config(Path("/nonexistent/model"))  # validated, methods and settings included, when built
    assert all(m.method_config is not None and m.settings is not None for m in cfg.methods if m.method != "wise-ft")
    assert cfg.target.task == TARGET == "toy-summarize"
    assert 400 <= cfg.target.train_examples <= 1000
    assert [p.task for p in cfg.protect] == list(SKILLS) == ["toy-ner", "toy-sentiment", "toy-qa"]
    assert {m.method for m in cfg.methods} == {"full", "lora", "multitask", "wise-ft"}
    wise = next(m for m in cfg.methods if m.method == "wise-ft")
    assert wise.of == "full" and len(wise.alphas) >= 2
