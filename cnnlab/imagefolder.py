"""Class folders of image files, decoded once into uint8 arrays and cached between runs.

    ds = load_dataset("folder:photos")     # via cnnlab.data; photos/<class>/*.png|jpg|...

The layout is torchvision's ImageFolder convention: ROOT/<class>/<image> (subfolders of a class
folder count as that class), class names sorted, hidden files and folders (".name") skipped. Either
ROOT/train/<class>/... and ROOT/test/<class>/... (the test classes a subset of the train classes),
or one folder that cnnlab.data splits per class, seeded.

The size rule: every image is resized (PIL bilinear, antialiased) so its shorter side is S and its
centre S x S kept. S is `image_size` when given, else the shorter side of the smallest image, so a
folder of equal squares keeps its size and nothing is upscaled. Channels: 1 when every image is
greyscale (PIL modes 1, L, LA, I, I;16, F), else 3 (RGB; alpha dropped, palettes expanded).

The arrays are cached in the user cache (cnnlab/folders/), keyed on every file's path, size and
mtime plus S; a later load only lists the folder and reads one file. The cache is written through
a temporary file and a rename, so an interrupted first load leaves nothing half-written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import stat
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.atomic import write_atomic
from cnnlab.download import user_cache_dir
from cnnlab.errors import ConfigError, DataError, OutputError

log = logging.getLogger(__name__)

__all__ = ["FolderImages", "IMAGE_EXTENSIONS", "MAX_PIXELS", "available_memory", "check_pixels",
           "decode_image", "open_image", "read_image_folder"]

# torchvision's IMG_EXTENSIONS (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
CACHE_VERSION = 1  # bump when the decoding or the file format changes
MEMORY_FRACTION = 0.8  # refuse a dataset whose arrays would take more of the available memory


@dataclass
class FolderImages:
    """A class folder read into memory: the train images first, then the test images."""

    images: np.ndarray  # uint8 (N, S, S) greyscale or (N, 3, S, S) colour
    labels: np.ndarray  # int64 (N,)
    classes: list[str]
    n_train: int  # images[:n_train] are the train split
    has_test: bool  # True: ROOT/train + ROOT/test; False: one folder (split by the caller)
    root: Path
    from_cache: bool = False


# --- listing the folder ---------------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.is_dir() and not _is_hidden(e.name))
    except OSError as e:
        raise DataError(f"cannot read folder {folder}: {e.strerror or e}; check the path and its "
                        "permissions") from e


def _class_files(folder: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file under `folder`, sorted, hidden names skipped. Only
    regular files are listed (a FIFO named *.png would block the reader forever) and a symlink
    loop is named: each a DataError."""
    out: list[tuple[str, int, int]] = []
    todo = [str(folder)]
    seen = {_inode(folder)}  # the folders listed: a link back to one of them is a loop
    while todo:  # os.scandir: one stat per entry, no per-path string work beyond a join
        where = todo.pop()
        try:
            with os.scandir(where) as it:
                entries = list(it)
        except OSError as e:
            raise DataError(f"cannot read folder {where}: {e.strerror or e}; check its "
                            "permissions") from e
        for e in entries:
            if _is_hidden(e.name):
                continue
            st = _stat(e.path)
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    raise DataError(f"{e.path} leads back to a folder already read (a symlink "
                                    "loop); remove the link")
                seen.add((st.st_dev, st.st_ino))
                todo.append(e.path)
                continue
            if not e.name.lower().endswith(IMAGE_EXTENSIONS):
                raise DataError(f"{e.path} is not an image file (cnnlab reads "
                                f"{', '.join(IMAGE_EXTENSIONS)}); move it out of the class folder")
            _require_regular(e.path, st)
            out.append((e.path, st.st_size, st.st_mtime_ns))
    out.sort()
    return out


def _inode(path: str | Path) -> tuple[int, int]:
    st = _stat(path)
    return st.st_dev, st.st_ino


def _stat(path: str | Path) -> os.stat_result:
    """os.stat (through links) as a DataError naming the file: a symlink loop, a dangling link,
    a file that cannot be read."""
    try:
        return os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(f"{path} is a symlink loop ({e.strerror}); remove it") from None
        if e.errno == errno.ENOENT:
            what = "is a link to nothing" if os.path.islink(path) else "does not exist"
            raise DataError(f"image {path} {what}; check the path") from None
        raise DataError(f"cannot read {path}: {e.strerror or e}; check its permissions") from None


def _require_regular(path: str | Path, st: os.stat_result) -> None:
    """DataError unless `st` is a regular file: reading a FIFO or a device could block forever."""
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path} is a folder, not an image; give an image file (PNG, JPEG, ...)")
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
    raise DataError(f"{path} is {kind}, not a regular file; cnnlab reads only regular image "
                    "files: remove it or replace it with the image itself")


