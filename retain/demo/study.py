"""The demo study: target toy-summarize (500 examples), protect the base's three toy skills.

Settings were tuned by measurement (see docs/demo.md): full fine-tuning learns the target and drops
protected skills; multitask mixing keeps them; LoRA changes less; WiSE-FT trades between the two.
"""

from __future__ import annotations

from pathlib import Path

from retain.demo.base import SKILLS, TARGET
from retain.study.config import StudyConfig

TRAIN = {"epochs": 4, "batch_size": 32, "learning_rate": 2e-3, "warmup": 0.05, "eval_examples": 32,
         "save_steps": 100, "logging_steps": 10}


def demo_config(model_dir: Path) -> StudyConfig:
    return StudyConfig(
        name="demo",
        model=str(model_dir),
        target={"task": TARGET, "train_examples": 500},
        protect=[{"task": t} for t in SKILLS],
        budget={"max_drop": 0.1},
        methods=[
            {"method": "full"},
            {"method": "lora", "options": {"r": 8, "alpha": 16}, "train": {"learning_rate": 4e-3}},
            {"method": "multitask", "options": {"tasks": list(SKILLS), "weights": {"target": 0.4, **{t: 0.6 / len(SKILLS) for t in SKILLS}}}},
            {"method": "wise-ft", "of": "full", "alphas": [0.25, 0.5, 0.75]},
        ],
        train=TRAIN,
        eval={"limit": 200, "batch_size": 64},
    )
