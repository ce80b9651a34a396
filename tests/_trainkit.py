"""Small deterministic datasets and networks for the training-engine tests (fast on 2 cores)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data import Dataset, Split

CLASSES = [f"c{i}" for i in range(10)]


def make_split(n: int, seed: int, size: int = 28) -> Split:
    """A learnable 10-class split: class c darkens a 6x6 patch at a class-specific place."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=g)]
    images = (torch.rand(n, size, size, generator=g) * 200).to(torch.uint8)
    for i, c in enumerate(labels.tolist()):
        r, col = 2 + (c // 5) * 12, 2 + (c % 5) * 5
        images[i, r:r + 6, col:col + 6] //= 2  # a darker patch in noise: learnable, not trivial
    return Split(images, labels.long())


def make_dataset(n_train: int = 400, n_test: int = 100, size: int = 28) -> Dataset:
    """An in-memory Dataset of make_split splits."""
    return Dataset("fashion-mnist", list(CLASSES), make_split(n_train, 1, size),
                   make_split(n_test, 2, size), Path("."))


def write_idx_dataset(folder: Path, n_train: int = 400, n_test: int = 100) -> Path:
    """Write make_dataset's splits as the four gzipped IDX files into folder; returns folder."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = make_dataset(n_train, n_test)
    for prefix, split in (("train", ds.train), ("t10k", ds.test)):
        n, h, w = split.images.shape
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, h, w) + split.images.numpy().tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + split.labels.to(torch.uint8).numpy().tobytes())
    return folder


class TinyNet(nn.Module):
    """Conv -> ReLU -> max-pool -> dropout -> linear: enough to learn make_split, with dropout
    so the RNG state matters for exact resume."""

    def __init__(self, size: int = 28, dropout: float = 0.2):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * (size // 2) ** 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(self.drop(x.flatten(1)))


class NaNAfter(nn.Module):
    """Wraps a network and makes its output NaN from the k-th training forward on (1-based)."""

    def __init__(self, net: nn.Module, k: int):
        super().__init__()
        self.net, self.k, self.calls = net, k, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.k:
                out = out * float("nan")
        return out


def write_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (12, 12),
                       mode: str = "L", seed: int = 0,
                       ext: str = "png") -> dict[str, list[np.ndarray]]:
    """root/<class>/<i>.<ext> random images; returns the arrays written, per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        out[name] = []
        for i in range(n):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode).save(root / name / f"{i:03d}.{ext}")
            out[name].append(a)
    return out


def make_cifar_tar(path: Path, per_batch: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """A CIFAR-10 python tarball in the official layout, with `per_batch` images a batch.

    cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}, each batch a
    protocol-2 pickle of {b"batch_label", b"labels", b"data" (N, 3072) uint8, b"filenames"},
    as the published file holds (written by Python 2, hence bytes keys).
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, body: bytes) -> None:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))

        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            arrays[name] = (images, labels)
            add(name, pickle.dumps({b"batch_label": name.encode(), b"labels": labels,
                                    b"data": images,
                                    b"filenames": [b"x.png"] * per_batch}, protocol=2))
        add("batches.meta", pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
        add("readme.html", b"<html></html>")
    return arrays


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels (its data would inflate to gigabytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    return path
