"""`perplexity:PATH` and `perplexity:FAMILY:PATH`: how well a model still predicts a set of texts.

The cheapest forgetting signal there is: no generation, one forward pass per window of each text, and
low variance (PEFT's method benchmark tracks fine-tuning damage the same way). Each document is scored
by `retain.evaluation.rolling` with lm-eval's rolling log-likelihood (every token predicted once, from
as much preceding text as the model's context holds), so every document has its own mean per-token
negative log-likelihood and the usual bootstrap intervals and paired comparisons apply. Lower is
better (metric family `perplexity`: `nll` in nats per token, and `perplexity`).

- `perplexity:PATH`: a `.txt` file (documents separated by blank lines) or a record file
  (`.jsonl`, `.json`, `.csv`, `.parquet`) with a `text` field; one split, named by the file's stem as
  for every task file (`test` unless the stem says otherwise), or a folder of split files.
- `perplexity:FAMILY:PATH` (or any task spec after `perplexity:`): the reference texts of that task's
  examples (the summaries of `summarization:data/`, ...), with the task's example ids and splits.
"""

from __future__ import annotations

import re
from pathlib import Path

from retain.errors import UserError
from retain.io import read_records
from retain.tasks.base import Example, Task, split_files

PREFIX = "perplexity"
VERSION = "1"
TEXT_SUFFIXES = (".txt", ".text", ".md")
_BLANK_LINES = re.compile(r"\n\s*\n")


def _documents(path: Path) -> list[Example]:
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError("not UTF-8 text", path) from None
        texts = [t.strip() for t in _BLANK_LINES.split(raw.replace("\r\n", "\n"))]
        return [Example(str(i), t, t) for i, t in enumerate(t for t in texts if t)]
    out = []
    for i, record in enumerate(read_records(path)):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise UserError(f"record {i + 1} has no text field (a string)", path)
        ex_id = str(record.get("id", i))
        out.append(Example(ex_id, text, text))
    return out


def _task(name: str, splits: tuple[str, ...], loader, description: str) -> Task:
    return Task(name=name, family=PREFIX, version=VERSION, kind="perplexity", metric="perplexity",
                prompt_template="{text}", max_new_tokens=1, splits=splits, loader=loader,
                description=description)


def perplexity_file(spec: str, path: str) -> Task:
    """The perplexity task over a text or record file (or a folder of split files)."""
    files = {}
    for split, f in split_files(path).items():
        if f.suffix.lower() not in TEXT_SUFFIXES and f.suffix.lower() not in (".jsonl", ".json", ".csv", ".parquet"):
            raise UserError(f"unsupported file type {f.suffix!r} for a perplexity task "
                            f"(use .txt with blank lines between documents, or .jsonl/.json/.csv/.parquet with a text field)", f)
        files[split] = f

    def loader(split: str, limit: int | None) -> list[Example]:
        docs = _documents(files[split])
        if not docs:
            raise UserError("no documents to score", files[split])
        return docs

    return _task(spec, tuple(files), loader, f"per-token NLL of the texts in {path}")


def perplexity_of(spec: str, source: Task) -> Task:
    """The perplexity task over `source`'s reference texts (each example's target), same ids and splits."""

    def loader(split: str, limit: int | None) -> list[Example]:
        return [Example(ex.id, ex.target, ex.target) for ex in source.examples(split, limit) if ex.target.strip()]

    return _task(spec, source.splits, loader, f"per-token NLL of the reference texts of {source.name}")
