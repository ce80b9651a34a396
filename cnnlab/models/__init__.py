"""The model zoo: every network of chapters 7-8, registered by name.

    >>> from cnnlab.models import create_model, list_models, default_input_size
    >>> net = create_model("resnet18", num_classes=10, in_channels=1)
    >>> default_input_size("resnet18")
    (1, 96, 96)
    >>> create_model("lenet", **parse_model_args("lenet", ["channels=32,64", "pool=max"]))
    LeNet(...)

Every model's architecture knobs (`model_knobs(name)`) are declared once, in its family's
module; `parse_model_args` turns "KEY=VALUE" text into checked keyword arguments.

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
from cnnlab.models._knobs import Knob
from cnnlab.models._registry import (
    check_model_kwargs,
    create_model,
    default_input_size,
    knob_table,
    knob_text,
    list_models,
    model_knobs,
    non_default_knobs,
    parse_model_args,
    register_model,
)

__all__ = [
    "Knob",
    "ZooModel",
    "check_model_kwargs",
    "create_model",
    "default_input_size",
    "init_cnn",
    "knob_table",
    "knob_text",
    "list_models",
    "model_knobs",
    "non_default_knobs",
    "parse_model_args",
    "register_model",
]
