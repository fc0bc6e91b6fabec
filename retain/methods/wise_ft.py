"""WiSE-FT: interpolate between base and fine-tuned weights, without retraining.

`theta(alpha) = (1 - alpha) * theta_base + alpha * theta_tuned` (Wortsman et al. 2022). alpha = 0 is
the base model, alpha = 1 the fine-tuned one; each alpha is exact at both ends.

- Full fine-tuning runs: the weights are interpolated tensor by tensor (integer buffers are taken
  from the tuned model).
- Plain LoRA runs: the adapter's update `B A` is scaled by alpha (`lora_B` times alpha), which is
  exactly the weight interpolation above and keeps the result a small adapter folder.
- Other adapters (DoRA, IA3, ...): merged into the base weights first, then interpolated as full
  weights. Prompt-learning adapters cannot be merged and are refused.

Functions for the study: `wise_ft_model(run, alpha)` (in memory) and `save_wise_ft(run, alphas,
out_root)` (folders loadable with `load_model`).
The `wise-ft` method trains like `full` and writes the interpolations of its `alphas` into
`OUT/wise-ft/alpha-A/` when it finishes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

import torch
from pydantic import Field, field_validator

from retain.errors import UserError
from retain.methods.base import MethodConfig, register_method
from retain.methods.derived import DerivedRun, register_derived

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class ModelRef:
    """Where a model lives: pass `model_path` (and `adapter_path`) to `retain.models.load_model`."""

    model_path: str
    adapter_path: str | None = None

    def load(self, device: str = "auto", dtype: str = "auto"):
        from retain.models import load_model

        return load_model(self.model_path, adapter=self.adapter_path, device=device, dtype=dtype)


def interpolate_state(base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor],
                      alpha: float) -> dict[str, torch.Tensor]:
    """`(1 - alpha) * base + alpha * tuned` for every floating tensor (computed in fp32)."""
    missing = sorted(set(tuned) - set(base))
    if missing:
        raise UserError(f"wise-ft: the base model has no tensor {missing[0]!r}; is it the run's base model?")
    out = {}
    for name, t in tuned.items():
        b = base[name]
        if t.shape != b.shape:
            raise UserError(f"wise-ft: tensor {name!r} has shape {tuple(b.shape)} in the base, {tuple(t.shape)} tuned")
        if t.is_floating_point():
            out[name] = ((1 - alpha) * b.float().to(t.device) + alpha * t.float()).to(t.dtype)
        else:
            out[name] = t.clone()
    return out


def _check_alpha(alpha: float) -> float:
    if not 0 <= alpha <= 1:
        raise UserError(f"wise-ft: alpha must be in [0, 1], got {alpha}")
    return float(alpha)


def _run(run) -> tuple[Path, dict]:
    from retain.training.loop import load_trained

    result = run if hasattr(run, "metadata") else load_trained(run)
    return Path(result.out_dir), result.metadata


def _is_plain_lora(adapter_dir: Path) -> bool:
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    return cfg.get("peft_type") == "LORA" and not cfg.get("use_dora") and (adapter_dir / ADAPTER_WEIGHTS).is_file()


def _scaled_lora_state(adapter_dir: Path, alpha: float) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    return {k: (v * alpha if "lora_B" in k else v) for k, v in state.items()}


def _full_weights(meta: dict, out_dir: Path, device: str):
    """(base LoadedModel, tuned state dict) with adapters merged, all in fp32."""
    from retain.models import load_model

    base = load_model(meta["base_model"], device=device, dtype="float32")
    if meta.get("adapter_path"):
        tuned = load_model(meta["base_model"], adapter=str(out_dir), device=device, dtype="float32")
        if not hasattr(tuned.model, "merge_and_unload"):
            raise UserError("wise-ft: this adapter type cannot be merged into the weights (prompt learning)")
        tuned_state = tuned.model.merge_and_unload().state_dict()
    else:
        tuned_state = load_model(str(out_dir), device=device, dtype="float32").model.state_dict()
    return base, tuned_state


def wise_ft_model(run, alpha: float, device: str = "auto"):
    """The interpolated model for one alpha, in memory.

    Args:
        run: a finished run folder (or its `TrainResult`).
        alpha: 0 = base, 1 = fine-tuned.
        device: where to put it.

    Returns:
        A `LoadedModel` whose fingerprint identifies the interpolated weights.
    """
    from retain.models import load_model
    from retain.models.loading import wrap_model

    alpha = _check_alpha(alpha)
    out_dir, meta = _run(run)
    if meta.get("adapter_path") and _is_plain_lora(out_dir):
        lm = load_model(meta["base_model"], adapter=str(out_dir), device=device, dtype="float32")
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(lm.model, _scaled_lora_state(out_dir, alpha))
    else:
        base, tuned_state = _full_weights(meta, out_dir, device)
        base.model.load_state_dict(interpolate_state(base.model.state_dict(), tuned_state, alpha))
        lm = base
    lm.model.eval()
    wrapped = wrap_model(lm.model, lm.tokenizer, name=f"{out_dir}@wise-ft-{alpha:g}")
    return wrapped


def save_wise_ft(run, alphas: Sequence[float], out_root: str | Path | None = None) -> dict[float, ModelRef]:
    """Write one loadable folder per alpha: `OUT_ROOT/alpha-A/` (default OUT_ROOT: `RUN/wise-ft`).

    Plain LoRA runs give adapter folders (load on the base model); others give full model folders.

    Returns:
        alpha -> `ModelRef` (pass `.model_path` / `.adapter_path` to `load_model`, or call `.load()`).
    """
    from safetensors.torch import save_file

    from retain.training.export import model_files

    alphas = [_check_alpha(a) for a in alphas]
    out_dir, meta = _run(run)
    root = Path(out_root) if out_root is not None else out_dir / "wise-ft"
    refs: dict[float, ModelRef] = {}
    lora = bool(meta.get("adapter_path")) and _is_plain_lora(out_dir)
    cached = None
    for alpha in alphas:
        dest = root / f"alpha-{alpha:g}"
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if lora:
            for f in model_files(out_dir):  # adapter config and tokenizer; the weights are rescaled below
                if f.name != ADAPTER_WEIGHTS:
                    shutil.copy(f, tmp / f.name)
            save_file(_scaled_lora_state(out_dir, alpha), str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
            ref = ModelRef(meta["base_model"], str(dest))
        else:
            cached = cached or _full_weights(meta, out_dir, "cpu")
            base, tuned_state = cached
            model = base.model
            original = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(interpolate_state(original, tuned_state, alpha))
            model.save_pretrained(tmp)
            base.tokenizer.save_pretrained(tmp)
            model.load_state_dict(original)
            ref = ModelRef(str(dest))
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)  # a folder appears complete or not at all
        refs[alpha] = ref
    return refs


@register_method
class WiseFTMethod(MethodConfig):
    """Full fine-tuning, then WiSE-FT interpolations for each alpha in `OUT/wise-ft/alpha-A/`.

    Attributes:
        alphas: interpolation weights in [0, 1] (0 = base, 1 = fine-tuned).
    """

    name: ClassVar[str] = "wise-ft"
    default_learning_rate: ClassVar[float] = 1e-4

    alphas: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)

    @field_validator("alphas")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        bad = [a for a in v if not 0 <= a <= 1]
        if bad:
            raise ValueError(f"alphas must be in [0, 1], got {bad[0]}")
        return v

    def finish(self, model, ctx, out_dir) -> dict:
        # The run's metadata.json is written after this hook; describe the run in memory instead.
        run = _Run(Path(out_dir), {"base_model": str(ctx.base.name), "adapter_path": None})
        refs = save_wise_ft(run, self.alphas)
        return {"wise_ft": {f"{a:g}": r.model_path for a, r in refs.items()}}


@dataclass
class _Run:
    out_dir: Path
    metadata: dict


class WiseFTRuns:
    """WiSE-FT in a study: each `wise-ft` entry (`of: PARENT`, `alphas: [...]`) derives one run per alpha
    from its parent, named `PARENT+NAME-ALPHA`, made once every training run is done."""

    kind = "wise-ft"
    after_all = True

    def planned(self, entries, parent_entry, parent: dict | None) -> list[DerivedRun]:
        return [DerivedRun(f"{e.of}+{e.run_name}-{alpha:g}", self.kind, self.kind, e.of, key={"alpha": alpha},
                           detail=f"alpha {alpha:g}")
                for e in entries if e.method == self.kind and e.of == parent_entry.run_name for alpha in e.alphas]

    def model(self, parent: dict, run: DerivedRun, device: str, dtype: str):
        return wise_ft_model(parent["train_dir"], run.key["alpha"], device=device)

    def fields(self, parent: dict, run: DerivedRun) -> dict:
        alpha = run.key["alpha"]
        return {"method": self.kind, "options": {"alpha": alpha}, "alpha": alpha, "step": None, "of_steps": None,
                "point": None}

    def cost(self, parent: dict, run: DerivedRun) -> dict:
        # No training: the cost is the interpolation and evaluation (the parent's training is its own).
        return {"train_seconds": 0.0, "tokens_per_second": None, "trainable_parameters": 0,
                "total_parameters": parent["cost"]["total_parameters"], "peak_memory_mb": None}


register_derived(WiseFTRuns())
