"""The book's DataModule and FashionMNIST (plus MNIST), on cnnlab's in-memory loaders.

The book builds `torchvision` datasets and a multi-worker `DataLoader` that decodes, resizes and
collates one PIL image at a time. Here the whole split is one uint8 tensor, batches are index
slices, and resizing happens per batch on the device the batches are made on (cnnlab.loader.Loader),
so there are no worker processes and no torchvision.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from cnnlab.d2l._base import HyperParameters, show_images
from cnnlab.data import load_dataset
from cnnlab.loader import Loader, Split, resize_weights
from cnnlab.shapes import pair

__all__ = ["DataModule", "FashionMNIST", "MNIST"]


class DataModule(HyperParameters):
    """The base class of data: `train_dataloader()` and `val_dataloader()` over `get_dataloader`."""

    def __init__(self, root: str | os.PathLike | None = "../data", num_workers: int = 4):
        self.save_hyperparameters()

    def get_dataloader(self, train: bool) -> Any:
        """The loader of the training (train=True) or validation split."""
        raise NotImplementedError

    def train_dataloader(self) -> Any:
        """Loader of the training split."""
        return self.get_dataloader(train=True)

    def val_dataloader(self) -> Any:
        """Loader of the validation split."""
        return self.get_dataloader(train=False)

    def get_tensorloader(self, tensors: Sequence[torch.Tensor], train: bool,
                         indices: Any = slice(0, None)) -> torch.utils.data.DataLoader:
        """A DataLoader over in-memory tensors (shuffled when training)."""
        tensors = tuple(a[indices] for a in tensors)
        dataset = torch.utils.data.TensorDataset(*tensors)
        return torch.utils.data.DataLoader(dataset, self.batch_size, shuffle=train)


class ImageSplit:
    """One split as the book's code sees it: `len(s)`, `s[i] -> (image (1, H, W), label)`."""

    def __init__(self, split: Split, resize: tuple[int, int]):
        self.split = split
        self.resize = resize

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.split.images[i].float()  # (28, 28)
        h, w = x.shape
        if (h, w) != self.resize:  # the Loader's resize (PIL's bilinear filter), on one image
            x = resize_weights(h, self.resize[0]).float() @ x @ resize_weights(
                w, self.resize[1]).float().T
        return (x / 255)[None], int(self.split.labels[i])

    @property
    def data(self) -> torch.Tensor:
        """All images, uint8 (N, 28, 28), as torchvision's `.data`."""
        return self.split.images

    @property
    def targets(self) -> torch.Tensor:
        """All labels, int64 (N,), as torchvision's `.targets`."""
        return self.split.labels


class _ImageData(DataModule):
    """A cnnlab dataset as a book DataModule; subclasses name the dataset and its labels."""

    dataset_name = ""
    labels: Sequence[str] = ()

    def __init__(self, batch_size: int = 64, resize: int | Sequence[int] = (28, 28),
                 root: str | os.PathLike | None = None):
        super().__init__(root=root, num_workers=0)
        self.save_hyperparameters()
        hw = pair(resize, "resize")  # a bad size fails before the dataset is read
        self.dataset = load_dataset(self.dataset_name, root=root)
        self.train = ImageSplit(self.dataset.train, hw)
        self.val = ImageSplit(self.dataset.test, hw)

    def text_labels(self, indices: Any) -> list[str]:
        """Class names of label indices."""
        return [self.labels[int(i)] for i in indices]

    def get_dataloader(self, train: bool, device: Any = None) -> Loader:
        """Batches (X float32 (B, 1, H, W) in [0, 1], y int64 (B,)), shuffled when training."""
        split = self.train if train else self.val
        hw = pair(self.resize, "resize")
        # The shuffle seed comes from torch's RNG, so torch.manual_seed makes runs repeatable
        # as it does with the book's DataLoader.
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        return Loader(split.split, self.batch_size, shuffle=train, seed=seed,
                      resize=None if hw == tuple(split.split.images.shape[-2:]) else hw,
                      device=device if device is not None else "cpu")

    def _loaders_on(self, device: Any) -> tuple[Loader, Loader] | None:
        """Train and validation loaders whose batches are made (and resized) on `device`.

        None when a subclass overrides how loaders are made: the Trainer then calls the
        overrides and moves each batch, as the book's Trainer does.
        """
        cls = type(self)
        if (cls.get_dataloader is not _ImageData.get_dataloader
                or cls.train_dataloader is not DataModule.train_dataloader
                or cls.val_dataloader is not DataModule.val_dataloader):
            return None
        return self.get_dataloader(True, device), self.get_dataloader(False, device)

    def visualize(self, batch: Sequence[torch.Tensor], nrows: int = 1, ncols: int = 8,
                  labels: Sequence[str] = ()) -> None:
        """Show the first nrows*ncols images of a batch with their class names."""
        X, y = batch  # noqa: N806
        if not labels:
            labels = self.text_labels(y)
        show_images(X.squeeze(1), nrows, ncols, titles=labels)


class FashionMNIST(_ImageData):
    """The Fashion-MNIST dataset: `FashionMNIST(batch_size=64, resize=(28, 28), root=None)`."""

    dataset_name = "fashion-mnist"
    labels = ("t-shirt", "trouser", "pullover", "dress", "coat",
              "sandal", "shirt", "sneaker", "bag", "ankle boot")


class MNIST(_ImageData):
    """Handwritten digits, with the same interface as FashionMNIST."""

    dataset_name = "mnist"
    labels = tuple(str(d) for d in range(10))
