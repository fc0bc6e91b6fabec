"""Memory: adapters recompute activations by default, and a frozen base holds no gradients or optimizer state."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from retain.methods import make_method
from retain.training import TrainSettings
from retain.training.trainer import use_checkpointing
from tests.training.helpers import assert_falling, fast, logged


def test_checkpointing_auto_follows_the_trainable_share():
    assert use_checkpointing(TrainSettings(), trainable_share=0.01) is True  # an adapter
    assert use_checkpointing(TrainSettings(), trainable_share=1.0) is False  # full fine-tuning
    assert use_checkpointing(TrainSettings(gradient_checkpointing=False), 0.01) is False
    assert use_checkpointing(TrainSettings(gradient_checkpointing=True), 1.0) is True
    assert TrainSettings(gradient_checkpointing="auto").gradient_checkpointing == "auto"


class OptimizerState(TrainerCallback):
    """Records which parameters have gradients and optimizer state at the end of training."""

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        params = dict(model.named_parameters())
        self.with_grad = {n for n, p in params.items() if p.grad is not None}
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.in_optimizer = {n for n, p in params.items() if id(p) in ids}
        self.with_state = {n for n, p in params.items() if p in optimizer.state and optimizer.state[p]}
        self.trainable = {n for n, p in params.items() if p.requires_grad}


@pytest.mark.parametrize("name,options,checkpointing", [("full", {}, False),
                                                         ("lora", {"r": 4}, True)])
def test_frozen_base_keeps_no_gradients_or_optimizer_state(name, options, checkpointing, tiny_llama_dir, tmp_path):
    from retain.training import train

    probe = OptimizerState()
    result = train(str(tiny_llama_dir), "toy-ner", make_method(name, options), fast(learning_rate=2e-2),
                   tmp_path / "run", callbacks=[probe])
    assert result.metadata["gradient_checkpointing"] is checkpointing
    assert_falling(logged(result.out_dir))
    assert probe.in_optimizer == probe.trainable and probe.with_state <= probe.trainable
    assert probe.with_grad <= probe.trainable
    if name == "lora":
        assert probe.trainable and all("lora_" in n for n in probe.trainable)
