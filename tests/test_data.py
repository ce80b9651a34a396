"""cnnlab.data, cnnlab.loader, cnnlab.download: reader, search order, downloads, loader batches."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from _trainkit import make_cifar_tar

from cnnlab import data, download
from cnnlab.data import Augment, Loader, Split, load_dataset, read_idx, split_train_val
from cnnlab.errors import CnnlabError, ConfigError, DataError

NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
          np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of an array (big-endian, as the format says)."""
    arr = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    code = _CODES[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
    return path


def make_folder(folder: Path, n_train: int = 40, n_test: int = 20, hw=(28, 28), seed: int = 0,
                gz: bool = True) -> dict[str, np.ndarray]:
    """A small dataset folder of random images, labels cycling through 10 classes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        out[f"{prefix}-images"] = rng.integers(0, 256, (n, *hw), dtype=np.uint8)
        out[f"{prefix}-labels"] = (np.arange(n) % 10).astype(np.uint8)
        for kind, ndim in (("images", 3), ("labels", 1)):
            name = f"{prefix}-{kind}-idx{ndim}-ubyte" + (".gz" if gz else "")
            write_idx(folder / name, out[f"{prefix}-{kind}"])
    return out


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own user cache and no CNNLAB_DATA, so the search order is under test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)


# --- IDX reader -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trips_every_dtype(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5).reshape(2, 3, 5) - 7).astype(dtype)
    if dtype == "u1":
        arr = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    got = read_idx(write_idx(tmp_path / f"a{suffix}", arr))
    assert got.shape == (2, 3, 5) and got.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(got, arr)
    got[0, 0, 0] = 99  # callers get their own writable copy, not the cached array
    assert read_idx(tmp_path / f"a{suffix}")[0, 0, 0] == arr[0, 0, 0]


def test_read_idx_multi_member_gzip(tmp_path):
    raw = idx_bytes(np.arange(100, dtype=np.uint8).reshape(4, 25))
    (tmp_path / "m.gz").write_bytes(gzip.compress(raw[:37]) + gzip.compress(raw[37:]))
    np.testing.assert_array_equal(read_idx(tmp_path / "m.gz"), np.arange(100).reshape(4, 25))


def test_truncated_gzip(tmp_path):
    p = write_idx(tmp_path / "t.gz", np.zeros((50, 28, 28), np.uint8) + 7)
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"t\.gz is a truncated gzip file.*delete it"):
        read_idx(p)


def test_corrupt_gzip(tmp_path):
    p = write_idx(tmp_path / "c.gz", np.random.default_rng(0).integers(0, 255, (20, 28, 28),
                                                                        dtype=np.uint8))
    b = bytearray(p.read_bytes())
    b[40:60] = bytes(20)
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match=r"c\.gz is a corrupt gzip file"):
        read_idx(p)


@pytest.mark.parametrize("header", [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00",
                                    b"PK\x03\x04"])
def test_wrong_magic(tmp_path, header):
    p = tmp_path / "bad-idx"
    p.write_bytes(header + bytes(100))
    with pytest.raises(DataError, match=r"bad-idx is not an IDX file \(magic bytes "):
        read_idx(p)


@pytest.mark.parametrize("delta", [-1, 1])
def test_file_length_must_match_header(tmp_path, delta):
    raw = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    p = tmp_path / "len.idx"
    p.write_bytes(raw[:delta] if delta < 0 else raw + b"\0")
    with pytest.raises(DataError, match=r"promises shape \(3, 4, 4\) \(64 bytes\) but the data"):
        read_idx(p)


def test_header_truncated_and_missing_file(tmp_path):
    (tmp_path / "h").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="truncated inside its IDX header"):
        read_idx(tmp_path / "h")
    with pytest.raises(DataError, match=r"cannot read .*nope\.gz"):
        read_idx(tmp_path / "nope.gz")


# --- datasets: reading and checking a folder -------------------------------------------------


def test_load_small_folder(tmp_path):
    arrays = make_folder(tmp_path / "d", n_train=30, n_test=12)
    ds = load_dataset("fashion-mnist", root=tmp_path / "d")
    assert ds.root == tmp_path / "d" and ds.name == "fashion-mnist" and len(ds.classes) == 10
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape == (30, 28, 28)
    assert ds.train.labels.dtype == torch.int64 and len(ds.test) == 12
    np.testing.assert_array_equal(ds.train.images.numpy(), arrays["train-images"])
    np.testing.assert_array_equal(ds.test.labels.numpy(), arrays["t10k-labels"])
    assert ds.text_labels(torch.tensor([0, 9, 3])) == ["t-shirt", "ankle boot", "dress"]
    mask = ds.train.labels == 3
    assert ds.train.subset(mask).labels.tolist() == [3, 3, 3]
    sub = ds.train.subset([4, 2])
    assert torch.equal(sub.images[0], ds.train.images[4]) and sub.labels.tolist() == [4, 2]


def test_count_mismatch_names_both_files(tmp_path):
    make_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz holds 20 images but "
                                        r"t10k-labels-idx1-ubyte\.gz holds 19 labels"):
        load_dataset("mnist", root=tmp_path)


def test_swapped_files_and_bad_labels(tmp_path):
    make_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(40, 12, np.uint8))
    with pytest.raises(DataError, match=r"holds label 12 but mnist has 10 classes"):
        load_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(40, np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz holds uint8 data of shape "
                                        r"\(40,\), not uint8 images"):
        load_dataset("mnist", root=tmp_path)


def test_missing_file_is_named(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks train-labels-idx1-ubyte\.gz; add the missing"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_unreadable_folder_via_permission_error(tmp_path, monkeypatch):
    make_folder(tmp_path / "locked")
    real = os.listdir

    def listdir(p):
        if Path(p) == tmp_path / "locked":
            raise PermissionError(13, "Permission denied")
        return real(p)

    monkeypatch.setattr(data.os, "listdir", listdir)
    with pytest.raises(DataError, match=r"cannot read folder .*locked: Permission denied; fix"):
        load_dataset("fashion-mnist", root=tmp_path / "locked")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_via_chmod(tmp_path):
    make_folder(tmp_path / "locked")
    os.chmod(tmp_path / "locked", 0)
    try:
        with pytest.raises(DataError, match="cannot read folder"):
            load_dataset("fashion-mnist", root=tmp_path / "locked")
    finally:
        os.chmod(tmp_path / "locked", 0o755)


def test_sha256sums_verified_and_cached(tmp_path, monkeypatch):
    make_folder(tmp_path)
    sums = "".join(f"{download.file_digest(tmp_path / n)}  {n}\n" for n in NAMES)
    (tmp_path / "SHA256SUMS").write_text(sums)
    load_dataset("mnist", root=tmp_path)
    # A second load must not hash again (the check is cached by size and mtime) ...
    download._VERIFIED.clear()  # ... even in a new process: the user cache remembers it

    def no_hash(*a, **k):
        raise AssertionError("hashed again")

    monkeypatch.setattr(download, "file_digest", no_hash)
    load_dataset("mnist", root=tmp_path)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    # A changed file is hashed again and caught.
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.ones((20, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz fails its checksum in "
                                        r".*SHA256SUMS \(sha256 [0-9a-f]{16}\.\.\., listed"):
        load_dataset("mnist", root=tmp_path)
    assert "fails its checksum" in str(pytest.raises(
        DataError, data.verify_dataset, "mnist", root=tmp_path).value)


def test_malformed_sha256sums(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "SHA256SUMS").write_text("abc  train-images-idx3-ubyte.gz\n")
    with pytest.raises(DataError, match=r"SHA256SUMS line 1 is not '<sha256>  <file name>'"):
        load_dataset("mnist", root=tmp_path)


# --- where data is found -----------------------------------------------------------------------


def test_search_order(tmp_path, monkeypatch):
    make_folder(tmp_path / "flat", n_train=11)
    make_folder(tmp_path / "env" / "fashion-mnist", n_train=12)
    make_folder(tmp_path / "xdg-cache" / "cnnlab" / "fashion-mnist", n_train=13)
    make_folder(tmp_path / "tv" / "FashionMNIST" / "raw", n_train=14, gz=False)  # torchvision
    assert len(load_dataset("fashion-mnist", download=False).train) == 13  # user cache
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert len(load_dataset("Fashion_MNIST", download=False).train) == 12  # env beats cache
    assert len(load_dataset("fashion-mnist", root=tmp_path / "flat").train) == 11  # root wins
    assert len(load_dataset("fashion-mnist", root=tmp_path / "env").train) == 12  # root/<name>
    assert len(load_dataset("fashion-mnist", root=tmp_path / "tv").train) == 14


def test_nothing_found_offline_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as e:
        load_dataset("mnist", download=False)
    msg = str(e.value)
    assert "mnist not found" in msg and str(tmp_path / "nowhere" / "mnist") in msg
    assert str(tmp_path / "xdg-cache" / "cnnlab" / "mnist") in msg
    assert "root=PATH" in msg and "CNNLAB_DATA" in msg and "\n" not in msg


def test_nothing_found_and_mirrors_unreachable(tmp_path, monkeypatch):
    info = data.DATASETS["mnist"]
    dead = ("http://127.0.0.1:9/", (tmp_path / "no-mirror").as_uri() + "/")
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(info, mirrors=dead))
    with pytest.raises(DataError, match=r"mnist not found \(looked in .*\)\. Download failed: "
                                        r"could not download train-images.*127\.0\.0\.1:9.*"
                                        r"no-mirror.*root=PATH"):
        load_dataset("mnist", root=tmp_path / "empty")
    assert not (tmp_path / "empty" / "mnist").exists()  # nothing half-written, no empty folder


def test_unknown_dataset():
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar'; choose one of "
                                          r"cifar10, fashion-mnist, mnist, or folder:PATH"):
        load_dataset("cifar")


# --- downloads, against a local server --------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body, mode = self.server.routes.get(self.path, (None, None))
        self.server.hits.append(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving `routes` {path: (bytes, mode)}; stops after the test."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.routes, srv.hits = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _serve_dataset(tmp_path, srv, monkeypatch, *, bad_md5=False, mode=None):
    """Put a small dataset on the server's /b/ path; point fashion-mnist at /a/ (404) then /b/."""
    make_folder(tmp_path / "src", n_train=30)
    md5 = {}
    for n in NAMES:
        body = (tmp_path / "src" / n).read_bytes()
        srv.routes[f"/b/{n}"] = (body, mode)
        md5[n] = "0" * 32 if bad_md5 else hashlib.md5(body).hexdigest()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    info = dataclasses.replace(data.DATASETS["fashion-mnist"], md5=md5,
                               mirrors=(f"{base}/a/", f"{base}/b/"))
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", info)


def test_download_falls_back_to_next_mirror(tmp_path, server, monkeypatch):
    _serve_dataset(tmp_path, server, monkeypatch)
    ds = load_dataset("fashion-mnist")
    cache = tmp_path / "xdg-cache" / "cnnlab" / "fashion-mnist"
    assert ds.root == cache and len(ds.train) == 30
    assert server.hits[:2] == [f"/a/{NAMES[0]}", f"/b/{NAMES[0]}"]
    assert sorted(os.listdir(cache)) == sorted(NAMES + ["SHA256SUMS"])  # no .part left
    for n in NAMES:
        assert (cache / n).read_bytes() == (tmp_path / "src" / n).read_bytes()
    hits = len(server.hits)
    assert len(load_dataset("fashion-mnist").train) == 30 and len(server.hits) == hits  # cached


def test_download_completes_a_partial_cache(tmp_path, server, monkeypatch):
    _serve_dataset(tmp_path, server, monkeypatch)
    cache = tmp_path / "xdg-cache" / "cnnlab" / "fashion-mnist"
    cache.mkdir(parents=True)
    (cache / NAMES[0]).write_bytes((tmp_path / "src" / NAMES[0]).read_bytes())
    assert len(load_dataset("fashion-mnist").test) == 20
    assert f"/b/{NAMES[0]}" not in server.hits and f"/b/{NAMES[1]}" in server.hits


def test_download_resumes_into_root_but_never_mixes_copies(tmp_path, server, monkeypatch):
    _serve_dataset(tmp_path, server, monkeypatch)
    target = tmp_path / "r" / "fashion-mnist"
    target.mkdir(parents=True)
    (target / NAMES[2]).write_bytes((tmp_path / "src" / NAMES[2]).read_bytes())  # official copy
    assert len(load_dataset("fashion-mnist", root=tmp_path / "r").train) == 30
    assert f"/b/{NAMES[2]}" not in server.hits
    other = tmp_path / "o" / "fashion-mnist"  # a user's folder with a file of another copy
    make_folder(other, seed=3)
    (other / NAMES[1]).unlink()
    with pytest.raises(DataError, match=r"lacks train-labels-idx1-ubyte\.gz"):
        load_dataset("fashion-mnist", root=tmp_path / "o")


def test_download_checksum_mismatch_leaves_nothing(tmp_path, server, monkeypatch):
    _serve_dataset(tmp_path, server, monkeypatch, bad_md5=True)
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte\.gz \(.*/a/"
                                        r".*HTTP Error 404.*/b/.*checksum mismatch: md5 [0-9a-f]+"):
        load_dataset("fashion-mnist", root=tmp_path / "r")
    assert not (tmp_path / "r" / "fashion-mnist").exists()


def test_truncated_download_leaves_nothing(tmp_path, server, monkeypatch):
    _serve_dataset(tmp_path, server, monkeypatch, mode="truncate")
    with pytest.raises(DataError, match="Download failed"):
        load_dataset("fashion-mnist")
    assert not (tmp_path / "xdg-cache" / "cnnlab" / "fashion-mnist").exists()
    (tmp_path / "xdg-cache" / "cnnlab" / "fashion-mnist").mkdir(parents=True)  # a folder of ours
    with pytest.raises(DataError, match="Download failed"):
        load_dataset("fashion-mnist")
    assert os.listdir(tmp_path / "xdg-cache" / "cnnlab" / "fashion-mnist") == []  # kept, empty


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1 << 20))
    monkeypatch.setattr(download, "_CHUNK", 1 << 16)
    calls = []

    class Interrupted:  # an md5 that raises KeyboardInterrupt after a few chunks (Ctrl-C)
        def update(self, chunk):
            calls.append(len(chunk))
            if len(calls) == 5:
                raise KeyboardInterrupt

    monkeypatch.setattr(download.hashlib, "md5", lambda **k: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        download.fetch([src.as_uri()], tmp_path / "out" / "f.gz", "0" * 32)
    assert len(calls) == 5 and os.listdir(tmp_path / "out") == []


def test_fetch_from_file_url(tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"hello")
    md5 = hashlib.md5(b"hello").hexdigest()
    got = download.fetch([src.as_uri()], tmp_path / "o" / "x.bin", md5)
    assert got.read_bytes() == b"hello"


# --- the loader ---------------------------------------------------------------------------------


def _split(n=50, hw=(28, 28), seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, *hw), dtype=torch.uint8, generator=g),
                 torch.arange(n) % 10)


