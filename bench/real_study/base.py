"""The real-data study's base model: a small T5 with the real flan-t5-small tokenizer, pre-trained here.

No pre-trained weights can be downloaded, so the base model is made by this script, with retain's own
training loop, from the real flan-t5-small config and tokenizer (`../shared/models/flan-t5-small-tokenizer`):

1. the flan-t5-small config shrunk to `ARCH` (tied embeddings, the full 32,128-token vocabulary),
   random weights under seed 0;
2. multitask training on the real training splits of CoNLL-2003 NER, SST-2 sentiment, AdversarialQA
   and the general instruction data, so that the base model has the skills the study then protects,
   plus one self-supervised task made from the same training text: repeat a sentence word for word.

Why the copy task: NER and extractive QA answers are copied from the input, and a T5 trained from
scratch on 2,000 NER sentences does not learn to copy in the minutes this benchmark allows (measured:
entity F1 0.00-0.01 after 6 NER-only epochs; the model answers from memorised names). Plain copying
is the mechanism those skills share, and it is learnt from any text (T5's own pre-training objective
also writes out input text). Its examples are written to `OUT/base/aux/copy/train.jsonl` in the
instruction schema, from the NER and QA *training* text only.

The result is exported to `OUT/base/model` with a build record (`real-base.json`). The run is
resumable: a killed build continues from its last checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

# Tied embeddings: T5 then scales decoder outputs by d_model**-0.5 (transformers reads that from the
# constructor's `tie_word_embeddings`, so a config edited afterwards needs `scale_decoder_outputs` too).
# No dropout: with this little data and this few steps, the model underfits rather than overfits.
ARCH = {"d_model": 128, "d_kv": 32, "num_heads": 4, "d_ff": 512, "num_layers": 2, "num_decoder_layers": 2,
        "tie_word_embeddings": True, "scale_decoder_outputs": True, "dropout_rate": 0.0}
SKILLS = ("ner", "sentiment", "qa")
GENERAL = "instructions"
# Per epoch: every NER, sentiment and QA training example, and 300 instruction examples (weights below);
# the instruction data is long (45% of all its tokens) and only there to keep the model general.
MIX = {"target": 2000, "sentiment": 2000, "qa": 600, GENERAL: 300, "copy": 1500}
TRAIN = {"epochs": 6, "batch_size": 16, "learning_rate": 1e-3, "warmup": 0.03, "scheduler": "linear",
         "max_source_length": 384, "max_target_length": 64, "eval_examples": 64, "save_steps": 250,
         "logging_steps": 25, "progress": True}
RECORD = "real-base.json"
COPY_INSTRUCTION = "Repeat the text word for word."
COPY_MAX_WORDS = 40


def write_copy_task(folder: Path) -> str:
    """The copy task's data (from the NER sentences and QA passages of the train splits); returns its spec."""
    from retain.io import atomic_write_text
    from retain.tasks import get_task

    rows = []
    for ex in get_task("ner").examples("train"):
        text = ex.prompt.rsplit("Sentence: ", 1)[-1]
        rows.append(" ".join(text.split()[:COPY_MAX_WORDS]))
    for ex in get_task("qa").examples("train"):
        passage = ex.prompt.split("Passage: ", 1)[-1].split("\n\nQuestion: ", 1)[0]
        rows.append(" ".join(passage.split()[:COPY_MAX_WORDS]))
    lines = [json.dumps({"id": f"copy-{i}", "instruction": COPY_INSTRUCTION, "input": t, "output": t})
             for i, t in enumerate(rows) if t.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "train.jsonl", "\n".join(lines) + "\n")
    return f"{GENERAL}:{folder}"


def build_base(flan_dir: Path, out: Path, log: Callable[[str], None] = print) -> Path:
    """Build (or find) the base model under `out`; returns its folder. Task data comes from RETAIN_DATA_DIR."""
    from retain.methods import make_method
    from retain.models.tiny import model_from_config_dir
    from retain.training.loop import train
    from retain.training.config import make_settings
    from retain.training.export import export_model

    model_dir = out / "base" / "model"
    if (model_dir / RECORD).is_file():
        log(f"base model: {model_dir} (already built)")
        return model_dir
    start = time.perf_counter()
    init = out / "base" / "init"
    if not (init / "model.safetensors").is_file():
        tmp = out / "base" / "init.tmp"
        model_from_config_dir(flan_dir, tmp, seed=0, shrink=ARCH)
        tmp.rename(init)
    log(f"pre-training the base on {', '.join((*SKILLS, GENERAL))} ({TRAIN['epochs']} epochs; resumable) ...")
    copy = write_copy_task(out / "base" / "aux" / "copy")
    weights = {copy if k == "copy" else k: v for k, v in MIX.items()}
    method = make_method("multitask", {"tasks": [*SKILLS[1:], GENERAL, copy], "weights": weights,
                                       "size": sum(MIX.values())})
    result = train(str(init), SKILLS[0], method, make_settings(TRAIN), out / "base" / "train")
    seconds = round(time.perf_counter() - start, 1)
    export_model(result.out_dir, model_dir, RECORD, {"arch": ARCH, "skills": [*SKILLS, GENERAL], "mix": MIX, "train": TRAIN,
                                                     "config_from": str(flan_dir), "build_seconds": seconds})
    log(f"base model ready in {seconds:.0f}s: {model_dir}")
    return model_dir
