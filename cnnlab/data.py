"""Datasets by name: IDX files found or downloaded, checked, and held in memory as tensors.

    ds = load_dataset("fashion-mnist")     # root=, $CNNLAB_DATA, the user cache, else download
    ds.train.images, ds.train.labels       # uint8 (60000, 28, 28), int64 (60000,)
    load_dataset("cifar10").train.images   # uint8 (50000, 3, 32, 32), from the python tarball
    load_dataset("folder:photos")          # photos/<class>/*.jpg: see cnnlab.imagefolder
    loader = Loader(ds.train, 128, shuffle=True, resize=224)   # see cnnlab.loader

A split is one uint8 tensor (N, H, W) (greyscale) or (N, C, H, W) and one int64 tensor (N,); the
Loader (re-exported here from cnnlab.loader) batches it by index slicing, transforms on the device.

One idea, past ~600 lines: a dataset by name, from files on disk to Splits in memory (finding,
downloading, verifying and reading each format); class folders live in imagefolder.py.
"""

from __future__ import annotations

import functools
import io as _io
import logging
import math
import numbers
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.download import (
    download_files,
    file_digest,
    md5_of,
    user_cache_dir,
    verify_folder,
    verify_md5,
)
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
    torchvision_dir: str  # torchvision keeps the raw files in <root>/<this>/raw (IDX)
    format: str = "idx"  # "idx": the four FILES; "cifar": the python tarball (CIFAR_TAR)
    counts: tuple[int, int] = (60000, 10000)  # images in the official train and test splits
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of every image


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
        DatasetInfo(
            "cifar10",
            ("airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"),
            ("https://www.cs.toronto.edu/~kriz/",),  # Krizhevsky's page, the only official copy
            {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
            "cifar-10-batches-py", format="cifar", counts=(50000, 10000), image_shape=(3, 32, 32)),
    )
}
FOLDER_PREFIX = "folder:"  # load_dataset("folder:PATH"): a class folder, see cnnlab.imagefolder
FOLDER_TEST_FRACTION = 0.2  # a single class folder: this share of each class is the test split


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for `name` (case and '_' / '-' do not matter)."""
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
           "cifar-10": "cifar10"}.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}"
                          f", or {FOLDER_PREFIX}PATH for a folder of class folders of images")
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
    note: str = ""  # how the files differ from the official ones ("" when they are, or unknown)

    @property
    def channels(self) -> int:
        """Colour channels of the images: 1 (greyscale) or 3."""
        return self.train.channels

    def text_labels(self, labels: torch.Tensor | Iterable[int]) -> list[str]:
        """The class names of integer labels (what `d2l.FashionMNIST.text_labels` returns)."""
        return [self.classes[int(i)] for i in labels]

    def save_grid(self, path: str | os.PathLike, split: str = "train", n: int = 16, *,
                  indices: Sequence[int] | None = None, seed: int = 0, ncols: int = 8) -> Path:
        """Save a PNG grid of `n` random images of a split (or those at `indices`) with labels."""
        from cnnlab.plots import MAX_GRID_IMAGES, save_image_grid  # matplotlib only if needed

        if split not in ("train", "test"):
            raise ConfigError(f"split={split!r} must be 'train' or 'test'")
        s = self.train if split == "train" else self.test
        if indices is None:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not (
                    1 <= n <= MAX_GRID_IMAGES):
                raise ConfigError(f"n={n!r} must be a number of images from 1 to "
                                  f"{MAX_GRID_IMAGES} (a grid of more is not readable)")
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


def _dataset_files(folder: Path, info: DatasetInfo | None = None) -> dict[str, Path] | None:
    """gz name -> path of the four files in `folder`; None if it holds none of them.

    A folder holding some but not all of them raises, naming the missing ones. For CIFAR-10:
    the tarball, or the folder of its unpacked batches (in `folder`, or `folder` itself).
    """
    listing = _listing(folder)
    if listing is None:
        return None
    if info is not None and info.format == "cifar":
        return _cifar_files(folder, listing)
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
    if info.format == "cifar":  # torchvision's layout (root/cifar-10-batches-py) is seen in root
        return [root, root / info.name]
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
            files = _dataset_files(folder, info)
            if files is not None:
                return folder, files
    partial_cache = False
    if root is None:
        looked.append(target)
        listing = _listing(target) or set()
        complete = (_cifar_files(target, listing) if info.format == "cifar" else
                    all(_file_in(target, listing, n) for pair in FILES.values() for n in pair))
        if complete:
            return target, _dataset_files(target, info)  # type: ignore[return-value]
        partial_cache = bool(listing)  # an interrupted download: fetch the rest
    failure = ""
    if download:
        try:
            download_files(target, info.md5, info.mirrors)
            return target, _dataset_files(target, info)  # type: ignore[return-value]
        except DataError as e:
            failure = f" Download failed: {e}."
    elif partial_cache:
        failure = f" {target} holds only part of the files (download=False)."
    where = ", ".join(str(p) for p in looked)
    what = ("cifar-10-python.tar.gz (or its cifar-10-batches-py folder)"
            if info.format == "cifar" else "the four IDX files")
    raise DataError(f"{info.name} not found (looked in {where}).{failure} Point cnnlab at a "
                    f"folder holding {what} with root=PATH (cnnlab train --data-root "
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


# --- CIFAR-10 ---------------------------------------------------------------------------------

CIFAR_TAR = "cifar-10-python.tar.gz"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
# md5 of the unpacked batches, as torchvision lists them (torchvision/datasets/cifar.py).
CIFAR_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


def _cifar_files(folder: Path, listing: set[str]) -> dict[str, Path] | None:
    """{tarball name: path} or {batch name: path} of CIFAR-10 in `folder`; None if absent."""
    if CIFAR_TAR in listing:
        return {CIFAR_TAR: folder / CIFAR_TAR}
    for batches in (folder / CIFAR_DIR, folder):
        names = _listing(batches) if batches != folder else listing
        if names and "data_batch_1" in names:
            missing = [n for n in CIFAR_BATCH_MD5 if n not in names]
            if missing:
                raise DataError(f"{batches} lacks {', '.join(missing)}; copy the complete "
                                f"{CIFAR_DIR} folder (or {CIFAR_TAR}) there")
            return {n: batches / n for n in CIFAR_BATCH_MD5}
    return None


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch (a dict of lists, strings and one numpy array) and nothing else.

    A pickle can name any callable; only numpy's array reconstruction is let through, so a
    tampered file fails to load instead of running code.
    """

    def find_class(self, module: str, name: str) -> object:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in (
                "_reconstruct", "scalar"):
            core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
            return getattr(core.multiarray, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes in a protocol-2 pickle from Python 3
            import _codecs

            return _codecs.encode
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _read_cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(_io.BytesIO(raw), encoding="latin1").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, TypeError,
            ValueError) as e:
        raise DataError(f"{where} is not a CIFAR-10 batch ({type(e).__name__}: {e}); "
                        f"{_REDO}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{where} holds data of shape {data.shape} and {len(labels)} labels, not "
                        f"(N, 3072) images with N labels; {_REDO}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where} holds label {int(labels.max())}, outside CIFAR-10's 0-9; "
                        f"{_REDO}")
    return data.reshape(-1, 3, 32, 32), labels  # rows are R, G, B planes: (N, C, H, W) as is