def test_loader_batches_in_order():
    s = _split(50)
    loader = Loader(s, 16)
    assert len(loader) == 4 and loader.num_samples == 50
    batches = list(loader)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    X = torch.cat([x for x, _ in batches])
    assert X.dtype == torch.float32 and X.shape == (50, 1, 28, 28)
    assert X.min() >= 0 and X.max() <= 1
    torch.testing.assert_close(X[:, 0], s.images.float() / 255, rtol=0, atol=0)
    assert torch.equal(torch.cat([y for _, y in batches]), s.labels)
    dl = Loader(s, 16, drop_last=True)
    assert len(dl) == 3 and [len(y) for _, y in dl] == [16, 16, 16]
    assert len(Loader(s, 64, drop_last=True)) == 0 and list(Loader(s, 64, drop_last=True)) == []


def test_shuffle_is_a_pure_function_of_seed_and_epoch():
    s = _split(64)
    a = Loader(s, 10, shuffle=True, seed=3)
    ys = lambda ld, e: torch.cat([y for _, y in ld.batches(e)])
    assert torch.equal(ys(a, 0), ys(Loader(s, 10, shuffle=True, seed=3), 0))
    assert sorted(ys(a, 0).tolist()) == sorted(s.labels.tolist())
    idx0, idx1 = a.order(0), a.order(1)
    assert sorted(idx0.tolist()) == list(range(64)) and not torch.equal(idx0, idx1)
    assert not torch.equal(idx0, Loader(s, 10, shuffle=True, seed=4).order(0))
    a.set_epoch(1)
    first = next(iter(a))[0]
    torch.testing.assert_close(first[:, 0], s.images[idx1[:10]].float() / 255)


