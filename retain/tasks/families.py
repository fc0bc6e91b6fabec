"""File-backed task families: summarization, NER, sentiment, QA and instructions on the user's data.

`sentiment:PATH` builds a task from a data file (`.jsonl`, `.json`, `.csv`, `.parquet`; the split is
named by the file's stem) or a folder of `train` / `validation` / `test` files (the layout of
`../shared/data`); `sentiment:hf:ID[@CONFIG]` reads a Hugging Face hub dataset instead. Each family
fixes its record schema, prompt template, metric and generation length here, in one place. The prompt
templates are module constants so that other code (multitask mixing) renders the same prompts.

Reading is lazy: a factory checks that the data exists and which splits it has; records are read,
checked and turned into examples when a split's examples are first asked for. Every problem in a
record is a `UserError` naming `file:line` and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from retain.errors import UserError, one_line
from retain.io import read_records
from retain.tasks.base import SPLITS, Example, Loader, Task, register_family, render, split_files
from retain.tasks.ner_format import bio_to_entities, format_entities, parse_entities

SUMMARIZATION_TEMPLATE = "Summarize the following dialogue.\n\n{dialogue}"
NER_TEMPLATE = (
    "List the named entities in the sentence as TYPE: text separated by semicolons "
    "(types PER, LOC, ORG, MISC), or none.\n\nSentence: {text}"
)
SENTIMENT_TEMPLATE = "Review: {text}\nIs this review positive or negative?"
QA_TEMPLATE = "Read the passage and answer the question.\n\nPassage: {context}\n\nQuestion: {question}"
# The instruction, then a blank line and the input; the blank line is left out when the input is empty.
INSTRUCTIONS_TEMPLATE = "{instruction}\n\n{input}"
TEMPLATES = {
    "summarization": SUMMARIZATION_TEMPLATE,
    "ner": NER_TEMPLATE,
    "sentiment": SENTIMENT_TEMPLATE,
    "qa": QA_TEMPLATE,
    "instructions": INSTRUCTIONS_TEMPLATE,
}
SENTIMENT_CHOICES = ("negative", "positive")
REFERENCES_FILE = "test_references.jsonl"
VERSION = "1"

# Convert one record to an Example: convert(record, where, id, references_by_id).
Converter = Callable[[Mapping, str, str, "Mapping[str, tuple[str, ...]] | None"], Example]


# --- shared helpers (also used by retain.tasks.user) ------------------------------------------------

def field_text(record: Mapping, name: str, where: str, required: bool = True) -> str:
    """A record's text field, with a located error when it is missing or not text.

    Args:
        record: the record.
        name: the field.
        where: `file:line` for errors.
        required: if False a missing (or null) field reads as "".

    Raises:
        UserError: the field is missing or blank (when required), or is not text: a number, a boolean,
            a list or an object is refused rather than turned into text (`"text": 42` is a data error,
            not the sentence "42").
    """
    value = record.get(name)
    if value is None:
        if required:
            raise UserError(f"missing field {name!r}", where)
        return ""
    if not isinstance(value, str):
        kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
            type(value), type(value).__name__)
        raise UserError(f"field {name!r} must be text, not {kind} ({str(value)[:40]!r})", where)
    if required and not value.strip():
        raise UserError(f"field {name!r} is empty", where)
    return value


def field_list(record: Mapping, name: str, where: str) -> list:
    """A record's list field (a Parquet array or JSON list), with a located error otherwise."""
    value = record.get(name)
    if value is None:
        raise UserError(f"missing field {name!r}", where)
    if hasattr(value, "tolist"):  # numpy arrays from some Parquet readers
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise UserError(f"field {name!r} must be a list, not {type(value).__name__}", where)
    return list(value)


def record_id(record: Mapping, stem: str, index: int) -> str:
    """The record's `id` field if it has one, else `STEM-INDEX` (0-based position in its file)."""
    value = record.get("id")
    return str(value) if value is not None and str(value) != "" else f"{stem}-{index}"