def _cifar_batches(files: dict[str, Path]) -> dict[str, tuple[bytes, str]]:
    """batch name -> (its bytes, where it came from), read from the tarball or the folder."""
    if CIFAR_TAR not in files:
        out = {}
        for n, p in files.items():
            try:
                out[n] = (p.read_bytes(), str(p))
            except OSError as e:
                raise DataError(f"cannot read {p}: {e.strerror or e}") from e
        return out
    tar_path = files[CIFAR_TAR]
    out = {}
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in CIFAR_BATCH_MD5:
                    out[name] = (tar.extractfile(member).read(), f"{tar_path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{tar_path} is not a readable .tar.gz ({e}; truncated or corrupt); "
                        f"{_REDO}") from None
    missing = [n for n in CIFAR_BATCH_MD5 if n not in out]
    if missing:
        raise DataError(f"{tar_path} lacks {', '.join(missing)} (not the CIFAR-10 python "
                        f"tarball); {_REDO}")
    return out


def _read_cifar(files: dict[str, Path]) -> tuple[Split, Split]:
    batches = _cifar_batches(files)
    splits = []
    for split in ("train", "test"):
        parts = [_read_cifar_batch(*batches[n]) for n in CIFAR_BATCHES[split]]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        splits.append(Split(torch.from_numpy(images), torch.from_numpy(labels)))
    return splits[0], splits[1]


