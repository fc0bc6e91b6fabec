"""Tokenisation with completion-only labels, dynamic padding and the token loss."""

from __future__ import annotations

import pytest
import torch

from retain.models import load_model
from retain.training.data import IGNORE, Collator, Encoder, Sample, real_tokens, shift_right
from retain.training.loss import token_loss


@pytest.fixture(scope="module")
def t5(tiny_t5_dir):
    return load_model(str(tiny_t5_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_model(str(tiny_llama_dir), device="cpu", dtype="float32")


SAMPLES = [Sample("Find the named entities: Ann lives in Rome.", "PER: Ann; LOC: Rome", "t"),
           Sample("Question: who?\n", "Bob", "t"),
           Sample("Short", "a much longer target than the prompt itself", "t")]


def test_causal_labels_mask_the_prompt_and_end_with_eos(llama):
    tok = llama.tokenizer
    enc = Encoder(tok, is_seq2seq=False)
    for s in SAMPLES:
        item = enc.encode(s)
        prompt_ids = tok(s.prompt)["input_ids"]
        n = len(prompt_ids)
        assert item["input_ids"][:n] == prompt_ids
        assert item["labels"][:n] == [IGNORE] * n
        completion = item["input_ids"][n:]
        assert item["labels"][n:] == completion and completion[-1] == tok.eos_token_id
        sep = "" if s.prompt[-1].isspace() else " "
        assert tok.decode(completion[:-1]) == sep + s.target


def test_seq2seq_labels_are_the_target_with_eos(t5):
    tok = t5.tokenizer
    item = Encoder(tok, is_seq2seq=True).encode(SAMPLES[0])
    assert item["input_ids"] == tok(SAMPLES[0].prompt)["input_ids"]
    assert item["labels"][-1] == tok.eos_token_id
    assert tok.decode(item["labels"][:-1]) == SAMPLES[0].target


def test_truncation_keeps_eos_and_the_prompt_end(llama, t5):
    long = Sample("word " * 200 + "END", "x " * 100, "t")
    c = Encoder(llama.tokenizer, False, max_source_length=16, max_target_length=8).encode(long)
    assert len(c["input_ids"]) == 16 + 8 and c["input_ids"][-1] == llama.tokenizer.eos_token_id
    assert llama.tokenizer.decode(c["input_ids"][:16]).endswith("END")
    s = Encoder(t5.tokenizer, True, max_source_length=16, max_target_length=8).encode(long)
    assert len(s["input_ids"]) == 16 and len(s["labels"]) == 8 and s["labels"][-1] == t5.tokenizer.eos_token_id


def test_collator_pads_to_the_longest_only_and_shifts_decoder_inputs(t5):
    enc = Encoder(t5.tokenizer, True)
    items = enc.encode_all(SAMPLES)
    batch = Collator(t5.tokenizer.pad_token_id, decoder_start_id=0)(items)
    assert batch["input_ids"].shape[1] == max(len(i["input_ids"]) for i in items)
    assert batch["labels"].shape[1] == max(len(i["labels"]) for i in items)
    assert batch["attention_mask"].sum().item() == sum(len(i["input_ids"]) for i in items)
    assert torch.equal(batch["decoder_input_ids"], shift_right(batch["labels"], 0, 0))
    assert batch["decoder_input_ids"][0, 0] == 0 and batch["decoder_input_ids"][0, 1] == items[0]["labels"][0]
    assert real_tokens(batch) == sum(len(i["input_ids"]) + len(i["labels"]) for i in items)
    assert Collator(0, pad_to_multiple_of=8)(items)["input_ids"].shape[1] % 8 == 0


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_token_loss_equals_the_models_own_loss(arch, t5, llama):
    lm = t5 if arch == "t5" else llama
    items = Encoder(lm.tokenizer, lm.is_seq2seq).encode_all(SAMPLES)
    batch = Collator(lm.tokenizer.pad_token_id, decoder_start_id=0 if lm.is_seq2seq else None)(items)
    with torch.no_grad():
        hf = lm.model(**batch).loss  # transformers' own mean over label tokens
        ours = token_loss(lm.model(**{k: v for k, v in batch.items() if k != "labels"}), batch["labels"],
                          shift=not lm.is_seq2seq)
    torch.testing.assert_close(ours, hf, rtol=1e-5, atol=1e-5)


def test_masked_prompt_positions_contribute_no_loss(llama):
    """Computed by hand, and unchanged when the prompt positions' predictions are scrambled."""
    items = Encoder(llama.tokenizer, False).encode_all(SAMPLES)
    batch = Collator(llama.tokenizer.pad_token_id)(items)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = llama.model(**batch).logits
    loss = token_loss({"logits": logits}, labels, shift=True)
    # By hand: position t predicts token t+1; only completion tokens count.
    logp = torch.log_softmax(logits.float(), -1)
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            if labels[b, t + 1] != IGNORE:
                total -= logp[b, t, labels[b, t + 1]].item()
                count += 1
    assert count == sum(sum(1 for x in i["labels"] if x != IGNORE) for i in items)
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    scrambled = logits.clone()
    for b, item in enumerate(items):
        n_prompt = item["labels"].index(next(x for x in item["labels"] if x != IGNORE))
        scrambled[b, : n_prompt - 1] = torch.randn_like(scrambled[b, : n_prompt - 1]) * 50  # predict prompt tokens
        scrambled[b, len(item["labels"]):] = 1e4  # padding positions
    assert token_loss({"logits": scrambled}, labels, shift=True).item() == pytest.approx(loss.item(), rel=1e-6)


def test_loss_is_normalised_over_the_whole_accumulated_step():
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[1, 2, IGNORE, IGNORE, IGNORE], [3, 4, 5, 6, IGNORE]])
    whole = token_loss({"logits": logits}, labels, shift=False)
    halves = sum(token_loss({"logits": logits[i:i + 1]}, labels[i:i + 1], num_items_in_batch=6, shift=False)
                 for i in range(2))
    torch.testing.assert_close(whole, halves)


def test_length_grouped_order_depends_only_on_seed_and_epoch():
    from retain.training.data import SeededLengthGroupedSampler

    lengths = [(i * 37) % 101 + 1 for i in range(400)]
    a, b = SeededLengthGroupedSampler(lengths, 8, seed=3), SeededLengthGroupedSampler(lengths, 8, seed=3)
    b.set_epoch(1)
    first, second = list(a), list(b)
    assert sorted(first) == list(range(400)) and first != second
    a.set_epoch(1)
    assert list(a) == second  # a resumed run redraws the same order

    def padding(order):  # padded positions when batching 8 consecutive examples
        return sum(8 * max(lengths[i] for i in order[k:k + 8]) - sum(lengths[i] for i in order[k:k + 8])
                   for k in range(0, len(order), 8))

    shuffled = torch.randperm(400, generator=torch.Generator().manual_seed(0)).tolist()
    assert padding(first) < 0.3 * padding(shuffled)