def _scan_classes(folder: Path, classes: list[str] | None = None
                  ) -> tuple[list[str], list[tuple[str, int, int]], list[int]]:
    """(classes, files, labels) of one ImageFolder-style folder."""
    found = _subfolders(folder)
    if not found:
        n = sum(1 for p in folder.iterdir() if p.is_file() and not _is_hidden(p.name))
        raise DataError(f"{folder} has no class subfolders (it holds {n} file(s) directly); put "
                        f"each class's images in its own folder, {folder}/<class>/<image>")
    if classes is None:
        if len(found) < 2:  # it would "learn" to answer the one class: 100%, meaningless
            raise DataError(f"{folder} has one class folder ({found[0]}); a classifier needs "
                            f"at least two: add a folder of images per class, {folder}/<class>/")
        classes = found
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataError(f"{folder} has class folder(s) {', '.join(extra)} that "
                            f"{folder.parent / 'train'} lacks; the test classes must be train "
                            "classes")
    files: list[tuple[str, int, int]] = []
    labels: list[int] = []
    for name in found:
        got = _class_files(folder / name)
        if not got:
            raise DataError(f"class folder {folder / name} holds no images; add some or remove "
                            "the folder")
        files += got
        labels += [classes.index(name)] * len(got)
    return classes, files, labels


def _layout(root: Path) -> tuple[list[str], list[tuple[str, int, int]], list[int], int, bool]:
    """(classes, files, labels, n_train, has_test): the train files first."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"image folder {root} {what} (folder:PATH names a folder holding one "
                        "subfolder of images per class)")
    subs = _subfolders(root)
    if "train" in subs and "test" in subs:
        classes, train, train_labels = _scan_classes(root / "train")
        _, test, test_labels = _scan_classes(root / "test", classes)
        return classes, train + test, train_labels + test_labels, len(train), True
    classes, files, labels = _scan_classes(root)
    return classes, files, labels, len(files), False


# --- decoding ---------------------------------------------------------------------------------


# One decompression-bomb limit for every image cnnlab reads (class folders, `data verify`,
# predict, inspect --image): Pillow's own default, checked from the header before any decoding.
MAX_PIXELS = 89_478_485


def check_pixels(path: str | Path, pixels: int) -> None:
    """DataError when an image's header claims more than MAX_PIXELS pixels (decoding it would
    take gigabytes: a decompression bomb)."""
    if pixels > MAX_PIXELS:
        raise DataError(f"image {path} claims {pixels:,} pixels, more than the {MAX_PIXELS:,} "
                        "cnnlab decodes (a decompression bomb?); use a smaller image or remove "
                        "it")


def open_image(path: str | Path):  # -> PIL.Image.Image, its pixels not decoded yet
    """The one way cnnlab opens an image file: only a regular file, and only one whose header
    claims at most MAX_PIXELS pixels; anything else is a DataError naming the file."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    _require_regular(path, _stat(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            im = Image.open(path)
    except Image.DecompressionBombError as e:  # past twice the limit Pillow refuses by itself
        claimed = re.search(r"\((\d+) pixels\)", str(e))
        check_pixels(path, int(claimed.group(1)) if claimed else MAX_PIXELS + 1)
        raise  # unreachable: the claim is above the limit
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read image {path}: it is not a readable image "
                        f"({type(e).__name__}: {e}); replace or remove it") from None
    try:
        check_pixels(path, im.size[0] * im.size[1])
    except DataError:
        im.close()
        raise
    return im


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _header(path: str) -> tuple[int, int, bool]:
    """(width, height, grey) from the file's header, without decoding its pixels."""
    try:  # a PNG's IHDR chunk says it in 26 bytes: 3x faster than PIL's open for small files
        with open(path, "rb") as f:
            head = f.read(26)
        if head[:8] == _PNG_MAGIC and head[12:16] == b"IHDR":
            w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if w and h:
                check_pixels(path, w * h)
                return w, h, head[25] in (0, 4)  # colour type 0: grey, 4: grey + alpha
    except OSError:
        pass  # PIL's open below names the problem
    with open_image(path) as im:
        return im.size[0], im.size[1], im.mode in GREY_MODES


