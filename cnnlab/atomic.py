"""The one way cnnlab writes a file: whole, durable, and never half-written.

    write_atomic(path, b"bytes")                  # or a str (UTF-8)
    write_atomic(path, lambda f: torch.save(state, f))   # or a function writing a binary file
    with atomic_target(path) as tmp: ...          # or any writer that wants a file name

The data goes to a temporary sibling `.<name>.cnnlab-<pid>.tmp`, is flushed and fsynced, then
renamed over `path`, and the folder is fsynced so the rename itself survives a power cut. A crash
at any moment leaves the old file or the new one. A failure (or Ctrl-C) removes the temporary
file; a writer killed outright leaves it behind, and `remove_orphans` deletes it the next time the
folder is used (its name carries the dead writer's pid, and `cnnlab-`, so a user's own dotfile
that merely looks similar is never touched).

A write the file system refuses (no space, read-only, a path under a file, ...) raises
OutputError naming the path; other errors, such as a network error inside a writer function,
pass through unchanged.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from cnnlab.errors import OutputError

# Errors that say "this place cannot take this file", as opposed to a bug or a network error.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                   errno.EFBIG, errno.EIO, errno.ENOTDIR, errno.EISDIR, errno.ENOENT,
                   errno.ENAMETOOLONG, errno.EEXIST}
_HINTS = {errno.ENOSPC: "free some space or choose another folder",
          errno.EDQUOT: "free some space or choose another folder",
          errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
          errno.EROFS: "choose a folder on a writable disk",
          errno.EACCES: "you may not write there; choose another folder",
          errno.EPERM: "you may not write there; choose another folder",
          errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
          errno.EISDIR: "the path is a folder; choose a file name"}
_ORPHAN = re.compile(r"^\..+\.cnnlab-(\d+)\.tmp$")  # tmp_path's names, and only those


def output_error(err: OSError, path: str | os.PathLike) -> OutputError:
    """The one-line OutputError for an OSError met while writing `path`."""
    hint = _HINTS.get(err.errno or 0, "choose another folder")
    return OutputError(f"cannot write {path}: {err.strerror or err}; {hint}", path=Path(path))


def is_storage_error(err: BaseException) -> bool:
    """True for an OSError that the file system raised about a place (full, read-only, ...)."""
    return isinstance(err, OSError) and err.errno in _STORAGE_ERRNOS


def tmp_path(path: Path) -> Path:
    """The temporary sibling this process writes `path` through."""
    return path.with_name(f".{path.name}.cnnlab-{os.getpid()}.tmp")


@contextmanager
def atomic_target(path: str | os.PathLike, *, mkdir: bool = True) -> Iterator[Path]:
    """The temporary sibling to write `path` through, for writers that want a file name (an
    exporter): when the block ends without an error the file is fsynced and renamed over
    `path`; when it raises, the temporary file is removed and `path` is left as it was.

        with atomic_target(out) as tmp:
            torch.jit.save(module, str(tmp))
            check(tmp)          # raising here publishes nothing
    """
    path = Path(path)
    tmp = tmp_path(path)
    try:
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if is_storage_error(err):
            raise output_error(err, path) from None
        raise
    except BaseException:  # Ctrl-C, a failing writer or check: nothing half-written stays
        _remove(tmp)
        raise
    fsync_dir(path.parent)  # make the rename itself durable


def write_atomic(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object],
                 *, mkdir: bool = True) -> Path:
    """Write `data` (bytes, text, or a function that writes to a binary file) to `path`
    atomically and durably; returns the path. Mode 0644 (after the umask), like any new file."""
    with atomic_target(path, mkdir=mkdir) as tmp, open(tmp, "wb") as f:
        if callable(data):
            guarded = _Guarded(f)
            try:
                data(guarded)
            except Exception:
                if guarded.error is not None:  # the disk said no; the writer reworded it
                    raise guarded.error from None
                raise
        else:
            f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def check_writable(folder: str | os.PathLike) -> None:
    """OutputError now, before any long work, when a file cannot be created in `folder`."""
    probe = tmp_path(Path(folder) / "probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:  # this very process probing: it could create it
        return
    except OSError as err:
        if is_storage_error(err):
            raise output_error(err, folder) from None
        raise
    _remove(probe)


class _Guarded:
    """The temporary file as a writer function sees it. It remembers an OSError from write():
    torch.save's C++ writer turns "No space left on device" into a RuntimeError about positions."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.error: OSError | None = None

    def write(self, b: bytes) -> int:
        try:
            return self._f.write(b)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in `folder` (not its subfolders).

    A temporary file is an orphan when the pid in its name is no longer running; the files of a
    live writer are left alone. Returns what was removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _ORPHAN.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            if _remove(p):
                removed.append(p)
    return removed


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except (OSError, OverflowError):
        return False
    return True


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False
