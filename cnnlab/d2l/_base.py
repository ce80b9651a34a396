"""The book's small utilities: hyperparameters, devices, corr2d, and pictures that work anywhere.

Pictures (`ProgressBoard`, `show_images`) draw on their own matplotlib Figure (Agg, no pyplot
state). In Jupyter they are shown inline, as the book does: a board is one output of its cell,
drawn again in place as points come (at most once a second, and always at the end of `fit` and of
the cell), so it stays in the cell whatever is printed after it. Anywhere else they are saved as PNG
files, atomically, in the output folder (the working directory unless `set_output_dir` or the
`CNNLAB_D2L_DIR` environment variable says otherwise), so a script run from a terminal still
leaves its curves behind.
"""

from __future__ import annotations

import atexit
import collections
import inspect
import os
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.notebook import Slot, in_notebook, png_bundle
from cnnlab.ops import corr2d  # noqa: F401 (re-exported: the book's d2l.corr2d)
from cnnlab.plots import figure_png, save_figure

__all__ = [
    "add_to_class", "HyperParameters", "ProgressBoard", "show_images", "set_output_dir",
    "output_dir", "cpu", "gpu", "num_gpus", "try_gpu", "try_all_gpus", "corr2d",
]

_output_dir: Path | None = None


def set_output_dir(path: str | os.PathLike | None) -> None:
    """Where boards and image grids are saved outside Jupyter (None: CNNLAB_D2L_DIR, else cwd)."""
    global _output_dir
    _output_dir = None if path is None else Path(path)


def output_dir() -> Path:
    """The folder pictures are saved in outside Jupyter."""
    if _output_dir is not None:
        return _output_dir
    return Path(os.environ.get("CNNLAB_D2L_DIR") or ".")


def _inline(fig: Figure, text: str) -> dict[str, str]:
    """A figure as a notebook output (a PNG, independent of the notebook's matplotlib backend)."""
    return png_bundle(figure_png(fig, dpi=100), text)


def add_to_class(Class: type) -> Callable[[Callable], None]:  # noqa: N803 (the book's name)
    """Register the decorated function as a method of `Class` (the book's incremental classes)."""

    def wrapper(obj: Callable) -> None:
        setattr(Class, obj.__name__, obj)

    return wrapper


class HyperParameters:
    """The base class of hyperparameters: `save_hyperparameters` turns __init__ arguments into
    attributes."""

    def save_hyperparameters(self, ignore: Sequence[str] = ()) -> None:
        """Save the calling function's arguments as attributes and in `self.hparams`."""
        frame = inspect.currentframe().f_back
        _, _, _, local_vars = inspect.getargvalues(frame)
        skip = set(ignore) | {"self"}
        self.hparams = {k: v for k, v in local_vars.items()
                        if k not in skip and not k.startswith("_")}
        for k, v in self.hparams.items():
            setattr(self, k, v)


Point = collections.namedtuple("Point", ["x", "y"])


