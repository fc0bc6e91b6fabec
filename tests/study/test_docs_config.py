"""The annotated study config in docs/study.md is a config retain accepts, method by method."""

from __future__ import annotations

import re
from pathlib import Path

from retain.study.config import load_study_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "study.md"


def test_annotated_config_validates(tmp_path):
    block = re.search(r"## Annotated config\n\n```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/study.md has lost its annotated config"
    path = tmp_path / "study.yaml"
    path.write_text(block.group(1))
    config = load_study_config(path)
    names = [e.run_name for e in config.methods]
    assert len(names) == len(set(names)) and {"full", "lora-r16", "qlora", "wise-ft"} <= set(names)
    trained = [e for e in config.methods if e.method != "wise-ft"]
    assert all(e.method_config is not None and e.settings is not None for e in trained)
    assert next(e for e in config.methods if e.run_name == "qlora").method_config.load_options() == {"quantize": "nf4"}
