"""Tiny models and tokenizers built locally from configs with fixed seeds.

Nothing here downloads anything. Tests, benchmarks and the demo use these to get real
`transformers` models (T5 and Llama architectures) with random or locally trained weights:

- `train_tokenizer` trains a small byte-level BPE tokenizer with `tokenizers` on given text;
- `tiny_t5` / `tiny_llama` build small models from configs under a fixed seed;
- `model_from_config_dir` builds a model with random weights from a real config folder (e.g. the
  flan-t5-small config and tokenizer in ../shared/models), optionally shrunk.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import torch

SPECIAL = {"pad": "<pad>", "eos": "</s>", "unk": "<unk>", "bos": "<s>"}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1000, append_eos: bool = True):
    """Train a byte-level BPE tokenizer (any text encodes; no unknown characters).

    Args:
        texts: training text.
        vocab_size: target vocabulary size, special tokens included.
        append_eos: add `</s>` after every encoded text, as T5's tokenizer does (use for
            encoder-decoder models; decoder-only models add EOS only to training targets).

    Returns:
        A `PreTrainedTokenizerFast` with pad id 0, eos id 1, unk id 2, bos id 3.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=[SPECIAL["pad"], SPECIAL["eos"], SPECIAL["unk"], SPECIAL["bos"]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    if append_eos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A {SPECIAL['eos']}", pair=f"$A {SPECIAL['eos']} $B {SPECIAL['eos']}",
            special_tokens=[(SPECIAL["eos"], tok.token_to_id(SPECIAL["eos"]))],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIAL["pad"], eos_token=SPECIAL["eos"], unk_token=SPECIAL["unk"],
        bos_token=SPECIAL["bos"], clean_up_tokenization_spaces=False,
    )


def tiny_t5(tokenizer, d_model: int = 64, layers: int = 2, heads: int = 4, d_ff: int = 128, seed: int = 0,
            tie_embeddings: bool = False):
    """A small T5 (gated-GELU, like flan-t5) with random weights drawn under `seed`.

    `tie_embeddings=True` shares input and output embeddings (the original T5; flan-t5 unties them).
    Tiny models learn to copy names from their input much faster when tied, since the copied
    embedding is already the output direction of the same token.
    """
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // heads, d_ff=d_ff, num_layers=layers,
        num_decoder_layers=layers, num_heads=heads, relative_attention_num_buckets=16,
        relative_attention_max_distance=64, dropout_rate=0.0, feed_forward_proj="gated-gelu",
        tie_word_embeddings=tie_embeddings, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    if tie_embeddings:
        return model.eval()
    # T5 initialises an untied output layer with std 1.0, which gives initial logits of size ~sqrt(d_model)
    # and a starting loss far above ln(vocab); std d_model**-0.5 starts training near ln(vocab).
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, d_model**-0.5)
    return model.eval()


def tiny_llama(tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
               intermediate: int = 128, max_positions: int = 512, seed: int = 0):
    """A small Llama-style decoder-only model with random weights drawn under `seed`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def zero_special_output_rows(model, tokenizer):
    """Zero the output-layer rows of PAD, UNK and BOS, in place; returns the model.

    Random-weight models tend to emit PAD forever under greedy decoding; without those rows they write
    varied ordinary tokens (EOS stays reachable), which is what tests and benchmarks of generation need.
    """
    with torch.no_grad():
        for tid in {tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id} - {None}:
            model.get_output_embeddings().weight[tid].zero_()
    return model


def save_model(model, tokenizer, out: str | Path) -> Path:
    """Save model (safetensors) and tokenizer in the standard Hugging Face layout."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def model_from_config_dir(config_dir: str | Path, out: str | Path, seed: int = 0, shrink: dict | None = None) -> Path:
    """Build a model with random weights from a config folder (config + tokenizer files, no weights).

    Args:
        config_dir: folder with `config.json` and tokenizer files (e.g. flan-t5-small without weights).
        out: where to save the model and tokenizer.
        seed: seed for the random initialisation.
        shrink: config overrides to make it smaller, e.g. `{"d_model": 64, "num_layers": 2}`.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from retain.models.loading import is_seq2seq_config, load_tokenizer

    config = AutoConfig.from_pretrained(config_dir)
    for key, value in (shrink or {}).items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    auto = AutoModelForSeq2SeqLM if is_seq2seq_config(config) else AutoModelForCausalLM
    model = auto.from_config(config)
    tokenizer = load_tokenizer(str(config_dir))
    out = save_model(model, tokenizer, out)
    gen = Path(config_dir) / "generation_config.json"
    if gen.is_file():
        shutil.copy(gen, out / "generation_config.json")
    return out


TINY_T5_SHRINK = {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4}