class ProgressBoard(HyperParameters):
    """The board that plots data points as they come (inline in Jupyter, a PNG elsewhere).

    `draw(x, y, label, every_n)` averages every `every_n` points into one plotted point, as the
    book does, but weights each point by `weight` (the batch size when the Trainer draws), so a
    plotted validation accuracy is the exact accuracy over the samples, not a mean of batch means.
    `y` may be a tensor on any device: it is summed there and read back once per plotted point.
    """

    def __init__(self, xlabel: str | None = None, ylabel: str | None = None,
                 xlim: Sequence[float] | None = None, ylim: Sequence[float] | None = None,
                 xscale: str = "linear", yscale: str = "linear",
                 ls: Sequence[str] = ("-", "--", "-.", ":"),
                 colors: Sequence[str] = ("C0", "C1", "C2", "C3"),
                 fig: Figure | None = None, axes: Any = None, figsize: tuple = (3.5, 2.5),
                 display: bool = True, path: str | os.PathLike | None = None):
        self.save_hyperparameters()
        self.raw_points: dict[str, list] = collections.OrderedDict()
        self.data: dict[str, list[Point]] = collections.OrderedDict()
        self._lines: list = []
        self.default_name = "progress"
        # Outside Jupyter the PNG is rewritten at most every `save_every` seconds (a save costs
        # ~50 ms, more than a short epoch); `flush()` and process exit write what is pending.
        self.save_every = 2.0
        self._last_save = -float("inf")
        self._pending = False
        self._slot = Slot(every=1.0)  # in Jupyter: this board's output, redrawn in place
        _BOARDS.add(self)

    def draw(self, x: float, y: Any, label: str, every_n: int = 1, weight: float = 1) -> None:
        """Add a point to curve `label`; every `every_n` points are averaged and plotted."""
        if label not in self.raw_points:
            self.raw_points[label] = []
            self.data[label] = []
        points = self.raw_points[label]
        if isinstance(y, torch.Tensor):
            y = y.detach()
        points.append((x, y, weight))
        if len(points) < max(1, int(every_n)):
            return
        total = sum(w for _, _, w in points)
        ysum = sum(v * w for _, v, w in points)  # stays on the device until this one read-back
        yval = float(ysum) / total
        self.data[label].append(Point(sum(p[0] for p in points) / len(points), yval))
        points.clear()
        if self.display:
            self.render()

    def figure(self) -> Figure:
        """Redraw every curve on the board's figure and return it."""
        if self.fig is None:
            self.fig = Figure(figsize=self.figsize)
        axes = self.axes
        if axes is None:
            axes = self.fig.axes[0] if self.fig.axes else self.fig.add_subplot()
        for line in self._lines:  # only our own lines: a user-supplied axes keeps its content
            line.remove()
        self._lines = []
        for (label, pts), ls, color in zip(self.data.items(), self.ls, self.colors):
            (line,) = axes.plot([p.x for p in pts], [p.y for p in pts], linestyle=ls,
                                color=color, label=label)
            self._lines.append(line)
        if self.xlim:
            axes.set_xlim(self.xlim)
        if self.ylim:
            axes.set_ylim(self.ylim)
        axes.set_xlabel(self.xlabel)
        axes.set_ylabel(self.ylabel)
        axes.set_xscale(self.xscale)
        axes.set_yscale(self.yscale)
        if self._lines:
            axes.legend(self._lines, [ln.get_label() for ln in self._lines])
        return self.fig

    def render(self) -> None:
        """Show the board inline in Jupyter, or save it as a PNG elsewhere (throttled)."""
        if in_notebook():
            self._slot.show(lambda: _inline(self.figure(), f"<ProgressBoard: {self._names()}>"))
        elif time.monotonic() - self._last_save >= self.save_every:
            self.save()
        else:
            self._pending = True

    def flush(self) -> None:
        """Draw what the throttle held back: the PNG outside Jupyter, the inline board in it."""
        if in_notebook():
            self._slot.flush()
        elif self._pending:
            self.save()

    def _names(self) -> str:
        return ", ".join(self.data) or "no points yet"

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the board as a PNG (to `path`, else `self.path`, else the output folder)."""
        target = path if path is not None else self.target()
        out = save_figure(self.figure(), target)
        if path is None:
            self._pending = False
            self._last_save = time.monotonic()
        return out

    def target(self) -> Path:
        """Where `save()` writes by default."""
        return Path(self.path) if self.path else output_dir() / f"{self.default_name}.png"


_BOARDS: weakref.WeakSet[ProgressBoard] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Write the points a script drew after its boards' last throttled save."""
    for board in list(_BOARDS):
        if board.display:
            try:
                board.flush()
            except Exception:  # noqa: BLE001 (never turn a finished script into a failed one)
                pass


def show_images(imgs: Any, num_rows: int, num_cols: int, titles: Sequence[str] | None = None,
                scale: float = 1.5, path: str | os.PathLike | None = None) -> np.ndarray:
    """Plot a grid of images (inline in Jupyter, else saved to `path` or images.png); returns
    the axes."""
    fig = Figure(figsize=(num_cols * scale, num_rows * scale))
    axes = np.asarray(fig.subplots(num_rows, num_cols, squeeze=False)).flatten()
    for i, (ax, img) in enumerate(zip(axes, imgs)):
        if isinstance(img, torch.Tensor):
            img = img.detach().cpu().float().numpy()
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[0] in (1, 3):  # (C, H, W) -> (H, W[, C])
            img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i])
    if in_notebook() and path is None:
        Slot().show(lambda: _inline(fig, f"<{num_rows}x{num_cols} images>"))
    else:
        save_figure(fig, path if path is not None else output_dir() / "images.png")
    return axes


def cpu() -> torch.device:
    """The CPU device."""
    return torch.device("cpu")


def _mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def num_gpus() -> int:
    """How many accelerators there are: CUDA devices, else 1 for Apple's MPS, else 0."""
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1 if _mps() else 0


def gpu(i: int = 0) -> torch.device:
    """Accelerator `i`: cuda:i, or Apple's mps when there is no CUDA."""
    if not torch.cuda.is_available() and i == 0 and _mps():
        return torch.device("mps")
    return torch.device(f"cuda:{i}")


def try_gpu(i: int = 0) -> torch.device:
    """gpu(i) if it exists, else cpu()."""
    return gpu(i) if num_gpus() >= i + 1 else cpu()


def try_all_gpus() -> list[torch.device]:
    """All accelerators, or [cpu()] when there is none (as the book's docstring promises)."""
    return [gpu(i) for i in range(num_gpus())] or [cpu()]
