"""The token loss every method trains with, in a module of its own so that methods (EWC's Fisher
information) can use it without importing the trainer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from retain.training.data import IGNORE


def token_loss(outputs, labels: torch.Tensor, num_items_in_batch=None, *, shift: bool) -> torch.Tensor:
    """Cross-entropy summed over label tokens, divided by the label tokens of the optimizer step.

    Args:
        outputs: model outputs with `logits`: (batch, positions, vocab), or (label tokens, vocab) when
            `LabelPositionsHead` already kept only the positions that predict a label (row by row, in
            order: position t of a row predicts its label t+1 when `shift`).
        labels: (batch, length) token ids, -100 where no loss is wanted.
        num_items_in_batch: label tokens in the whole accumulated step (the Trainer counts them);
            None (evaluation): this batch's label tokens.
        shift: decoder-only models predict token t+1 at position t.
    """
    logits = outputs["logits"] if isinstance(outputs, dict) or hasattr(outputs, "keys") else outputs[0]
    labels = labels.to(logits.device)
    if shift:
        labels = labels[:, 1:]
    if logits.dim() == 2:  # only the label positions were projected (see LabelPositionsHead)
        targets = labels[labels != IGNORE]
        if targets.shape[0] != logits.shape[0]:
            raise RuntimeError(f"{logits.shape[0]} logit rows for {targets.shape[0]} label tokens")
        total = F.cross_entropy(logits.float(), targets, reduction="sum")
    else:
        if shift:
            # Prompt-learning adapters prepend virtual tokens to the inputs: keep the last positions.
            logits = logits[:, -(labels.shape[1] + 1):, :][:, :-1, :]
        total = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                ignore_index=IGNORE, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (labels != IGNORE).sum()
    if torch.is_tensor(count):
        count = count.to(total.device).clamp(min=1)
    else:
        count = max(int(count), 1)
    return total / count
