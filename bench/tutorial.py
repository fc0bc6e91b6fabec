"""The pad-to-max-length tutorial recipe: the one baseline both training benchmarks compare retain with.

What the Hugging Face fine-tuning tutorials do: tokenise every example with `padding="max_length"`,
labels -100 on padding (and, for a decoder-only model, on the prompt), `default_data_collator`, a
plain `transformers.Trainer`. `bench.train_speed` runs it on a T5 (seq2seq), `bench.peers.train` on a
Llama-shaped model (causal); both count real tokens with `counting_trainer`, as retain counts them.
"""

from __future__ import annotations

import tempfile
import time
from typing import Iterable


def padded_rows(tok, pairs: Iterable[tuple[str, str]], *, is_seq2seq: bool, max_length: int,
                max_target: int | None = None) -> list[dict]:
    """(prompt, completion) pairs tokenised and padded to the maximum length.

    Seq2seq: the prompt padded to `max_length`, the completion (labels) to `max_target`. Causal:
    prompt + completion + EOS padded to `max_length`, loss on the completion only.
    """
    rows = []
    for prompt, completion in pairs:
        if is_seq2seq:
            enc = tok(prompt, max_length=max_length, padding="max_length", truncation=True)
            labels = tok(text_target=completion, max_length=max_target, padding="max_length",
                         truncation=True)["input_ids"]
            labels = [t if t != tok.pad_token_id else -100 for t in labels]
        else:
            n_prompt = len(tok(prompt)["input_ids"])
            enc = tok(prompt + completion + tok.eos_token, padding="max_length", max_length=max_length,
                      truncation=True)
            labels = [t if m and i >= n_prompt else -100
                      for i, (t, m) in enumerate(zip(enc["input_ids"], enc["attention_mask"]))]
        rows.append({**enc, "labels": labels})
    return rows


def counting_trainer(trainer_cls, counts: dict):
    """`trainer_cls` counting real and padded training tokens into `counts`, as retain does.

    Real tokens: input positions with attention mask 1 (every position of a padding-free batch, which
    has no mask), plus, for an encoder-decoder, decoder label positions that are not -100. Padded
    tokens: every position. Nothing else changes.
    """

    class Counting(trainer_cls):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                mask = inputs.get("attention_mask")
                counts["real"] += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
                counts["padded"] += inputs["input_ids"].numel()
                if model.config.is_encoder_decoder and "labels" in inputs:
                    counts["real"] += int((inputs["labels"] != -100).sum())
                    counts["padded"] += inputs["labels"].numel()
            return super().compute_loss(model, inputs, *args, **kwargs)

    return Counting


def train_tutorial(model, tok, rows: list[dict], *, batch_size: int, steps: int, learning_rate: float,
                   callbacks: list, use_cpu: bool = True, precision: str = "fp32", warmup_steps: int = 0) -> dict:
    """Train `model` on `rows` the tutorial way; {steps, real, padded, train_loss, seconds} (seconds: the
    wall time of `trainer.train()`)."""
    import datasets
    from transformers import Trainer, TrainingArguments, default_data_collator

    counts = {"real": 0, "padded": 0}
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=batch_size, max_steps=steps,
                                 learning_rate=learning_rate, warmup_steps=warmup_steps, seed=0,
                                 save_strategy="no", report_to="none", logging_steps=steps, disable_tqdm=True,
                                 use_cpu=use_cpu, bf16=precision == "bf16", fp16=precision == "fp16")
        trainer = counting_trainer(Trainer, counts)(model=model, args=args,
                                                    train_dataset=datasets.Dataset.from_list(rows),
                                                    data_collator=default_data_collator, processing_class=tok,
                                                    callbacks=callbacks)
        t0 = time.perf_counter()
        out = trainer.train()
        seconds = time.perf_counter() - t0
    return {"steps": trainer.state.global_step, "real": counts["real"], "padded": counts["padded"],
            "train_loss": out.training_loss, "seconds": seconds}
