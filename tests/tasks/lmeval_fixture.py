"""Local lm-eval tasks over a local JSONL file, for the lm-eval tests (offline: `dataset_path: json`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DOCS = [
    {"question": "The sky is", "choices": ["blue", "green", "loud"], "label": 0, "answer": "blue"},
    {"question": "Fire is", "choices": ["cold", "hot", "wet"], "label": 1, "answer": "hot"},
    {"question": "Grass is", "choices": ["red", "green", "blue"], "label": 1, "answer": "green"},
    {"question": "Snow is", "choices": ["white", "black", "pink"], "label": 0, "answer": "white"},
    {"question": "Night is", "choices": ["bright", "dark"], "label": 1, "answer": "dark"},
    {"question": "Ice is", "choices": ["cold", "warm", "sweet"], "label": 0, "answer": "cold"},
]


def _task(name: str, data: Path, **config) -> dict:
    return {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "doc_to_text": "Q: {{question}}\nA:", **config}


def write_tasks(folder: Path, answers: dict[int, str] | None = None) -> Path:
    """A folder with `tiny_mc` (multiple choice), `tiny_gen` (generate_until, exact match) and `tiny_bleu`
    (the same generations scored by corpus-level BLEU and TER) and `tiny_rolling` (the rolling
    log-likelihood of each question with its answer) over one JSONL file.

    Args:
        answers: doc index -> the generation answer to use instead of `answer` (so exact match can hit).
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "docs.jsonl"
    docs = [{**d, "answer": (answers or {}).get(i, d["answer"])} for i, d in enumerate(DOCS)]
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    mc = _task("tiny_mc", data, output_type="multiple_choice", doc_to_target="label", doc_to_choice="choices",
               metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}])
    gen = _task("tiny_gen", data, output_type="generate_until", doc_to_target="answer",
                generation_kwargs={"until": ["\n"], "max_gen_toks": 4, "do_sample": False},
                metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}])
    bleu = {**gen, "task": "tiny_bleu",
            "metric_list": [{"metric": "bleu", "aggregation": "bleu", "higher_is_better": True},
                            {"metric": "ter", "aggregation": "ter", "higher_is_better": False}]}
    (folder / "tiny_bleu.yaml").write_text(yaml.safe_dump(bleu))
    rolling = _task("tiny_rolling", data, output_type="loglikelihood_rolling", doc_to_text="",
                    doc_to_target="{{question}} {{answer}}.",
                    metric_list=[{"metric": m, "aggregation": a, "higher_is_better": False}
                                 for m, a in (("word_perplexity", "weighted_perplexity"),
                                              ("byte_perplexity", "weighted_perplexity"),
                                              ("bits_per_byte", "bits_per_byte"))])
    (folder / "tiny_rolling.yaml").write_text(yaml.safe_dump(rolling))
    (folder / "tiny_mc.yaml").write_text(yaml.safe_dump(mc))
    # a group of two multiple-choice tasks (as MMLU groups its subjects), and one that mixes kinds
    (folder / "tiny_mc2.yaml").write_text(yaml.safe_dump({**mc, "task": "tiny_mc2", "doc_to_text": "{{question}}"}))
    (folder / "tiny_group.yaml").write_text(yaml.safe_dump(
        {"group": "tiny_group", "task": ["tiny_mc", "tiny_mc2"],
         "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}]}))
    (folder / "tiny_mixed.yaml").write_text(yaml.safe_dump({"group": "tiny_mixed", "task": ["tiny_mc", "tiny_gen"]}))
    (folder / "tiny_gen.yaml").write_text(yaml.safe_dump(gen))
    return folder
