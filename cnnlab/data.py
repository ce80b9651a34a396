"""Datasets by name: IDX files found or downloaded, checked, and held in memory as tensors.

    ds = load_dataset("fashion-mnist")     # root=, $CNNLAB_DATA, the user cache, else download
    ds.train.images, ds.train.labels       # uint8 (60000, 28, 28), int64 (60000,)
    loader = Loader(ds.train, 128, shuffle=True, resize=224)   # see cnnlab.loader

A split is one uint8 tensor (N, H, W) and one int64 tensor (N,); the Loader (re-exported here
from cnnlab.loader) batches it by index slicing with its transforms done on the device.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnlab.download import download_files, file_digest, user_cache_dir, verify_folder
from cnnlab.errors import ConfigError, DataError
from cnnlab.loader import Augment, Loader, Split, resize_weights

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS", "Augment", "Dataset", "DatasetInfo", "Loader", "Split", "dataset_stats",
    "load_dataset", "read_idx", "resize_weights", "split_train_val", "verify_dataset",
]

# --- the registry ---------------------------------------------------------------------------------

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclass(frozen=True)
class DatasetInfo:
    """What cnnlab knows about a dataset: class names, official mirrors and their md5 sums."""

    name: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]  # tried in order; each holds the four FILES
    md5: dict[str, str] = field(hash=False)  # as published by the dataset's authors
    torchvision_dir: str  # torchvision keeps the raw files in <root>/<this>/raw


DATASETS: dict[str, DatasetInfo] = {
    info.name: info for info in (
        DatasetInfo(
            "fashion-mnist",
            ("t-shirt", "trouser", "pullover", "dress", "coat",
             "sandal", "shirt", "sneaker", "bag", "ankle boot"),
            # Zalando's published S3 site, then the files in its GitHub repository.
            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
            {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
            "FashionMNIST"),
        DatasetInfo(
            "mnist",
            tuple(str(d) for d in range(10)),
            # LeCun's site often refuses downloads; PyTorch's S3 mirror serves the same files.
            ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
            "MNIST"),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for `name` (case and '_' / '-' do not matter)."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[key]


# --- IDX files ------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_REDO = "delete it and copy or download it again"


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip (by its magic bytes, not its name)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check that it exists and is "
                        "readable") from e
    if raw[:2] != b"\x1f\x8b":
        return raw
    parts, rest = [], raw
    try:
        while rest:  # a .gz file may hold several members
            d = zlib.decompressobj(wbits=31)
            parts.append(d.decompress(rest))
            if not d.eof:
                raise DataError(f"{path} is a truncated gzip file (it ends mid-stream); {_REDO}")
            rest = d.unused_data.lstrip(b"\0")
    except zlib.error as e:
        raise DataError(f"{path} is a corrupt gzip file ({e}); {_REDO}") from e
    return parts[0] if len(parts) == 1 else b"".join(parts)  # no extra copy of one member


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    # Keyed by (size, mtime) so an edited file is read again; callers get copies.
    p = Path(path)
    raw = _read_bytes(p)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{p} is not an IDX file (magic bytes {raw[:4].hex() or 'none'}, expected "
                        f"0000 + a dtype code + ndim, e.g. 00000803 for images); {_REDO}")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise DataError(f"{p} is truncated inside its IDX header; {_REDO}")
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    want = start + math.prod(dims) * dtype.itemsize
    if len(raw) != want:
        raise DataError(f"{p}: its IDX header promises shape {dims} ({want} bytes) but the data "
                        f"holds {len(raw)} bytes (truncated or corrupt); {_REDO}")
    arr = np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)  # read-only, no copy
    if dtype.byteorder not in "=|":
        arr = arr.astype(dtype.newbyteorder("="))
        arr.flags.writeable = False
    return arr


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (.gz or raw), checking magic, dtype code, dimensions and length."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check the path") from e
    return _read_idx_cached(str(p), st.st_size, st.st_mtime_ns).copy()


# --- datasets ---------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A dataset's two splits, its class names and the folder its files came from."""

    name: str
    classes: list[str]
    train: Split
    test: Split
    root: Path

    def text_labels(self, labels: torch.Tensor | Iterable[int]) -> list[str]:
        """The class names of integer labels (what `d2l.FashionMNIST.text_labels` returns)."""
        return [self.classes[int(i)] for i in labels]

    def save_grid(self, path: str | os.PathLike, split: str = "train", n: int = 16, *,
                  indices: Sequence[int] | None = None, seed: int = 0, ncols: int = 8) -> Path:
        """Save a PNG grid of `n` random images of a split (or those at `indices`) with labels."""
        from cnnlab.plots import save_image_grid  # matplotlib only when a picture is wanted

        if split not in ("train", "test"):
            raise ConfigError(f"split={split!r} must be 'train' or 'test'")
        s = self.train if split == "train" else self.test
        if indices is None:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
                raise ConfigError(f"n={n!r} must be a positive number of images")
            g = torch.Generator().manual_seed(seed)
            indices = torch.randperm(len(s), generator=g)[: min(n, len(s))]
        part = s.subset(indices)
        return save_image_grid(part.images, self.text_labels(part.labels), path, ncols=ncols)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.train)}, test={len(self.test)}, "
                f"classes={len(self.classes)}, root='{self.root}')")


