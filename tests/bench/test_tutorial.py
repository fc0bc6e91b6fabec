"""The pad-to-max tutorial baseline (bench/tutorial.py): padded as the tutorials pad, tokens counted as retain counts."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from bench.tutorial import padded_rows, train_tutorial

PAIRS = [("Summarize: the cat sat on the mat.", " A cat sat."), ("Summarize: dogs bark at night.", " Dogs bark.")]


def test_causal_rows_pad_to_max_and_learn_only_the_completion(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    rows = padded_rows(tok, PAIRS, is_seq2seq=False, max_length=40)
    for (prompt, completion), row in zip(PAIRS, rows):
        assert len(row["input_ids"]) == len(row["labels"]) == 40
        n_prompt = len(tok(prompt)["input_ids"])
        learned = [t for t in row["labels"] if t != -100]
        real = sum(row["attention_mask"])
        assert learned == row["input_ids"][n_prompt:real]  # the completion and EOS, nothing else
        assert tok.decode(learned) == completion + tok.eos_token


def test_seq2seq_rows_pad_inputs_and_labels_separately(tiny_t5_dir):
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    rows = padded_rows(tok, PAIRS, is_seq2seq=True, max_length=32, max_target=24)
    for (_, completion), row in zip(PAIRS, rows):
        assert len(row["input_ids"]) == 32 and len(row["labels"]) == 24
        assert [t for t in row["labels"] if t != -100] == tok(text_target=completion)["input_ids"]


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_tutorial_training_counts_real_and_padded_tokens(kind, tiny_llama_dir, tiny_t5_dir):
    folder = tiny_llama_dir if kind == "causal" else tiny_t5_dir
    auto = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    tok = AutoTokenizer.from_pretrained(folder)
    model = auto.from_pretrained(folder, dtype=torch.float32)
    rows = padded_rows(tok, PAIRS, is_seq2seq=kind == "seq2seq", max_length=32, max_target=8)
    run = train_tutorial(model, tok, rows, batch_size=2, steps=1, learning_rate=1e-3, callbacks=[])
    real = sum(sum(r["attention_mask"]) for r in rows)
    padded = 32 * len(rows)
    if kind == "seq2seq":
        real += sum(sum(t != -100 for t in r["labels"]) for r in rows)
        padded += 8 * len(rows)
    assert run["steps"] == 1 and run["real"] == real and run["padded"] == padded
    assert run["train_loss"] > 0 and run["seconds"] > 0
