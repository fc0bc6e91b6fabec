"""Helpers and fixtures shared by the training and method tests (imported by both conftests).

Runs are tiny: a few optimizer steps of the 2-layer T5 / Llama models from `tests/conftest.py` on a
handful of toy examples, single-threaded (the models are too small to gain from threads, and a
shared CI machine makes OpenMP spin-waiting very slow).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from retain.training.config import TrainSettings

FAST = dict(max_steps=6, batch_size=4, train_examples=24, eval_examples=8, logging_steps=1, save_steps=3,
            warmup=0.0, progress=False)


@pytest.fixture(autouse=True)
def _one_thread_and_private_cache(monkeypatch, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("RETAIN_CACHE_DIR", str(tmp_path / "retain-cache"))
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def model_dirs(tiny_t5_dir, tiny_llama_dir) -> dict[str, Path]:
    return {"t5": tiny_t5_dir, "llama": tiny_llama_dir}


def fast(**overrides) -> TrainSettings:
    """Settings for a run of a few steps."""
    return TrainSettings(**{**FAST, **overrides})


class Capture(TrainerCallback):
    """Keeps the in-memory trained model (to compare with what was saved)."""

    model = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


class KillAt(TrainerCallback):
    """Simulates a crash right after the checkpoint of step `step` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"simulated kill after step {self.step}")


def logged(out_dir: Path, key: str = "loss") -> dict[int, float]:
    """`{step: value}` of a key in a run's train_log.jsonl."""
    out = {}
    for line in (Path(out_dir) / "train_log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if key in rec:
            out[rec["step"]] = rec[key]
    return out


def assert_falling(losses: dict[int, float]) -> None:
    values = [losses[k] for k in sorted(losses)]
    assert values and all(math.isfinite(v) for v in values), values
    assert sum(values[-2:]) / 2 < sum(values[:2]) / 2, values


def probe_batch(tokenizer, is_seq2seq: bool, n: int = 4) -> dict[str, torch.Tensor]:
    """A fixed padded batch of toy-qa examples (not the training task) for comparing logits."""
    from retain.tasks import get_task
    from retain.training.data import Collator, Encoder, samples_from_examples

    samples = samples_from_examples(get_task("toy-qa").examples("validation", n), "probe")
    enc = Encoder(tokenizer, is_seq2seq)
    collate = Collator(tokenizer.pad_token_id, decoder_start_id=tokenizer.pad_token_id if is_seq2seq else None)
    batch = collate(enc.encode_all(samples))
    batch.pop("labels")
    return batch


@torch.no_grad()
def logits_of(model, batch) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    return model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
