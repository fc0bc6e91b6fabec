"""The one loop: resume after a kill, gradient accumulation, finished-run reuse, NaN stop, metadata."""

from __future__ import annotations

import json

import pytest
import torch

from retain.methods import make_method
from retain.errors import UserError
from retain.methods import base as methods_base
from retain.methods.full import FullMethod
from retain.tasks.base import Example, Task
from retain.training.loop import train
from retain.training.callbacks import NonFiniteLoss
from retain.training.checkpoints import last_complete_checkpoint
from tests.training.helpers import Capture, KillAt, fast, logged


@pytest.mark.parametrize("arch,method,grouped", [("t5", "full", True), ("llama", "lora", True),
                                                 ("llama", "full", False)])
def test_resume_after_a_kill_continues_with_the_same_losses(arch, method, grouped, model_dirs, tmp_path):
    # 16 examples / batch 4 = 4 steps per epoch: the kill lands in the second epoch.
    settings = fast(max_steps=8, train_examples=16, save_steps=3, learning_rate=3e-3, group_by_length=grouped)
    model = str(model_dirs[arch])
    whole = train(model, "toy-ner", make_method(method), settings, tmp_path / "whole")
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(model, "toy-ner", make_method(method), settings, tmp_path / "cut", callbacks=[KillAt(6)])
    assert not (tmp_path / "cut" / "metadata.json").exists()
    assert last_complete_checkpoint(tmp_path / "cut" / "checkpoints").name == "checkpoint-6"
    resumed = train(model, "toy-ner", make_method(method), settings, tmp_path / "cut")
    assert resumed.metadata["resumed_from_step"] == 6 and resumed.metadata["steps"] == 8
    a, b = logged(whole.out_dir), logged(resumed.out_dir)
    assert sorted(b) == list(range(1, 9))  # one log line per step: none lost, none doubled
    assert b == pytest.approx(a, rel=1e-5)
    assert resumed.metadata["eval_loss"] == pytest.approx(whole.metadata["eval_loss"], rel=1e-5)
    assert not (tmp_path / "cut" / "checkpoints").exists()  # removed once finished


