"""Perplexity tasks: rolling log-likelihood checked against the model's own forward pass and lm-eval's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retain.errors import UserError
from retain.evaluation.rolling import loglikelihood_rolling, windows
from retain.evaluation.runner import EvalSettings, evaluate_task
from retain.tasks import get_task

TEXTS = ["The sky is blue today.", "Fire is hot and grass is green, and snow is white in the winter.",
         "Night is dark.", "Ice is cold."]


@pytest.fixture(scope="module")
def lm(tiny_llama_dir):
    from retain.models.loading import load_model

    return load_model(str(tiny_llama_dir), device="cpu")


def _independent(lm, text: str) -> tuple[float, int]:
    """Summed NLL of `text` after the prefix token, from one plain forward pass over the whole text."""
    tok = lm.tokenizer
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    ids = [prefix] + tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return -float(sum(logprobs[i, ids[i + 1]] for i in range(len(ids) - 1))), len(ids) - 1


def test_values_equal_an_independent_forward_pass(lm):
    got = loglikelihood_rolling(lm, TEXTS, batch_size=3)
    for (nll, n), text in zip(got, TEXTS):
        ref_nll, ref_n = _independent(lm, text)
        assert n == ref_n
        assert nll == pytest.approx(ref_nll, rel=1e-5)


def test_task_scores_are_per_document_means_and_the_corpus_is_token_weighted(lm, tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("\n\n".join(TEXTS) + "\n")
    task = get_task(f"perplexity:{path}")
    assert task.kind == "perplexity" and [ex.prompt for ex in task.examples()] == TEXTS
    result = evaluate_task(lm, task, EvalSettings(n_boot=100, batch_size=2))
    ref = [_independent(lm, t) for t in TEXTS]
    assert result.scores.per_example["nll"] == pytest.approx([s / n for s, n in ref], rel=1e-5)
    assert result.scores.per_example["perplexity"] == pytest.approx([np.exp(s / n) for s, n in ref], rel=1e-5)
    corpus = sum(s for s, _ in ref) / sum(n for _, n in ref)
    assert result.metrics["nll"]["value"] == pytest.approx(corpus, rel=1e-5)
    assert result.metrics["perplexity"]["value"] == pytest.approx(np.exp(corpus), rel=1e-5)
    lo, hi = result.metrics["nll"]["ci95"]
    assert lo <= corpus <= hi
    records = tmp_path / "docs.jsonl"
    records.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    same = evaluate_task(lm, get_task(f"perplexity:{records}"), EvalSettings(n_boot=100))
    assert same.scores.ids == ["d0", "d1", "d2", "d3"]
    assert same.scores.stats["nll"] == pytest.approx(result.scores.stats["nll"], rel=1e-6)


def test_windows_predict_every_token_once_within_the_context():
    tokens = list(range(10, 33))
    for context in (1, 4, 7, 23, 40):
        predicted = []
        for seq, n in windows(tokens, prefix=1, context=context):
            assert 1 <= len(seq) - 1 <= context
            predicted += seq[len(seq) - n:]
        assert predicted == tokens


def test_windowed_values_equal_lm_evals_loglikelihood_rolling(lm):
    pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=2, max_length=5)
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(TEXTS)]
    theirs = harness.loglikelihood_rolling(requests, disable_tqdm=True)
    ours = loglikelihood_rolling(lm, TEXTS, batch_size=3, context=5)
    assert [-nll for nll, _ in ours] == pytest.approx(theirs, rel=1e-5)


def test_batched_equals_one_by_one(lm):
    one = loglikelihood_rolling(lm, TEXTS, batch_size=1, context=6)
    many = loglikelihood_rolling(lm, TEXTS, batch_size=16, context=6)
    assert [n for _, n in one] == [n for _, n in many]
    assert [s for s, _ in one] == pytest.approx([s for s, _ in many], rel=1e-5)


def test_a_token_budget_splits_batches_and_keeps_the_values(lm, monkeypatch):
    from retain.evaluation import rolling

    lengths = [9, 9, 7, 7, 7, 3, 3, 2]
    batches = rolling.token_batches(lengths, list(range(8)), batch_size=4, budget=20)
    assert [i for b in batches for i in b] == list(range(8))  # every row once, in order
    assert batches == [[0, 1], [2, 3], [4, 5], [6, 7]]  # [4, 5, 6] would pad three rows to 7: 21 tokens
    assert all(len(b) <= 4 and (len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 20) for b in batches)
    assert rolling.token_batches([30, 5], [0, 1], batch_size=4, budget=20) == [[0], [1]]  # too long: alone

    plain = loglikelihood_rolling(lm, TEXTS, batch_size=16)
    seen = []
    monkeypatch.setattr(rolling, "TOKENS_PER_BATCH", 12)
    real = rolling.token_batches
    monkeypatch.setattr(rolling, "token_batches", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    tight = loglikelihood_rolling(lm, TEXTS, batch_size=16)
    assert len(seen[0]) > 1, "the budget split the windows into several batches"
    assert [n for _, n in tight] == [n for _, n in plain]
    assert [v for v, _ in tight] == pytest.approx([v for v, _ in plain], rel=1e-5)


def test_a_tasks_reference_texts():
    qa = get_task("toy-qa")
    task = get_task("perplexity:toy-qa")
    refs = qa.examples("test", 5)
    docs = task.examples("test", 5)
    assert [(d.id, d.prompt) for d in docs] == [(ex.id, ex.target) for ex in refs]
    assert task.splits == qa.splits


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        get_task(f"perplexity:{tmp_path / 'missing.txt'}")
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(UserError, match="no text field"):
        get_task(f"perplexity:{bad}").examples()


def test_seq2seq_decoder_scores_the_text_after_the_prefix_in_the_encoder(tiny_t5_dir):
    from retain.models.loading import load_model

    t5 = load_model(str(tiny_t5_dir), device="cpu")
    tok = t5.tokenizer
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    got = loglikelihood_rolling(t5, TEXTS, batch_size=3)
    for (nll, n), text in zip(got, TEXTS):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = t5.model(input_ids=torch.tensor([[prefix]]), labels=torch.tensor([ids])).logits[0].double()
        ref = -float(torch.log_softmax(logits, -1)[torch.arange(len(ids)), ids].sum())
        assert n == len(ids) and nll == pytest.approx(ref, rel=1e-5)
    pytest.importorskip("lm_eval", reason="the lm-eval extra is not installed")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    # windows of 5 tokens: lm-eval's seq2seq rolling (the encoder reads what the window does not predict)
    harness = HFLM(pretrained=t5.model, tokenizer=tok, batch_size=2, max_length=5, add_bos_token=False,
                   backend="seq2seq")
    theirs = harness.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (t,), i)
                                            for i, t in enumerate(TEXTS)], disable_tqdm=True)
    ours = loglikelihood_rolling(t5, TEXTS, batch_size=4, context=5)
    assert [-nll for nll, _ in ours] == pytest.approx(theirs, rel=1e-5)
