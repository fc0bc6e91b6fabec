"""WiSE-FT: alpha 0 is the base model, alpha 1 the fine-tuned one, in memory and as saved folders."""

from __future__ import annotations

import pytest
import torch

from retain.errors import UserError
from retain.methods import make_method, save_wise_ft, wise_ft_model
from retain.methods.wise_ft import interpolate_state
from retain.models import load_model
from retain.training.loop import train
from tests.training.helpers import fast, logits_of, probe_batch


@pytest.fixture(params=[("t5", "full"), ("llama", "lora")], ids=["full-t5", "lora-llama"])
def run(request, model_dirs, tmp_path):
    arch, method = request.param
    return train(str(model_dirs[arch]), "toy-ner", make_method(method), fast(max_steps=3, learning_rate=2e-2), tmp_path / "run")


def test_alpha_0_is_base_and_alpha_1_is_tuned(run, tmp_path):
    base = load_model(run.metadata["base_model"], device="cpu", dtype="float32")
    tuned = run.load(device="cpu", dtype="float32")
    batch = probe_batch(base.tokenizer, base.is_seq2seq)
    base_logits, tuned_logits = logits_of(base.model, batch), logits_of(tuned.model, batch)
    assert not torch.allclose(base_logits, tuned_logits)

    models = {a: wise_ft_model(run, a, device="cpu") for a in (0.0, 0.5, 1.0)}
    torch.testing.assert_close(logits_of(models[0.0].model, batch), base_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits_of(models[1.0].model, batch), tuned_logits, rtol=0, atol=1e-5)
    half = logits_of(models[0.5].model, batch)
    assert not torch.allclose(half, base_logits) and not torch.allclose(half, tuned_logits)
    assert len({m.fingerprint for m in models.values()}) == 3  # caches can tell them apart

    # Saved folders load with load_model and match the in-memory models.
    refs = save_wise_ft(run, [0.0, 0.5, 1.0], tmp_path / "wise")
    adapter = run.adapter_path is not None
    for alpha, ref in refs.items():
        assert (ref.adapter_path is not None) == adapter
        folder = tmp_path / "wise" / f"alpha-{alpha:g}"
        assert (folder / ("adapter_config.json" if adapter else "config.json")).is_file()
        assert not (folder / "metadata.json").exists()  # a model folder, not a run
        torch.testing.assert_close(logits_of(ref.load(device="cpu", dtype="float32").model, batch),
                                   logits_of(models[alpha].model, batch), rtol=0, atol=1e-5)


def test_interpolate_state_is_exact_at_both_ends():
    base = {"w": torch.randn(3, 3), "steps": torch.tensor([1])}
    tuned = {"w": torch.randn(3, 3), "steps": torch.tensor([7])}
    assert torch.equal(interpolate_state(base, tuned, 0.0)["w"], base["w"])
    assert torch.equal(interpolate_state(base, tuned, 1.0)["w"], tuned["w"])
    torch.testing.assert_close(interpolate_state(base, tuned, 0.25)["w"], 0.75 * base["w"] + 0.25 * tuned["w"])
    assert interpolate_state(base, tuned, 0.3)["steps"].item() == 7


def test_bad_alpha_and_unfinished_run(tmp_path):
    with pytest.raises(UserError, match="no finished training run"):
        wise_ft_model(tmp_path, 0.5)
    with pytest.raises(UserError, match=r"alpha must be in \[0, 1\]"):
        save_wise_ft(tmp_path, [1.5])
