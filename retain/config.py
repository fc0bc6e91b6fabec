"""Reading config files as untrusted input (strict UTF-8, strict YAML, bounded size), and turning
pydantic validation and `--set key=value` overrides into the same one-line errors.

Config files come from users, teammates and tickets, so they are read as data that may be wrong in
any way: the wrong encoding, a key written twice, an alias bomb. Each problem becomes a `UserError`
naming the file (and line) and what to change; nothing here raises anything else.

- Encoding: UTF-8, with or without a byte-order mark (editors on Windows add one). UTF-16/32 (a BOM
  or NUL bytes) and invalid UTF-8 are refused with the line of the first bad byte.
- Size: at most `MAX_BYTES` per file; configs are a few kilobytes.
- One YAML dialect for every file retain reads: YAML 1.2 booleans (only `true`/`false`), so
  `name: no` or `country: NO` stay text, as they do in task files.
- Duplicate keys in one mapping are refused (PyYAML silently keeps the last, so a second `train:`
  would quietly replace the first).
- Anchors and aliases are allowed (`<<: *defaults` is a common idiom), but the document they expand
  to is bounded: at most `MAX_NODES` nodes once every alias is expanded, so a billion-laughs document
  is refused in milliseconds instead of exhausting memory later, when something walks it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from retain.errors import UserError, one_line

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 100_000


def decode_text(raw: bytes, path: str | Path) -> str:
    """`raw` as UTF-8 text (a leading BOM removed), else a UserError naming the line of the first bad byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise UserError("the file is UTF-16 or UTF-32; save it as UTF-8", path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UserError(f"not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8",
                        f"{path}:{line}") from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping (first on line {seen[key]})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: let PyYAML report it
                break
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _expanded_size(root) -> int:
    """Nodes in the document once every alias is expanded (shared nodes counted at each use)."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml_text(text: str, path: str | Path):
    """Parse one YAML document strictly (see the module docstring); None for an empty document."""
    loader = None
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters already here
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise UserError(f"the YAML expands to more than {MAX_NODES:,} values through its aliases "
                            "(an alias bomb?); write the values out", path)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise UserError(one_line(f"invalid YAML: {e.problem or e.context or e}"), where) from None
    except yaml.YAMLError as e:
        raise UserError(one_line(f"invalid YAML: {e}"), path) from None
    except RecursionError:
        raise UserError("the YAML nests too deeply", path) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(path: str | Path):
    """The YAML document in `path`, read strictly (see the module docstring); None when empty."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError("file not found" if not path.exists() else "not a file", path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{size:,} bytes is too large for a config file (at most {MAX_BYTES:,})", path)
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror or e}", path) from None
    return load_yaml_text(decode_text(raw, path), path)


def read_yaml(path: str | Path) -> dict:
    """Read a config file holding a YAML mapping (see the module docstring for what is refused)."""
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError("expected a mapping of options at the top level", path)
    return data


# --- validation and overrides --------------------------------------------------------------------

def validated(cls, data: Mapping[str, Any], what: str):
    """Build a pydantic model, turning validation errors into one-line `UserError`s."""
    try:
        return cls(**dict(data))
    except ValidationError as e:
        raise UserError(f"{what}: {describe_validation_error(e, cls)}") from None
    except (TypeError, ValueError) as e:  # raised by hooks outside pydantic's own checks
        raise UserError(f"{what}: {e}") from None


def describe_validation_error(e: ValidationError, cls=None) -> str:
    """One line per pydantic error, joined with `; ` (unknown options list the known ones)."""
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if not loc:  # a check across fields: its message says it all
            parts.append(err["msg"].removeprefix("Value error, "))
        elif err["type"] == "extra_forbidden":
            known = ", ".join(_field_names(cls)) if cls is not None else ""
            parts.append(f"unknown option {loc!r}" + (f" (options: {known})" if known else ""))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {err.get('input')!r})")
    return "; ".join(parts)


def _field_names(cls) -> list[str]:
    names = []
    for name, info in getattr(cls, "model_fields", {}).items():
        names.append(info.alias or name)
    return names


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse `key=value` strings; values are YAML scalars or flow lists (`r=8`, `tasks=[a, b]`).

    Raises:
        UserError: an item has no `=`.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.load(raw, Loader=_StrictLoader) if raw.strip() else ""  # the files' YAML dialect
        except yaml.YAMLError:
            value = raw
        out[key] = _number(value) if isinstance(value, str) else value
    return out


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(text: str):
    # YAML 1.1 reads `1e-3` as a string (it wants `1.0e-3`); people write it the short way.
    return float(text) if _NUMBER.match(text.strip()) else text