# --- class folders ---------------------------------------------------------------------------


def _load_folder(spec: str, image_size: int | None, test_size: float, seed: int) -> Dataset:
    from cnnlab.imagefolder import read_image_folder

    path = spec[len(FOLDER_PREFIX):]
    if not path:
        raise ConfigError(f"{spec!r} names no folder; write {FOLDER_PREFIX}PATH")
    got = read_image_folder(path, image_size)
    images, labels = torch.from_numpy(got.images), torch.from_numpy(got.labels)
    n = got.n_train
    train, test = Split(images[:n], labels[:n]), Split(images[n:], labels[n:])
    if not got.has_test:
        if len(train) < 2:
            raise DataError(f"{got.root} holds {len(train)} image; a train and a test split "
                            "need at least two")
        k = min(max(1, round(test_size * len(train))), len(train) - 1)
        train, test = split_train_val(train, k, seed=seed)
    return Dataset(FOLDER_PREFIX + str(got.root), got.classes, train, test, got.root)


def is_folder_dataset(name: str) -> bool:
    """True for 'folder:PATH' names."""
    return str(name).startswith(FOLDER_PREFIX)


def load_dataset(name: str, root: str | Path | None = None, download: bool = True, *,
                 image_size: int | None = None, test_size: float = FOLDER_TEST_FRACTION,
                 seed: int = 0) -> Dataset:
    """Load 'fashion-mnist', 'mnist', 'cifar10' or 'folder:PATH' into memory.

    Where it looks: `root` (the dataset's files, or a folder holding <name>/), $CNNLAB_DATA/<name>,
    the user cache ($XDG_CACHE_HOME or ~/.cache)/cnnlab/<name>, else the official mirrors
    (checked against their published checksums). A folder with SHA256SUMS is verified against it.
    A 'folder:PATH' is read by cnnlab.imagefolder at `image_size` (None: its size rule); one
    without train/ and test/ subfolders is split per class, `test_size` of it (seeded) to test.
    """
    if is_folder_dataset(name):
        return _load_folder(str(name), image_size, test_size, seed)
    if image_size is not None:
        raise ConfigError(f"image_size applies to {FOLDER_PREFIX}PATH datasets; {name} has one "
                          "size: resize it with resize= (cnnlab train --resize)")
    info = dataset_info(name)
    folder, files = find_dataset(info.name, root, download)
    parent = next(iter(files.values())).parent  # folder, or its cifar-10-batches-py
    checked = verify_folder(parent, [p.name for p in files.values()])
    if info.format == "cifar":
        # A batch is a pickle: only a file whose checksum is known is read (SHA256SUMS or md5).
        official = {**info.md5, **CIFAR_BATCH_MD5}
        for name, path in files.items():
            if path.name not in checked:
                verify_md5(path, official[name])
        train, test = _read_cifar(files)
    else:
        train, test = _read_split(files, "train", info), _read_split(files, "test", info)
    return Dataset(info.name, list(info.classes), train, test, folder,
                   official_note(info, files, len(train), len(test)))


