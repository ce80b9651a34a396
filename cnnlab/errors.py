"""The one exception family for errors a user can cause (bad path, corrupt file, bad name)."""

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