def raw_fields(record: Mapping) -> dict:
    return {k: v for k, v in record.items() if k != "_line"}


def file_loader(files: Mapping[str, Path], to_examples: Callable[[str, Path, list[dict]], list[Example]]) -> Loader:
    """A lazy `loader(split, limit)` over split files: read and convert each split once, on first use.

    Args:
        files: split name -> data file.
        to_examples: `to_examples(split, file, records)` turns a file's records into examples.

    Returns:
        A loader for `Task`; it raises `UserError` for an empty file or a duplicated id.
    """
    done: dict[str, list[Example]] = {}

    def load(split: str, limit: int | None = None) -> list[Example]:
        if split not in done:
            file = files[split]
            records = read_records(file)
            if not records:
                raise UserError("no records (the file is empty)", file)
            examples = to_examples(split, file, records)
            check_unique_ids(examples, records, file)
            done[split] = examples
        return done[split][:limit] if limit else done[split]

    return load


def check_unique_ids(examples: list[Example], records: list[dict], file: Path | str) -> None:
    """Raise a located `UserError` for the first id used twice in one split."""
    seen: dict[str, Any] = {}
    for ex, rec in zip(examples, records):
        if ex.id in seen:
            raise UserError(f"duplicate id {ex.id!r} (first used on line {seen[ex.id]})",
                            f"{file}:{rec.get('_line', '?')}")
        seen[ex.id] = rec.get("_line", "?")


# --- one converter per family -----------------------------------------------------------------------

def _summarization(record, where, ex_id, refs_by_id):
    dialogue = field_text(record, "dialogue", where)
    summary = field_text(record, "summary", where)
    if refs_by_id is not None:
        if ex_id not in refs_by_id:
            raise UserError(f"no references for id {ex_id!r} in {REFERENCES_FILE}", where)
        refs = refs_by_id[ex_id]
    elif record.get("references") is not None:
        refs = tuple(str(r) for r in field_list(record, "references", where)) or (summary,)
    else:
        refs = (summary,)
    prompt = render(SUMMARIZATION_TEMPLATE, {**record, "dialogue": dialogue}, where)
    return Example(ex_id, prompt, summary, references=refs, fields=raw_fields(record))


def _ner(record, where, ex_id, _refs):
    if record.get("tokens") is not None or record.get("tags") is not None:
        tokens = field_list(record, "tokens", where)
        tags = field_list(record, "tags", where)
        if not tokens:
            raise UserError("field 'tokens' is empty", where)
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or not token.strip():
                raise UserError(f"field 'tokens': token {i} must be non-empty text, not {token!r}", where)
        try:
            target = format_entities(bio_to_entities(tokens, tags))
        except ValueError as e:
            raise UserError(f"fields 'tokens' and 'tags': {e}", where) from None
        text = " ".join(tokens)
    elif record.get("text") is not None:  # the flat form CSV can hold: text + formatted entities
        text = field_text(record, "text", where)
        try:
            target = format_entities(parse_entities(field_text(record, "entities", where), strict=True))
        except ValueError as e:
            raise UserError(f"field 'entities': {e}", where) from None
    else:
        raise UserError("missing fields: need 'tokens' and 'tags', or 'text' and 'entities'", where)
    prompt = render(NER_TEMPLATE, {**record, "text": text}, where)
    return Example(ex_id, prompt, target, fields=raw_fields(record))


def sentiment_label(value: Any, where: str) -> int:
    """0 (negative) or 1 (positive) from `positive`/`negative`, 0/1 or "0"/"1"; else a located UserError."""
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in SENTIMENT_CHOICES:
            return SENTIMENT_CHOICES.index(text)
        if text in ("0", "1"):
            return int(text)
    if value is None:
        raise UserError("missing field 'label'", where)
    raise UserError(f"field 'label' must be 'positive' or 'negative' (or 1 / 0), not {value!r}", where)


