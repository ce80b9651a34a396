"""The one exception family for errors a user can cause (bad path, corrupt file, bad name)."""

from __future__ import annotations


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