def test_resume_from_a_batch_is_exact():
    s = _split(70)
    ld = Loader(s, 8, shuffle=True, seed=1, augment=Augment(crop_padding=3, hflip=True))
    full = list(ld.batches(2))
    tail = list(ld.batches(2, start=5))
    assert len(tail) == len(full) - 5
    for (x1, y1), (x2, y2) in zip(full[5:], tail):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert list(ld.batches(2, start=len(ld))) == []
    with pytest.raises(ConfigError, match=r"start=10 is past the 9 batches"):
        ld.batches(2, start=10)


@pytest.mark.parametrize("n,ws", [(40, 4), (42, 4), (5, 3)])
def test_sharding(n, ws):
    s = Split(torch.zeros(n, 2, 2, dtype=torch.uint8), torch.arange(n))
    make = lambda r, **k: Loader(s, 3, shuffle=True, seed=5, rank=r, world_size=ws, **k)
    whole = Loader(s, 3, shuffle=True, seed=5).order(1)
    per = -(-n // ws)
    shards = [torch.cat([y for _, y in make(r).batches(1)]) for r in range(ws)]
    assert all(len(sh) == per == make(r).num_samples for r, sh in enumerate(shards))
    assert len(make(0)) == -(-per // 3)
    # The same epoch order on every rank, dealt round-robin, padded by wrapping around.
    padded = whole[torch.arange(per * ws) % n]
    for r, sh in enumerate(shards):
        assert torch.equal(sh, padded[r::ws])
    assert set(torch.cat(shards).tolist()) == set(range(n))
    cut = [make(r, drop_last=True).order(1) for r in range(ws)]  # drop_last: cut to n // ws
    assert all(len(c) == n // ws for c in cut)
    assert len(set(torch.cat(cut).tolist())) == n // ws * ws
    assert make(0, drop_last=True).num_samples == n // ws


@pytest.mark.parametrize("size", [224, 96, 56, (20, 33), (14, 14), (7, 40)])
def test_resize_matches_pil_bilinear(size):
    """The book's transforms.Resize is PIL's bilinear resize on the uint8 image, then /255.

    PIL rounds its fixed-point result to uint8 and cnnlab keeps float32, so the tolerance is one
    grey level (1/255) at most and 0.35 of a level on average (uniform rounding alone gives 0.25;
    PIL's 22-bit fixed-point coefficients add a little).
    """
    Image = pytest.importorskip("PIL.Image")
    s = _split(24, seed=7)
    s.images[:12] = s.images[:12] // 64 * 85  # blocky images too, not only noise
    h, w = (size, size) if isinstance(size, int) else size
    X = torch.cat([x for x, _ in Loader(s, 10, resize=size)])
    assert X.shape == (24, 1, h, w)
    ref = np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))
                    for a in s.images.numpy()]).astype(np.float32) / 255
    diff = (X[:, 0].numpy() - ref).__abs__()
    assert diff.max() <= 1 / 255 + 1e-5 and diff.mean() < 0.35 / 255


