"""Named experiments as data: the book's chapter 7-8 trainings, the notebook's variants, and ours.

A recipe is a model name, a dataset, and the TrainConfig fields that differ from the defaults.
It also states what it reproduces and the result we measured when we ran it (None until measured:
never a figure we did not see). `cnnlab train RECIPE` runs one; `cnnlab recipes` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cnnlab.errors import ConfigError, suggest


@dataclass(frozen=True)
class Measured:
    """A result we saw: test accuracy after the recipe's full run, where, and how long it took."""

    test_acc: float  # fraction in [0, 1] on the dataset's test split
    machine: str  # e.g. "2-core CPU (shared, loaded)" or "1x H100"
    seconds: float  # wall-clock of the whole `cnnlab train` run
    date: str = ""  # ISO date of the run
    data: str = ""  # what the data was when not the official files (the accuracy depends on it)


@dataclass(frozen=True)
class Recipe:
    """One named experiment: which model on which data with which hyperparameters."""

    name: str  # the key `cnnlab train NAME` takes
    model: str  # a name from cnnlab.models.list_models()
    dataset: str  # "fashion-mnist" or "mnist"
    overrides: Mapping[str, Any]  # TrainConfig fields that differ from its defaults
    reproduces: str  # what this run reproduces (book section, notebook cell, ...)
    model_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    measured: Measured | None = None  # the result we saw; None until we ran it
    note: str = ""  # what a newcomer should know before the first epoch (printed by train)

    def config(self, **changes: Any):
        """The TrainConfig this recipe trains with, `changes` applied last (e.g. epochs=1)."""
        from cnnlab.train_config import TrainConfig  # the config alone, not the whole engine

        overrides = dict(self.overrides)
        if changes.get("dataset", self.dataset) != self.dataset and "resize" not in changes:
            # A recipe's size is for its own data: other data (CIFAR-10, a folder) keeps its
            # size, and the book's 28x28 sets get the network's book size (cnnlab.inputs).
            overrides.pop("resize", None)
        values = {"model": self.model, "dataset": self.dataset, **overrides, **changes}
        return make_config(TrainConfig, values)

    def model_spec(self) -> str:
        """The model with the knobs the recipe sets: 'fastnet_slim (pool_before_bn=first)'."""
        from cnnlab.models import knob_text

        knobs = knob_text(self.model, self.model_kwargs)
        return f"{self.model} ({knobs})" if knobs else self.model

    def hyperparameters(self) -> str:
        """A compact human string of the overrides: 'epochs=10 lr=0.1 batch_size=128 resize=28'."""
        from cnnlab.train_config import format_setting

        return " ".join(f"{k}={format_setting(v)}" for k, v in self.overrides.items())


