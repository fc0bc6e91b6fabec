"""File I/O shared by every part of retain: atomic writes and record readers with located errors.

Results are always written atomically (a temporary file in the same folder, fsync, then rename), so a
`kill -9` at any moment leaves either the old file or the new one, never a half-written one. Readers
for JSONL / JSON / CSV / Parquet turn every problem into a `UserError` naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from retain.errors import UserError

RECORD_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old content or the new, never a mix.

    Temp file in the same folder, fsync, rename, fsync of the folder: after a crash or `kill -9` the
    file holds the old bytes or the new ones. The file gets the permissions of any new file under the
    user's umask (`mkstemp` alone would make it 0600). An error writing (a full disk) names `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a write or fsync error names no file: name the one being written
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return  # some systems cannot open a folder; the rename is done
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise UserError(f"invalid JSON: {e.msg}", f"{path}:{e.lineno}") from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", path) from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Stable hash of a JSON-serialisable object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


MAX_RECORD_BYTES = 16 * 1024 * 1024  # one JSONL line; a dialogue or a long document is a few kilobytes


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON-lines file: UTF-8 (a leading BOM is accepted), one object per line.

    Read line by line in binary so that a bad byte, a duplicated key or an oversized line is reported
    with its line number, and a single huge line is refused before it is parsed.
    """
    records = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_RECORD_BYTES + 1), b""), start=1):
            where = f"{path}:{lineno}"
            if len(raw) > MAX_RECORD_BYTES:
                raise UserError(f"line longer than {MAX_RECORD_BYTES // (1024 * 1024)} MB: one record per line, "
                                "each at most that size", where)
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})", where) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                raise UserError(f"malformed JSON line ({e.msg})", where) from None
            except ValueError as e:
                raise UserError(str(e), where) from None
            if not isinstance(obj, dict):
                raise UserError(f"expected a JSON object, got {type(obj).__name__}", where)
            obj.setdefault("_line", lineno)
            records.append(obj)
    return records


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as f:  # a BOM is accepted, as in JSONL
        reader = csv.DictReader(f)
        records = []
        try:
            for row in reader:
                if None in row:
                    raise UserError("more fields than the header names", f"{path}:{reader.line_num}")
                row = dict(row)
                row["_line"] = reader.line_num
                records.append(row)
        except csv.Error as e:
            raise UserError(f"malformed CSV ({e})", f"{path}:{reader.line_num}") from None
    return records


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise UserError(f"cannot read Parquet: {e}", path) from None
    rows = table.to_pylist()
    for i, row in enumerate(rows, start=1):
        row["_line"] = i
    return rows


def read_records(path: str | Path) -> list[dict]:
    """Read a list of records (dicts) from JSONL, a JSON array, CSV or Parquet.

    Each record gets a `_line` key (1-based line, or row number for Parquet) so later errors can
    name where a bad record is.

    Raises:
        UserError: the file is missing, unreadable, or a line is malformed.
    """
    path = Path(path)
    if not path.exists():
        raise UserError("file not found", path)
    if not path.is_file():
        raise UserError("not a file", path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return _read_jsonl(path)
        if suffix == ".json":
            data = read_json(path)
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise UserError("expected a JSON array of objects", path)
            for i, r in enumerate(data, start=1):
                r.setdefault("_line", i)
            return data
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".parquet":
            return _read_parquet(path)
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", path) from None
    raise UserError(f"unsupported file type {suffix!r} (use one of {', '.join(RECORD_SUFFIXES)})", path)




def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def _check_writable_from(path: Path, what: str) -> None:
    """`path` (a file that may not exist yet) can be created: its nearest existing ancestor is a writable folder."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise UserError(f"{what}: {base} is a file, so nothing can be created under it", path)
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{what}: cannot write in {base} (read-only or not yours)", path)


def check_output_file(path: str | Path, what: str = "--out") -> None:
    """Raise a one-line UserError now if a results file cannot be written at `path` later.

    Commands call this before any work, so an evaluation of hours never ends in a failed write.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{what}: is a folder; name a file to write", path)
    _check_writable_from(path if path.exists() else path.parent / "x", what)


def check_output_folder(path: str | Path, what: str = "--out") -> None:
    """Raise a one-line UserError now if files cannot be written into folder `path` later."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what}: is a file, not a folder", path)
    _check_writable_from(path / "x", what)