@pytest.mark.parametrize("size", [224, 56, 84, (224, 96), (96, 224), 30])
def test_fast_enlargement_equals_the_dense_resize(size):
    from cnnlab.loader import phase_plan, resize_weights

    s = _split(9, seed=3)
    h, w = (size, size) if isinstance(size, int) else size
    X = next(iter(Loader(s, 9, resize=size)))[0][:, 0]
    wh, ww = resize_weights(28, h), resize_weights(28, w)
    dense = wh @ (s.images.float() / 255) @ ww.T
    torch.testing.assert_close(X, dense, rtol=0, atol=2e-6)
    assert (phase_plan(wh) is not None) == (h % 28 == 0 and h > 28)


def test_resize_against_real_images(data_root):
    Image = pytest.importorskip("PIL.Image")
    ds = load_dataset("fashion-mnist", root=data_root)
    s = ds.test.subset(range(16))
    X = next(iter(Loader(s, 16, resize=224)))[0]
    ref = np.stack([np.asarray(Image.fromarray(a).resize((224, 224), Image.BILINEAR))
                    for a in s.images.numpy()]).astype(np.float32) / 255
    assert np.abs(X[:, 0].numpy() - ref).max() <= 1 / 255 + 1e-5


def test_normalize_and_channels_last():
    s = _split(30)
    X = next(iter(Loader(s, 30, normalize=(0.5, 0.25), resize=12, channels_last=True)))[0]
    raw = next(iter(Loader(s, 30, resize=12)))[0]
    torch.testing.assert_close(X, (raw - 0.5) / 0.25)
    assert X.is_contiguous(memory_format=torch.channels_last)
    assert next(iter(Loader(s, 4, normalize=([0.5], (0.25,)))))[0].max() <= 2.0


