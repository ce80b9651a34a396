"""Checkpoints as plain data: saving and loading, RNG state capture, and the run-folder lock.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so it loads with
torch.load(weights_only=True): a checkpoint file is data, never code.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.atomic import is_storage_error, output_error, pid_alive, write_atomic
from cnnlab.errors import TrainingError

FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write state to path atomically (cnnlab.atomic): a crash leaves the old or the new file."""
    write_atomic(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint (weights_only: no code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}; was the run started with an output folder?")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, truncation, a foreign file
        raise TrainingError(f"cannot read checkpoint {path}: {_load_failure(e)}; it is corrupt "
                            "or not a cnnlab checkpoint") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise TrainingError(f"{path} is not a cnnlab checkpoint (format {FORMAT_VERSION})")
    return state


def _load_failure(err: Exception) -> str:
    """Why torch.load failed, in a few words, without torch's advice to pass weights_only=False.

    That advice means running code from the file; a cnnlab checkpoint is data only, so a file
    that needs it is not one of ours, and following the advice would be unsafe.
    """
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it holds a pickled Python object ({found.group(1)}), not only tensors and data"
    if "Weights only load failed" in text:
        return "it is not a checkpoint of tensors and plain data"
    if "zip archive" in text or isinstance(err, EOFError):
        return "the file is truncated or damaged"
    if isinstance(err, (KeyError, pickle.UnpicklingError)) or "invalid load key" in text:
        return "it is not a file torch.save wrote"
    first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop can touch, as tensors and plain lists."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class RunLock:
    """An exclusive lock on a run folder so two live runs never interleave their files.

    Uses flock where available: the kernel drops it when the holder dies, so a lock left by a
    killed run is simply taken over. Elsewhere a pid file is used, taken over when its pid is dead.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise TrainingError naming the live holder."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a read-only or full folder, a path under a file
            if is_storage_error(err):
                raise output_error(err, self.path.parent) from None
            raise
        try:
            import fcntl
        except ImportError:  # no flock (Windows): fall back to a pid check
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise TrainingError(self._busy_message(holder)) from None
        else:
            holder = _read_holder(fd)
            if holder and _holder_alive(holder):
                os.close(fd)
                raise TrainingError(self._busy_message(holder))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; an unlocked file means a free folder)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def _busy_message(self, holder: str) -> str:
        who = f" by process {holder}" if holder else ""
        return (f"run folder {self.path.parent} is in use{who}; wait for that run to finish, "
                "stop it, or choose another output folder")

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 200).decode(errors="replace").strip()


def _holder_alive(holder: str) -> bool:
    try:
        return pid_alive(int(holder.split()[0]))
    except (ValueError, IndexError):
        return False
