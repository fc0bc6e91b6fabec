"""LoRA (and DoRA) through PEFT: the base weights stay frozen and byte-identical.

Typed options cover what people tune (rank, alpha, dropout, target modules, DoRA); any other
`peft.LoraConfig` field can be passed through `options` (e.g. `--set options={use_rslora: true}`).
When `target_modules` is not given it is chosen per architecture: the attention query and value
projections, as in the LoRA paper (T5: `q`, `v`; Llama/Qwen/Mistral: `q_proj`, `v_proj`), else
PEFT's own table, else every linear layer.

`quantize: nf4` (or the method name `qlora`) trains the same adapters on a 4-bit base loaded through
bitsandbytes (QLoRA; `retain.models.quantization`): CUDA only, refused on a CPU with one line.

The saved adapter is PEFT's standard layout (`adapter_config.json`, `adapter_model.safetensors`),
loadable with `PeftModel.from_pretrained(base, out_dir)` or `retain.models.load_model(base,
adapter=out_dir)`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from retain.methods.adapters import apply_peft, build_peft_config, task_type_for
from retain.methods.base import MethodConfig, register_method
from retain.models.quantization import is_quantized

TARGETS = {
    "t5": ["q", "v"], "mt5": ["q", "v"], "umt5": ["q", "v"],
    "llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"], "qwen3": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"], "gemma": ["q_proj", "v_proj"], "gemma2": ["q_proj", "v_proj"],
}
_TYPED = {"r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "task_type"}


def default_targets(model) -> list[str] | str:
    """The modules LoRA adapts when none are given, by `config.model_type`."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    model_type = getattr(getattr(model, "config", None), "model_type", "")
    if model_type in TARGETS:
        return list(TARGETS[model_type])
    if model_type in PEFT_TARGETS:
        return list(PEFT_TARGETS[model_type])
    return "all-linear"


@register_method
class LoraMethod(MethodConfig):
    """Low-rank adapters on chosen linear layers.

    Attributes:
        r: rank of the update (> 0).
        alpha: scaling numerator; the update is scaled by alpha / r.
        dropout: dropout on the adapter input, in [0, 1).
        target_modules: module names (or `all-linear`); default chosen per architecture.
        use_dora: weight-decomposed LoRA (DoRA).
        quantize: `nf4` or `fp4`: train on the base quantized to 4 bits (QLoRA, with double
            quantization); None (default): the base as loaded.
        options: any other `peft.LoraConfig` field.
    """

    name: ClassVar[str] = "lora"
    default_learning_rate: ClassVar[float] = 3e-4

    r: int = Field(8, gt=0)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str | None = None
    use_dora: bool = False
    quantize: Literal["nf4", "fp4"] | None = None
    options_: dict[str, Any] = Field(default_factory=dict, alias="options")

    @model_validator(mode="after")
    def _check(self) -> "LoraMethod":
        clash = sorted(set(self.options_) & _TYPED)
        if clash:
            raise ValueError(f"set {clash[0]!r} with its own option, not inside options")
        self.peft_config(task_type="CAUSAL_LM", targets=self.target_modules or ["q"])  # validate now
        return self

    def peft_config(self, task_type: str, targets):
        opts = {"r": self.r, "lora_alpha": self.alpha, "lora_dropout": self.dropout, "target_modules": targets,
                "use_dora": self.use_dora, **self.options_}
        return build_peft_config("LORA", opts, task_type)

    def options(self) -> dict[str, Any]:
        # `quantize: null` is left out, so that LoRA runs recorded before QLoRA existed keep their keys.
        opts = super().options()
        if opts.get("quantize") is None:
            opts.pop("quantize", None)
        return opts

    def load_options(self) -> dict[str, Any]:
        return {"quantize": self.quantize} if self.quantize else {}

    def prepare_model(self, model, ctx):
        if is_quantized(model):
            from peft import prepare_model_for_kbit_training

            # Freezes the base and keeps its norms in fp32; gradient checkpointing is the loop's choice.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        targets = self.target_modules or default_targets(model)
        return apply_peft(model, self.peft_config(task_type_for(ctx), targets))

    def finish(self, model, ctx, out_dir) -> dict:
        cfg = model.peft_config["default"]
        targets = cfg.target_modules
        return {"peft_type": "LORA", "target_modules": sorted(targets) if isinstance(targets, (set, list)) else targets,
                "quantize": self.quantize}


@register_method
class QLoraMethod(LoraMethod):
    """LoRA on a 4-bit NF4 base (QLoRA): `lora` with `quantize: nf4` by default (CUDA only)."""

    name: ClassVar[str] = "qlora"

    quantize: Literal["nf4", "fp4"] = "nf4"