def test_augment_flip_and_crop_are_true_flips_and_shifts():
    s = _split(64, hw=(9, 9))
    base = next(iter(Loader(s, 64)))[0]
    flipped = next(iter(Loader(s, 64, augment=Augment(hflip=True), seed=2)))[0]
    is_flip = [(torch.equal(f, b.flip(-1)), torch.equal(f, b)) for f, b in zip(flipped, base)]
    assert all(a or b for a, b in is_flip)
    assert 16 < sum(a for a, _ in is_flip) < 48  # about half
    p = 2
    crops = next(iter(Loader(s, 64, augment=Augment(crop_padding=p), seed=2)))[0]
    padded = torch.nn.functional.pad(base, (p, p, p, p))
    offsets = set()
    for c, pd in zip(crops, padded):
        match = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if torch.equal(c, pd[:, dy:dy + 9, dx:dx + 9])]
        assert match, "each crop is a window of the zero-padded image"
        offsets.add(match[0])
    assert len(offsets) > 10  # offsets vary over the batch
    again = next(iter(Loader(s, 64, augment=Augment(crop_padding=p), seed=2)))[0]
    other = next(iter(Loader(s, 64, augment=Augment(crop_padding=p), seed=3)))[0]
    assert torch.equal(crops, again) and not torch.equal(crops, other)


