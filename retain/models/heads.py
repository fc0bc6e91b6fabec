"""Hooks on a model's LM head: project only the positions that matter, and project them in fp32.

The LM head of a small model with a large vocabulary (SmolLM2: 576 hidden, 49,152 tokens) is most of
the cost of a forward pass over a long prompt, and nearly all of it is wasted when only a few positions
matter: training needs the positions that predict a label, log-likelihood scoring the positions that
predict a continuation token. `LabelPositionsHead` makes the head project those rows only.

`Fp32Head` runs the head in fp32 under bf16 autocast (log-likelihood scoring, where bf16 logits tie
near-equal options).

Both are forward hooks, registered on the head module and removed with `remove()`: nothing about the
model is replaced, so other hooks on the head (and wrappers that own `forward`) keep working. They
compose in registration order: register `LabelPositionsHead` first and the fp32 matmul runs on the kept
rows only.

Training (`retain.training.trainer`) and evaluation (`retain.evaluation.engine`) both use them, so they
live here, below both.
"""

from __future__ import annotations

import inspect

import torch

IGNORE = -100  # label id that carries no loss (transformers' convention)


def output_head(model) -> torch.nn.Module | None:
    """The output embedding (LM head) of `model`, looking through a PEFT wrapper; None when it has none."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_head = getattr(base, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    return head if isinstance(head, torch.nn.Module) else None


class LabelPositionsHead:
    """Makes a decoder-only model's LM head project only the positions that predict a label.

    A forward pre-hook on the output embedding replaces its input, the hidden states (batch, positions,
    hidden), with the rows selected by `mask` (label tokens, hidden), so the model returns 2-D logits
    in row-major order of `mask`: row by row, positions in order. For training `token_loss` pairs them
    with the labels; the loss and its gradient are those of the full logits (the skipped positions have
    label -100 and contribute nothing); what is saved is the LM head's matmuls and the softmax over the
    vocabulary at every prompt and padding position. For scoring the engine sets `mask` to the positions
    that predict continuation tokens.

    Inert unless `mask` is set (by its user, for one forward pass), so generation and any other use of
    the model are unchanged. Only attached to models whose forward takes `logits_to_keep` (transformers'
    causal LMs that apply the head to their last hidden states and nothing else); on other calls (e.g. a
    batch split by `DataParallel`) it leaves the input alone, and the model returns its usual 3-D logits.
    """

    def __init__(self, head: torch.nn.Module):
        self.mask: torch.Tensor | None = None
        self.handle = head.register_forward_pre_hook(self._select)

    @classmethod
    def attach(cls, model) -> "LabelPositionsHead | None":
        """Hook `model`'s LM head (through a PEFT wrapper); None when the model does not qualify."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        head = output_head(model)
        try:
            takes_keep = "logits_to_keep" in inspect.signature(base.forward).parameters
        except (TypeError, ValueError):
            takes_keep = False
        if head is None or not takes_keep:
            return None
        return cls(head)

    @staticmethod
    def positions(labels: torch.Tensor) -> torch.Tensor:
        """(batch, length) bool: position t predicts a label (label t+1 is not -100)."""
        mask = torch.zeros_like(labels, dtype=torch.bool)
        mask[:, :-1] = labels[:, 1:] != IGNORE
        return mask

    def _select(self, module, args):
        mask = self.mask
        if mask is None or not args:
            return None
        hidden = args[0]
        if hidden.dim() != 3 or hidden.shape[0] != mask.shape[0] or hidden.shape[1] < mask.shape[1]:
            return None
        # Prompt-learning adapters prepend virtual tokens: the labels align with the last positions.
        hidden = hidden[:, hidden.shape[1] - mask.shape[1]:]
        return (hidden[mask.to(hidden.device)], *args[1:])

    def remove(self) -> None:
        self.handle.remove()


class Fp32Head:
    """Runs a linear LM head in fp32 inside a bf16 autocast region.

    bf16 logits keep 8 bits of mantissa: two options whose fp32 log-likelihoods differ by 0.05 nats
    came out exactly tied on SmolLM2 (bench/precision_check.py), flipping a choice. A pre-hook turns
    autocast off and casts the head's input to fp32; a forward hook that torch calls even when the
    forward raises (`always_call`) turns it back on, so the autocast state cannot leak out of the head.
    The body keeps bf16; the head costs its own matmul at fp32 speed, on the rows it is given.

    Only for fp32 weights (the only ones retain runs under autocast): with bf16 weights the logits are
    bf16 anyway.
    """

    def __init__(self, head: torch.nn.Linear):
        self._regions: list[torch.autocast] = []
        self.handles = [head.register_forward_pre_hook(self._enter),
                        head.register_forward_hook(self._exit, always_call=True)]

    @classmethod
    def attach(cls, model) -> "Fp32Head | None":
        """Hook `model`'s LM head (through a PEFT wrapper); None unless it is an fp32 `nn.Linear`."""
        head = output_head(model)
        if not isinstance(head, torch.nn.Linear) or head.weight.dtype != torch.float32:
            return None
        return cls(head)

    def _enter(self, module, args):
        if not args or not torch.is_tensor(args[0]):
            return None
        region = torch.autocast(args[0].device.type, enabled=False)
        region.__enter__()
        self._regions.append(region)
        return (args[0].float(), *args[1:])

    def _exit(self, module, args, output):
        if self._regions:  # empty when `_enter` left this call alone (or raised before entering)
            self._regions.pop().__exit__(None, None, None)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
