"""Class folders of images: layouts, the size and channel rules, the cache, and every bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _trainkit import bomb_png, write_image_folder
from PIL import Image

from cnnlab import imagefolder
from cnnlab.cli import main
from cnnlab.data import dataset_stats, load_dataset
from cnnlab.errors import ConfigError, DataError
from cnnlab.imagefolder import read_image_folder


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own user cache: nothing is written to ~/.cache."""
    cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "cnnlab" / "folders"


def test_train_test_layout_is_read_exactly(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    train = write_image_folder(root / "train", {"b": 3, "a": 2})
    test = write_image_folder(root / "test", {"a": 1, "b": 2}, seed=1)
    ds = load_dataset(f"folder:{root}")
    assert ds.classes == ["a", "b"] and ds.channels == 1  # sorted, as torchvision's ImageFolder
    assert ds.name == f"folder:{root.resolve()}"
    assert ds.train.images.shape == (5, 12, 12) and ds.train.images.dtype == torch.uint8
    assert ds.train.labels.tolist() == [0, 0, 1, 1, 1] and ds.test.labels.tolist() == [0, 1, 1]
    want = np.stack(train["a"] + train["b"])  # files in sorted order, no resize at native size
    assert np.array_equal(ds.train.images.numpy(), want)
    assert np.array_equal(ds.test.images.numpy(), np.stack(test["a"] + test["b"]))


def test_one_folder_is_split_per_class_seeded(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "f", {"x": 10, "y": 5}, mode="RGB")
    ds = load_dataset(f"folder:{tmp_path / 'f'}")
    assert ds.channels == 3 and ds.train.images.shape[1:] == (3, 12, 12)
    assert len(ds.test) == 3 and sorted(ds.test.labels.tolist()) == [0, 0, 1]  # 20% of each
    again = load_dataset(f"folder:{tmp_path / 'f'}")
    assert torch.equal(again.test.images, ds.test.images)  # same split every time
    other = load_dataset(f"folder:{tmp_path / 'f'}", seed=1, test_size=0.4)
    assert sorted(other.test.labels.tolist()) == [0, 0, 0, 0, 1, 1]  # 40% of each class
    mean, std = dataset_stats(ds)
    assert len(mean) == len(std) == 3  # one figure per channel


def test_size_rule_shorter_side_then_centre_crop(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "c").mkdir()
    rng = np.random.default_rng(3)
    wide = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # 30 wide, 20 high
    Image.fromarray(wide).save(root / "c" / "wide.png")
    grey = rng.integers(0, 256, (16, 16), dtype=np.uint8)  # the smallest: 16
    Image.fromarray(grey).save(root / "c" / "small.png")
    (root / "d").mkdir()
    Image.fromarray(grey).save(root / "d" / "a.png")
    Image.fromarray(grey).save(root / "d" / "b.png")
    got = read_image_folder(root)
    assert got.images.shape == (4, 3, 16, 16)  # 3 channels: one image is colour; side 16
    # wide.png: its centre 20x20, resized to 16x16 with PIL's bilinear filter.
    ref = np.asarray(Image.fromarray(wide).resize((16, 16), Image.BILINEAR, box=(5, 0, 25, 20)))
    i = 1  # c/small.png, c/wide.png (sorted)
    assert np.array_equal(got.images[i], ref.transpose(2, 0, 1))
    assert np.array_equal(got.images[0], np.stack([grey] * 3))  # grey made RGB
    assert read_image_folder(root, image_size=8).images.shape == (4, 3, 8, 8)


def test_cache_makes_the_second_load_cheap_and_follows_changes(tmp_path: Path,
                                                              _own_cache: Path) -> None:
    root = tmp_path / "f"
    write_image_folder(root, {"a": 3, "b": 3})
    first = read_image_folder(root)
    assert not first.from_cache and len(list(_own_cache.glob("*.npz"))) == 1
    second = read_image_folder(root)
    assert second.from_cache and np.array_equal(second.images, first.images)
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(root / "a" / "000.png")
    os.utime(root / "a" / "000.png", ns=(1, 1))  # a new mtime for sure
    third = read_image_folder(root)
    assert not third.from_cache and third.images[0].max() == 0  # the edit is seen
    assert read_image_folder(root).from_cache


def test_an_interrupted_cache_write_leaves_nothing(tmp_path: Path, _own_cache: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "f", {"a": 2, "b": 2})

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    got = read_image_folder(tmp_path / "f")  # the data still loads
    assert got.images.shape == (4, 12, 12)
    assert list(_own_cache.iterdir()) == []  # no half-written cache, no .part file


@pytest.mark.parametrize("case", ["corrupt", "truncated", "empty class", "no classes",
                                  "not an image", "too large", "symlink loop", "folder loop",
                                  "bomb 20000", "bomb 10000", "one class"])
def test_bad_input_names_the_file(tmp_path: Path, case: str, _own_cache: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "f"
    write_image_folder(root, {"a": 2, "b": 2}, size=(40, 40))
    if case == "corrupt":
        bad = root / "a" / "zz.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    elif case == "truncated":
        bad = root / "b" / "001.png"
        bad.write_bytes(bad.read_bytes()[:-300])
    elif case == "empty class":
        bad = root / "c"
        bad.mkdir()
    elif case == "no classes":
        root = bad = tmp_path / "flat"
        root.mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "x.png")
    elif case == "not an image":
        bad = root / "a" / "notes.txt"
        bad.write_text("hello")
    elif case == "symlink loop":  # was an OSError traceback
        bad = root / "a" / "loop"  # the message names loop.png or loop2.png
        (root / "a" / "loop.png").symlink_to("loop2.png")
        (root / "a" / "loop2.png").symlink_to("loop.png")
    elif case == "folder loop":  # a link back up the tree: never listed forever
        (root / "a" / "up").symlink_to("..")
        bad = root / "a" / "up" / "a"
    elif case.startswith("bomb"):  # PIL's DecompressionBombError traceback at 20000; 10000 was
        side = int(case.split()[1])  # decoded (402 MB): one limit for every reader, 89 Mpx
        bad = bomb_png(root / "b" / "big.png", side, side)
    elif case == "one class":  # trained to a meaningless 100%
        bad = root = tmp_path / "one"
        write_image_folder(root, {"only": 4})
    else:
        bad = root
        monkeypatch.setattr(imagefolder, "available_memory", lambda: 5000)  # 4 x 40 x 40 = 6400
    with pytest.raises(DataError, match=str(bad)):
        read_image_folder(root)
    assert list(_own_cache.glob("*")) == []
    # The command line says it in one line and exits 2.
    rc = main(["train", "lenet", "--dataset", f"folder:{root}", "--dry-run", "--progress",
               "none", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) <= 2 and err[-1].startswith("cnnlab: error: ")  # (a header)
    assert str(bad) in err[-1]


def test_only_regular_files_are_read_a_fifo_never_hangs(tmp_path: Path) -> None:
    """A FIFO named *.png in a class folder hung `train` forever (SIGTERM did not stop it): now
    `train` and `data verify` name it in one line, exit 2, in real processes."""
    import subprocess
    import sys

    root = tmp_path / "f"
    write_image_folder(root, {"a": 2, "b": 2})
    fifo = root / "b" / "zz.png"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for argv in (["train", "lenet", "--dataset", f"folder:{root}", "--dry-run", "--progress",
                  "none", "--out", str(tmp_path / "run")], ["data", "verify", f"folder:{root}"]):
        proc = subprocess.run([sys.executable, "-m", "cnnlab", *argv], capture_output=True,
                              text=True, timeout=120, env=env)  # a hang fails here
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines()[-1] == (
            f"cnnlab: error: {fifo} is a FIFO (named pipe), not a regular file; cnnlab reads "
            "only regular image files: remove it or replace it with the image itself")


def test_a_small_folder_image_names_the_image_size_flag(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    root = tmp_path / "f"
    write_image_folder(root, {"a": 3, "b": 3})
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / "a" / "tiny.png")
    rc = main(["train", "lenet", "--dataset", f"folder:{root}", "--dry-run", "--progress",
               "none", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and "Loader(resize" not in err
    assert err == ("cnnlab: error: lenet needs inputs of at least 12x12, got 1x1: the class "
                   "folder is read at the shorter side of its smallest image; give --image-size "
                   "12 or more (every image is resized to it), or remove the small images")


def test_image_size_is_for_folders_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image_size applies to folder:PATH"):
        load_dataset("fashion-mnist", image_size=28)
    with pytest.raises(ConfigError, match="image_size"):
        read_image_folder(tmp_path, image_size=0)


def test_folder_trains_end_to_end_from_the_cli(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "shapes"
    write_image_folder(root, {"red": 12, "green": 12}, size=(20, 16), mode="RGB")
    run = tmp_path / "run"
    rc = main(["train", "fastnet", "--dataset", f"folder:{root}", "--image-size", "16",
               "--epochs", "1", "--batch-size", "8", "--threads", "1", "--progress", "none",
               "--no-tensorboard", "--no-plot", "--no-report", "--out", str(run)])
    out = capsys.readouterr().out
    assert rc == 0 and "test accuracy" in out
    rc = main(["eval", str(run), "--format", "json"])
    assert rc == 0 and '"n": 5' in capsys.readouterr().out  # 20% of 24, reloaded from the cache
    from cnnlab.run import load_run

    loaded = load_run(run)
    assert loaded.model.in_channels == 3 and loaded.input_size == (16, 16)