def test_loader_caps_threads_only_while_preparing_a_batch(monkeypatch):
    outside = torch.get_num_threads()
    inside = []
    real = Loader.transform
    monkeypatch.setattr(Loader, "transform", lambda self, *a: inside.append(
        torch.get_num_threads()) or real(self, *a))
    seen = [torch.get_num_threads() for _ in Loader(_split(20), 5)]
    assert inside == [1] * 4 and seen == [outside] * 4  # the caller's steps keep their threads
    inside.clear()
    list(Loader(_split(20), 5, threads=None))
    assert inside == [outside] * 4
    with pytest.raises(ConfigError, match="threads=0 must be an integer >= 1"):
        Loader(_split(4), 2, threads=0)


@pytest.mark.parametrize("resize", [0, -3, (224,), (224, 0), (2.5, 3), "224", True, (True, 3)])
def test_bad_resize(resize):
    with pytest.raises(ConfigError, match=r"resize=.* must be a positive int or a pair of"):
        Loader(_split(4), 2, resize=resize)


@pytest.mark.parametrize("bs", [0, -1, 1.5, True, "128"])
def test_bad_batch_size(bs):
    with pytest.raises(ConfigError, match=rf"batch_size={bs!r} must be an integer >= 1"):
        Loader(_split(4), bs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=2, world_size=2), "rank=2 must be below world_size=2"),
    (dict(world_size=0), "world_size=0 must be"),
    (dict(normalize=(0.5, 0.0)), r"normalize=\(0.5, 0.0\) must be \(mean, std\) with std > 0"),
    (dict(normalize=0.5), "normalize=0.5 must be"),
    (dict(device="gpu7"), "device='gpu7' is not a torch device"),
    (dict(augment="flip"), "augment='flip' must be an Augment"),
])
def test_bad_loader_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Loader(_split(4), 2, **kwargs)


def test_bad_augment():
    with pytest.raises(ConfigError, match="crop_padding=-1 must be an integer >= 0"):
        Augment(crop_padding=-1)
    with pytest.raises(ConfigError, match="hflip=1 must be True or False"):
        Augment(hflip=1)
    assert issubclass(ConfigError, CnnlabError) and issubclass(DataError, CnnlabError)


# --- train/val split, statistics, real data ------------------------------------------------------


def test_split_train_val_is_stratified_and_seeded():
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([100, 50, 30, 20])])
    s = Split(torch.arange(200, dtype=torch.uint8).view(200, 1, 1).expand(200, 2, 2).clone(),
              labels)
    tr, va = split_train_val(s, 0.2, seed=1)
    assert len(va) == 40 and len(tr) == 160
    assert torch.bincount(va.labels).tolist() == [20, 10, 6, 4]
    assert not set(tr.images[:, 0, 0].tolist()) & set(va.images[:, 0, 0].tolist())
    tr2, va2 = split_train_val(s, 40, seed=1)
    assert torch.equal(va.images, va2.images)
    assert not torch.equal(split_train_val(s, 40, seed=2)[1].images, va.images)
    assert len(split_train_val(s, 7)[1]) == 7 and len(split_train_val(s, 0)[1]) == 0
    for bad in (-1, 200, 1.0, -0.1, "0.1", True):
        with pytest.raises(ConfigError, match="val_size="):
            split_train_val(s, bad)


def test_dataset_stats_are_the_pixel_mean_and_std(tmp_path):
    make_folder(tmp_path, n_train=300)
    ds = load_dataset("mnist", root=tmp_path)
    x = ds.train.images.double() / 255
    mean, std = data.dataset_stats(ds)
    assert abs(mean - x.mean().item()) < 1e-6 and abs(std - x.std(unbiased=False).item()) < 1e-6
    assert data.dataset_stats("mnist", root=tmp_path) == (mean, std)


