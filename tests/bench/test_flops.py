"""The model-FLOPs count of the headroom benchmark (`bench/peers/headroom.py`) against torch's counter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.peers.headroom import (FLAN, llama_matmul_params, llama_training_flops, t5_matmul_params,
                                  t5_training_flops)


def _tiny_config(gated: bool):
    from transformers import T5Config

    config = T5Config(vocab_size=101, d_model=32, d_kv=8, num_heads=3, d_ff=48, num_layers=2, num_decoder_layers=3,
                      feed_forward_proj="gated-gelu" if gated else "relu", dropout_rate=0.0,
                      decoder_start_token_id=0, tie_word_embeddings=False)
    config._attn_implementation = "eager"  # plain matmuls, which the counter sees (CPU SDPA kernels it does not)
    return config


@pytest.mark.parametrize("gated", [True, False])
def test_matmul_params_are_all_linear_weights(gated):
    from transformers import T5ForConditionalGeneration

    config = _tiny_config(gated)
    model = T5ForConditionalGeneration(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert sum(t5_matmul_params(config)) == linear


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("n, m", [(11, 7), (3, 9)])
def test_training_flops_equal_torchs_count_of_one_step(gated, n, m):
    """Forward + backward of one example: torch counts every matmul, eager attention computes all m^2 pairs."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import T5ForConditionalGeneration

    config = _tiny_config(gated)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    counter = FlopCounterMode(display=False)
    with counter:
        model(input_ids=torch.randint(2, 100, (1, n)), labels=torch.randint(2, 100, (1, m))).loss.backward()
    assert counter.get_total_flops() == t5_training_flops(config, n, m, causal="full")
    hk = config.num_heads * config.d_kv
    half = t5_training_flops(config, n, m)  # the default counts the causal half of decoder self-attention
    extra = 12 * hk * config.num_decoder_layers * m * (m - 1) / 2  # the masked upper triangle
    assert t5_training_flops(config, n, m, causal="full") - half == extra


@pytest.mark.skipif(not (Path(FLAN) / "config.json").is_file(),
                    reason="needs ../shared/models/flan-t5-small-tokenizer")
def test_flan_t5_small_numbers():
    from transformers import AutoConfig

    p_enc, p_dec = t5_matmul_params(AutoConfig.from_pretrained(str(FLAN)))
    # 8 x (4 x 512 x 384 + 3 x 512 x 1024) + 8 x 2 x 512 x 384, and 8 x (6 x 512 x 384 + 3 x 512 x 1024) + 512 x 32128
    assert (p_enc, p_dec) == (22_020_096, 38_469_632)


def _tiny_llama_config():
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)
    config._attn_implementation = "eager"  # plain matmuls, which the counter sees
    return config


def test_llama_matmul_params_are_the_decoder_layers_linear_weights():
    from transformers import LlamaForCausalLM

    config = _tiny_llama_config()
    layers = LlamaForCausalLM(config).model.layers
    assert llama_matmul_params(config) == sum(m.weight.numel() for m in layers.modules()
                                              if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("n, m", [(11, 7), (3, 9)])
def test_llama_training_flops_equal_torchs_count_of_one_step(n, m):
    """A plain forward + backward scores every position and eager attention computes all T^2 pairs."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import LlamaForCausalLM

    config = _tiny_llama_config()
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    ids = torch.randint(2, 100, (1, n + m))
    counter = FlopCounterMode(display=False)
    with counter:
        model(input_ids=ids, labels=ids).loss.backward()
    assert counter.get_total_flops() == llama_training_flops(config, n, m, head="all", causal="full")
    head_saved = 6 * n * config.hidden_size * config.vocab_size  # no LM head at the n prompt positions
    assert (llama_training_flops(config, n, m, causal="full") ==
            llama_training_flops(config, n, m, head="all", causal="full") - head_saved)
