"""`keep_at`: the model kept at chosen points of training (the forgetting trajectory's checkpoints)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from retain.methods import make_method
from retain.errors import UserError
from retain.models import load_model
from retain.training.loop import train
from retain.training.callbacks import kept_steps
from retain.training.config import make_settings
from tests.training.helpers import KillAt, fast, logits_of, probe_batch


def test_points_become_steps_before_the_end():
    assert kept_steps([0.25, 0.5, 0.75], 8) == {2: 0.25, 4: 0.5, 6: 0.75}
    assert kept_steps([0.01, 3], 10) == {1: 0.01, 3: 3}  # at least step 1; whole numbers are steps
    assert kept_steps([0.5, 4], 8) == {4: 0.5}  # one folder per step
    assert kept_steps([0.999, 8, 9], 8) == {}  # the last step is the finished model itself


@pytest.mark.parametrize("points, expected", [([1.5], "1.5"), ([0.5, 0.5], "repeats"), ([0], "0"), ([-2], "-2")])
def test_bad_points_are_refused(points, expected):
    with pytest.raises(UserError, match="keep_at") as e:
        make_settings({"keep_at": points})
    assert expected in str(e.value)


def test_kept_full_model_is_the_model_after_that_step(model_dirs, tmp_path):
    """With a constant learning rate, step 3 of a 6-step run is exactly a 3-step run's final model."""
    model = str(model_dirs["llama"])
    common = dict(scheduler="constant", learning_rate=3e-3)
    run = train(model, "toy-ner", make_method("full"), fast(max_steps=6, keep_at=[0.5, 2], **common), tmp_path / "long")
    short = train(model, "toy-ner", make_method("full"), fast(max_steps=3, **common), tmp_path / "short")
    assert run.metadata["kept"] == [{"point": 2, "step": 2, "path": "steps/step-2"},
                                    {"point": 0.5, "step": 3, "path": "steps/step-3"}]
    kept, final = load_file(tmp_path / "long/steps/step-3/model.safetensors"), load_file(short.out_dir / "model.safetensors")
    assert kept.keys() == final.keys()
    assert all((kept[k] == final[k]).all() for k in kept)
    step2 = load_file(tmp_path / "long/steps/step-2/model.safetensors")
    assert any(not (step2[k] == kept[k]).all() for k in kept)  # a different point of training
    config = json.loads((tmp_path / "long/steps/step-3/config.json").read_text())
    assert config.get("use_cache") is not False  # the kept model generates with its KV cache
    assert (tmp_path / "long/steps/step-3/tokenizer_config.json").is_file()
    assert not list((tmp_path / "long/steps").glob(".*"))  # no partial folder left


def test_kept_lora_step_is_an_adapter_and_survives_a_kill(model_dirs, tmp_path):
    model = str(model_dirs["llama"])
    settings = fast(max_steps=6, save_steps=3, keep_at=[2, 4], learning_rate=3e-3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(model, "toy-ner", make_method("lora"), settings, tmp_path / "run", callbacks=[KillAt(3)])
    assert (tmp_path / "run/steps/step-2").is_dir() and not (tmp_path / "run/steps/step-4").exists()
    run = train(model, "toy-ner", make_method("lora"), settings, tmp_path / "run")
    assert run.metadata["resumed_from_step"] == 3 and [k["step"] for k in run.metadata["kept"]] == [2, 4]
    step4 = tmp_path / "run/steps/step-4"
    assert (step4 / "adapter_config.json").is_file() and not (step4 / "model.safetensors").exists()
    kept, base = load_model(model, adapter=str(step4), dtype="float32"), load_model(model, dtype="float32")
    batch = probe_batch(base.tokenizer, False)
    assert not logits_of(kept.model, batch).allclose(logits_of(base.model, batch))


def test_runs_from_before_keep_at_still_match_and_a_study_may_replace_its_own(model_dirs, tmp_path):
    model = str(model_dirs["llama"])
    first = train(model, "toy-ner", make_method("full"), fast(max_steps=2), tmp_path / "run")
    meta = json.loads((tmp_path / "run/metadata.json").read_text())
    meta["config"]["settings"].pop("keep_at")  # as written before the setting existed
    (tmp_path / "run/metadata.json").write_text(json.dumps(meta))
    assert train(model, "toy-ner", make_method("full"), fast(max_steps=2), tmp_path / "run").reused
    with pytest.raises(UserError, match="different config"):
        train(model, "toy-ner", make_method("full"), fast(max_steps=2, keep_at=[1]), tmp_path / "run")
    again = train(model, "toy-ner", make_method("full"), fast(max_steps=2, keep_at=[1]), tmp_path / "run", replace_other=True)
    assert not again.reused and again.metadata["kept"][0]["step"] == 1 and first.metadata["kept"] == []