def test_real_fashion_mnist(data_root, tmp_path):
    ds = load_dataset("fashion-mnist", root=data_root)
    assert (len(ds.train), len(ds.test)) == (60000, 10000)
    assert ds.train.images.shape == (60000, 28, 28) and ds.train.images.dtype == torch.uint8
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
    assert ds.classes[9] == "ankle boot"
    mean, std = data.dataset_stats("fashion-mnist", root=data_root)
    assert abs(mean - 0.286) < 0.005 and abs(std - 0.353) < 0.005  # published FMNIST figures
    assert data.dataset_stats(ds) == (mean, std)
    png = ds.save_grid(tmp_path / "grid.png", n=8)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="n=60000 must be a number of images from 1 to 256"):
        ds.save_grid(tmp_path / "all.png", n=60000)  # used to draw 60,000 subplots
    report = data.verify_dataset("fashion-mnist", root=data_root)
    # Intact (their SHA256SUMS), but not the files Zalando published: the shared copy is the npm
    # package's images, split again by a seed, and a user comparing accuracies must be told.
    assert set(report.values()) == {
        "sha256 matches SHA256SUMS; not the official file (md5 differs from the published one)"}
    assert ds.note.startswith("not the official files (no file has its published md5): the "
                              "images or the train/test split may differ")


def test_real_mnist(data_root):
    ds = load_dataset("mnist", root=data_root)
    assert (len(ds.train), len(ds.test)) == (8004, 1996) and ds.classes[3] == "3"
    assert ds.note == ("not the official files: 8,004 of the official 60,000 training images "
                       "and 1,996 of 10,000 test images, so accuracy does not compare with "
                       "published figures")


def test_official_note_compares_counts_then_published_md5(tmp_path):
    import dataclasses

    from cnnlab.download import file_digest

    make_folder(tmp_path, n_train=30, n_test=10)
    files = {n: tmp_path / n for pair in data.FILES.values() for n in pair}
    sums = {n: file_digest(p, "md5") for n, p in files.items()}
    info = dataclasses.replace(data.dataset_info("mnist"), md5=sums, counts=(30, 10))
    assert data.official_note(info, files, 30, 10) == ""  # as published: nothing to say
    assert data.official_note(info, files, 30, 9).startswith(
        "not the official files: 30 of the official 30 training images and 9 of 10 test")
    other = dataclasses.replace(info, md5={**sums, "t10k-labels-idx1-ubyte.gz": "0" * 32})
    assert data.official_note(other, files, 30, 10).startswith(
        "not the official files (the md5 of t10k-labels-idx1-ubyte.gz differs from the "
        "published one): the images or the train/test split may differ")
    unpacked = {n: p.with_name(n[:-3]) for n, p in files.items()}  # no published md5 to compare
    assert data.official_note(other, unpacked, 30, 10) == ""
    ds = load_dataset("mnist", root=tmp_path)  # the real registry: a 40-image subset
    assert ds.note.startswith("not the official files: 30 of the official 60,000 training")


def test_split_checks_its_dtypes_and_a_loader_never_changes_it():
    images = torch.full((6, 4, 4), 255, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="uint8"):
        Split(images.float(), torch.zeros(6, dtype=torch.int64))  # float pixels: ambiguous scale
    with pytest.raises(ConfigError, match="integer classes"):
        Split(images, torch.zeros(6))
    split = Split(images, torch.arange(6))
    before = split.images.clone()
    loader = Loader(split, 4)  # unshuffled: batches are slices of the stored split
    for epoch in range(3):
        for x, _ in loader.batches(epoch):
            assert torch.all(x == 1.0)
            x.mul_(0)  # the caller may scribble on a batch
    assert torch.equal(split.images, before)
    assert torch.all(loader.transform(split.images[:2]) == 1.0)
    assert torch.equal(split.images, before)


# --- CIFAR-10 -------------------------------------------------------------------------------------


def _sums(folder: Path, *names: str) -> None:
    lines = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n"
                    for n in names)
    (folder / "SHA256SUMS").write_text(lines)


