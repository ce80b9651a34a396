"""A trained run out of cnnlab: ONNX or TorchScript, checked against PyTorch, with a JSON sidecar.

    cnnlab export runs/lenet-20260101-120000 --format onnx      # -> <run>/lenet.onnx (+ .json)

The file holds the model in its eval form with the run's normalization inside it: it takes
float32 images (N, C, H, W) with values in [0, 1] at the run's input size (any N) and returns
logits (N, K). The sidecar `<file>.json` says the class names, the input shape and range, the
normalization (already applied inside) and how an image file becomes an input, so the file can be
used without cnnlab. Each export then runs itself (onnxruntime, or the TorchScript module) on 256
test images beside the PyTorch model and fails unless every predicted class agrees.

ONNX needs onnx, onnxscript and onnxruntime: pip install onnx onnxscript onnxruntime.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import write_atomic
from cnnlab.errors import ConfigError, ExportError

__all__ = ["FORMATS", "ExportResult", "export_run", "load_onnx", "predict_onnx", "read_sidecar",
           "sidecar_path"]

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
CHECK_IMAGES = 256
# The packages by name: a user who installed cnnlab from a repository URL has no extra to name.
INSTALL = "pip install onnx onnxscript onnxruntime (the cnnlab[export] extra)"


class Normalized(nn.Module):
    """model((x - mean) / std): the run's normalization inside the exported graph."""

    def __init__(self, model: nn.Module, mean: Any, std: Any, channels: int) -> None:
        super().__init__()
        self.model = model
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape)
                             .expand(1, channels, 1, 1).clone())
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape)
                             .expand(1, channels, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


@dataclass
class ExportResult:
    """What `export_run` wrote and how closely the file reproduces PyTorch."""

    path: Path
    sidecar: Path
    format: str
    max_abs_diff: float  # largest |logit difference| from PyTorch over the checked images
    agreement: float  # fraction of checked images whose predicted class matches PyTorch
    n_checked: int


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of an exported file: <file>.json beside it."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ExportError(f"ONNX needs onnx and onnxruntime ({e.name} is not installed): "
                          f"{INSTALL}") from None
    return onnx, onnxruntime


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the exporters' progress lines and warnings (the self-check says what matters)."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    _require_onnx()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    buf = io.BytesIO()
    with _quiet():
        try:
            torch.onnx.export(module, (example,), buf, input_names=["images"],
                              output_names=["logits"], dynamo=True, external_data=False,
                              verbose=False, dynamic_shapes=({0: batch},))
        except Exception as e:  # the exporter's own error types vary between torch versions
            raise ExportError(f"ONNX export of {type(module.model).__name__} failed: "
                              f"{type(e).__name__}: {str(e).splitlines()[0]}") from e
    return buf.getvalue()


def _torchscript_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():  # torch.jit warns that it is deprecated; it still works
        traced = torch.jit.trace(module, example, check_trace=False)  # we check it ourselves
        torch.jit.save(traced, buf)
    return buf.getvalue()


