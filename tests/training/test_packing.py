"""Packed decoder-only batches: same loss and gradients as padded ones, no attention across examples.

On the tiny Llama in fp32: a batch packed into rows (`PackingCollator`, position ids restarting at
each example, no attention mask) gives the same summed loss and gradients as the same examples padded
(`Collator`), to 1e-5; changing one example's tokens changes no other example's logits; every method
trains with packing, seq2seq models and `packing=False` keep padded batches.
"""

from __future__ import annotations

import pytest
import torch

from retain.methods import make_method
from retain.models import load_model
from retain.models.heads import LabelPositionsHead
from retain.training.data import (IGNORE, REAL_TOKENS, Collator, Encoder, PackingCollator, Sample, pack_rows,
                                  packing_honoured, real_tokens)
from retain.training.loss import token_loss
from tests.training.helpers import assert_falling, fast, logged

SAMPLES = [Sample("Find the named entities: Ann lives in Rome.", "PER: Ann; LOC: Rome", "t"),
           Sample("Question: who?\n", "Bob", "t"),
           Sample("Short", "a much longer target than the prompt itself", "t"),
           Sample("Summarize: the cat sat on the mat all day long and then slept.", "a cat sat", "t"),
           Sample("Sentiment: great film", "positive", "t")]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    torch.manual_seed(0)
    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="float32")
    lm.model.train()
    for module in lm.model.modules():  # dropout off: the two batches must see the same network
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return lm


def _items(lm):
    return Encoder(lm.tokenizer, is_seq2seq=False).encode_all(SAMPLES)


def _summed_loss_and_grads(model, batch: dict, head: LabelPositionsHead | None = None):
    batch = dict(batch)
    batch.pop(REAL_TOKENS, None)
    labels = batch.pop("labels")
    model.zero_grad()
    if head is not None:
        head.mask = LabelPositionsHead.positions(labels)
    try:
        out = model(**batch, use_cache=False)
    finally:
        if head is not None:
            head.mask = None
    loss = token_loss(out, labels, num_items_in_batch=1, shift=True)  # divided by 1: the summed loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_pack_rows_fills_rows_without_overflow():
    lengths = [5, 9, 3, 7, 2, 12, 4]
    rows = pack_rows(lengths, capacity=12)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 12 for row in rows)
    assert len(rows) == 4  # 42 tokens need at least 4 rows of 12, and 4 suffice
    assert pack_rows([20, 3], capacity=10) == [[0], [1]]  # too long for a row: a row of its own
    assert pack_rows([], capacity=10) == []


def test_pack_rows_weighs_attention_against_padding():
    # Without attention cost the fewest rows win; with it, one wide row must pay for its attention.
    assert len(pack_rows([300, 300], capacity=640)) == 1
    assert len(pack_rows([300, 300], capacity=640, attention_span=100)) == 2  # 2*300*4 < 600*7
    assert len(pack_rows([300, 290], capacity=640, attention_span=3000)) == 2  # 2*300*1.1 < 590*1.197
    # A short example rides along with a long one instead of padding its own row.
    assert len(pack_rows([600, 30], capacity=640, attention_span=3000)) == 1


def test_attention_span_from_config(llama):
    from types import SimpleNamespace

    from retain.training.data import attention_span

    cfg = SimpleNamespace(hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
                          head_dim=64)  # SmolLM2-135M
    assert attention_span(cfg) == (2 * 576 + 2 * 192 + 3 * 1536) / 2
    assert attention_span(SimpleNamespace(**vars(cfg), _attn_implementation="flash_attention_2")) is None
    assert attention_span(SimpleNamespace()) is None
    assert attention_span(llama.model.config) > 0


def test_packed_batch_layout(llama):
    items = _items(llama)
    batch = PackingCollator(pad_id=llama.tokenizer.pad_token_id, max_length=10_000)(items)
    assert "attention_mask" not in batch
    assert batch["input_ids"].shape == (1, sum(len(x["input_ids"]) for x in items))  # one row, no padding
    assert real_tokens(batch) == batch["input_ids"].numel()
    starts = (batch["position_ids"][0] == 0).nonzero().squeeze(1).tolist()
    assert len(starts) == len(items)
    assert all(int(batch["labels"][0, s]) == IGNORE for s in starts)  # nothing predicts an example's first token