def test_cifar_tarball_loads_in_the_official_layout(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    arrays = make_cifar_tar(folder / data.CIFAR_TAR)
    _sums(folder, data.CIFAR_TAR)  # not the published md5: SHA256SUMS vouches for it
    for root in (tmp_path, folder):  # root/cifar10/ or root itself
        ds = load_dataset("cifar10", root=root)
        assert ds.root == folder and ds.channels == 3 and ds.classes[0] == "airplane"
        assert ds.train.images.shape == (30, 3, 32, 32) and ds.test.images.shape == (6, 3, 32, 32)
    first, labels = arrays["data_batch_1"]
    # A row is the R, G and B planes, each 32 rows of 32: (N, C, H, W) as stored.
    assert np.array_equal(ds.train.images[0, 1].numpy(), first[0, 1024:2048].reshape(32, 32))
    assert ds.train.labels[:6].tolist() == labels
    assert ds.test.labels.tolist() == arrays["test_batch"][1]
    # torchvision's layout: the unpacked folder under root.
    import tarfile

    tv = tmp_path / "tv"
    with tarfile.open(folder / data.CIFAR_TAR) as tar:
        tar.extractall(tv, filter="data")
    batches = tv / data.CIFAR_DIR
    _sums(batches, *data.CIFAR_BATCH_MD5)
    again = load_dataset("cifar10", root=tv)
    assert torch.equal(again.train.images, ds.train.images)
    report = data.verify_dataset("cifar10", root=tv)
    assert set(report.values()) == {  # intact, and (made here) not the published batches
        "sha256 matches SHA256SUMS; not the official file (md5 differs from the published one)"}
    assert len(report) == 6 and again.note.startswith("not the official files: 30 of the "
                                                      "official 50,000 training images")


def test_cifar_wrong_checksum_and_tampered_pickle(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    tar = folder / data.CIFAR_TAR
    make_cifar_tar(tar)  # no SHA256SUMS: it must be the published file, and it is not
    with pytest.raises(DataError, match=rf"{tar} fails its checksum .*published "
                                        r"c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(DataError, match=rf"{tar} fails its checksum"):
        data.verify_dataset("cifar10", root=tmp_path)
    # A pickle naming anything but numpy's array rebuild is refused, not run.
    import pickle

    evil = pickle.dumps({"data": os.system, "labels": []}, protocol=2)
    with pytest.raises(DataError, match=r"batch_x is not a CIFAR-10 batch .*posix.system"):
        data._read_cifar_batch(evil, "batch_x")
    with pytest.raises(DataError, match="truncated or corrupt"):
        tar.write_bytes(tar.read_bytes()[:2000])
        _sums(folder, data.CIFAR_TAR)
        load_dataset("cifar10", root=tmp_path)


def test_cifar_download_is_verified_and_atomic(tmp_path, server, monkeypatch):
    make_cifar_tar(tmp_path / "src.tar.gz")
    body = (tmp_path / "src.tar.gz").read_bytes()
    server.routes[f"/b/{data.CIFAR_TAR}"] = (body, None)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    info = dataclasses.replace(data.DATASETS["cifar10"], mirrors=(f"{base}/b/",),
                               md5={data.CIFAR_TAR: "0" * 32})
    monkeypatch.setitem(data.DATASETS, "cifar10", info)
    cache = tmp_path / "xdg-cache" / "cnnlab" / "cifar10"
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("cifar10")
    assert not cache.exists()  # nothing half-written
    info = dataclasses.replace(info, md5={data.CIFAR_TAR: hashlib.md5(body).hexdigest()})
    monkeypatch.setitem(data.DATASETS, "cifar10", info)
    ds = load_dataset("cifar10")
    assert ds.root == cache and len(ds.train) == 30
    assert sorted(os.listdir(cache)) == ["SHA256SUMS", data.CIFAR_TAR]  # no .part left


def test_colour_batches_resize_and_normalize_per_channel():
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    s = Split(torch.randint(0, 256, (6, 3, 20, 16), dtype=torch.uint8, generator=g),
              torch.arange(6))
    X = next(iter(Loader(s, 6, resize=(12, 10))))[0]
    assert X.shape == (6, 3, 12, 10)
    ref = np.stack([np.asarray(Image.fromarray(a.permute(1, 2, 0).numpy()).resize(
        (10, 12), Image.BILINEAR)) for a in s.images]).transpose(0, 3, 1, 2) / 255
    assert np.abs(X.numpy() - ref).max() <= 1 / 255 + 1e-5  # every channel as PIL resizes it
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    Y = next(iter(Loader(s, 6, resize=(12, 10), normalize=(mean, std))))[0]
    want = (X - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(Y, want)
    with pytest.raises(ConfigError, match="one per channel"):
        Loader(s, 6, normalize=((0.1, 0.2), (1.0, 1.0)))