def _sentiment(record, where, ex_id, _refs):
    text = field_text(record, "text", where)
    label = sentiment_label(record.get("label"), where)
    prompt = render(SENTIMENT_TEMPLATE, {**record, "text": text}, where)
    return Example(ex_id, prompt, SENTIMENT_CHOICES[label], choices=SENTIMENT_CHOICES, label=label,
                   fields=raw_fields(record))


def _qa(record, where, ex_id, _refs):
    context = field_text(record, "context", where)
    question = field_text(record, "question", where)
    answers = record.get("answers")
    if isinstance(answers, Mapping):  # the SQuAD hub form {"text": [...], "answer_start": [...]}
        answers = answers.get("text")
    if answers is None and record.get("answer") is not None:
        answers = [field_text(record, "answer", where)]
    if answers is None:
        raise UserError("missing field 'answers' (a list; or 'answer', one text)", where)
    if isinstance(answers, str):  # CSV cannot hold a list: one answer
        answers = [answers]
    answers = field_list({"answers": answers}, "answers", where)
    answers = [str(a).strip() for a in answers if a is not None and str(a).strip()]
    if not answers:
        raise UserError("field 'answers' has no non-empty answer", where)
    prompt = render(QA_TEMPLATE, {**record, "context": context, "question": question}, where)
    return Example(ex_id, prompt, answers[0], references=tuple(answers), fields=raw_fields(record))


