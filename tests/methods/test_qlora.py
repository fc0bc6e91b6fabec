"""QLoRA: LoRA on a 4-bit base through bitsandbytes; refused on a CPU, and the whole path run on one.

CI has no GPU, so the refusal is what a CPU user meets. bitsandbytes' CPU backend (allowed with
`RETAIN_QLORA_CPU=1`) runs the same code path as CUDA does (4-bit load, `prepare_model_for_kbit_training`,
training, saving the adapter), which is what the in-process test checks on the tiny Llama.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from retain.errors import UserError
from retain.methods import make_method
from retain.models import device as dev
from retain.models.quantization import CPU_ENV, check_quantization, compute_dtype, quantized_load_options
from tests.cli.test_console_script import one_error_line, retain
from tests.training.helpers import fast

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)  # only described, never used
FAST = ["--max-steps", "2", "--train-examples", "8", "--batch-size", "4", "--eval-examples", "0", "--no-progress"]


def test_qlora_is_lora_on_a_4bit_base():
    q = make_method("qlora")
    assert q.quantize == "nf4" and q.load_options() == {"quantize": "nf4"}
    assert make_method("qlora", {"quantize": "fp4", "r": 4}).load_options() == {"quantize": "fp4"}
    assert make_method("lora").load_options() == {}
    # A plain LoRA run describes itself as before QLoRA existed (its study and run keys are unchanged).
    assert "quantize" not in make_method("lora").describe()
    assert make_method("lora", {"quantize": "nf4"}).describe()["quantize"] == "nf4"
    assert make_method(q.name, q.options()) == q  # what config.yaml records builds the same method
    assert make_method("lora", {"quantize": "nf4"}).load_options() == {"quantize": "nf4"}
    for bad in ("int8", "4bit", None):
        with pytest.raises(UserError, match="quantize"):
            make_method("qlora", {"quantize": bad})
    with pytest.raises(UserError, match="quantize"):
        make_method("lora", {"quantize": "nf8"})


def test_refused_off_cuda_with_one_reason(monkeypatch):
    monkeypatch.delenv(CPU_ENV, raising=False)
    check_quantization(None, CPU)  # nothing asked, nothing checked
    with pytest.raises(UserError, match="needs a CUDA GPU.*device is cpu"):
        check_quantization("nf4", CPU)
    with pytest.raises(UserError, match="needs a CUDA GPU.*device is mps"):
        check_quantization("nf4", torch.device("mps"))
    with pytest.raises(UserError, match="unknown quantization"):
        check_quantization("int3", CUDA)
    monkeypatch.setenv(CPU_ENV, "1")
    with pytest.raises(UserError, match="needs a CUDA GPU.*mps"):  # the override is for the CPU backend only
        check_quantization("nf4", torch.device("mps"))


def test_compute_dtype_and_placement_follow_the_device(monkeypatch):
    pytest.importorskip("bitsandbytes")
    monkeypatch.setenv(dev.ENV, "1")
    assert compute_dtype(CPU) == torch.bfloat16
    monkeypatch.setenv(dev.ENV, "0")
    assert compute_dtype(CPU) == torch.float32
    if not torch.cuda.is_available():  # a GPU without bf16 computes in fp16
        assert compute_dtype(CUDA) == torch.float16
    opts = quantized_load_options("nf4", CUDA)
    assert opts["device_map"] == {"": 0}, "the whole model on the run's one device: no offload, no split"
    assert quantized_load_options("nf4", torch.device("cuda", 3))["device_map"] == {"": 3}  # a launched process's GPU
    assert quantized_load_options("nf4", torch.device("cuda"))["device_map"] == {"": 0}  # the first visible one
    assert quantized_load_options("nf4", CPU)["device_map"] == {"": "cpu"}
    cfg = opts["quantization_config"]
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_use_double_quant


def test_train_qlora_on_a_cpu_is_one_line_exit_2_and_writes_nothing(tiny_llama_dir, tmp_path):
    out = tmp_path / "run"
    res = retain("train", "--model", tiny_llama_dir, "--task", "toy-ner", "--method", "qlora", "--device", "cpu",
                 *FAST, "--out", out, env_extra={CPU_ENV: "0"})
    assert res.returncode == 2, res.stderr
    line = one_error_line(res)
    assert "QLoRA" in line and "CUDA" in line and "device is cpu" in line
    assert not out.exists()


def test_study_with_qlora_on_a_cpu_refuses_before_anything_runs(tiny_llama_dir, tmp_path):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "q", "model": str(tiny_llama_dir), "target": "toy-ner", "protect": ["toy-sentiment"],
        "train": {"max_steps": 2, "train_examples": 8, "device": "cpu"},
        "methods": ["full", {"method": "qlora", "name": "small-qlora", "options": {"r": 4}}]}))
    out = tmp_path / "out"
    res = retain("study", cfg, "--out", out, env_extra={CPU_ENV: "0"})
    assert res.returncode == 2, res.stderr
    line = one_error_line(res)
    assert "small-qlora" in line and "CUDA" in line
    assert not out.exists(), "the full run must not have been trained first"


# bitsandbytes' CPU backend (0.50) repacks 4-bit weights for inference at the first forward pass in eval
# mode (the packing check, validation) and then trains through a kernel without autograd, on AVX512-BF16
# CPUs: wrong gradients, and this warning. load_model keeps the training layout; this makes sure.
@pytest.mark.filterwarnings("error:.*autograd kernel was not registered")
def test_qlora_trains_adapters_on_a_4bit_base(tiny_llama_dir, tmp_path, monkeypatch):
    pytest.importorskip("bitsandbytes")
    from retain.models import load_model
    from retain.training.loop import train

    monkeypatch.setenv(CPU_ENV, "1")
    monkeypatch.setenv(dev.ENV, "0")  # fp32 compute: the comparison below is about quantization alone
    settings = fast(max_steps=4, device="cpu", learning_rate=1e-2)
    method = make_method("qlora", {"r": 4, "target_modules": ["q_proj", "v_proj"]})
    result = train(str(tiny_llama_dir), "toy-ner", method, settings, tmp_path / "qlora")
    meta = result.metadata
    assert meta["base_quantization"] == {"bits": 4, "quant_type": "nf4", "double_quant": True,
                                         "compute_dtype": "float32"}
    assert meta["method_info"]["quantize"] == "nf4"
    assert meta["adapter_path"] and meta["model_path"] == str(tiny_llama_dir)
    assert meta["parameters"]["trainable"] < meta["parameters"]["total"]
    saved = json.loads((tmp_path / "qlora" / "adapter_config.json").read_text())
    assert saved["r"] == 4 and saved["peft_type"] == "LORA"

    # The adapter learned (LoRA's B starts at zero) and is evaluated on the unquantized base.
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "qlora" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in weights.items())
    lm = load_model(str(tiny_llama_dir), adapter=meta["adapter_path"], device="cpu", dtype="float32")
    linear = next(m for n, m in lm.model.named_modules() if n.endswith("q_proj.base_layer"))
    assert type(linear) is torch.nn.Linear and linear.weight.dtype == torch.float32

    # Plain LoRA from the same seed trains on the unquantized weights: same adapter shapes, other values.
    plain = train(str(tiny_llama_dir), "toy-ner", make_method("lora", {"r": 4, "target_modules": ["q_proj", "v_proj"]}),
                  settings, tmp_path / "lora")
    assert plain.metadata["base_quantization"] is None
    other = load_file(tmp_path / "lora" / "adapter_model.safetensors")
    assert other.keys() == weights.keys()
    assert any(not torch.equal(other[k], weights[k]) for k in weights if "lora_B" in k)