def load_onnx(path: str | Path | bytes) -> Any:
    """An onnxruntime InferenceSession for `path` (or a model's bytes) on the CPU (ExportError
    without the extra)."""
    _, ort = _require_onnx()
    try:
        return ort.InferenceSession(path if isinstance(path, bytes) else str(path),
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        name = "the exported model" if isinstance(path, bytes) else path
        raise ExportError(f"{name} is not a readable ONNX model ({str(e).splitlines()[0]})"
                          ) from None


def _run_exported(fmt: str, data: bytes, x: torch.Tensor) -> torch.Tensor:
    """The exported model's logits for x, run from its bytes (the file is not written yet)."""
    if fmt == "onnx":
        sess = load_onnx(data)
        return torch.from_numpy(sess.run(["logits"], {"images": x.numpy()})[0])
    with _quiet(), torch.no_grad():
        return torch.jit.load(io.BytesIO(data), map_location="cpu")(x)


def _check_images(run: Any, n: int) -> torch.Tensor:
    """The first `n` test images as the exported model takes them: float (n, C, H, W) in [0, 1]."""
    from cnnlab.data import Loader

    split = run.dataset.test
    split = split.subset(torch.arange(min(n, len(split))))
    return next(iter(Loader(split, len(split), resize=run.input_size)))[0]


def _normalization(run: Any) -> tuple[list[float], list[float]] | None:
    if run.normalize is None:
        return None
    mean, std = run.normalize  # the statistics the run trained with (its RunInputs)
    as_list = lambda v: [float(a) for a in (v if isinstance(v, (tuple, list)) else [v])]
    return as_list(mean), as_list(std)


def _sidecar(run: Any, fmt: str, path: Path, norm: tuple[list[float], list[float]] | None,
             result: ExportResult, channels: int) -> dict[str, Any]:
    import cnnlab

    h, w = run.input_size
    from cnnlab.run import is_book_data

    name = str(run.config.get("dataset", ""))
    native = list(run.dataset.train.images.shape[-2:])
    book = is_book_data(name)
    prep = ("greyscale; light object on a dark ground (invert a light-background picture); "
            f"resized to {native[0]}x{native[1]}" if book else
            f"{'greyscale' if channels == 1 else 'RGB'}; shorter side resized to "
            f"{native[0]} (bilinear), centre {native[0]}x{native[1]} kept")
    if (h, w) != tuple(native):
        prep += f", then bilinear to {h}x{w}"
    return {
        "format": fmt, "file": path.name, "model": run.config.get("model"),
        "run": str(run.run_dir), "checkpoint": Path(run.checkpoint).stem, "dataset": name,
        "classes": list(run.classes),
        "input": {"name": "images", "shape": [None, channels, h, w], "dtype": "float32",
                  "layout": "NCHW", "range": [0.0, 1.0],
                  "channels": "grey" if channels == 1 else "RGB", "preprocess": prep + "; /255",
                  "image_size": native, "light_on_dark": book},
        "output": {"name": "logits", "shape": [None, len(run.classes)],
                   "meaning": "class scores; softmax gives probabilities"},
        "normalization": {"applied": "none: the run trained on [0, 1] pixels"} if norm is None
        else {"mean": norm[0], "std": norm[1], "applied": "inside the model: feed [0, 1] pixels"},
        "check": {"images": result.n_checked, "max_abs_logit_diff": result.max_abs_diff,
                  "class_agreement": result.agreement, "against": f"PyTorch {torch.__version__}"},
        "cnnlab": cnnlab.__version__,
    }


def export_run(run: Any, format: str = "onnx", out: str | Path | None = None, *,
               checkpoint: str = "last", check_images: int = CHECK_IMAGES) -> ExportResult:
    """Export a run's model (eval form, normalization inside) and check it against PyTorch.

    `run` is a run folder or a Run from load_run (one on another device than the CPU is read
    again from its folder onto the CPU: the file is float32 and CPU-made, for any machine).
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r} must be one of {', '.join(FORMATS)}")
    if format == "onnx":
        _require_onnx()  # before the run is loaded: say what to install at once
    from cnnlab.run import Run, load_run

    if not isinstance(run, Run) or run.device.type != "cpu":
        run = load_run(run.run_dir if isinstance(run, Run) else run, checkpoint, device="cpu")
    model = run.model.float().eval()
    channels = run.dataset.channels
    norm = _normalization(run)
    module = Normalized(model, *(norm or ([0.0], [1.0])), channels=channels).eval()
    path = Path(out) if out is not None else (
        Path(run.run_dir) / f"{run.config['model']}{SUFFIX[format]}")
    x = _check_images(run, check_images)
    # Made in memory and checked there; only a file that passed its check is written (through
    # atomic.py: a full or read-only disk is one OutputError, no temporary file stays behind;
    # torch.jit.save writing to a path aborts the process with a C++ error on a full disk).
    data = (_onnx_bytes if format == "onnx" else _torchscript_bytes)(module, x[:2])
    with torch.no_grad():
        want = module(x)
    got = _run_exported(format, data, x).float()
    diff = float((got - want).abs().max()) if len(x) else 0.0
    agree = float((got.argmax(1) == want.argmax(1)).float().mean()) if len(x) else 1.0
    result = ExportResult(path, sidecar_path(path), format, diff, agree, len(x))
    if agree < 1.0:
        raise ExportError(f"the exported {format} model predicts a different class than "
                          f"PyTorch for {round((1 - agree) * len(x))} of {len(x)} test "
                          f"images (largest logit difference {diff:.3g}); not written")
    sidecar = _sidecar(run, format, path, norm, result, channels)
    write_atomic(path, data)
    try:
        write_atomic(result.sidecar, json.dumps(sidecar, indent=2) + "\n")
    except BaseException:  # a model file never stays without the sidecar that describes it
        path.unlink(missing_ok=True)
        raise
    return result


# --- using an exported file -------------------------------------------------------------------


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar written beside an exported file (DataError when missing or damaged)."""
    from cnnlab.errors import DataError

    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text())
        meta["classes"], meta["input"]["shape"]  # noqa: B018 - the keys predict needs
    except FileNotFoundError:
        raise DataError(f"{side} is missing: `cnnlab export` writes it beside {Path(path).name} "
                        "(class names, input size); export the run again") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{side} is not an export sidecar ({e}); export the run again") from None
    return meta


def _inputs(meta: dict[str, Any], images: list[Path], invert: str) -> torch.Tensor:
    """Image files -> float (N, C, H, W) in [0, 1], prepared as the sidecar says."""
    from cnnlab.data import Loader, Split
    from cnnlab.run import file_images

    _, c, h, w = meta["input"]["shape"]
    native = tuple(meta["input"].get("image_size") or (h, w))
    x = file_images(images, native, c, bool(meta["input"].get("light_on_dark")), invert)
    split = Split(x, torch.zeros(len(x), dtype=torch.int64))
    return next(iter(Loader(split, len(x), resize=(h, w))))[0]


def predict_onnx(path: str | Path, images: list[Path], invert: str = "auto"
                 ) -> tuple[list[str], torch.Tensor]:
    """(class names, probabilities (N, K)) of image files by an exported ONNX model."""
    meta = read_sidecar(path)
    sess = load_onnx(path)
    x = _inputs(meta, list(images), invert)
    logits = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    return list(meta["classes"]), logits.float().softmax(dim=1)