def _file_in(folder: Path, listing: set[str], gz_name: str) -> Path | None:
    """The .gz file or its unpacked twin (torchvision's raw layout), if present."""
    for name in (gz_name, gz_name[:-3]):
        if name in listing:
            return folder / name
    return None


def _listing(folder: Path) -> set[str] | None:
    """The names in `folder` (None when it is not a folder); unreadable -> DataError."""
    if not folder.is_dir():
        return None
    try:
        return set(os.listdir(folder))
    except OSError as e:
        raise DataError(f"cannot read folder {folder}: {e.strerror or e}; fix its permissions "
                        "(e.g. chmod u+rx) or point cnnlab at another folder with root=...") from e


def _dataset_files(folder: Path) -> dict[str, Path] | None:
    """gz name -> path of the four files in `folder`; None if it holds none of them.

    A folder holding some but not all of them raises, naming the missing ones.
    """
    listing = _listing(folder)
    if listing is None:
        return None
    found = {n: _file_in(folder, listing, n) for pair in FILES.values() for n in pair}
    missing = [n for n, p in found.items() if p is None]
    if len(missing) == len(found):
        return None
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; add the missing file(s) (a dataset "
                        "folder holds all four IDX files) or point cnnlab at a complete folder")
    return found  # type: ignore[return-value]


def _resumable(folder: Path, info: DatasetInfo) -> bool:
    """True when `folder` holds some, not all, of the four files, each the official one (md5)."""
    listing = _listing(folder) or set()
    present = [n for n in info.md5 if n in listing]
    if not present or len(present) == len(info.md5) or any(n[:-3] in listing for n in info.md5):
        return False
    return all(file_digest(folder / n, "md5") == info.md5[n] for n in present)


def _candidates(root: Path, info: DatasetInfo) -> list[Path]:
    return [root, root / info.name, root / info.torchvision_dir / "raw"]


def find_dataset(name: str, root: str | Path | None = None,
                 download: bool = True) -> tuple[Path, dict[str, Path]]:
    """The folder holding `name` and its four files, searched in cnnlab's documented order.

    root (a folder holding the files, or holding <name>/) -> $CNNLAB_DATA/<name> -> the user
    cache -> a download into root/<name> (with root) or into the user cache (without).
    """
    info = dataset_info(name)
    looked: list[Path] = []
    if root is not None:
        bases = [Path(root).expanduser()]
        target = bases[0] / info.name
    else:
        env = os.environ.get("CNNLAB_DATA")
        bases = [Path(env).expanduser()] if env else []
        target = user_cache_dir() / info.name
    for base in bases:
        for folder in _candidates(base, info):
            looked.append(folder)
            if download and folder == target and _resumable(folder, info):
                continue  # an interrupted download into root/<name>: fetch the rest below
            files = _dataset_files(folder)
            if files is not None:
                return folder, files
    partial_cache = False
    if root is None:
        looked.append(target)
        listing = _listing(target) or set()
        if all(_file_in(target, listing, n) for pair in FILES.values() for n in pair):
            return target, _dataset_files(target)  # type: ignore[return-value]
        partial_cache = bool(listing)  # an interrupted download: fetch the rest
    failure = ""
    if download:
        try:
            download_files(target, info.md5, info.mirrors)
            return target, _dataset_files(target)  # type: ignore[return-value]
        except DataError as e:
            failure = f" Download failed: {e}."
    elif partial_cache:
        failure = f" {target} holds only part of the files (download=False)."
    where = ", ".join(str(p) for p in looked)
    raise DataError(f"{info.name} not found (looked in {where}).{failure} Point cnnlab at a "
                    "folder holding the four IDX files with root=PATH (cnnlab train --data-root "
                    f"PATH), or set CNNLAB_DATA to a folder holding {info.name}/.")


