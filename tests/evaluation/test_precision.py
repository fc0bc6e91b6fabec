"""bf16 on CPUs that have it: detection, what `auto` picks, autocast in the engine, cache keys, metadata.

The test suite pins `RETAIN_CPU_BF16=0` (tests/conftest.py) so numeric checks run in fp32 on every
CPU; here it is set per test to exercise both answers without depending on the machine.
"""

from __future__ import annotations

import pytest
import torch

from retain.methods import make_method
from retain.evaluation import engine
from retain.evaluation.runner import EvalSettings, cache_key
from retain.models import device as dev
from retain.models.device import BF16_AUTOCAST, BF16_SCORING, FP32, Precision
from retain.models.loading import LazyModel, load_model, pick_dtype, pick_precision
from retain.tasks import get_task

CPU = torch.device("cpu")


def test_detection_needs_a_native_bf16_flag(monkeypatch):
    monkeypatch.delenv(dev.ENV, raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    for flags, expected in (({"avx512f", "avx512bw"}, False), ({"avx512_bf16"}, True), ({"amx_bf16"}, True),
                            (set(), False)):
        dev._detect_cpu_bf16.cache_clear()
        monkeypatch.setattr(dev, "_cpu_flags", lambda flags=flags: flags)
        assert dev.cpu_has_fast_bf16() is expected, flags
    dev._detect_cpu_bf16.cache_clear()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # oneDNN cannot use it
    assert dev.cpu_has_fast_bf16() is False
    dev._detect_cpu_bf16.cache_clear()


def test_env_overrides_detection(monkeypatch):
    monkeypatch.setenv(dev.ENV, "1")
    assert dev.cpu_has_fast_bf16() and dev.fast_bf16(CPU)
    monkeypatch.setenv(dev.ENV, "off")
    assert not dev.cpu_has_fast_bf16() and not dev.fast_bf16(CPU)


def test_cpu_flags_are_read():
    flags = dev._cpu_flags()
    assert isinstance(flags, set)
    if torch.cpu.get_capabilities().get("architecture") == "x86_64":
        assert "sse2" in flags


def test_auto_picks_autocast_only_where_bf16_is_fast(monkeypatch):
    monkeypatch.setenv(dev.ENV, "1")
    assert pick_precision("auto", CPU) == BF16_SCORING and BF16_SCORING.generation == FP32
    assert pick_dtype("auto", CPU) == torch.float32  # weights stay fp32
    assert pick_precision("float32", CPU) == FP32  # the opt-out
    assert pick_precision("bfloat16", CPU) == Precision(torch.bfloat16)
    monkeypatch.setenv(dev.ENV, "0")
    assert pick_precision("auto", CPU) == FP32
    assert pick_precision("bf16-autocast", CPU) == BF16_AUTOCAST  # asked for explicitly
    assert BF16_AUTOCAST.name == "bf16-autocast" and FP32.name == "float32"


def test_training_auto_precision(monkeypatch):
    from retain.training.config import TrainSettings
    from retain.training.trainer import mixed_precision

    monkeypatch.setenv(dev.ENV, "1")
    assert mixed_precision(TrainSettings(), CPU, is_seq2seq=False) == "bf16"
    assert mixed_precision(TrainSettings(), CPU, is_seq2seq=True) == "bf16"  # T5 is fine in bf16, not in fp16
    assert mixed_precision(TrainSettings(precision="fp32"), CPU, is_seq2seq=False) == "fp32"
    monkeypatch.setenv(dev.ENV, "0")
    assert mixed_precision(TrainSettings(), CPU, is_seq2seq=False) == "fp32"


def test_bf16_asked_for_on_a_cpu_without_it_is_honoured_with_one_warning(monkeypatch, caplog):
    from retain.training.config import TrainSettings
    from retain.training.trainer import mixed_precision

    dev._warn_once.cache_clear()
    monkeypatch.setenv(dev.ENV, "1")
    with caplog.at_level("WARNING", logger=dev.log.name):
        assert pick_precision("bf16-autocast", CPU) == BF16_AUTOCAST
    assert not caplog.records  # native bf16: nothing to say
    monkeypatch.setenv(dev.ENV, "0")
    with caplog.at_level("WARNING", logger=dev.log.name):
        for _ in range(3):
            assert pick_precision("bf16-autocast", CPU) == BF16_AUTOCAST  # still honoured: the study's numerics
        assert pick_precision("bf16", CPU) == Precision(torch.bfloat16)
        assert mixed_precision(TrainSettings(precision="bf16"), CPU, is_seq2seq=False) == "bf16"
        assert pick_precision("float32", CPU) == FP32 and pick_precision("auto", CPU) == FP32
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages  # once per setting, not once per model loaded
    assert all("emulated" in m and "float32" in m for m in messages)
    assert [m.split(" asks")[0] for m in messages] == ["dtype bf16-autocast", "dtype bf16", "precision bf16"]
    assert not dev.warn_if_emulated("dtype bfloat16", torch.device("cuda"))  # a GPU decides for itself
    dev._warn_once.cache_clear()


def _linear_outputs(lm, run):
    """(output dtype, inference mode) of the first Linear layer's calls while `run()` runs."""
    seen = []
    hook = next(m for m in lm.model.modules() if isinstance(m, torch.nn.Linear)).register_forward_hook(
        lambda mod, args, out: seen.append((out.dtype, torch.is_inference_mode_enabled())))
    try:
        result = run()
    finally:
        hook.remove()
    return result, set(seen)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_engine_runs_under_autocast(arch, monkeypatch, tiny_llama_dir, tiny_t5_dir):
    folder = str(tiny_llama_dir if arch == "llama" else tiny_t5_dir)
    monkeypatch.setenv(dev.ENV, "1")
    lm = load_model(folder, device="cpu")
    assert lm.autocast == torch.bfloat16 and lm.dtype == torch.float32
    described = lm.describe()
    assert described["precision"] == "bf16-autocast" and described["dtype"] == "float32"
    assert described["generation_precision"] == "float32"
    prompt = ["Find the named entities: Ann lives in Rome."]
    out, seen_generate = _linear_outputs(lm, lambda: engine.generate(lm, prompt, max_new_tokens=4))
    values, seen = _linear_outputs(lm, lambda: engine.loglikelihood(
        lm, [("Sentiment: great", "positive"), ("Sentiment: bad", "negative")]))
    assert len(out) == 1 and len(values) == 2 and all(v < 0 for v in values)
    # Scoring matmuls ran in bf16, outside inference_mode (where autocast would re-cast every weight
    # every pass); greedy generation ran in fp32 under `auto`.
    assert seen == {(torch.bfloat16, False)}
    assert {dtype for dtype, _ in seen_generate} == {torch.float32}

    forced = load_model(folder, device="cpu", dtype="bf16-autocast")  # generation under autocast too
    assert forced.describe()["generation_precision"] == "bf16-autocast"
    _, seen_forced = _linear_outputs(forced, lambda: engine.generate(forced, prompt, max_new_tokens=4))
    assert seen_forced == {(torch.bfloat16, False)}

    monkeypatch.setenv(dev.ENV, "0")
    ref = load_model(folder, device="cpu")
    assert ref.autocast is None and ref.describe()["precision"] == "float32"
    ref_values = engine.loglikelihood(ref, [("Sentiment: great", "positive"), ("Sentiment: bad", "negative")])
    # Close to fp32, not equal: bf16 keeps 8 bits of mantissa in the matmul inputs.
    assert max(abs(a - b) for a, b in zip(values, ref_values)) < 0.5


def test_cache_key_tells_autocast_from_fp32(monkeypatch, tiny_llama_dir):
    task, settings = get_task("toy-sentiment"), EvalSettings(limit=3)
    monkeypatch.setenv(dev.ENV, "1")
    auto = LazyModel(str(tiny_llama_dir), device="cpu")
    forced = LazyModel(str(tiny_llama_dir), device="cpu", dtype="float32")
    assert auto.precision == BF16_SCORING and not auto.loaded and auto.describe()["precision"] == "bf16-autocast"
    monkeypatch.setenv(dev.ENV, "0")
    plain = LazyModel(str(tiny_llama_dir), device="cpu")
    assert cache_key(forced, task, settings) == cache_key(plain, task, settings)  # fp32 keys as before
    assert cache_key(auto, task, settings) != cache_key(plain, task, settings)
    assert auto.dtype == plain.dtype == torch.float32  # only autocast tells them apart
    # A generation task under `auto` ran in fp32: it shares fp32's entry, unlike `bf16-autocast`.
    generated = get_task("toy-ner")
    monkeypatch.setenv(dev.ENV, "1")
    everywhere = LazyModel(str(tiny_llama_dir), device="cpu", dtype="bf16-autocast")
    assert cache_key(auto, generated, settings) == cache_key(plain, generated, settings)
    assert cache_key(everywhere, generated, settings) != cache_key(plain, generated, settings)


def test_training_records_bf16(monkeypatch, tiny_llama_dir, tmp_path):
    from retain.training.config import TrainSettings
    from retain.training.loop import train

    monkeypatch.setenv(dev.ENV, "1")
    monkeypatch.setenv("RETAIN_CACHE_DIR", str(tmp_path / "cache"))
    settings = TrainSettings(max_steps=2, batch_size=4, train_examples=8, eval_examples=4, progress=False,
                             learning_rate=3e-3)
    result = train(str(tiny_llama_dir), "toy-ner", make_method("full"), settings, tmp_path / "run")
    assert result.metadata["precision"] == "bf16"
    assert result.metadata["train_loss"] == result.metadata["train_loss"]  # finite, not NaN


def test_choice_scoring_runs_the_head_in_fp32(monkeypatch, tiny_llama_dir):
    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="bf16-autocast")  # generation under autocast too
    head = lm.model.get_output_embeddings()
    seen = []
    hook = head.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    try:
        engine.loglikelihood(lm, [("Sentiment: great", "positive")])
        assert seen == [torch.float32]  # logits of choices in fp32: bf16 logits tie near-equal options
        engine.generate(lm, ["Sentiment: great"], max_new_tokens=2)
        assert set(seen[1:]) == {torch.bfloat16}  # generation keeps the bf16 head
    finally:
        hook.remove()
    assert "forward" not in vars(head)  # restored
