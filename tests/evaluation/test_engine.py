"""Engine invariants: batched equals unbatched, and log-likelihoods equal a direct computation."""

from __future__ import annotations

import pytest
import torch

from retain.evaluation import engine
from retain.models.loading import load_model

PROMPTS = [
    "Find the named entities: Charlie is the name of the cat.",
    "Review: the soup was cold and the staff were rude.\nIs this review positive or negative?",
    "Context: Anna lives in Paris. Tom works at Globex.\nQuestion: Where does Anna live?\nAnswer:",
    "hi",
    "Summarize the dialogue:\n#Person1#: Shall we meet at the station at five? #Person2#: Yes, see you there.",
]


@pytest.fixture(scope="module", params=["t5", "llama"])
def lm(request, tiny_t5_dir, tiny_llama_dir):
    return load_model(str(tiny_t5_dir if request.param == "t5" else tiny_llama_dir), device="cpu")


def test_generate_batched_equals_unbatched(lm):
    batched = engine.generate(lm, PROMPTS, max_new_tokens=12, batch_size=5)
    single = [engine.generate(lm, [p], max_new_tokens=12, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)  # random weights still produce tokens


def test_generate_respects_max_new_tokens(lm):
    short = engine.generate(lm, PROMPTS[:2], max_new_tokens=1, batch_size=2)
    longer = engine.generate(lm, PROMPTS[:2], max_new_tokens=8, batch_size=2)
    for s, l_ in zip(short, longer):
        assert len(lm.tokenizer(s, add_special_tokens=False)["input_ids"]) <= 1
        assert l_.startswith(s)


def test_loglikelihood_batched_equals_unbatched(lm):
    requests = [(p, c) for p in PROMPTS for c in ("negative", "positive", "PER: Charlie")]
    batched = engine.loglikelihood(lm, requests, batch_size=7)
    single = [engine.loglikelihood(lm, [r], batch_size=1)[0] for r in requests]
    assert torch.allclose(torch.tensor(batched), torch.tensor(single), atol=1e-4)
    assert all(v < 0 for v in batched)


def test_loglikelihood_matches_model_loss(lm):
    """Sum of log-probs equals -(mean token loss x tokens) from the model's own loss."""
    prompt, continuation = PROMPTS[0], "PER: Charlie"
    tok, model = lm.tokenizer, lm.model
    value = engine.loglikelihood(lm, [(prompt, continuation)])[0]
    with torch.no_grad():
        if lm.is_seq2seq:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
            labels = tok(continuation, add_special_tokens=False, return_tensors="pt")["input_ids"]
            loss = model(input_ids=ids, labels=labels).loss
            expected = -loss.item() * labels.shape[1]
        else:
            ctx = tok(prompt)["input_ids"]
            full = tok(prompt + " " + continuation, return_tensors="pt")["input_ids"]
            labels = full.clone()
            labels[:, : len(ctx)] = -100
            loss = model(input_ids=full, labels=labels).loss
            expected = -loss.item() * (full.shape[1] - len(ctx))
    assert value == pytest.approx(expected, abs=1e-3)


def _hf_greedy(lm, ids, mask, max_new_tokens, eos):
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, use_cache=True,
                              pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=sorted(eos),
                              decoder_start_token_id=getattr(lm.model.config, "decoder_start_token_id", None))
    out = lm.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    if not lm.is_seq2seq:
        out = out[:, ids.shape[1]:]
    rows = []
    for row in out.tolist():
        kept = []
        for t in row:
            if t in eos:
                break
            if t != lm.tokenizer.pad_token_id or not lm.is_seq2seq:
                kept.append(t)
        rows.append(kept[1:] if lm.is_seq2seq and kept[:1] == [lm.model.config.decoder_start_token_id] else kept)
    return rows


def test_greedy_decode_drops_finished_rows_and_matches_generate(lm, monkeypatch):
    """Rows that stop early leave the batch; every row's tokens still equal HF greedy generate's."""
    from retain.evaluation.greedy import eos_ids, greedy_decode

    enc = lm.tokenizer(PROMPTS)["input_ids"]
    ids, mask = engine._pad(enc, lm.tokenizer.pad_token_id, left=not lm.is_seq2seq)
    free = greedy_decode(lm, ids, mask, 10)
    # Make a token that some rows emit early (and others late or never) a stop token, so rows finish
    # at different steps and the batch shrinks several times.
    counts = {}
    for row in free:
        for pos, t in enumerate(row[1:6], 1):
            counts.setdefault(t, set()).add(pos)
    stop = max(counts, key=lambda t: len(counts[t]))
    monkeypatch.setattr(lm.model.generation_config, "eos_token_id", stop, raising=False)
    eos = eos_ids(lm)
    assert stop in eos
    ours = greedy_decode(lm, ids, mask, 10)
    theirs = _hf_greedy(lm, ids, mask, 10, eos)
    assert ours == theirs
    lengths = {len(r) for r in ours}
    assert len(lengths) > 1 and min(lengths) < 10  # rows really finished at different steps


def test_seq2seq_shared_decoder_rows_match_direct_loss(tiny_t5_dir):
    """Options sharing a decoder input (same context, same tokens but the last) share one decoder row;
    every option's value still equals the model's own loss on that option alone."""
    lm = load_model(str(tiny_t5_dir), device="cpu")
    tok, model = lm.tokenizer, lm.model
    vocab = [t for t in tok.get_vocab() if t.isalpha() and len(t) > 2][:6]
    options = vocab + [f"{vocab[0]} {vocab[1]}", f"{vocab[0]} {vocab[2]}"]
    requests = [(p, o) for p in PROMPTS[:3] for o in options]
    values = engine.loglikelihood(lm, requests, batch_size=2)
    with torch.no_grad():
        for (prompt, option), value in zip(requests, values):
            ids = tok(prompt, return_tensors="pt")["input_ids"]
            labels = tok(option, add_special_tokens=False, return_tensors="pt")["input_ids"]
            expected = -model(input_ids=ids, labels=labels).loss.item() * labels.shape[1]
            assert value == pytest.approx(expected, abs=1e-3)


def test_chunked_encoder_equals_padded_batch(tiny_t5_dir):
    from retain.evaluation.greedy import encode

    lm = load_model(str(tiny_t5_dir), device="cpu")
    ids, mask = engine._pad(lm.tokenizer(PROMPTS)["input_ids"], lm.tokenizer.pad_token_id, left=False)
    with torch.no_grad():
        whole = lm.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        chunked = encode(lm.model, ids, mask)
    keep = mask.bool()
    assert torch.allclose(whole[keep], chunked[keep], atol=1e-5)
    # Chunking happened: the short prompts were not run through the encoder at the longest width.
    assert torch.count_nonzero(chunked[~keep]) < chunked[~keep].numel()
