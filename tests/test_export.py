"""Export: ONNX and TorchScript round trips against PyTorch, the sidecar, predict via ONNX."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _trainkit import write_idx_dataset, write_image_folder

from cnnlab import export
from cnnlab.cli import main
from cnnlab.errors import DataError, ExportError
from cnnlab.export import export_run, predict_onnx, read_sidecar

try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    HAVE_ONNX = True
except ImportError:
    HAVE_ONNX = False

needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="the export extra is not installed: "
                                                      "pip install 'cnnlab[export]'")
FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript"]


def _train(out: Path, model: str, data: str, root: Path, *extra: str) -> Path:
    rc = main(["train", model, "--dataset", data, "--data-root", str(root), "--epochs", "1",
               "--batch-size", "16", "--limit-batches", "2", "--threads", "1", "--progress",
               "none", "--no-tensorboard", "--no-plot", "--no-report", "--out", str(out),
               *extra])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three short runs: LeNet (grey, normalized), ResNet-18 at 32 px, FastNet on RGB images."""
    tmp = tmp_path_factory.mktemp("export")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
    try:
        root = write_idx_dataset(tmp / "data" / "fashion-mnist", n_train=64, n_test=256).parent
        write_image_folder(tmp / "rgb", {"red": 10, "green": 10, "blue": 10}, size=(20, 16),
                           mode="RGB")
        return {
            "lenet": _train(tmp / "lenet", "lenet", "fashion-mnist", root, "--normalize"),
            "resnet18": _train(tmp / "resnet18", "resnet18", "fashion-mnist", root,
                               "--resize", "32", "--eval-every", "0"),
            "fastnet": _train(tmp / "fastnet", "fastnet", f"folder:{tmp / 'rgb'}", root,
                              "--normalize"),
            "tmp": tmp,
        }
    finally:
        mp.undo()


@pytest.fixture(autouse=True)
def _cache(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(runs["tmp"] / "xdg"))


@pytest.fixture(scope="module")
def loaded(runs: dict[str, Path]) -> dict[str, object]:
    """The runs read back once, on the CPU (export_run takes a Run as well as a folder)."""
    from cnnlab.run import load_run

    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(runs["tmp"] / "xdg"))
    try:
        return {m: load_run(runs[m], device="cpu") for m in ("lenet", "resnet18", "fastnet")}
    finally:
        mp.undo()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", ["lenet", "resnet18", "fastnet"])
def test_round_trip_matches_pytorch(runs: dict[str, Path], loaded: dict[str, object],
                                    model: str, fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"m.{fmt}"
    n = 256 if model == "lenet" else 48  # the default, once; fewer images keep the rest quick
    run = loaded[model]
    # A folder once (what the CLI passes), else the Run already read back.
    r = export_run(runs[model] if fmt == "onnx" and model == "lenet" else run, fmt, out,
                   check_images=n)
    assert r.path == out and out.is_file() and r.agreement == 1.0
    assert r.n_checked == (6 if model == "fastnet" else n)  # fastnet: 20% of 30 images
    assert r.max_abs_diff < 1e-3
    assert not list(tmp_path.glob(".*.tmp"))
    meta = read_sidecar(out)
    c = 3 if model == "fastnet" else 1
    h, w = run.input_size
    assert meta["classes"] == run.classes and meta["input"]["shape"] == [None, c, h, w]
    assert meta["check"]["class_agreement"] == 1.0 and meta["format"] == fmt
    # The file alone, fed [0, 1] pixels, gives the run's logits (normalization is inside it).
    from cnnlab.data import Loader, dataset_stats

    split = run.dataset.test.subset(torch.arange(5))
    norm = dataset_stats(run.dataset) if run.config["normalize"] else None
    x_raw = next(iter(Loader(split, 5, resize=(h, w))))[0]
    x_norm = next(iter(Loader(split, 5, resize=(h, w), normalize=norm)))[0]
    with torch.no_grad():
        want = run.model(x_norm)
    if fmt == "onnx":
        got = torch.from_numpy(export.load_onnx(out).run(None, {"images": x_raw.numpy()})[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit, deprecated, works
            got = torch.jit.load(str(out))(x_raw)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    if norm is not None:
        assert meta["normalization"]["mean"] == pytest.approx(np.ravel(norm[0]).tolist())


@needs_onnx
def test_cli_export_and_predict_through_onnxruntime(runs: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from cnnlab.run import load_run, predict_files

    run_dir = runs["fastnet"]
    assert main(["export", str(run_dir)]) == 0
    out = capsys.readouterr().out
    onnx_file = run_dir / "fastnet.onnx"
    assert f"onnx: {onnx_file}" in out and "agree 100%" in out
    images = sorted((runs["tmp"] / "rgb" / "red").glob("*.png"))[:3]
    classes, probs = predict_onnx(onnx_file, images)
    want = predict_files(load_run(run_dir), images)
    torch.testing.assert_close(probs, want, atol=2e-2, rtol=0)  # the run may use bf16 autocast
    assert main(["predict", str(onnx_file), *map(str, images), "--format", "json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert [t["top"][0]["class"] for t in top] == [classes[i] for i in want.argmax(1).tolist()]


def test_errors_are_one_line(runs: dict[str, Path], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    real_import = builtins.__import__

    def no_onnx(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    # the packages by name: a user who installed from a repository URL has no extra to name
    with pytest.raises(ExportError, match="pip install onnx onnxscript onnxruntime"):
        export_run(runs["lenet"], "onnx", tmp_path / "x.onnx")
    assert main(["export", str(runs["lenet"]), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install onnx onnxscript onnxruntime" in err[0]
    assert not (tmp_path / "x.onnx").exists()
    monkeypatch.undo()
    (tmp_path / "lone.onnx").write_bytes(b"not onnx")
    with pytest.raises(DataError, match="lone.onnx.json is missing"):
        read_sidecar(tmp_path / "lone.onnx")


def test_a_disagreeing_export_is_not_written(runs: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = export._run_exported
    monkeypatch.setattr(export, "_run_exported",
                        lambda fmt, path, x: real(fmt, path, x).flip(1))  # wrong classes
    with pytest.raises(ExportError, match="different class than PyTorch"):
        export_run(runs["lenet"], "torchscript", tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []  # no file, no .part, no sidecar


def _export_in_a_process(run_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    import os
    import sys

    repo = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "cnnlab", "export", str(run_dir), *argv],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo)})


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_or_read_only_disk_is_one_line_in_a_real_process(
        fmt: str, runs: dict[str, Path], tmpfs, read_only) -> None:
    """torch.jit.save to a full disk used to abort the process (a C++ c10::Error, exit 134) and
    leave `.m.pt.<pid>.tmp`; on a read-only folder it was a traceback. Now both formats are made
    in memory and written through atomic.py, as one OutputError."""
    disk = tmpfs("100k", "full")
    (disk / "filler").write_bytes(b"\0" * 90_000)  # LeNet's export (~250 kB) cannot fit
    ro = read_only()
    for out in (disk / f"m.{fmt}", ro / "sub" / f"m.{fmt}"):
        proc = _export_in_a_process(runs["lenet"], "--format", fmt, "--out", str(out))
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab")]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and lines[0].startswith(f"cnnlab: error: cannot write {out}: ")
        assert ("No space left" if out.parent == disk else "Read-only") in lines[0]
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no .tmp, no sidecar
    assert list(ro.iterdir()) == []
