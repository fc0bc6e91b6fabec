"""Every method through the one loop, as a table of cases (like PEFT's custom-model tests).

For each case, a few optimizer steps on a tiny model must give a finite, falling loss; exactly the
parameters the method makes trainable must change (all for full fine-tuning, only the adapter for
PEFT methods); the saved model or adapter must reload with identical logits; and the base weights
must stay byte-identical for adapters.
"""

from __future__ import annotations

import pytest
import torch

from retain.methods import TrainContext, make_method
from retain.models import load_model
from tests.training.helpers import Capture, assert_falling, fast, logged, logits_of, probe_batch

# id, architecture, method, options, learning rate, adapter (base frozen)?
CASES = [
    ("full-t5", "t5", "full", {}, 3e-3, False),
    ("full-llama", "llama", "full", {}, 3e-3, False),
    ("lora-t5", "t5", "lora", {"r": 4}, 2e-2, True),
    ("lora-llama", "llama", "lora", {"r": 4, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}, 2e-2, True),
    ("dora-llama", "llama", "lora", {"r": 4, "use_dora": True}, 2e-2, True),
    ("ia3-t5", "t5", "ia3", {}, 5e-2, True),
    ("prompt-tuning-llama", "llama", "prompt_tuning", {"num_virtual_tokens": 4}, 5e-2, True),
    ("l2sp-t5", "t5", "l2sp", {"lambda": 0.1}, 3e-3, False),
    ("ewc-llama", "llama", "ewc", {"tasks": ["toy-qa"], "fisher_examples": 4, "lambda": 10.0}, 3e-3, False),
    ("multitask-t5", "t5", "multitask", {"tasks": ["toy-qa"], "examples_per_task": 12}, 3e-3, False),
    ("replay-llama", "llama", "replay", {"ratio": 0.25, "sources": ["toy-qa"], "examples_per_source": 8}, 3e-3, False),
    ("self-replay-t5", "t5", "replay",
     {"ratio": 0.25, "self_replay": ["toy-qa"], "examples_per_source": 4, "max_new_tokens": 6}, 3e-3, False),
    ("wise-ft-llama", "llama", "wise-ft", {"alphas": [0.5]}, 3e-3, False),
    # Activation checkpointing must still reach adapters behind frozen embeddings.
    ("lora-t5-checkpointing", "t5", "lora", {"r": 4}, 2e-2, True, {"gradient_checkpointing": True}),
    ("full-llama-accum", "llama", "full", {}, 3e-3, False, {"grad_accum": 2, "batch_size": 2}),
]


def _initial_model(method, model_dir, settings):
    """The model exactly as the loop prepares it before step 1 (same seed, same hook)."""
    from transformers import set_seed

    lm = load_model(str(model_dir), device="cpu", dtype="float32")
    ctx = TrainContext(base=lm, target=None, settings=settings, target_samples=[], out_dir=None)
    set_seed(settings.seed)
    return method.prepare_model(lm.model, ctx), lm


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_method_case(case, model_dirs, tmp_path):
    from retain.training.loop import train

    _, arch, name, options, lr, adapter, *extra = case
    method = make_method(name, options)
    settings = fast(learning_rate=lr, **(extra[0] if extra else {}))
    capture = Capture()
    result = train(str(model_dirs[arch]), "toy-ner", method, settings, tmp_path / "run", callbacks=[capture])

    # A few steps give a finite, falling loss.
    assert_falling(logged(result.out_dir))
    meta = result.metadata
    assert meta["steps"] == settings.max_steps and meta["status"] == "finished"

    # Exactly the parameters the method made trainable changed.
    initial, base = _initial_model(method, model_dirs[arch], settings)
    expected = {n for n, p in initial.named_parameters() if p.requires_grad}
    trained = dict(capture.model.named_parameters())
    changed = {n for n, p in initial.named_parameters() if not torch.equal(p.detach(), trained[n].detach())}
    assert changed == expected
    if adapter:
        assert len(expected) < len(dict(initial.named_parameters()))
        assert meta["base_weights_unchanged"] is True
        assert (result.out_dir / "adapter_config.json").is_file() and result.adapter_path == str(result.out_dir)
    else:
        assert expected == set(dict(initial.named_parameters()))
        assert meta["base_weights_unchanged"] is False
        assert (result.out_dir / "model.safetensors").is_file() and result.adapter_path is None
    assert meta["parameters"]["trainable"] == sum(initial.get_parameter(n).numel() for n in expected)

    # Save and reload give identical logits.
    batch = probe_batch(base.tokenizer, base.is_seq2seq)
    reloaded = result.load(device="cpu", dtype="float32")
    torch.testing.assert_close(logits_of(reloaded.model, batch), logits_of(capture.model, batch), rtol=0, atol=1e-5)
    if name == "wise-ft":
        assert (result.out_dir / "wise-ft" / "alpha-0.5" / "model.safetensors").is_file()
        assert meta["method_info"]["wise_ft"]["0.5"].endswith("alpha-0.5")
