"""Ctrl-C (SIGINT) and SIGTERM during a training run: stop cleanly, never half-way through a file.

    with StopSignals(run_dir) as stop:     # installed in the main thread, restored on exit
        stop.in_loop = True                # from here a first signal finishes the step
        ... if stop.signum: checkpoint, then raise TrainingInterrupted
        with stop.saving():                # a second signal waits for the file to be whole
            save_checkpoint(...)

Before the loop (setting up) and after it (finishing) a signal stops at once (HardInterrupt).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab.errors import HardInterrupt

__all__ = ["StopSignals"]


class StopSignals:
    """The first SIGINT/SIGTERM asks the loop to stop after its step (`signum` says which); a
    second stops at once, except while a checkpoint is being written."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.signum = 0  # the number of the first stop signal, 0: none
        self.in_loop = False  # a first signal before the first step stops at once
        self._saving = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if not self.in_loop:  # setting up or finishing: nothing to save, stop now
            raise HardInterrupt(signum, self.run_dir)
        if not self.signum or self._saving:  # a checkpoint being written completes first
            self.signum = signum
        else:
            raise HardInterrupt(signum, self.run_dir)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handler)
                         for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """While a checkpoint is written: a second signal waits for it to be complete."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False