def instruction_prompt(instruction: str, input_text: str = "") -> str:
    """The instructions-family prompt: the instruction, plus a blank line and the input when there is one."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def _instructions(record, where, ex_id, _refs):
    instruction = field_text(record, "instruction", where)
    input_text = field_text(record, "input", where, required=False)
    output = field_text(record, "output", where)
    return Example(ex_id, instruction_prompt(instruction, input_text), output, fields=raw_fields(record))


@dataclass(frozen=True)
class Family:
    """What fixes a family: kind, metric, generation length, template and record converter."""

    name: str
    kind: str
    metric: str
    max_new_tokens: int
    convert: Converter
    description: str

    @property
    def template(self) -> str:
        return TEMPLATES[self.name]


FAMILIES = {
    f.name: f
    for f in (
        Family("summarization", "generate", "rouge", 64, _summarization,
               "dialogue summarization (fields dialogue, summary), ROUGE"),
        Family("ner", "generate", "entity_f1", 48, _ner,
               "named entities as 'TYPE: text; ...' (fields tokens + BIO tags, or text + entities), entity F1"),
        Family("sentiment", "choice", "accuracy", 4, _sentiment,
               "positive / negative classification (fields text, label), accuracy"),
        Family("qa", "generate", "squad", 24, _qa,
               "extractive QA (fields context, question, answers), SQuAD EM/F1"),
        Family("instructions", "generate", "rouge", 128, _instructions,
               "instruction following (fields instruction, input, output), ROUGE"),
    )
}


# --- building tasks ---------------------------------------------------------------------------------

def load_references(path: Path) -> dict[str, tuple[str, ...]]:
    """Read a `test_references.jsonl` file: rows `{"id", "references": [...]}` -> id -> references."""
    refs: dict[str, tuple[str, ...]] = {}
    for rec in read_records(path):
        where = f"{path}:{rec['_line']}"
        rid = field_text(rec, "id", where)
        values = [str(r) for r in field_list(rec, "references", where)]
        if not values:
            raise UserError("field 'references' is empty", where)
        refs[rid] = tuple(values)
    return refs


def _convert_all(family: Family, split: str, file: Path | str, records: list[dict],
                 refs_by_id: Mapping[str, tuple[str, ...]] | None = None) -> list[Example]:
    stem = Path(str(file)).stem
    return [family.convert(rec, f"{file}:{rec.get('_line', i + 1)}", record_id(rec, stem, i), refs_by_id)
            for i, rec in enumerate(records)]


def build_family_task(family_name: str, path: str) -> Task:
    """Build the task `FAMILY:PATH` (or `FAMILY:hf:ID[@CONFIG]` for a hub dataset).

    Args:
        family_name: one of `summarization`, `ner`, `sentiment`, `qa`, `instructions`.
        path: a data file, a folder of split files, or `hf:ID[@CONFIG]`.

    Returns:
        The task; its data is read when examples are first asked for.

    Raises:
        UserError: the file or folder does not exist or has no split files.
    """
    family = FAMILIES[family_name]
    if path.startswith("hf:"):
        splits, loader = SPLITS, _hub_loader(family, path[3:])
    else:
        files = split_files(Path(path).expanduser())
        splits = tuple(s for s in SPLITS if s in files)

        def to_examples(split, file, records):
            refs = None
            ref_file = file.parent / REFERENCES_FILE
            if family.name == "summarization" and file.stem.lower() == "test" and ref_file.is_file():
                refs = load_references(ref_file)
            return _convert_all(family, split, file, records, refs)

        loader = file_loader(files, to_examples)
    return Task(name=f"{family.name}:{path}", family=family.name, version=VERSION, kind=family.kind,
                metric=family.metric, prompt_template=family.template, max_new_tokens=family.max_new_tokens,
                splits=splits, loader=loader, description=family.description)


# Hub column names that mean one of our fields (first present wins); ClassLabel ints become names.
_HUB_ALIASES = {"text": ("sentence",), "tags": ("ner_tags",)}


def _hub_loader(family: Family, spec: str) -> Loader:
    dataset_id, _, config = spec.partition("@")
    if not dataset_id:
        raise UserError(f"{family.name}:hf:ID needs a dataset id, e.g. sentiment:hf:stanfordnlp/sst2")
    state: dict[str, Any] = {}

    def load(split: str, limit: int | None = None) -> list[Example]:
        if "dataset" not in state:
            import datasets

            try:
                state["dataset"] = datasets.load_dataset(dataset_id, config or None)
            except Exception as e:  # network, auth, unknown id: all things the user can fix
                raise UserError(one_line(f"cannot load hub dataset {dataset_id!r}: {e}")) from None
        ds = state["dataset"]
        if split not in ds:
            raise UserError(f"hub dataset {dataset_id!r} has no {split!r} split (it has: {', '.join(ds)})")
        part = ds[split] if not limit else ds[split].select(range(min(limit, len(ds[split]))))
        records = [_hub_record(row, part.features, i + 1) for i, row in enumerate(part)]
        return _convert_all(family, split, f"hf:{dataset_id}[{split}]", records)

    return load


def _hub_record(row: dict, features: Mapping, line: int) -> dict:
    import datasets

    rec = dict(row)
    for name, feature in features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(feature, datasets.ClassLabel) and isinstance(rec.get(name), int) and rec[name] >= 0:
            rec[name] = feature.int2str(rec[name])
        elif isinstance(inner, datasets.ClassLabel) and isinstance(rec.get(name), list):
            rec[name] = [inner.int2str(v) for v in rec[name]]
    for ours, theirs in _HUB_ALIASES.items():
        for col in theirs:
            if rec.get(ours) is None and col in rec:
                rec[ours] = rec[col]
                break
    rec["_line"] = line
    return rec


@register_family("summarization")
def summarization(path: str) -> Task:
    """`summarization:PATH`: records {dialogue, summary}; a `test_references.jsonl` beside `test.*` adds references."""
    return build_family_task("summarization", path)


@register_family("ner")
def ner(path: str) -> Task:
    """`ner:PATH`: records {tokens, tags} with BIO tags (or {text, entities}); target `TYPE: text; ...`."""
    return build_family_task("ner", path)


@register_family("sentiment")
def sentiment(path: str) -> Task:
    """`sentiment:PATH`: records {text, label}, a choice between `negative` and `positive`."""
    return build_family_task("sentiment", path)


@register_family("qa")
def qa(path: str) -> Task:
    """`qa:PATH`: records {context, question, answers}; the first answer is the training target."""
    return build_family_task("qa", path)


@register_family("instructions")
def instructions(path: str) -> Task:
    """`instructions:PATH`: records {instruction, input, output}, general data for replay and mixing."""
    return build_family_task("instructions", path)