def make_config(config_cls: type, values: Mapping[str, Any]):
    """`config_cls(**values)`; an unknown field is a ConfigError naming the closest fields."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(config_cls)]
    for key in values:
        if key not in names:
            raise ConfigError(f"unknown training setting {key!r}{suggest(key, names)}")
    return config_cls(**values)





def _recipe(name: str, model: str, reproduces: str, *, dataset: str = "fashion-mnist",
            model_kwargs: Mapping[str, Any] | None = None, measured: Measured | None = None,
            note: str = "", **overrides: Any) -> Recipe:
    return Recipe(name=name, model=model, dataset=dataset,
                  overrides=MappingProxyType(dict(overrides)), reproduces=reproduces,
                  model_kwargs=MappingProxyType(dict(model_kwargs or {})), measured=measured,
                  note=note)


# Where our figures were measured (bench/bench_speed.py, a fresh `cnnlab train` process each,
# wall-clock from process start to the printed test accuracy; BENCHMARKS.md has the details).
# The book's 96x96 and 224x224 runs are not measured: ten epochs of them take hours to days on
# two CPU cores (ResNet-18 at 96x96 trains at ~156 images/s here: ~64 min for ten epochs).
_CPU = "2-vCPU AMD EPYC VM (shared host), torch 2.13.0+cpu"
_XEON = "2-vCPU Intel Xeon VM with AMX, torch 2.13.0+cpu"
# ../shared/data/mnist, where the MNIST figure was measured, holds 10,000 of MNIST's 70,000 images
# (8,004 train / 1,996 test): its accuracy does not compare with the usual ~99% on the full set.
_MNIST_SUBSET = "on a 10,000-image subset of MNIST, not the official files"

# The book's own trainings (D2L 1.0, ch. 7-8): 10 epochs, plain minibatch SGD, batch 128,
# Fashion-MNIST resized to what each network was designed for, validated on the test split.
BOOK = dict(epochs=10, optimizer="sgd", batch_size=128)
# What a model trained by name (no recipe of that name) gets: the book's runs at lr 0.05.
MODEL_DEFAULTS: Mapping[str, Any] = MappingProxyType(dict(BOOK, lr=0.05))

# Our speed recipes (issue 7): short one-cycle SGD runs with label smoothing, flip augmentation
# (and flip test-time augmentation inside FastNet), evaluated once at the end, no plots.
FAST = dict(optimizer="sgd", batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
            weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1, normalize=True,
            augment_flip=True, eval_every=0, amp="fast",
            plot=False, tensorboard=False, resize=(28, 28))

_RECIPES: tuple[Recipe, ...] = (
    _recipe("lenet", "lenet", "D2L 7.6 LeNet (sigmoid, average pooling)", **BOOK, lr=0.1,
            resize=(28, 28),
            measured=Measured(0.7266, _CPU, 49.4, date="2026-12-01"),
            note="the book's sigmoid LeNet stays at about 10% accuracy for its first two epochs "
                 "(so does the book's), then learns: about 73% after ten"),
    _recipe("alexnet", "alexnet", "D2L 8.1 AlexNet", **BOOK, lr=0.01, resize=(224, 224)),
    _recipe("vgg_small", "vgg11_small", "D2L 8.2 VGG-11 with channels divided by 4", **BOOK,
            lr=0.01, resize=(224, 224)),
    _recipe("nin", "nin", "D2L 8.3 Network in Network", **BOOK, lr=0.05, resize=(224, 224)),
    _recipe("googlenet", "googlenet", "D2L 8.4 GoogLeNet (Inception)", **BOOK, lr=0.01,
            resize=(96, 96)),
    _recipe("bn_lenet", "bn_lenet", "D2L 8.5 LeNet with batch normalization", **BOOK, lr=0.1,
            resize=(28, 28),
            measured=Measured(0.8840, _CPU, 53.6, date="2026-12-01")),
    _recipe("resnet18", "resnet18", "D2L 8.6 ResNet-18", **BOOK, lr=0.01, resize=(96, 96)),
    _recipe("densenet", "densenet", "D2L 8.7 DenseNet", **BOOK, lr=0.01, resize=(96, 96)),
    # The notebook's variants of the book's runs.
    _recipe("lenet_modern", "lenet_modern",
            "notebook, D2L ex. 7.6.1: LeNet with ReLU and max pooling",
            epochs=20, optimizer="sgd", batch_size=128, lr=0.05, resize=(28, 28),
            measured=Measured(0.8932, _CPU, 72.2, date="2026-12-01")),
    _recipe("lenet_modern_mnist", "lenet_modern",
            "notebook: the ReLU/max-pool LeNet on MNIST digits", dataset="mnist",
            epochs=20, optimizer="sgd", batch_size=128, lr=0.05, resize=(28, 28),
            measured=Measured(0.9554, _CPU, 18.1, date="2026-12-01", data=_MNIST_SUBSET)),
    _recipe("lenet_wide", "lenet_wide",
            "notebook, D2L ex. 7.6.2: deeper, wider LeNet (3x3 convs 32-64-128, dense 256-128)",
            epochs=20, optimizer="sgd", batch_size=128, lr=0.05, resize=(28, 28),
            measured=Measured(0.9095, _CPU, 296.4, date="2026-12-01")),
    _recipe("vgg_small_56", "vgg11_small", "D2L exercise 8.2.4: VGG small on 56x56 inputs",
            **BOOK, lr=0.01, resize=(56, 56),
            measured=Measured(0.8188, _CPU, 928.3, date="2026-12-01")),
    # Our speed records (bench/bench_speed.py). Tuned on a 10k validation split carved from the
    # training set, then run on the test split (val_size 0). Threads: the load-aware default
    # (cnnlab.device.ThreadPolicy: both cores when they are free, one when another program holds
    # one; bench/bench_threads.py: 1.8x the images/s of one thread on a quiet 2-core machine).
    # amp "fast": bf16 autocast where the CPU has native bf16 (avx512_bf16/AMX), where it pays
    # together with channels_last; float32 elsewhere, and the run says so. `fast` is held to 7
    # epochs of the book's LeNet under d2l 1.0.3, timed alongside it in the same benchmark run.
    _recipe("fast", "fastnet_slim",
            "cnnlab speed record: >= 93% Fashion-MNIST test accuracy within 7 epochs of d2l's "
            "LeNet on a 2-core CPU, in float32 too",
            model_kwargs=dict(pool_before_bn="first"),
            **{**FAST, "batch_size": 256, "lr": 0.2}, epochs=5,
            measured=Measured(0.9331, "2-vCPU AMD EPYC VM with avx512_bf16 (shared host), "
                              "torch 2.13.0+cpu, median of seeds 0-2", 52.0, date="2026-12-05")),
    _recipe("best_cpu", "fastnet_wide",
            "cnnlab speed record: >= 94% Fashion-MNIST test accuracy within 10 min on a 2-core CPU",
            **FAST, epochs=8,
            measured=Measured(0.9448, _XEON + ", median of seeds 0-2", 153.1, date="2026-12-01")),
)

RECIPES: Mapping[str, Recipe] = MappingProxyType({r.name: r for r in _RECIPES})


def list_recipes() -> list[str]:
    """All recipe names, in the order the table shows them (book, notebook, fast)."""
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; ConfigError naming the closest names when there is none."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(
            f"no recipe named {name!r}{suggest(name, list(RECIPES))} "
            "(`cnnlab recipes` lists them)") from None


def resolve(name: str) -> Recipe:
    """A recipe by name, else an ad-hoc recipe for a zoo model at its default input size.

    A model trained by name gets the book's defaults (10 epochs, SGD, batch 128, lr 0.05) at the
    input size the book uses for it; unknown names get one error suggesting recipes and models.
    """
    if name in RECIPES:
        return RECIPES[name]
    from cnnlab.models import default_input_size, list_models

    models = list_models()
    if name not in models:
        raise ConfigError(
            f"{name!r} is neither a recipe nor a model{suggest(name, list(RECIPES) + models)} "
            "(`cnnlab recipes` and `cnnlab models` list them)")
    _, h, w = default_input_size(name)
    return _recipe(name, name, f"model {name} with the book's default settings",
                   **MODEL_DEFAULTS, resize=(h, w))


def recipe_table() -> str:
    """The recipes as a markdown table (the README's)."""
    head = ["recipe", "model", "data", "hyperparameters", "reproduces", "measured test acc"]
    rows = []
    for r in RECIPES.values():
        m = r.measured
        got = "not yet measured" if m is None else (
            f"{m.test_acc:.1%} ({m.seconds / 60:.1f} min, {m.machine}"
            + (f"; {m.data})" if m.data else ")"))
        rows.append([r.name, r.model_spec(), r.dataset, r.hyperparameters(), r.reproduces,
                     got])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |"
              for row in rows]
    return "\n".join(lines)
