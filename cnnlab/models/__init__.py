"""The model zoo: every network of chapters 7-8, registered by name.

    >>> from cnnlab.models import create_model, list_models, default_input_size
    >>> net = create_model("resnet18", num_classes=10, in_channels=1)
    >>> default_input_size("resnet18")
    (1, 96, 96)

Importing this package imports every family module, which registers its constructors.
"""

# Importing each family module registers its constructors.
from cnnlab.models import (  # noqa: F401
    alexnet,
    densenet,
    fast,
    googlenet,
    lenet,
    nin,
    regnet,
    resnet,
    vgg,
)
from cnnlab.models._base import ZooModel, init_cnn
from cnnlab.models._registry import create_model, default_input_size, list_models, register_model

__all__ = [
    "ZooModel",
    "create_model",
    "default_input_size",
    "init_cnn",
    "list_models",
    "register_model",
]
