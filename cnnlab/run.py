"""A run folder, read back, and the one evaluation and prediction path of cnnlab.

    run = load_run("runs/lenet")                  # model in eval mode, config, classes, metrics
    ev = evaluate_run(run)                        # test-split predictions, loss and accuracy
    probs = predict_files(run, ["shoe.png"])     # your own images through the run's pipeline

The engine validates through `evaluate_sums`, `cnnlab eval`, `predict`, `report`, `inspect`,
`compare` and `export` all read runs through `load_run`, so every surface computes a metric the
same way, in the precision the run recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.device import PRECISIONS, autocast, pick_device, precision_dtype, resolve_precision
from cnnlab.errors import ConfigError, DataError, ShapeError
from cnnlab.runfiles import read_run_json, read_run_lines
from cnnlab.train_config import EVAL_BATCH_SIZE

__all__ = ["Evaluation", "Run", "best_row", "better", "evaluate", "evaluate_run", "evaluate_sums",
           "evaluation", "file_images", "is_book_data", "load_run", "model_device", "predict",
           "predict_files", "read_history", "read_image", "read_json", "read_steps",
           "to_dataset_image", "top_mistakes", "torn_lines"]


# --- one forward path for every metric ---------------------------------------------------------

def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a parameterless module)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _logits(model: nn.Module, batches: Iterable[Any], device: torch.device,
            dtype: torch.dtype | None, limit: int = 0) -> Iterator[tuple[torch.Tensor, Any]]:
    """(float32 logits, labels) per batch, in eval mode with no gradients, under autocast."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, (X, y) in enumerate(batches):
                if limit and i >= limit:
                    break
                with autocast(device, dtype):
                    out = model(X)
                yield out.float(), y
    finally:
        model.train(was_training)


def evaluate_sums(model: nn.Module, batches: Iterable[Any], device: torch.device,
                  dtype: torch.dtype | None, limit: int = 0) -> torch.Tensor:
    """[loss sum, correct, n] over batches, accumulated on the device (one sync by the caller)."""
    sums = torch.zeros(3, dtype=_acc_dtype(device), device=device)
    for out, y in _logits(model, batches, device, dtype, limit):
        sums[0] += F.cross_entropy(out, y, reduction="sum")
        sums[1] += (out.argmax(1) == y).sum()
        sums[2] += y.shape[0]
    return sums


