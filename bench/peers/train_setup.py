"""The training comparison's model and examples, built once and shared by every contender.

- `ensure_model`: a Llama of about flan-t5-small's compute with random weights (seed 0) and
  flan-t5-small's tokenizer without its automatic trailing `</s>` (`decoder_tokenizer`), built once
  into the bench cache; `bench/peers/train.py` explains the choice.
- `ensure_data`: DialogSum train, keeping only the examples that no contender truncates, as retain's
  own encoder measures them for the model's tokenizer (chat template included for chat models).
- `describe_model`: what a given model folder is (`--model`), for the result file.
"""

from __future__ import annotations

import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
from bench.common import CACHE, FLAN, SHARED

DATA = SHARED / "data" / "summarization"
# Llama shape of about flan-t5-small's compute; heads of 64 as in T5 (6 heads there, 8 here).
SHAPE = {"hidden": 512, "layers": 8, "heads": 8, "kv_heads": 8, "intermediate": 1376}


def decoder_tokenizer(config_dir: Path = FLAN, max_length: int = 1024):
    """flan-t5-small's tokenizer (same vocabulary and pieces) without T5's automatic EOS after every text."""
    import copy

    from tokenizers import processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    t5 = AutoTokenizer.from_pretrained(str(config_dir))
    backend = copy.deepcopy(t5._tokenizer)
    backend.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B")
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=t5.eos_token, pad_token=t5.pad_token,
                                   unk_token=t5.unk_token, model_max_length=max_length,
                                   clean_up_tokenization_spaces=False)


def ensure_model(cache: Path = CACHE, seed: int = 0, max_positions: int = 1024) -> Path:
    """The benchmark's Llama (random weights under `seed`) with its tokenizer, built once into `cache`."""
    folder = cache / f"llama-flan-t5-small-compute-seed{seed}-pos{max_positions}"
    if (folder / "model.safetensors").is_file():
        return folder
    from retain.models.tiny import save_model, tiny_llama

    tok = decoder_tokenizer(max_length=max_positions)
    model = tiny_llama(tok, hidden=SHAPE["hidden"], layers=SHAPE["layers"], heads=SHAPE["heads"],
                       kv_heads=SHAPE["kv_heads"], intermediate=SHAPE["intermediate"], max_positions=max_positions,
                       seed=seed)
    tmp = folder.with_name(folder.name + ".tmp")
    save_model(model, tok, tmp)
    tmp.replace(folder)  # atomic: a half-written folder is never mistaken for the model
    return folder


def ensure_data(model_dir: Path, cache: Path, max_length: int, max_target: int) -> tuple[Path, int]:
    """A copy of DialogSum train holding only the examples no contender truncates: (folder, count).

    Lengths come from retain's own encoder (prompt without EOS, `" " + target + EOS`) for the shared
    tokenizer, untruncated.
    """
    from retain.models.loading import load_tokenizer
    from retain.tasks import get_task
    from retain.training.data import Encoder, Sample

    folder = cache / f"dialogsum-{model_dir.name}-fit{max_length}-target{max_target}"  # lengths are the tokenizer's
    train = folder / "train.jsonl"
    if train.is_file():
        return folder, sum(1 for _ in train.open())
    tok = load_tokenizer(str(model_dir))
    enc = Encoder(tok, is_seq2seq=False, max_source_length=10**9, max_target_length=10**9)
    examples = list(get_task(f"summarization:{DATA}").examples("train"))
    lines = (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.strip()]
    if len(lines) != len(examples):
        raise SystemExit(f"{DATA / 'train.jsonl'}: {len(lines)} lines but {len(examples)} examples")
    kept = []
    for line, ex in zip(lines, examples):
        item = enc.encode(Sample(ex.prompt, ex.target, "train"))
        target = sum(1 for x in item["labels"] if x != -100)
        prompt = len(item["input_ids"]) - target
        if len(item["input_ids"]) <= max_length and target <= max_target and prompt <= max_length - max_target:
            kept.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = train.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(train)
    return folder, len(kept)


def describe_model(model: Path) -> dict:
    """A given model folder: its path, architecture and size (from its config), and where it came from."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(model))
    source = model / "retain_source.json"  # written by retain when it converted the folder from a GGUF file
    return {"path": str(model), "architecture": (cfg.architectures or [cfg.model_type])[0],
            "hidden": getattr(cfg, "hidden_size", None), "layers": getattr(cfg, "num_hidden_layers", None),
            "vocab_size": getattr(cfg, "vocab_size", None),
            "source": json.loads(source.read_text()) if source.is_file() else None}
