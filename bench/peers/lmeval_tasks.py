"""lm-eval comparison, the inputs: which model, and the custom lm-eval tasks over retain's own prompts.

Both tools must read the very same text. retain renders a prompt from the task template, its few-shot
draw (`retain.tasks.fewshot`: per example, seeded by (seed, id), from train) and, for chat models, the
tokenizer's chat template (`retain.models.formatting.format_prompt`). lm-eval's own few-shot sampler and
`apply_chat_template` would draw other shots and lay them out differently, so the custom tasks read
documents that already hold retain's rendered prompt (`text`) and its answer, written at run time as
JSONL; lm-eval runs them with `num_fewshot: 0` and without a chat template. The bench then checks,
example by example, that lm-eval's contexts equal retain's.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parents[1]
from bench.common import CACHE, FLAN, REPO, model_folder

# Preferred model: the real-data study's full fine-tune on DialogSum (it writes summaries that end, as a
# model evaluated after fine-tuning does), else that study's base model.
REAL_MODELS = (REPO / "bench" / "real_study" / "out" / "study" / "runs" / "full-s0" / "train",
               REPO / "bench" / "real_study" / "out" / "base" / "model")
REAL_MODEL = REAL_MODELS[-1]
TASK_NAMES = {"choice": "retain_bench_sentiment", "generate": "retain_bench_summarization"}


def resolve_model(spec: str | Path | None, log: Callable[[str], None]) -> tuple[Path, str]:
    """The model folder and where it came from; builds the random fallback once into the cache.

    `spec`: a local folder, an embedded model name or a GGUF file (`bench/common.py: model_folder`), or
    None for the real-data study's model, else the random fallback.
    """
    if spec is not None:
        return model_folder(spec), "given"
    for real, what in zip(REAL_MODELS, ("real_study full fine-tune on DialogSum", "real_study base model")):
        if (real / "config.json").is_file() and any(real.glob("*.safetensors")):
            return real, what
    log(f"{REAL_MODEL} not there (yet): using the random-weight fallback model")
    out = CACHE / "flan-t5-small-shrunk-random"
    source = "random weights: flan-t5-small config + tokenizer shrunk by TINY_T5_SHRINK, PAD/UNK rows zeroed"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out, source
    from transformers import AutoModelForSeq2SeqLM

    from retain.models.loading import load_tokenizer
    from retain.models.tiny import TINY_T5_SHRINK, model_from_config_dir, save_model, zero_special_output_rows

    log(f"building the fallback model into {out} ...")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
    model_from_config_dir(FLAN, tmp, seed=0, shrink=TINY_T5_SHRINK)
    tokenizer = load_tokenizer(str(tmp))
    save_model(zero_special_output_rows(AutoModelForSeq2SeqLM.from_pretrained(tmp), tokenizer), tokenizer, tmp)
    if out.exists():  # a half-built folder from an interrupted run
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out, source


def rendered_prompts(lm, examples, chat: str = "auto") -> list[str]:
    """The text retain conditions `lm` on for each example: template, shots and chat template applied."""
    from retain.models.formatting import format_prompt

    return [format_prompt(lm.tokenizer, ex.prompt, lm.is_seq2seq, chat, [(s.prompt, s.target) for s in ex.shots])
            for ex in examples]


def option_delimiter(lm, prompts: list[str]) -> str:
    """What retain puts between a prompt and an option (one value for all prompts: lm-eval takes one)."""
    from retain.models.formatting import completion_prefix

    delimiters = {completion_prefix(p, lm.is_seq2seq) for p in prompts}
    if len(delimiters) != 1:
        raise SystemExit(f"prompts end differently (delimiters {sorted(delimiters)}); lm-eval takes one per task")
    return delimiters.pop()


def write_tasks(folder: Path, docs: dict[str, list[dict]], delimiter: str, max_new_tokens: int,
                fix_max_length: bool) -> dict[str, Path]:
    """Write the custom lm-eval tasks (a JSONL of documents and a YAML each); returns kind -> YAML path.

    Args:
        folder: where to write (also lm-eval's `include_path`).
        docs: kind (`choice` / `generate`) -> documents `{"text": rendered prompt, "answer": ...}`.
        delimiter: what goes between a prompt and an option (`target_delimiter`).
        max_new_tokens: generation length limit.
        fix_max_length: seq2seq only: bound the decoder to 1 + max_new_tokens (see the notes in lmeval.py).
    """
    import yaml

    from retain.tasks.families import SENTIMENT_CHOICES

    common = {"dataset_path": "json", "test_split": "test", "num_fewshot": 0, "doc_to_text": "{{text}}",
              "doc_to_target": "answer", "metadata": {"version": 1.0}}
    configs = {
        "choice": {
            "output_type": "multiple_choice",
            "doc_to_choice": list(SENTIMENT_CHOICES),  # the answer is one of them: lm-eval takes its index
            # retain scores the bare option after the prompt plus its completion prefix: nothing for
            # seq2seq and for a prompt ending in whitespace (a chat prompt), else one space.
            "target_delimiter": delimiter,
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        },
        "generate": {
            "output_type": "generate_until",
            # until []: lm-eval stops at the tokenizer's EOS text only, as retain stops at EOS.
            "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_new_tokens,
                                  # For a seq2seq model lm-eval's max_length (context + max_gen_toks) bounds the
                                  # *decoder*; this bounds it to the decoder start token + max_new_tokens.
                                  **({"max_length": 1 + max_new_tokens} if fix_max_length else {})},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        },
    }
    paths = {}
    for kind, items in docs.items():
        data = folder / f"{TASK_NAMES[kind]}.jsonl"
        data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in items), encoding="utf-8")
        config: dict[str, Any] = {"task": TASK_NAMES[kind], **common, **configs[kind],
                                  "dataset_kwargs": {"data_files": {"test": str(data)},
                                                     "cache_dir": str(folder / "hf-datasets")}}
        paths[kind] = folder / f"{TASK_NAMES[kind]}.yaml"
        paths[kind].write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return paths
