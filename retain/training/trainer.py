"""The Trainer retain uses for every method: transformers' `Trainer`, subclassed narrowly.

What the subclass adds, and nothing else:

- the loss is token-level cross-entropy on the labels only (prompt and padding are -100), summed and
  divided by the number of label tokens in the whole optimizer step (all gradient-accumulation
  micro-batches), so gradient accumulation gives the same gradient as one big batch;
- a method's penalty (L2-SP, EWC, ...) is added once per optimizer step;
- a NaN or infinite loss raises `NonFiniteLoss` naming the step, before that step's update, so the
  weights in memory and the last checkpoint stay good;
- it counts real (non-padding) tokens for tokens/s;
- decoder-only models run their LM head only at the positions that predict a label
  (`retain.models.heads.LabelPositionsHead`): the prompt positions carry no loss, so their logits over
  the whole vocabulary (and the softmax, and both backward matmuls) were wasted work, most of a step's
  time for a small model with a large vocabulary and long prompts;
- length-grouped batches come from `SeededLengthGroupedSampler`, whose order survives a resume and
  is drawn per optimizer step of all processes (N processes x batch B see 1 process x batch N*B);
- packed decoder-only batches (`retain.training.data.PackingCollator`) bring their real-token count,
  which is taken out of the inputs before the forward pass.

Plain `Trainer` is used for seq2seq models too: `Seq2SeqTrainer` only adds generation during
evaluation, and retain evaluates with its own engine.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from retain.models.device import fast_bf16, warn_if_emulated
from retain.models.heads import LabelPositionsHead
from retain.training.callbacks import NonFiniteLoss
from retain.training.checkpoints import last_complete_checkpoint
from retain.training.config import TrainSettings
from retain.training.loss import token_loss
from retain.training.data import REAL_TOKENS, SeededLengthGroupedSampler, padded_tokens, real_tokens

class RetainTrainer(Trainer):
    """`Trainer` with completion-only token loss, an optional penalty and a non-finite guard.

    Args:
        shift_labels: True for decoder-only models.
        penalty: a zero-argument callable returning a scalar added to each optimizer step's loss.
        *args, **kwargs: passed to `Trainer`.
    """

    # The loss is already normalised over the whole accumulated step (see token_loss).
    loss_is_scaled_for_ga = True

    def __init__(self, *args, shift_labels: bool, penalty=None, **kwargs):
        super().__init__(*args, compute_loss_func=partial(token_loss, shift=shift_labels), **kwargs)
        self.penalty = penalty
        self._seq2seq = not shift_labels
        self.label_head = None if self._seq2seq else LabelPositionsHead.attach(self.model)
        self.real_tokens = 0  # non-padding tokens seen in training by this process (this invocation)
        self.padded_tokens = 0  # the same with padding: what the model actually computed on

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(dataset, "__len__"):
            return super()._get_train_sampler(train_dataset)
        # Seq2seq examples cost encoder plus decoder tokens; decoder-only labels mirror the inputs.
        lengths = [len(x["input_ids"]) + (len(x["labels"]) if self._seq2seq else 0) for x in dataset]
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # Groups of one optimizer step's examples over all processes, which accelerate then deals out
        # batch by batch: N processes x batch B see the examples of 1 process x batch N*B, step by step.
        per_step = self.args.train_batch_size * self.args.gradient_accumulation_steps * max(self.args.world_size, 1)
        return SeededLengthGroupedSampler(lengths, per_step, seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        training = model.training
        if training:
            self.real_tokens += real_tokens(inputs)
            self.padded_tokens += padded_tokens(inputs)
        if inputs.pop(REAL_TOKENS, None) is not None:
            # A packed batch: examples are told apart by position_ids alone, which transformers reads
            # only without a KV cache (the Trainer already turns it off; this makes sure).
            inputs["use_cache"] = False
        if self.label_head is not None:
            self.label_head.mask = LabelPositionsHead.positions(inputs["labels"])
        try:
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
        finally:
            if self.label_head is not None:
                self.label_head.mask = None
        if training and self.penalty is not None:
            # Called once per micro-batch; dividing by their number adds the penalty once per step.
            loss = loss + self.penalty() / self.current_gradient_accumulation_steps
        if training and not bool(torch.isfinite(loss.detach())):
            last = last_complete_checkpoint(self.args.output_dir)
            raise NonFiniteLoss(self.state.global_step + 1, float(loss.detach()), str(last) if last else None)
        return (loss, outputs) if return_outputs else loss


def mixed_precision(settings: TrainSettings, device: torch.device, is_seq2seq: bool) -> str:
    """`bf16`, `fp16` or `fp32` mixed-precision mode for this device (weights stay fp32).

    `auto`: bf16 autocast where bf16 is native (GPUs that support it, CPUs with AMX-BF16 or
    AVX512-BF16: `retain.models.device.fast_bf16`), fp32 elsewhere; on older GPUs fp16 for
    decoder-only models only (fp16 overflows in T5's feed-forward activations; bf16 does not).
    """
    if settings.precision != "auto":
        if settings.precision == "bf16":
            warn_if_emulated("precision bf16", device)
        return settings.precision
    if fast_bf16(device):
        return "bf16"
    if device.type == "cuda":
        return "fp32" if is_seq2seq else "fp16"
    return "fp32"


# `gradient_checkpointing: auto` turns it on when less than this share of the weights trains and the
# activations of one micro-batch are estimated at no less than CHECKPOINT_MIN_ACTIVATIONS.
CHECKPOINT_TRAINABLE_SHARE = 0.5
CHECKPOINT_MIN_ACTIVATIONS = 512 * 2**20


def use_checkpointing(settings: TrainSettings, trainable_share: float, activations: int) -> bool:
    """Whether to recompute activations in backward (`gradient_checkpointing`, `auto` resolved).

    With the base frozen (adapters) there are no weight gradients or optimizer state for it, so
    activations are most of the memory; recomputing the forward pass costs about the weight-gradient
    matmuls a frozen base skips, so an adapter run with it costs about what full fine-tuning costs
    without it, in a fraction of the memory. Below half a gigabyte of activations (`activations`, see
    `retain.models.memory.activation_bytes`) the memory saved is not worth the recomputation: on the
    demo's 3M-parameter T5 it made LoRA 1.6x slower than full fine-tuning for 40 MB. Full fine-tuning
    keeps its activations by default.
    """
    if settings.gradient_checkpointing == "auto":
        return trainable_share < CHECKPOINT_TRAINABLE_SHARE and activations >= CHECKPOINT_MIN_ACTIVATIONS
    return bool(settings.gradient_checkpointing)


def training_arguments(settings: TrainSettings, checkpoint_dir: Path, learning_rate: float, precision: str,
                       device: torch.device, has_eval: bool, checkpointing: bool = False) -> TrainingArguments:
    """Map `TrainSettings` onto `TrainingArguments` (the only place that knows both)."""
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        learning_rate=learning_rate,
        lr_scheduler_type=settings.scheduler,
        warmup_steps=settings.warmup if settings.warmup < 1 else int(settings.warmup),
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device.type == "cpu",
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # our guard stops on a non-finite loss instead of hiding it
        eval_strategy="steps" if has_eval else "no",
        eval_steps=settings.eval_steps or settings.save_steps,
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to="none",  # TensorBoard is attached explicitly, logging into the run folder
        disable_tqdm=not settings.progress,
        remove_unused_columns=False,
        label_names=["labels"],
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        dataloader_num_workers=settings.num_workers,
        activation_checkpointing=checkpointing,
    )