def evaluate(model: nn.Module, data: Any, *, batch_size: int = EVAL_BATCH_SIZE,
             amp: str = "off") -> dict[str, float]:
    """Sample-weighted loss and accuracy of model on a Loader, a Split or (X, y) batches."""
    from cnnlab.loader import Loader, Split

    device = model_device(model)
    batches = Loader(data, batch_size, device=device) if isinstance(data, Split) else data
    dtype = precision_dtype(resolve_precision(amp, device))
    loss, correct, n = evaluate_sums(model, batches, device, dtype).tolist()
    if n == 0:
        raise DataError("evaluate got no samples; the split or loader is empty")
    return {"loss": loss / n, "acc": correct / n, "n": int(n)}


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = EVAL_BATCH_SIZE,
            resize: int | tuple[int, int] | None = None,
            normalize: tuple[Any, Any] | None = None, amp: str = "off") -> torch.Tensor:
    """Class probabilities (N, K) on the CPU for images (N, H, W) or (N, C, H, W).

    resize and normalize should match the training run: the batches go through the Loader, the
    one resize of cnnlab, as training's did. uint8 images are used as they are; float images in
    [0, 1] are first rounded to 8-bit pixels, what every dataset holds.
    """
    from cnnlab.loader import Loader, Split

    if images.ndim not in (3, 4):
        raise ShapeError(f"predict takes images (N, H, W) or (N, C, H, W), "
                         f"got {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    device = model_device(model)
    split = Split(images.cpu(), torch.zeros(len(images), dtype=torch.int64))
    loader = Loader(split, batch_size, resize=resize, normalize=normalize, device=device)
    dtype = precision_dtype(resolve_precision(amp, device))
    out = [logits.softmax(dim=1).cpu() for logits, _ in _logits(model, loader, device, dtype)]
    return torch.cat(out) if out else torch.empty(0)


# --- a finished run ---------------------------------------------------------------------------

@dataclass
class Run:
    """A trained run, loaded: config (as a dict), model in eval mode, dataset and checkpoint."""

    run_dir: Path
    config: dict[str, Any]  # config.json as written (incl. its "environment")
    model: nn.Module  # in eval mode, on `device`
    dataset: Any  # cnnlab.data.Dataset
    checkpoint: Path
    device: torch.device
    _inputs: Any = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        """The dataset's class names, by label."""
        return list(self.dataset.classes)

    @property
    def inputs(self) -> Any:
        """The run's RunInputs (cnnlab.inputs): splits, size, normalization, as it trained."""
        from cnnlab.inputs import RunInputs

        if self._inputs is None:
            self._inputs = RunInputs(self.config, self.dataset)
        return self._inputs

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model was trained on: the config's resize, else the data's own size."""
        return self.inputs.size

    @property
    def precision(self) -> str:
        """The precision the run trained in ("off" = float32, "bf16", "fp16"), as recorded."""
        amp = str(self.config.get("amp", "off"))
        # Runs written before precision was recorded resolved (amp "auto") are read as float32
        # on a CPU, the same rule a new run follows there.
        return amp if amp in PRECISIONS else resolve_precision(amp, self.device)

    @property
    def metrics(self) -> dict[str, Any]:
        """result.json (test accuracy and loss, timings); {} for a run that has not finished."""
        path = self.run_dir / "result.json"
        return read_json(path) if path.exists() else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one dict per epoch."""
        return read_history(self.run_dir)

    @property
    def normalize(self) -> tuple[float, float] | None:
        """The (mean, std) the run standardized its inputs with, or None."""
        return self.inputs.normalize

    def loader(self, split: Any, batch_size: int | None = None) -> Any:
        """A Loader feeding `split` to the model as training did (size, normalization)."""
        bs = batch_size or int(self.config.get("eval_batch_size", EVAL_BATCH_SIZE))
        return self.inputs.loader(split, bs, self.device)

    def split(self, name: str) -> Any:
        """The run's "train", "val" or "test" split (see RunInputs.split)."""
        return self.inputs.split(name)


@dataclass
class Evaluation:
    """A checkpoint's predictions on one split."""

    dataset: str
    loss: float  # mean cross-entropy per image
    acc: float  # fraction correct
    n: int  # images evaluated
    labels: torch.Tensor  # (N,) int64 true classes
    preds: torch.Tensor  # (N,) int64 predicted classes
    confidence: torch.Tensor  # (N,) float probability of the predicted class
    split: str = "test"  # which split of the run's dataset

    def confusion(self, k: int) -> torch.Tensor:
        """(k, k) counts: row = true class, column = predicted class."""
        return torch.bincount(self.labels * k + self.preds, minlength=k * k).reshape(k, k)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of the run folder, as a dict; DataError when it is missing, damaged or
    ill-typed (runlog.read_run_json, the one reader)."""
    return read_run_json(path)


def read_history(run_dir: str | Path, *, skip_torn: bool = False) -> list[dict[str, Any]]:
    """metrics.jsonl as a list of per-epoch dicts ([] when the run has none yet); a damaged line
    is a DataError, except a torn last line with skip_torn (see torn_lines)."""
    return read_run_lines(Path(run_dir) / "metrics.jsonl", skip_torn=skip_torn)[0]


def read_steps(run_dir: str | Path, *, skip_torn: bool = False) -> list[dict[str, Any]]:
    """steps.jsonl: the training loss and lr logged within epochs ([] for older runs)."""
    return read_run_lines(Path(run_dir) / "steps.jsonl", skip_torn=skip_torn)[0]


def torn_lines(run_dir: str | Path) -> list[str]:
    """The run's .jsonl files whose last line is torn (a crash or a half-finished copy): the
    report skips that line and says so."""
    return [name for name in ("metrics.jsonl", "steps.jsonl")
            if read_run_lines(Path(run_dir) / name, skip_torn=True)[1]]


def load_run(run_dir: str | Path, checkpoint: str = "last", device: str | None = None) -> Run:
    """Rebuild a run's model from config.json and load checkpoints/<checkpoint>.pt into it.

    The model comes back in eval mode on `device` (default: the run's own device when this
    machine has it, else the best one here).
    """
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.inputs import RunInputs

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder {run_dir} does not exist (`cnnlab train` prints where it "
                        "wrote its run)")
    config = read_json(run_dir / "config.json")
    if not config.get("model"):
        raise ConfigError(f"{run_dir}/config.json names no model; this run cannot be reloaded")
    if checkpoint not in ("last", "best"):
        raise ConfigError(f"checkpoint {checkpoint!r} must be last or best")
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    missing = checkpoint == "best" and not path.exists()
    if missing:
        path = run_dir / "checkpoints" / "last.pt"  # a run without validation keeps only last.pt
    state = load_checkpoint(path)
    if missing and state.get("best") is not None:
        # It had a best epoch, so best.pt belongs beside last.pt: never answer with another
        # model silently.
        raise DataError(f"{path.with_name('best.pt')} is missing although the run validated (a "
                        "fault such as a full disk stopped it before it was written); resume the "
                        f"run to write it (cnnlab train --resume {run_dir}) or use last.pt")
    inputs = RunInputs.load(config, download=False)
    dev = pick_device(device or config.get("device"), fallback=device is None)
    knobs = state.get("model_kwargs") or config.get("model_kwargs") or {}  # the run's knobs
    model = inputs.build_model(config["model"], knobs)
    weights = state.get("model", state)
    # torch.compile wraps the module: its state-dict keys carry an "_orig_mod." prefix.
    weights = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in weights.items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise DataError(f"{path} does not fit model {config['model']!r}: "
                        f"{str(err).splitlines()[0]}") from None
    return Run(run_dir, config, model.to(dev).eval(), inputs.dataset, path, dev, inputs)


def evaluate_run(run: Run | str | Path, checkpoint: str = "last", limit: int | None = None,
                 split: str = "test") -> Evaluation:
    """Predict every image of a split (or the first `limit`) with the run's checkpoint."""
    if not isinstance(run, Run):
        run = load_run(run, checkpoint)
    data = run.split(split)
    if limit is not None and limit < len(data):
        data = data.subset(torch.arange(limit))
    return evaluation(run.model, run.loader(data), run.device, precision_dtype(run.precision),
                      run.dataset.name, split)


def evaluation(model: nn.Module, batches: Iterable[Any], device: torch.device,
               dtype: torch.dtype | None, dataset: str, split: str = "test") -> Evaluation:
    """Every prediction of `model` on `batches`, with the loss and accuracy over them.

    The loss is summed per batch as evaluate_sums sums it, so both give the same figures.
    """
    labels, preds, conf = [], [], []
    loss_sum = 0.0
    for logits, y in _logits(model, batches, device, dtype):
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        c, k = logits.softmax(dim=1).max(dim=1)
        labels.append(y.cpu())
        preds.append(k.cpu())
        conf.append(c.cpu())
    y, k = torch.cat(labels), torch.cat(preds)
    n = len(y)
    return Evaluation(dataset, loss_sum / max(n, 1), int((y == k).sum()) / max(n, 1), n, y, k,
                      torch.cat(conf), split)


def top_mistakes(ev: Any, n: int) -> torch.Tensor:
    """Indices of the n most confident misclassified test images, most confident first."""
    wrong = (ev.preds != ev.labels).nonzero().flatten()
    return wrong[ev.confidence[wrong].argsort(descending=True)][:n]


def better(row: dict[str, Any], best: dict[str, Any] | None, monitor: str) -> bool:
    """True when `row` beats `best` on `monitor` (val_acc: higher; val_loss: lower): what makes
    an epoch best.pt, for the engine and for every page that says "best"."""
    if row.get(monitor) is None:
        return False
    if best is None or best.get(monitor) is None:
        return True
    return row[monitor] > best[monitor] if monitor == "val_acc" else row[monitor] < best[monitor]


def best_row(history: list[dict[str, Any]], monitor: str = "val_acc") -> dict[str, Any]:
    """The epoch best.pt holds: the first one no later epoch beat on `monitor` ({}: none)."""
    best: dict[str, Any] | None = None
    for row in history:
        if better(row, best, monitor):
            best = row
    return best or {}


# --- images from files ------------------------------------------------------------------------

def read_image(path: str | Path) -> torch.Tensor:
    """A PNG/JPEG file as a float (H, W) grayscale tensor in [0, 1]."""
    # Pillow is always there: matplotlib, a dependency, requires it (its imread uses it too).
    from cnnlab.imagefolder import open_image

    path = Path(path)
    try:  # only a regular file, within the one decompression-bomb limit: else a DataError
        with open_image(path) as im:
            arr = torch.from_numpy(np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0)
    except (OSError, ValueError) as err:  # truncated or corrupt pixel data
        raise DataError(f"cannot read image {path} ({err}); give a PNG or JPEG file") from None
    rgb, alpha = arr[..., :3], arr[..., 3]  # (H, W, 3), (H, W)
    gray = rgb @ torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's convert("L")
    return gray * alpha + (1 - alpha)  # transparent pixels are background: over white


def to_dataset_image(gray: torch.Tensor, size: tuple[int, int] = (28, 28),
                     invert: str = "auto") -> torch.Tensor:
    """A grayscale image made to look like the dataset's: light object on dark, uint8 at `size`.

    The datasets draw bright objects on a black ground; photos and drawings are usually dark on
    light, so with invert="auto" an image whose border is mostly light is inverted.
    """
    if invert not in ("auto", "yes", "no"):
        raise ConfigError(f"invert={invert!r} must be auto, yes or no")
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if invert == "yes" or (invert == "auto" and border.mean() > 0.5):
        gray = 1.0 - gray
    x = F.interpolate(gray[None, None], size=size, mode="area" if gray.shape[0] >= size[0]
                      else "bilinear")[0, 0]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def is_book_data(dataset_name: str) -> bool:
    """True for the book's greyscale datasets (light objects on a dark ground)."""
    return dataset_name in ("fashion-mnist", "mnist")


def file_images(paths: list[Path], size: tuple[int, int], channels: int = 1,
                light_on_dark: bool = True, invert: str = "auto") -> torch.Tensor:
    """Image files as a dataset's uint8 images (N, H, W) or (N, C, H, W) at `size`.

    light_on_dark: the book's datasets (greyscale, object light on dark, see to_dataset_image);
    otherwise the class-folder rule: shorter side to the size, centre kept, grey or RGB.
    """
    if light_on_dark:
        return torch.stack([to_dataset_image(read_image(p), size, invert) for p in paths])
    from cnnlab.imagefolder import decode_image

    arrays = [torch.from_numpy(decode_image(str(p), size[0], channels)) for p in paths]
    return torch.stack([a.permute(2, 0, 1) if a.dim() == 3 else a for a in arrays])


def files_split(run: Run, paths: list[Path], invert: str = "auto") -> Any:
    """Image files made to look like the run's dataset, as a Split (labels 0) for run.loader."""
    from cnnlab.loader import Split

    native = tuple(run.dataset.train.images.shape[-2:])
    images = file_images(paths, native, run.dataset.channels, is_book_data(run.dataset.name),
                         invert)
    return Split(images, torch.zeros(len(images), dtype=torch.int64))


def predict_files(run: Run, paths: list[Path], invert: str = "auto") -> torch.Tensor:
    """Class probabilities (len(paths), K) for image files, fed through the run's own pipeline."""
    split = files_split(run, paths, invert)
    out = [logits.softmax(dim=1).cpu() for logits, _ in
           _logits(run.model, run.loader(split, 256), run.device, precision_dtype(run.precision))]
    return torch.cat(out)
