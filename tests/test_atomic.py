"""cnnlab.atomic: every file is written whole or not at all, and a refused write is one line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import atomic
from cnnlab.atomic import remove_orphans, write_atomic
from cnnlab.errors import OutputError


def test_writes_bytes_text_and_functions_whole_with_mode_0644(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.bin", b"\x00\x01")
        write_atomic(tmp_path / "sub" / "b.txt", "héllo")  # folders are made
        write_atomic(tmp_path / "c.bin", lambda f: f.write(b"xyz"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "c.bin").read_bytes() == b"xyz"
    assert (tmp_path / "c.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b.txt", "c.bin", "sub"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_refused_write_is_one_line_keeps_the_old_file_and_no_tmp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    path = tmp_path / "last.pt"
    write_atomic(path, b"old")

    def refuse(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", refuse)
    with pytest.raises(OutputError) as err:
        write_atomic(path, b"new")
    assert str(err.value).startswith(f"cannot write {path}: {os.strerror(code)}; ")
    assert "\n" not in str(err.value) and err.value.path == path
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["last.pt"]


def test_other_errors_and_ctrl_c_pass_through_and_leave_nothing(tmp_path: Path) -> None:
    def network_error(f):
        f.write(b"half")
        raise ConnectionResetError(errno.ECONNRESET, "reset")  # an OSError, not about the disk

    def ctrl_c(f):
        f.write(b"half")
        raise KeyboardInterrupt

    for writer, exc in ((network_error, ConnectionResetError), (ctrl_c, KeyboardInterrupt)):
        with pytest.raises(exc):
            write_atomic(tmp_path / "f", writer)
    assert os.listdir(tmp_path) == []


def test_a_path_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/run/config\.json: .*a file"):
        write_atomic(tmp_path / "file" / "run" / "config.json", "{}")


def test_remove_orphans_deletes_only_dead_writers_files(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f".last.pt.cnnlab-{dead}.tmp"
    live = tmp_path / f".best.pt.cnnlab-{os.getppid()}.tmp"  # a live process's write in progress
    mine = atomic.tmp_path(tmp_path / "x.json")
    keep = tmp_path / "last.pt"
    users = tmp_path / f".notes.{dead}.tmp"  # a user's dotfile that only looks like one of ours
    for p in (orphan, live, mine, keep, users):
        p.write_bytes(b"...")
    assert mine.name == f".x.json.cnnlab-{os.getpid()}.tmp"
    assert remove_orphans(tmp_path) == [orphan]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, mine.name, keep.name, users.name])


def test_a_real_full_disk(tmpfs) -> None:
    small_disk = tmpfs("1m")
    write_atomic(small_disk / "keep.bin", b"k" * 1000)
    with pytest.raises(OutputError, match=r"No space left on device; free some space"):
        write_atomic(small_disk / "keep.bin", b"x" * (2 << 20))
    assert (small_disk / "keep.bin").read_bytes() == b"k" * 1000
    assert os.listdir(small_disk) == ["keep.bin"]  # the partial temporary file is gone


def test_atomic_target_publishes_only_a_block_that_ends_well(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    with atomic.atomic_target(path) as tmp:  # a writer that wants a file name
        tmp.write_bytes(b"v1")
    with pytest.raises(ValueError), atomic.atomic_target(path) as tmp:
        tmp.write_bytes(b"v2 that fails its check")
        raise ValueError("the check failed")
    assert path.read_bytes() == b"v1" and os.listdir(tmp_path) == ["model.onnx"]
