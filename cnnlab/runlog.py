"""The run folder's files: config.json, metrics.csv/.jsonl, curves.png, TensorBoard, result.json.

Every file is rewritten whole and atomically, so a reader (or a resumed run) never sees half a
line, and after a resume the files agree with the checkpoint's history.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

from cnnlab.atomic import remove_orphans, write_atomic
from cnnlab.checkpoint import RunLock
from cnnlab.distributed import is_rank0
from cnnlab.errors import ConfigError, TrainingError

# Everything a run (and its report, inspection and exports) writes into its folder, by name:
# `--overwrite` removes exactly these files, so the user's own files beside them (and in the
# same subfolders) survive. A subfolder is removed only when nothing else is left in it.
RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "steps.jsonl", "curves.png",
             "lr-find.json", "lr-find.png", "result.json", "report.html", "confusion.png",
             "errors.png", "checkpoints/last.pt", "checkpoints/best.pt")
RUN_PATTERNS = ("tensorboard/events.out.tfevents.*",  # SummaryWriter's own naming
                "inspect/inspect.html", "inspect/filters.png", "inspect/filters-*.png",
                "inspect/feature-maps.png", "inspect/attribution.png", "inspect/mistakes.png",
                "inspect/edge-demo.png")
RUN_SUBFOLDERS = ("checkpoints", "tensorboard", "inspect")
EXPORT_SUFFIXES = (".onnx", ".torchscript.pt")  # `<model><suffix>`, with its `.json` sidecar

CSV_FIRST = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
             "images_per_second")


def run_state(folder: str | Path) -> str | None:
    """What `folder` holds: "checkpoint" (a resumable run), "started" (a run that saved no
    checkpoint), "dry" (a dry run's files: scratch) or None (nothing of a run)."""
    folder = Path(folder)
    ckpt = folder / "checkpoints"
    if (ckpt / "last.pt").is_file() or (ckpt / "best.pt").is_file():
        return "checkpoint"
    for name in ("result.json", "config.json"):
        try:
            dry = json.loads((folder / name).read_text()).get("dry_run")
        except (OSError, ValueError, AttributeError):
            continue
        return "dry" if dry is True else "started"
    return "started" if (folder / "metrics.jsonl").is_file() else None


def run_files(folder: str | Path) -> list[Path]:
    """The files in `folder` that a run wrote (RUN_FILES, RUN_PATTERNS, its default exports):
    what `--overwrite` removes. An export counts only beside the sidecar cnnlab wrote for it."""
    folder = Path(folder)
    found = [folder / name for name in RUN_FILES]
    found += [p for pattern in RUN_PATTERNS for p in sorted(folder.glob(pattern))]
    try:  # `cnnlab export` names its files after the run's model
        model = json.loads((folder / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        model = None
    for suffix in EXPORT_SUFFIXES if isinstance(model, str) else ():
        exported = folder / f"{model}{suffix}"
        sidecar = exported.with_name(exported.name + ".json")
        try:
            meta = json.loads(sidecar.read_text())
            ours = isinstance(meta, dict) and meta.get("file") == exported.name and "cnnlab" in meta
        except (OSError, ValueError):
            ours = False
        if ours:
            found += [exported, sidecar]
    return [p for p in found if p.is_symlink() or p.is_file()]


def clear_run(folder: str | Path) -> list[Path]:
    """Remove what a run wrote into folder (`run_files`), by name, and the subfolders that this
    leaves empty; never a folder wholesale, never another file. Returns what was removed."""
    folder = Path(folder)
    removed = run_files(folder)
    for path in removed:
        path.unlink()
    for sub in RUN_SUBFOLDERS:
        try:
            (folder / sub).rmdir()  # only when empty: a user's file in it keeps it
        except OSError:
            pass
    return removed


def claim_run_folder(out: Path, *, resuming: bool, overwrite: bool = False
                     ) -> tuple[RunLock, list[Path]]:
    """Lock the run folder `out` for one run: (the held RunLock, what claiming it created).

    A folder holding another run is refused unless overwrite (which clears what that run
    wrote); a dry run's files are scratch; temporary files of killed writers are removed. The
    caller removes the created paths again (empty ones) if its run never starts.
    """
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"is under the file {parent}"
            raise ConfigError(f"output folder {out} {where}; choose a folder (--out DIR)")
    made = [p for p in (out, out / ".lock", out / "checkpoints") if not p.exists()]
    lock = RunLock(out).acquire()
    try:
        held = run_state(out)
        if not resuming and held in ("checkpoint", "started"):
            if not overwrite and held == "checkpoint":
                raise TrainingError(
                    f"{out} already holds a run; continue it with --resume {out}, replace "
                    "it with --overwrite, or choose another folder (--out)")
            if not overwrite:  # nothing to --resume from
                raise TrainingError(
                    f"{out} already holds the start of a run that saved no checkpoint; start "
                    "it over with --overwrite, or choose another folder (--out)")
            clear_run(out)
        elif not resuming and held == "dry":
            clear_run(out)  # a dry run's files are scratch
        for folder in (out, out / "checkpoints"):
            remove_orphans(folder)  # temporary files of writers that were killed
    except BaseException:
        lock.release()
        raise
    return lock, made


def default_run_dir(name: str) -> Path:
    """A new runs/<name>-<YYYYmmdd-HHMMSS>[-N] under the working folder, created here.

    The folder is claimed by creating it (an atomic mkdir), so two runs started in the same
    second, even by two processes, never share one. Under torchrun only rank 0, the one that
    writes, claims a folder.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if not is_rank0():
        return Path("runs") / f"{name}-{stamp}"
    Path("runs").mkdir(exist_ok=True)
    for n in range(1, 10_000):
        path = Path("runs") / (f"{name}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"runs/ holds 10000 folders named {name}-{stamp}*; choose --out")


def to_json(obj: Any) -> str:
    """Strict JSON (NaN and inf become null) with stable key order."""
    return json.dumps(_clean(obj), indent=2) + "\n"


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def environment(device: torch.device) -> dict[str, Any]:
    """Library, torch and python versions and the device's name, recorded beside the config."""
    import cnnlab

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = platform.processor() or platform.machine()
    else:
        name = device.type
    return {"cnnlab": cnnlab.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "device": str(device), "device_name": name, "cpu_threads": torch.get_num_threads(),
            "cpu_model": cpu_model(), "host": platform.node()}


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC 9R14 96-Core Processor'), or platform.machine()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


class RunFolder:
    """Writes one run's human- and machine-readable outputs (rank 0 only)."""

    def __init__(self, path: str | Path, *, tensorboard: bool = True, plot: bool = True):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.checkpoints.mkdir(exist_ok=True)
        self.plot = plot
        self._tb_enabled = tensorboard
        self._tb: Any = None

    def write_config(self, config: dict[str, Any], env: dict[str, Any]) -> None:
        """config.json: the config's fields plus an 'environment' entry."""
        write_atomic(self.path / "config.json", to_json({**config, "environment": env}))

    def write_history(self, history: list[dict[str, Any]],
                      steps: list[dict[str, Any]] | None = None) -> None:
        """metrics.jsonl and metrics.csv from the whole history, steps.jsonl (the training loss
        and lr within epochs), plus curves.png."""
        lines = "".join(json.dumps(_clean(row)) + "\n" for row in history)
        write_atomic(self.path / "metrics.jsonl", lines)
        if steps is not None:
            write_atomic(self.path / "steps.jsonl",
                         "".join(json.dumps(_clean(p)) + "\n" for p in steps))
        keys = [k for k in CSV_FIRST if any(k in r for r in history)]
        keys += sorted({k for r in history for k in r} - set(keys))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in keys})
        write_atomic(self.path / "metrics.csv", buf.getvalue())
        if self.plot and history:
            self._plot(history, steps)

    def _plot(self, history: list[dict[str, Any]], steps: list[dict[str, Any]] | None) -> None:
        try:
            from cnnlab.plots import plot_curves
        except ImportError:  # plots not available in this install: the numbers are still written
            return
        plot_curves(history, self.path / "curves.png", steps=steps)  # written atomically

    def tensorboard(self, purge_step: int | None = None) -> Any:
        """The SummaryWriter (None when tensorboard is not installed or switched off)."""
        if self._tb is None and self._tb_enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb_enabled = False
                return None
            # purge_step drops events a killed run wrote after its last checkpoint.
            self._tb = SummaryWriter(str(self.path / "tensorboard"), purge_step=purge_step)
        return self._tb

    def log_scalars(self, scalars: dict[str, float | None], step: int) -> None:
        """Scalars such as 'train/loss' at a global step (TensorBoard only)."""
        tb = self.tensorboard()
        if tb is None:
            return
        for tag, value in scalars.items():
            if value is not None:
                tb.add_scalar(tag, value, step)

    def write_result(self, result: dict[str, Any]) -> None:
        """result.json: final and best metrics, test accuracy, timings."""
        write_atomic(self.path / "result.json", to_json(result))

    def close(self) -> None:
        """Flush TensorBoard."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