@pytest.mark.parametrize("row", [10_000, 48], ids=["one-row", "several-rows"])
def test_packed_equals_padded(llama, row):
    items = _items(llama)
    padded = Collator(llama.tokenizer.pad_token_id)(items)
    packed = PackingCollator(llama.tokenizer.pad_token_id, max_length=row)(items)
    if row == 48:
        assert packed["input_ids"].shape[0] > 1 and real_tokens(packed) < packed["input_ids"].numel()
    assert real_tokens(packed) == real_tokens(padded)
    assert int((packed["labels"][:, 1:] != IGNORE).sum()) == int((padded["labels"][:, 1:] != IGNORE).sum())

    ref_loss, ref_grads = _summed_loss_and_grads(llama.model, padded)
    head = LabelPositionsHead.attach(llama.model)
    try:
        for use_head in (None, head):
            loss, grads = _summed_loss_and_grads(llama.model, packed, use_head)
            torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
            assert grads.keys() == ref_grads.keys() and grads
            for name, g in grads.items():
                torch.testing.assert_close(g, ref_grads[name], rtol=1e-5, atol=1e-5, msg=name)
    finally:
        head.remove()


def test_attention_never_crosses_examples(llama):
    items = _items(llama)
    collate = PackingCollator(llama.tokenizer.pad_token_id, max_length=10_000)
    batch = collate(items)
    changed = [dict(x) for x in items]
    # The longest example comes first in its row: change every one of its tokens, same length.
    first = max(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    vocab = llama.model.config.vocab_size
    changed[first]["input_ids"] = [(t * 7 + 11) % vocab for t in items[first]["input_ids"]]
    other = collate(changed)
    n = len(items[first]["input_ids"])
    assert not torch.equal(batch["input_ids"][:, :n], other["input_ids"][:, :n])
    assert torch.equal(batch["input_ids"][:, n:], other["input_ids"][:, n:])
    with torch.no_grad():
        a = llama.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        b = llama.model(input_ids=other["input_ids"], position_ids=other["position_ids"], use_cache=False).logits
    assert not torch.allclose(a[:, :n], b[:, :n])
    torch.testing.assert_close(a[:, n:], b[:, n:], rtol=0, atol=1e-6)  # the other examples see nothing of it


def test_probe_says_whether_packing_is_honoured(llama):
    assert packing_honoured(llama.model, llama.model.config.vocab_size)

    class IgnoresPositions(torch.nn.Module):  # attends across everything: packing would leak
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, position_ids=None, use_cache=False):
            return self.inner(input_ids=input_ids, use_cache=False)

    assert not packing_honoured(IgnoresPositions(llama.model), llama.model.config.vocab_size)


METHODS = [
    ("full", {}, 3e-3),
    ("lora", {"r": 4, "target_modules": ["q_proj", "v_proj"]}, 2e-2),
    ("multitask", {"tasks": ["toy-qa"], "examples_per_task": 12}, 3e-3),
    ("replay", {"ratio": 0.25, "sources": ["toy-qa"], "examples_per_source": 8}, 3e-3),
    ("l2sp", {"lambda": 0.1}, 3e-3),
    ("ewc", {"tasks": ["toy-qa"], "fisher_examples": 4, "lambda": 10.0}, 3e-3),
]


@pytest.mark.parametrize("name,options,lr", METHODS, ids=[m[0] for m in METHODS])
def test_every_method_trains_packed(name, options, lr, tiny_llama_dir, tmp_path):
    from retain.training.loop import train

    result = train(str(tiny_llama_dir), "toy-ner", make_method(name, options), fast(learning_rate=lr),
                   tmp_path / "run")
    meta = result.metadata
    assert meta["packing"] == {"enabled": True, "row_tokens": 512 + 128}
    assert_falling(logged(result.out_dir))
    assert 0 <= meta["padding_fraction"] < 0.2


def test_padded_when_packing_is_off_or_seq2seq(tiny_llama_dir, tiny_t5_dir, tmp_path):
    from retain.training.loop import train

    off = train(str(tiny_llama_dir), "toy-ner", make_method("full"), fast(packing=False, max_steps=2), tmp_path / "off")
    assert off.metadata["packing"] == {"enabled": False, "row_tokens": None}
    t5 = train(str(tiny_t5_dir), "toy-ner", make_method("full"), fast(max_steps=2), tmp_path / "t5")
    assert t5.metadata["packing"] == {"enabled": False, "row_tokens": None}


def test_prompt_tuning_falls_back_to_padding(tiny_llama_dir, tmp_path):
    """Virtual tokens prepended to every row would break packed position ids: the probe refuses them."""
    from retain.training.loop import train

    result = train(str(tiny_llama_dir), "toy-ner", make_method("prompt_tuning", {"num_virtual_tokens": 4}),
                   fast(max_steps=2), tmp_path / "run")
    assert result.metadata["packing"]["enabled"] is False
