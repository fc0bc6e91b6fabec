"""`retain models ...` and `retain init-model`: where models come from.

- `retain models list`: the embedded models retain knows by name, and whether each is ready (its
  package installed, its converted folder already in the cache).
- `retain models import FILE.gguf --out DIR`: convert a GGUF file (or an embedded model) into a
  standard safetensors model folder, once, so later runs load it in seconds.
- `retain init-model`: a model with random weights from a local config folder (no download), for
  tests, benchmarks and pre-training experiments: e.g. a flan-t5-small-shaped T5 from the real config
  and tokenizer (../shared/models/flan-t5-small-tokenizer), full size or shrunk with `--tiny`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from retain.cli import app, quiet_libraries

models_app = typer.Typer(no_args_is_help=True, help="Models retain knows by name; GGUF import.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_command() -> None:
    """The embedded models (usable as `--model NAME`) and whether each is ready."""
    from retain.models.sources import EMBEDDED, embedded_status

    for name in EMBEDDED:
        st = embedded_status(name)
        m = st.model
        if st.converted is not None:
            state, detail = "ready", f"converted folder: {st.converted}"
        elif st.installed:
            state, detail = "installed", "converted to a safetensors folder on first use (about a minute)"
        else:
            state, detail = "not installed", f"install with: {m.install_command}"
        print(f"{name}  {state}  {m.description} ({m.license})")
        print(f"    package {m.package}=={m.version}; {detail}")


@models_app.command("import")
def import_command(
    source: str = typer.Argument(..., help="A .gguf file, or an embedded model name (see `retain models list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="The model folder to write (must not exist)."),
    dtype: str = typer.Option("fp32", help="Dtype of the saved weights: fp32 (exact dequantized values) or bf16."),
) -> None:
    """Convert a GGUF file into a standard safetensors model folder (config, weights, tokenizer)."""
    quiet_libraries()
    from retain.errors import UserError
    from retain.models.gguf import CONVERT_DTYPES, convert_gguf, read_gguf_info
    from retain.models.sources import EMBEDDED, embedded_gguf

    if dtype not in CONVERT_DTYPES:
        raise UserError(f"--dtype: unknown dtype {dtype!r} (use bf16 or fp32)")
    path = embedded_gguf(source) if source in EMBEDDED else Path(source).expanduser()
    if path.is_dir() or path.suffix.lower() != ".gguf":
        raise UserError("expected a .gguf file or an embedded model name", source)
    info = read_gguf_info(path)
    t0 = time.perf_counter()
    convert_gguf(path, out, dtype, info=info)
    how = f"{info.quantization} weights dequantized" if info.quantized else f"{info.quantization} weights"
    print(f"wrote {out} ({info.architecture}, {info.parameters / 1e6:.0f}M parameters, {how} to {dtype}) "
          f"in {time.perf_counter() - t0:.0f}s")


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
    from retain.config import parse_set

    if not (config / "config.json").is_file():
        raise UserError("no config.json in the config folder", config)
    shrink = {**(TINY_T5_SHRINK if tiny else {}), **parse_set(set_)}
    path = model_from_config_dir(config, out, seed=seed, shrink=shrink)
    Console().print(f"wrote {path}")
