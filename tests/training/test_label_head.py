"""`LabelPositionsHead`: the LM head runs only where a label is predicted; loss and gradients unchanged."""

from __future__ import annotations

import pytest
import torch

from retain.methods import make_method
from retain.models import load_model
from retain.models.heads import LabelPositionsHead
from retain.training.data import Collator, Encoder, Sample
from retain.training.loss import token_loss

SAMPLES = [Sample("Find the named entities: Ann lives in Rome.", "PER: Ann; LOC: Rome", "t"),
           Sample("Question: who?\n", "Bob", "t"),
           Sample("Short", "a much longer target than the prompt itself", "t")]


def _batch(lm):
    items = Encoder(lm.tokenizer, is_seq2seq=False).encode_all(SAMPLES)
    batch = Collator(lm.tokenizer.pad_token_id)(items)
    return batch, batch.pop("labels")


def _loss_and_grads(model, batch, labels, head: LabelPositionsHead | None):
    model.zero_grad()
    if head is not None:
        head.mask = LabelPositionsHead.positions(labels)
    try:
        out = model(**batch)
    finally:
        if head is not None:
            head.mask = None
    loss = token_loss(out, labels, shift=True)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits, loss.detach(), grads


def _same(model, batch, labels):
    full_logits, full_loss, full_grads = _loss_and_grads(model, batch, labels, None)
    head = LabelPositionsHead.attach(model)
    assert head is not None
    try:
        logits, loss, grads = _loss_and_grads(model, batch, labels, head)
    finally:
        head.remove()
    n_labels = int((labels[:, 1:] != -100).sum())
    assert full_logits.dim() == 3 and logits.shape == (n_labels, full_logits.shape[-1])
    torch.testing.assert_close(loss, full_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == full_grads.keys() and grads
    for name, g in grads.items():
        torch.testing.assert_close(g, full_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_same_loss_and_gradients_as_the_full_logits(tiny_llama_dir):
    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="float32")
    lm.model.train()
    batch, labels = _batch(lm)
    _same(lm.model, batch, labels)


@pytest.mark.parametrize("kind", ["lora", "prompt_tuning"])
def test_same_with_peft_adapters(kind, tiny_llama_dir):
    """Through a PeftModel, including prompt tuning's virtual tokens prepended to the inputs."""
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="float32")
    config = (LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"]) if kind == "lora"
              else PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    model = get_peft_model(lm.model, config)
    model.train()
    batch, labels = _batch(lm)
    _same(model, batch, labels)


def test_inert_without_a_mask_and_not_attached_to_seq2seq(tiny_llama_dir, tiny_t5_dir):
    lm = load_model(str(tiny_llama_dir), device="cpu", dtype="float32")
    batch, _ = _batch(lm)
    with torch.no_grad():
        before = lm.model(**batch).logits
        head = LabelPositionsHead.attach(lm.model)
        after = lm.model(**batch).logits
    head.remove()
    torch.testing.assert_close(after, before)
    t5 = load_model(str(tiny_t5_dir), device="cpu", dtype="float32")
    assert LabelPositionsHead.attach(t5.model) is None  # T5's forward has no logits_to_keep


def test_the_trainer_projects_only_label_positions(tiny_llama_dir, tmp_path):
    """During retain's training the LM head sees one row per label token, never a whole batch."""
    from retain.training.loop import train
    from tests.training.helpers import fast

    from transformers import TrainerCallback

    head_inputs = []
    handle = None

    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            nonlocal handle
            handle = model.get_output_embeddings().register_forward_hook(
                lambda m, args, out: head_inputs.append(tuple(args[0].shape)))

    train(str(tiny_llama_dir), "toy-ner", make_method("full"), fast(max_steps=2, eval_examples=0), tmp_path / "run",
          callbacks=[Spy()])
    handle.remove()
    assert head_inputs and all(len(shape) == 2 for shape in head_inputs), head_inputs
