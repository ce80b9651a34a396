"""What a run feeds its model: the one owner of its splits, input size, channels, classes,
normalization and batch resize.

    inputs = RunInputs.load(config)             # or RunInputs(config, dataset)
    inputs.shape                                # InputShape(channels=1, size=(28, 28), classes=10)
    train, val, test = inputs.splits()          # the engine's three splits
    model = inputs.build_model("lenet")         # built for exactly that shape
    loader = inputs.loader(train, 128, device)  # the run's resize and normalization
    recorded_shape(json.load(open("runs/x/config.json")))   # compare: without reading images

The engine, `load_run`/`evaluate_run`/`predict_files`, compare, suite, the memory guard and
export all ask this module; none of them works these facts out on its own. The batch resize is
the Loader's (PIL-matched bilinear kernels), for training and prediction alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cnnlab.errors import CnnlabError, ConfigError

__all__ = ["InputShape", "RunInputs", "book_resize", "build_model", "recorded_shape"]

BOOK_NATIVE = (28, 28)  # the book's datasets: a zoo network trains there at its book size


@dataclasses.dataclass(frozen=True)
class InputShape:
    """What a network is built for: channels, (H, W) and the number of classes."""

    channels: int
    size: tuple[int, int]
    classes: int

    @property
    def chw(self) -> tuple[int, int, int]:
        """(C, H, W), as `cnnlab summary --input` takes it."""
        return (self.channels, *self.size)


def _get(config: Any, name: str, default: Any = None) -> Any:
    """A setting of a TrainConfig or of a config.json dict (older runs may lack some)."""
    if isinstance(config, Mapping):
        value = config.get(name, default)
    else:
        value = getattr(config, name, default)
    return default if value is None else value


def book_resize(resize: Any, model: str | None, native: tuple[int, int]) -> tuple[int, int] | None:
    """The resize a run applies: `resize` when given; else, on the book's 28x28 data, the zoo
    model's book size (when it differs); else None (the data's own size)."""
    if resize:
        return (int(resize[0]), int(resize[1]))
    if model and tuple(native) == BOOK_NATIVE:
        from cnnlab.models import default_input_size

        size = tuple(default_input_size(model)[1:])
        if size != BOOK_NATIVE:
            return (int(size[0]), int(size[1]))
    return None


def build_model(name: str, shape: InputShape, model_kwargs: Mapping[str, Any] | None = None
                ) -> Any:
    """The zoo network `name` built for `shape` (a flatten-sized classifier needs the size)."""
    from cnnlab.models import create_model

    return create_model(name, num_classes=shape.classes, in_channels=shape.channels,
                        **{**(model_kwargs or {}), "input_size": shape.size})


class RunInputs:
    """A run's inputs, from its config (a TrainConfig or config.json's dict) and its dataset."""

    def __init__(self, config: Any, dataset: Any, model: str | None = None) -> None:
        self.config = config
        self.dataset = dataset
        self.model = model or _get(config, "model") or None
        native = tuple(int(v) for v in dataset.train.images.shape[-2:])
        self.resize = book_resize(_get(config, "resize"), self.model, native)
        self.size: tuple[int, int] = self.resize or native  # (H, W) the model is fed
        self.channels = int(dataset.channels)
        self.classes = list(dataset.classes)
        self.seed = int(_get(config, "seed", 0))
        self._normalize: Any = ...  # computed on first use (a pass over the train split)

    @classmethod
    def load(cls, config: Any, dataset: Any = None, *, download: bool = True,
             model: str | None = None) -> RunInputs:
        """The inputs of `config`, loading its dataset unless given (a Dataset, or a name)."""
        from cnnlab.data import load_dataset

        ds = dataset if dataset is not None else _get(config, "dataset", "fashion-mnist")
        if isinstance(ds, str):
            ds = load_dataset(ds, root=_get(config, "data_root"), download=download,
                              image_size=_get(config, "image_size") or None)
        return cls(config, ds, model)

    @property
    def shape(self) -> InputShape:
        """What the network is built for."""
        return InputShape(self.channels, self.size, len(self.classes))

    @property
    def normalize(self) -> tuple[Any, Any] | None:
        """(mean, std) of the train split in use when the run standardizes, else None."""
        if self._normalize is ...:
            from cnnlab.data import dataset_stats

            self._normalize = (tuple(dataset_stats(self.dataset))
                               if _get(self.config, "normalize", False) else None)
        return self._normalize

    @property
    def val_is_test(self) -> bool:
        """True when the run validates on its test split (no val_size: the book's way)."""
        return not _get(self.config, "val_size", 0)

    def splits(self) -> tuple[Any, Any, Any]:
        """(train, validation, test): test is the test split (a seeded subset of test_samples),
        validation is carved from train (val_size) or is the test split, and train is what is
        left (a seeded subset of train_samples)."""
        from cnnlab.data import split_train_val

        test = self.dataset.test
        n_test = int(_get(self.config, "test_samples", 0))
        if n_test and n_test < len(test):
            test = split_train_val(test, n_test, seed=self.seed)[1]
        train, val = self.dataset.train, test
        val_size = _get(self.config, "val_size", 0)
        if val_size:
            size = int(val_size) if val_size >= 1 else val_size
            train, val = split_train_val(self.dataset.train, size, seed=self.seed)
        n_train = int(_get(self.config, "train_samples", 0))
        if n_train and n_train < len(train):
            train = split_train_val(train, n_train, seed=self.seed)[1]
        return train, val, test

    def split(self, name: str) -> Any:
        """One split by name, for evaluating a finished run: "train" and "val" as the engine
        used them; "test" the whole test split (test_samples only shortens training)."""
        if name not in ("train", "val", "test"):
            raise ConfigError(f"split {name!r} must be train, val or test")
        if name == "test":
            return self.dataset.test
        train, val, _ = self.splits()
        return train if name == "train" else val

    def augment(self) -> Any:
        """The training augmentation the config asks for, or None."""
        from cnnlab.loader import Augment

        crop, flip = _get(self.config, "augment_crop", 0), _get(self.config, "augment_flip", False)
        return Augment(crop_padding=crop, hflip=flip) if crop or flip else None

    def loader(self, split: Any, batch_size: int, device: Any = "cpu", **kw: Any) -> Any:
        """A Loader feeding `split` as the run does: its resize and normalization; `kw` goes to
        the Loader (shuffle, seed, augment, rank, world_size, channels_last)."""
        from cnnlab.loader import Loader

        return Loader(split, batch_size, resize=self.resize, normalize=self.normalize,
                      device=device, **kw)

    def build_model(self, name: str | None = None,
                    model_kwargs: Mapping[str, Any] | None = None) -> Any:
        """The zoo network (the run's, unless named) built for these inputs."""
        name = name or self.model
        if not name:
            raise ConfigError("no zoo model named: give one (`cnnlab models` lists them)")
        return build_model(name, self.shape, model_kwargs)


def recorded_shape(config: Mapping[str, Any]) -> InputShape | None:
    """The InputShape a run folder's config.json describes, or None when it cannot be known.

    The book's datasets and CIFAR-10 need no images read (their shapes are registered); a
    folder dataset is read through its cache, and a folder that is gone gives None.
    """
    from cnnlab.data import dataset_info, is_folder_dataset

    name = str(config.get("dataset", "fashion-mnist"))
    try:
        if is_folder_dataset(name):
            return RunInputs.load(config, download=False).shape
        info = dataset_info(name)
    except (CnnlabError, OSError):
        return None
    channels, h, w = info.image_shape
    size = book_resize(config.get("resize"), config.get("model"), (h, w)) or (h, w)
    return InputShape(channels, size, len(info.classes))