def official_note(info: DatasetInfo, files: dict[str, Path], n_train: int, n_test: int,
                  *, use_cache: bool = True) -> str:
    """'' when `files` are the published ones (or cannot be compared); else how they differ.

    A copy with other counts is a subset or a superset; one with the official counts but other
    md5 sums may hold other images or another train/test split. Either way its accuracy does not
    compare with published figures, and a user should know before comparing 95% with 99%.
    """
    want_train, want_test = info.counts
    if (n_train, n_test) != (want_train, want_test):
        return (f"not the official files: {n_train:,} of the official {want_train:,} training "
                f"images and {n_test:,} of {want_test:,} test images, so accuracy does not "
                "compare with published figures")
    published = {**info.md5, **(CIFAR_BATCH_MD5 if info.format == "cifar" else {})}
    differ = [p.name for key, p in files.items()  # unpacked IDX files have no published md5
              if p.name == key and md5_of(p, use_cache=use_cache) != published[key]]
    if differ:
        which = ("no file has its published md5" if len(differ) == len(files) else
                 "the md5 of " + ", ".join(sorted(differ)) + " differs from the published one")
        return (f"not the official files ({which}): the images or the train/test split may "
                "differ, so accuracy compares with published figures only roughly")
    return ""


def verify_dataset(name: str, root: str | Path | None = None) -> dict[str, str]:
    """Re-hash every file of a dataset (no cache); file name -> how it was verified.

    A 'folder:PATH' is checked by decoding every image afresh (its cache is not read).
    """
    if is_folder_dataset(name):
        from cnnlab.imagefolder import read_image_folder

        got = read_image_folder(str(name)[len(FOLDER_PREFIX):], cache=False)
        return {str(got.root): f"all {len(got.labels)} images decode"}
    info = dataset_info(name)
    folder, files = find_dataset(info.name, root, download=False)
    parent = next(iter(files.values())).parent
    checked = set(verify_folder(parent, [p.name for p in files.values()], use_cache=False))
    out = {}
    official = {**info.md5, **(CIFAR_BATCH_MD5 if info.format == "cifar" else {})}
    for gz, path in files.items():
        md5 = md5_of(path, use_cache=False) if path.name == gz else None  # unpacked: none
        is_official = md5 == official[gz]
        if path.name in checked:
            out[path.name] = "sha256 matches SHA256SUMS; " + (
                "md5 matches the official file" if is_official else
                "not the official file (md5 differs from the published one)" if md5 else
                "unpacked, so no published md5 to compare")
        elif is_official:
            out[path.name] = "md5 matches the official file"
        elif info.format == "cifar":
            raise DataError(f"{path} fails its checksum (md5 {md5}, published {official[gz]}): "
                            "the file is corrupt or not the official one; delete it and download "
                            "or copy it again")
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


def _pixel_stats(images: torch.Tensor) -> tuple[Any, Any]:
    if images.dim() == 4:  # colour: one (mean, std) per channel
        per = [_grey_stats(images[:, c]) for c in range(images.shape[1])]
        return tuple(m for m, _ in per), tuple(s for _, s in per)
    return _grey_stats(images)


def _grey_stats(images: torch.Tensor) -> tuple[float, float]:
    counts = torch.bincount(images.reshape(-1).cpu(), minlength=256).double()  # exact, no copy
    v = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum()
    mean = float((counts * v).sum() / total)
    var = float((counts * v * v).sum() / total) - mean * mean
    return round(mean, 6), round(math.sqrt(max(var, 0.0)), 6)


@functools.lru_cache(maxsize=8)
def _stats(name: str, root: str | None) -> tuple[Any, Any]:
    return _pixel_stats(load_dataset(name, root).train.images)


def dataset_stats(name: str | Dataset, root: str | Path | None = None) -> tuple[Any, Any]:
    """(mean, std) of the train split's pixels in [0, 1] at native size, for `normalize`.

    Greyscale: two floats; colour: two tuples, one value per channel (R, G, B).

    Give the Dataset itself (or the same `root` it was loaded from) so the figures are those of
    the copy in use; a name alone is looked up in cnnlab's usual search order.
    """
    if isinstance(name, Dataset):
        return _pixel_stats(name.train.images)
    if is_folder_dataset(name):
        return _pixel_stats(load_dataset(name).train.images)
    return _stats(dataset_info(name).name, None if root is None else str(root))
