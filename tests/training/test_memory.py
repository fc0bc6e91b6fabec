"""Memory: adapters recompute activations by default, and a frozen base holds no gradients or optimizer state."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from retain.methods import make_method
from retain.models.memory import activation_bytes
from retain.training.config import TrainSettings
from retain.training.trainer import use_checkpointing
from tests.training.helpers import assert_falling, fast, logged


def test_checkpointing_auto_follows_the_trainable_share_and_the_activations():
    big, small = 2 * 2**30, 40 * 2**20
    assert use_checkpointing(TrainSettings(), trainable_share=0.01, activations=big) is True  # an adapter
    assert use_checkpointing(TrainSettings(), trainable_share=1.0, activations=big) is False  # full fine-tuning
    # A tiny model's activations are not worth recomputing: LoRA would be slower than full for nothing.
    assert use_checkpointing(TrainSettings(), trainable_share=0.01, activations=small) is False
    assert use_checkpointing(TrainSettings(gradient_checkpointing=False), 0.01, big) is False
    assert use_checkpointing(TrainSettings(gradient_checkpointing=True), 1.0, small) is True
    assert TrainSettings(gradient_checkpointing="auto").gradient_checkpointing == "auto"


def test_activation_estimate_counts_layers_width_and_tokens():
    from transformers import LlamaConfig, T5Config

    llama = LlamaConfig(hidden_size=576, num_hidden_layers=30)
    assert activation_bytes(llama, 2400) == 2400 * 30 * 576 * 34
    assert activation_bytes(llama, 4800) == 2 * activation_bytes(llama, 2400)
    t5 = T5Config(d_model=128, num_layers=2, num_decoder_layers=3)
    assert activation_bytes(t5, 100) == 100 * 5 * 128 * 34  # encoder and decoder layers


class OptimizerState(TrainerCallback):
    """Records which parameters have gradients and optimizer state at the end of training."""

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        params = dict(model.named_parameters())
        self.with_grad = {n for n, p in params.items() if p.grad is not None}
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.in_optimizer = {n for n, p in params.items() if id(p) in ids}
        self.with_state = {n for n, p in params.items() if p in optimizer.state and optimizer.state[p]}
        self.trainable = {n for n, p in params.items() if p.requires_grad}


@pytest.mark.parametrize("name,options,setting,checkpointing", [("full", {}, "auto", False),
                                                                 ("lora", {"r": 4}, "auto", False),  # tiny: not worth it
                                                                 ("lora", {"r": 4}, True, True)])
def test_frozen_base_keeps_no_gradients_or_optimizer_state(name, options, setting, checkpointing, tiny_llama_dir,
                                                           tmp_path):
    from retain.training.loop import train

    probe = OptimizerState()
    result = train(str(tiny_llama_dir), "toy-ner", make_method(name, options),
                   fast(learning_rate=2e-2, gradient_checkpointing=setting), tmp_path / "run", callbacks=[probe])
    assert result.metadata["gradient_checkpointing"] is checkpointing
    assert_falling(logged(result.out_dir))
    assert probe.in_optimizer == probe.trainable and probe.with_state <= probe.trainable
    assert probe.with_grad <= probe.trainable
    if name == "lora":
        assert probe.trainable and all("lora_" in n for n in probe.trainable)