def _read_split(files: dict[str, Path], split: str, info: DatasetInfo) -> Split:
    img_path, lbl_path = (files[n] for n in FILES[split])
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path} holds {images.dtype} data of shape {images.shape}, not uint8 "
                        f"images (N, H, W); is it a labels file? {_REDO}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{lbl_path} holds {labels.dtype} data of shape {labels.shape}, not uint8 "
                        f"labels (N,); is it an images file? {_REDO}")
    if len(images) != len(labels):
        raise DataError(f"{img_path.name} holds {len(images)} images but {lbl_path.name} holds "
                        f"{len(labels)} labels (in {img_path.parent}): the two files come from "
                        "different copies; replace both with matching files")
    if len(labels) and int(labels.max()) >= len(info.classes):
        raise DataError(f"{lbl_path} holds label {int(labels.max())} but {info.name} has "
                        f"{len(info.classes)} classes; {_REDO}")
    return Split(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def load_dataset(name: str, root: str | Path | None = None, download: bool = True) -> Dataset:
    """Load a dataset ('fashion-mnist' or 'mnist') into memory, finding or downloading it.

    Where it looks: `root` (the four IDX files, or a folder holding <name>/), $CNNLAB_DATA/<name>,
    the user cache ($XDG_CACHE_HOME or ~/.cache)/cnnlab/<name>, else the official mirrors
    (checked against their published checksums). A folder with SHA256SUMS is verified against it.
    """
    info = dataset_info(name)
    folder, files = find_dataset(info.name, root, download)
    verify_folder(folder, [p.name for p in files.values()])
    return Dataset(info.name, list(info.classes), _read_split(files, "train", info),
                   _read_split(files, "test", info), folder)


def verify_dataset(name: str, root: str | Path | None = None) -> dict[str, str]:
    """Re-hash every file of a dataset (no cache); file name -> how it was verified."""
    info = dataset_info(name)
    folder, files = find_dataset(info.name, root, download=False)
    checked = set(verify_folder(folder, [p.name for p in files.values()], use_cache=False))
    out = {}
    for gz, path in files.items():
        if path.name in checked:
            out[path.name] = "sha256 matches SHA256SUMS"
        elif path.name == gz and file_digest(path, "md5") == info.md5[gz]:
            out[path.name] = "md5 matches the official file"
        else:
            out[path.name] = "not verified (no SHA256SUMS entry, not the official file)"
    return out


def split_train_val(split: Split, val_size: int | float, seed: int = 0) -> tuple[Split, Split]:
    """Split off a stratified, seeded validation set: `val_size` samples, or that fraction."""
    n = len(split)
    if isinstance(val_size, bool) or not isinstance(val_size, numbers.Real):
        raise ConfigError(f"val_size={val_size!r} must be a sample count or a fraction in [0, 1)")
    if isinstance(val_size, numbers.Integral):
        k = int(val_size)
        if not 0 <= k < n:
            raise ConfigError(f"val_size={val_size} must be in [0, {n}) for a split of {n}")
    else:
        if not 0.0 <= val_size < 1.0:
            raise ConfigError(f"val_size={val_size} as a fraction must be in [0, 1)")
        k = round(float(val_size) * n)
        if k >= n:
            raise ConfigError(f"val_size={val_size} leaves no training samples of {n}")
    labels = split.labels.cpu()
    if k == 0:
        return split, split.subset(torch.zeros(0, dtype=torch.long))
    classes, counts = labels.unique(return_counts=True)
    # Per-class quotas proportional to class size, rounded by largest remainder to sum to k.
    exact = counts.double() * k / n
    quota = exact.floor().long()
    short = k - int(quota.sum())
    order = torch.argsort(exact - quota, descending=True, stable=True)
    quota[order[:short]] += 1
    g = torch.Generator().manual_seed(seed)
    val = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = (labels == c).nonzero().squeeze(1)
        val.append(idx[torch.randperm(len(idx), generator=g)[:q]])
    val_idx = torch.cat(val).sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    return split.subset(keep.nonzero().squeeze(1)), split.subset(val_idx)


def _pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    counts = torch.bincount(images.reshape(-1).cpu(), minlength=256).double()  # exact, no copy
    v = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum()
    mean = float((counts * v).sum() / total)
    var = float((counts * v * v).sum() / total) - mean * mean
    return round(mean, 6), round(math.sqrt(max(var, 0.0)), 6)


@functools.lru_cache(maxsize=8)
def _stats(name: str, root: str | None) -> tuple[float, float]:
    return _pixel_stats(load_dataset(name, root).train.images)


def dataset_stats(name: str | Dataset, root: str | Path | None = None) -> tuple[float, float]:
    """(mean, std) of the train split's pixels in [0, 1] at 28x28, for `normalize`.

    Give the Dataset itself (or the same `root` it was loaded from) so the figures are those of
    the copy in use; a name alone is looked up in cnnlab's usual search order.
    """
    if isinstance(name, Dataset):
        return _pixel_stats(name.train.images)
    return _stats(dataset_info(name).name, None if root is None else str(root))
