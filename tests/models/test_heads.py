"""`Fp32Head`: the LM head in fp32 inside a bf16 autocast region, and the region intact around it."""

from __future__ import annotations

import pytest
import torch

from retain.models.heads import Fp32Head, LabelPositionsHead


class Tiny(torch.nn.Module):
    """Just enough of a causal LM for the hooks: an output embedding and a `logits_to_keep` forward."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.head = torch.nn.Linear(8, 5, dtype=dtype)

    def get_output_embeddings(self):
        return self.head

    def forward(self, hidden, logits_to_keep=0):
        return self.head(hidden)


def test_fp32_under_autocast_then_autocast_again():
    model = Tiny()
    hidden = torch.randn(2, 3, 8)
    hook = Fp32Head.attach(model)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(hidden)
            assert torch.is_autocast_enabled("cpu")
            assert model.head.weight.mm(hidden[0].T).dtype == torch.bfloat16  # other matmuls stay bf16
    finally:
        hook.remove()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.nn.functional.linear(hidden, model.head.weight, model.head.bias))
    assert not model.head._forward_pre_hooks and not model.head._forward_hooks


def test_autocast_survives_a_failing_head():
    model = Tiny()
    hook = Fp32Head.attach(model)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with pytest.raises(RuntimeError):
                model(torch.randn(2, 7))  # wrong width: the matmul raises inside the fp32 region
            assert torch.is_autocast_enabled("cpu")  # the region was left on the way out
            assert not hook._regions
    finally:
        hook.remove()


def test_composes_with_the_row_selection():
    """Selection first, then fp32: the head multiplies the kept rows only, in fp32."""
    model = Tiny()
    hidden = torch.randn(2, 4, 8)
    mask = torch.tensor([[False, True, True, False], [False, False, False, True]])
    rows, fp32 = LabelPositionsHead.attach(model), Fp32Head.attach(model)
    seen = []
    spy = model.head.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape)))
    try:
        rows.mask = mask
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(hidden)
    finally:
        spy.remove()
        fp32.remove()
        rows.remove()
    assert seen == [(3, 8)] and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.nn.functional.linear(hidden[mask], model.head.weight, model.head.bias))


def test_not_attached_to_a_bf16_head():
    assert Fp32Head.attach(Tiny(torch.bfloat16)) is None