def decode_image(path: str, side: int, channels: int) -> np.ndarray:
    """`path` as uint8 (side, side) or (side, side, 3): shorter side -> side, centre kept."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    try:
        with open_image(path) as im:
            w, h = im.size
            if (w, h) != (side, side) and im.format == "JPEG":
                im.draft(mode, (side, side))  # decode at 1/2, 1/4, 1/8 scale when that suffices
            scale_w, scale_h = im.size[0] / w, im.size[1] / h
            if im.mode != mode:
                im = im.convert(mode)
            if im.size != (side, side):
                short = min(w, h)  # the centre square, in the (possibly drafted) pixels
                left, top = (w - short) / 2 * scale_w, (h - short) / 2 * scale_h
                box = (left, top, left + short * scale_w, top + short * scale_h)
                im = im.resize((side, side), Image.BILINEAR, box=box)
            return np.array(im, dtype=np.uint8)  # a writable copy
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt pixel data
        raise DataError(f"{path} is a corrupt or truncated image ({e}); replace or remove "
                        "it") from None


def available_memory() -> int:
    """Bytes of memory available to a new allocation (cnnlab.device's reading of the host)."""
    from cnnlab.device import host_memory

    free = host_memory()
    return free if free is not None else 1 << 62  # unknown: do not refuse


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _check_memory(root: Path, n: int, channels: int, side: int) -> None:
    need = n * channels * side * side
    free = available_memory()
    if need > MEMORY_FRACTION * free:
        fit = int((MEMORY_FRACTION * free / max(n * channels, 1)) ** 0.5)
        raise DataError(f"{root}: {n} images at {side}x{side}x{channels} need {_gb(need)} in "
                        f"memory, more than {MEMORY_FRACTION:.0%} of the {_gb(free)} available; "
                        f"choose a smaller --image-size (at most about {fit})")


def _decode_all(root: Path, files: list[tuple[str, int, int]], image_size: int | None,
                threads: int) -> tuple[np.ndarray, int]:
    """All files decoded into one uint8 array; (array, side)."""
    paths = [f[0] for f in files]
    # Work in chunks: one task per image would cost more in futures than a small PNG decodes.
    chunks = [range(i, min(i + 512, len(paths))) for i in range(0, len(paths), 512)]
    with ThreadPoolExecutor(threads) as pool:  # PIL releases the GIL while it decodes
        headers = [h for part in pool.map(lambda r: [_header(paths[i]) for i in r], chunks)
                   for h in part]
        grey = all(g for _, _, g in headers)
        channels = 1 if grey else 3
        side = image_size or min(min(w, h) for w, h, _ in headers)
        _check_memory(root, len(paths), channels, side)
        shape = (len(paths), side, side) if grey else (len(paths), 3, side, side)
        out = np.empty(shape, dtype=np.uint8)  # (N, 3, S, S) as the models take it: no 2nd copy

        def put(r: range) -> None:
            for i in r:
                a = decode_image(paths[i], side, channels)
                out[i] = a if grey else a.transpose(2, 0, 1)

        for _ in pool.map(put, chunks):
            pass
    return out, side


# --- the cache ----------------------------------------------------------------------------------


def _cache_path(root: Path, image_size: int | None) -> Path:
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return user_cache_dir() / "folders" / f"{root.name}-{tag}-{image_size or 'auto'}.npz"


def _key(root: Path, files: list[tuple[str, int, int]], labels: list[int], n_train: int,
         image_size: int | None) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}|{image_size}|{n_train}|".encode())
    skip = len(str(root)) + 1  # every path starts with root + "/": keyed relative to root
    h.update("".join(f"{path[skip:]}\0{size}\0{mtime}\0{label}\n"
                     for (path, size, mtime), label in zip(files, labels)).encode())
    return h.hexdigest()


def _load_cache(path: Path, key: str) -> tuple[np.ndarray, dict] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("key") != key:
                return None
            return z["images"], meta
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        log.info("ignoring unreadable cache %s: %s", path, e)
        return None


def _save_cache(path: Path, images: np.ndarray, meta: dict) -> None:
    meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    try:
        write_atomic(path, lambda f: np.savez(f, images=images, meta=meta_bytes))
    except (OSError, OutputError) as e:  # a cache: the data itself is fine without it
        log.info("cannot write the folder cache %s (%s); the next load decodes again", path, e)


def read_image_folder(root: str | Path, image_size: int | None = None, *,
                      cache: bool = True, threads: int | None = None) -> FolderImages:
    """Read a class folder (see the module docstring) into uint8 arrays, from the cache if fresh."""
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ConfigError(f"image_size={image_size!r} must be a positive number of pixels")
    root = Path(root).expanduser().resolve()
    classes, files, labels, n_train, has_test = _layout(root)
    key = _key(root, files, labels, n_train, image_size)
    path = _cache_path(root, image_size)
    label_arr = np.asarray(labels, dtype=np.int64)
    hit = _load_cache(path, key) if cache else None
    if hit is not None:
        return FolderImages(hit[0], label_arr, classes, n_train, has_test, root, from_cache=True)
    threads = threads or min(8, os.cpu_count() or 1)
    images, side = _decode_all(root, files, image_size, threads)
    if cache:
        _save_cache(path, images, {"key": key, "root": str(root), "side": side,
                                   "classes": classes, "files": len(files)})
    return FolderImages(images, label_arr, classes, n_train, has_test, root)
