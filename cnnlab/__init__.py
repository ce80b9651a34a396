"""cnnlab: convolutional networks from *Dive into Deep Learning* ch. 7-8, fast and observable."""

from typing import Any

from cnnlab.errors import (
    CnnlabError,
    ConfigError,
    DataError,
    OutputError,
    RunFinished,
    ShapeError,
    TrainingError,
    TrainingInterrupted,
)

__version__ = "0.1.0"

__all__ = ["CnnlabError", "ConfigError", "DataError", "OutputError", "RunFinished", "ShapeError",
           "TrainingError", "TrainingInterrupted", "__version__", "load_run"]


def __getattr__(name: str) -> Any:
    # `cnnlab.load_run` without importing torch for `import cnnlab` (the CLI starts faster).
    if name == "load_run":
        from cnnlab.run import load_run

        return load_run
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
