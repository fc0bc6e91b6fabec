"""Output that cannot be written is found before the work, in one line; a cache that cannot be written
is a warning; a full disk names the file and leaves nothing half-written."""

from __future__ import annotations

import errno
import json
import os

import pytest
import yaml

from retain import io
from tests.cli_helpers import run_cli


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_eval_out_naming_a_folder(tmp_path, capsys):
    code, _, err = run_cli(["eval", "--model", str(tmp_path / "m"), "--task", "toy-ner", "--out", str(tmp_path)],
                           capsys)
    assert code == 2 and "is a folder" in _one_line(err)


def test_eval_out_under_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "sub" / "results.json"
    code, _, err = run_cli(["eval", "--model", str(tmp_path / "m"), "--task", "toy-ner", "--out", str(out)], capsys)
    assert code == 2 and "is a file" in _one_line(err)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_eval_out_in_a_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run_cli(["eval", "--model", str(tmp_path / "m"), "--task", "toy-ner",
                                "--out", str(ro / "r.json")], capsys)
    finally:
        ro.chmod(0o700)
    assert code == 2 and "cannot write" in _one_line(err)


@pytest.mark.parametrize("command", ["study", "train"])
def test_out_naming_a_file(command, tmp_path, tiny_t5_dir, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    if command == "study":
        config = tmp_path / "s.yaml"
        config.write_text(yaml.safe_dump({"model": str(tiny_t5_dir), "target": "toy-summarize",
                                          "protect": ["toy-ner"], "methods": ["full"]}))
        args = ["study", str(config), "--out", str(target)]
    else:
        args = ["train", "--model", str(tiny_t5_dir), "--task", "toy-summarize", "--out", str(target)]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "is a file, not a folder" in _one_line(err)
    assert target.read_text() == "keep me"


def test_an_unwritable_cache_is_a_warning(tmp_path, tiny_llama_dir, capsys, caplog):
    cache = tmp_path / "cache-is-a-file"
    cache.write_text("not a folder")
    out = tmp_path / "r.json"
    code, _, err = run_cli(["eval", "--model", str(tiny_llama_dir), "--task", "toy-ner", "--limit", "2",
                            "--cache-dir", str(cache), "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["tasks"]["toy-ner"]["n"] == 2
    assert any("not writable" in r.getMessage() for r in caplog.records)


def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, tiny_llama_dir, capsys, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".r.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(io.os, "fsync", full)
    out = tmp_path / "r.json"
    code, _, err = run_cli(["eval", "--model", str(tiny_llama_dir), "--task", "toy-ner", "--limit", "2",
                            "--no-cache", "--out", str(out)], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after the progress bar
    assert code == 2 and len(errors) == 1 and str(out) in errors[0] and "No space left" in errors[0], err
    assert list(tmp_path.iterdir()) == []  # no results, no temp file


def test_results_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        io.atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