def test_incomplete_checkpoint_is_skipped(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-6").mkdir()  # cut short by a kill while saving
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-3"
    assert last_complete_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_gradient_accumulation_equals_one_big_batch(arch, model_dirs, tmp_path):
    weights = {}
    for bs, accum in ((4, 1), (2, 2)):
        cap = Capture()
        train(str(model_dirs[arch]), "toy-ner", make_method("full"), fast(max_steps=2, batch_size=bs, grad_accum=accum,
              learning_rate=1e-3, eval_examples=0), tmp_path / f"{bs}x{accum}", callbacks=[cap])
        weights[(bs, accum)] = {n: p.detach().clone() for n, p in cap.model.named_parameters()}
    for name, w in weights[(4, 1)].items():
        torch.testing.assert_close(weights[(2, 2)][name], w, rtol=1e-4, atol=1e-6)


def test_finished_run_is_reused_and_a_different_config_refused(model_dirs, tmp_path):
    settings = fast(max_steps=2)
    first = train(str(model_dirs["llama"]), "toy-ner", make_method("full"), settings, tmp_path / "run")
    stamp = (tmp_path / "run" / "metadata.json").stat().st_mtime_ns
    again = train(str(model_dirs["llama"]), "toy-ner", make_method("full"), fast(max_steps=2, progress=True), tmp_path / "run")
    assert again.reused and again.metadata == first.metadata
    assert (tmp_path / "run" / "metadata.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="different config"):
        train(str(model_dirs["llama"]), "toy-ner", make_method("full"), fast(max_steps=3), tmp_path / "run")


class _NaNAtStep(FullMethod):
    """Full fine-tuning whose penalty turns NaN at the 5th optimizer step (a diverging run)."""

    name = "test-nan"

    def make_penalty(self, model, ctx):
        calls = {"n": 0}

        def penalty():
            calls["n"] += 1
            return torch.tensor(float("nan") if calls["n"] >= 5 else 0.0)

        return penalty


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(model_dirs, tmp_path, monkeypatch):
    monkeypatch.setitem(methods_base._METHODS, "test-nan", _NaNAtStep)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 5.*checkpoint-3") as exc:
        train(str(model_dirs["t5"]), "toy-ner", make_method("test-nan"), fast(max_steps=6, save_steps=3), out)
    assert isinstance(exc.value, UserError) and "\n" not in str(exc.value)
    assert last_complete_checkpoint(out / "checkpoints").name == "checkpoint-3"
    assert not (out / "metadata.json").exists()
    last = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "stopped" and last["step"] == 5


class _NaNGradAtStep(FullMethod):
    """A finite penalty (0) whose gradient is NaN from the 4th step: sqrt'(0) * 0."""

    name = "test-nan-grad"

    def make_penalty(self, model, ctx):
        calls, weight = {"n": 0}, next(model.parameters())

        def penalty():
            calls["n"] += 1
            return (0 * weight.sum()).sqrt() if calls["n"] >= 4 else weight.sum() * 0

        return penalty


def test_nan_gradient_with_a_finite_loss_also_stops(model_dirs, tmp_path, monkeypatch):
    monkeypatch.setitem(methods_base._METHODS, "test-nan-grad", _NaNGradAtStep)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"gradient norm is nan at step 4.*checkpoint-3"):
        train(str(model_dirs["llama"]), "toy-ner", make_method("test-nan-grad"), fast(max_steps=6, save_steps=3), out)
    assert last_complete_checkpoint(out / "checkpoints").name == "checkpoint-3"


def test_metadata_and_logs(model_dirs, tmp_path):
    from retain.training.callbacks import tensorboard_available

    r = train(str(model_dirs["llama"]), "toy-ner", make_method("lora"), fast(max_steps=3, seed=7), tmp_path / "run")
    m = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert m == r.metadata
    assert {"torch", "transformers", "peft", "accelerate", "python"} <= set(m["versions"])
    assert m["seed"] == 7 and m["config"]["settings"]["seed"] == 7
    assert 0 < m["parameters"]["trainable"] < m["parameters"]["total"]
    assert m["real_tokens"] > 0 and m["tokens_per_second"] > 0 and m["wall_seconds"] >= m["train_seconds"] > 0
    assert m["peak_memory"]["bytes"] > 0 and m["peak_memory"]["kind"] in ("process_peak_rss", "cuda_max_allocated")
    assert m["base_weights_unchanged"] is True and m["git_commit"] is None or isinstance(m["git_commit"], str)
    assert m["data"]["validation_from"] == "validation" and m["data"]["validation_examples"] == 8
    assert m["precision"] == "fp32" and m["device"] == "cpu"
    log = logged(r.out_dir)
    assert sorted(log) == [1, 2, 3]
    assert set(logged(r.out_dir, "eval_loss")) == {3}
    if tensorboard_available():
        assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def _train_only_task(n: int) -> Task:
    def loader(split, limit):
        return [Example(f"ex{i}", f"Copy: w{i}", f"w{i}") for i in range(limit or n)][:n]

    return Task(name="copy", family="copy", version="1", kind="generate", metric="exact_match",
                prompt_template="Copy: {w}", max_new_tokens=4, splits=("train",), loader=loader)


def test_validation_is_held_out_of_train_when_there_is_no_validation_split(model_dirs, tmp_path):
    r = train(str(model_dirs["llama"]), _train_only_task(40), make_method("full"),
              fast(max_steps=2, train_examples=20, eval_examples=5), tmp_path / "run")
    d = r.metadata["data"]
    assert d["validation_from"] == "train slice" and d["validation_examples"] == 5 and d["train_samples"] == 20


_KILLED_CHILD = """
import os, signal, sys
from transformers import TrainerCallback
from retain.methods import make_method
from retain.training.loop import train
from tests.training.helpers import fast

class Kill9(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 4:
            os.kill(os.getpid(), signal.SIGKILL)

train(sys.argv[1], "toy-ner", make_method("full"), fast(max_steps=6, save_steps=2), sys.argv[2], callbacks=[Kill9()])
"""


def test_resume_after_a_real_kill_9(model_dirs, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", _KILLED_CHILD, str(model_dirs["t5"]), str(out)], env=env,
                           cwd=root, capture_output=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert last_complete_checkpoint(out / "checkpoints").name == "checkpoint-4"
    assert not (out / "metadata.json").exists()
    whole = train(str(model_dirs["t5"]), "toy-ner", make_method("full"), fast(max_steps=6, save_steps=2), tmp_path / "whole")
    resumed = train(str(model_dirs["t5"]), "toy-ner", make_method("full"), fast(max_steps=6, save_steps=2), out)
    assert resumed.metadata["resumed_from_step"] == 4
    assert logged(out) == pytest.approx(logged(whole.out_dir), rel=1e-5)


class _OutOfMemoryAtStep(FullMethod):
    """Full fine-tuning that runs out of memory at the 5th optimizer step (a longer batch than the rest)."""

    name = "test-oom"

    def make_penalty(self, model, ctx):
        calls = {"n": 0}

        def penalty():
            calls["n"] += 1
            if calls["n"] >= 5:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
            return torch.tensor(0.0)

        return penalty


def test_out_of_memory_in_training_is_one_line_saying_what_to_change(model_dirs, tmp_path, monkeypatch):
    monkeypatch.setitem(methods_base._METHODS, "test-oom", _OutOfMemoryAtStep)
    out = tmp_path / "run"
    with pytest.raises(UserError) as exc:
        train(str(model_dirs["t5"]), "toy-ner", make_method("test-oom"), fast(max_steps=6, save_steps=3), out)
    message = str(exc.value)
    assert "out of memory at step 5" in message and "batch_size" in message and "\n" not in message
    assert last_complete_checkpoint(out / "checkpoints").name == "checkpoint-3"
    assert json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["reason"] == "out of memory"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_finished_run_folder_can_be_moved(method, model_dirs, tmp_path):
    """metadata.json keeps the paths it was written with; the weights are found where the folder is now."""
    from retain.training.loop import load_trained

    run = train(str(model_dirs["llama"]), "toy-ner", make_method(method), fast(max_steps=2), tmp_path / "run")
    (tmp_path / "run").rename(tmp_path / "moved")
    moved = load_trained(tmp_path / "moved")
    assert moved.adapter_path == (str(tmp_path / "moved") if method == "lora" else None)
    assert moved.model_path == (str(model_dirs["llama"]) if method == "lora" else str(tmp_path / "moved"))
    assert moved.load(dtype="float32").fingerprint != run.metadata["base_fingerprint"]
