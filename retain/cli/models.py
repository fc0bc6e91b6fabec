"""`retain init-model`: a model with random weights from a local config folder (no download).

For tests, benchmarks and pre-training experiments: e.g. a flan-t5-small-shaped T5 from the real
config and tokenizer (../shared/models/flan-t5-small-tokenizer), full size or shrunk with `--tiny`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from retain.cli import app, quiet_libraries


@app.command("init-model")
def init_model_command(
    config: Path = typer.Option(..., "--config", help="Folder with config.json and tokenizer files."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to save the model (safetensors) and tokenizer."),
    tiny: bool = typer.Option(False, help="Shrink a T5 config to d_model 64, 2+2 layers (for tests)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Config override key=value, e.g. num_layers=4."),
    seed: int = typer.Option(0, help="Seed of the random initialisation."),
) -> None:
    """Build a model with random weights from a config folder."""
    quiet_libraries()
    from retain.errors import UserError
    from retain.models.tiny import TINY_T5_SHRINK, model_from_config_dir
    from retain.training.config import parse_set

    if not (config / "config.json").is_file():
        raise UserError("no config.json in the config folder", config)
    shrink = {**(TINY_T5_SHRINK if tiny else {}), **parse_set(set_)}
    path = model_from_config_dir(config, out, seed=seed, shrink=shrink)
    Console().print(f"wrote {path}")
