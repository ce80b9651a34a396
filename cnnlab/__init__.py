"""cnnlab: convolutional networks from *Dive into Deep Learning* ch. 7-8, fast and observable."""

from cnnlab.errors import CnnlabError, ConfigError, DataError, ShapeError, TrainingError

__version__ = "0.1.0"

__all__ = ["CnnlabError", "ConfigError", "DataError", "ShapeError", "TrainingError", "__version__"]
