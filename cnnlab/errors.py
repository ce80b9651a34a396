"""The one exception family for errors a user can cause (bad path, corrupt file, bad name).

The CLI prints a CnnlabError as one line and exits 2; a TrainingInterrupted or HardInterrupt
exits 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnlabError(Exception):
    """An error the user can fix; the message says what was wrong and what to do.

    The CLI prints it as one line and exits with status 2. Programming errors stay ordinary
    exceptions (TypeError, AssertionError, ...) so they keep their tracebacks.
    """


class DataError(CnnlabError):
    """A data file or folder is missing, corrupt, truncated or fails its checksum."""


class ConfigError(CnnlabError):
    """A configuration value is invalid (named in the message)."""


class ShapeError(CnnlabError):
    """An input or layer shape that the operation or model cannot take."""


class TrainingError(CnnlabError):
    """Training cannot go on (a NaN loss, a run folder already in use, ...)."""


class ExportError(CnnlabError):
    """A model cannot be exported, or its exported file does not reproduce PyTorch."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """"; did you mean 'a', 'b' or 'c'?" for the closest distinct `choices`, '' if none is close."""
    close = difflib.get_close_matches(name, list(dict.fromkeys(choices)), n=n, cutoff=0.5)
    if not close:
        return ""
    names = [repr(c) for c in close]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"; did you mean {listed}?"


class OutputError(CnnlabError):
    """A file cannot be written: a full disk, a read-only folder, a path that runs under a file.

    `path` is what could not be written; `run_dir` is set when a training run stopped because of
    it, so the caller can say how to resume.
    """

    def __init__(self, message: str, path: object = None, run_dir: object = None):
        super().__init__(message)
        self.path = path
        self.run_dir = run_dir


class _Signalled:
    """An interruption by a signal: `signum`, and the exit status a shell reports for it."""

    signum: int

    @property
    def exit_code(self) -> int:
        """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class TrainingInterrupted(_Signalled, TrainingError):
    """Ctrl-C (SIGINT) or SIGTERM stopped a run after a step; a checkpoint was written when the
    run has a folder. `exit_code` is the shell's convention for the signal: 128 + its number."""

    def __init__(self, message: str, run_dir: object = None, signum: int = 2):
        super().__init__(message)
        self.run_dir = run_dir
        self.signum = signum


class HardInterrupt(_Signalled, KeyboardInterrupt):
    """A second Ctrl-C or SIGTERM (or the first, before training started): stop at once, without
    saving. A KeyboardInterrupt, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int = 2, run_dir: object = None):
        super().__init__(signum)
        self.signum = signum
        self.run_dir = run_dir


class RunFinished(TrainingError):
    """`resume` of a run that has already trained all its epochs: nothing to do."""

    def __init__(self, message: str, run_dir: object = None, epochs: int = 0):
        super().__init__(message)
        self.run_dir = run_dir
        self.epochs = epochs


def one_line(err: BaseException) -> str:
    """The error's message on one line (the CLI prints it so), or its type's name."""
    return " ".join(str(err).split()) or type(err).__name__
