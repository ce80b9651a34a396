"""What a person sees while a run goes: a live bar in a terminal, plain epoch lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def resolve_mode(mode: str, stream: TextIO) -> str:
    """'auto' becomes 'bar' on a terminal and 'plain' otherwise (CI, a log file, a pipe)."""
    if mode != "auto":
        return mode
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "plain"


def format_epoch(row: dict[str, Any], epochs: int) -> str:
    """One plain line for one epoch; only printable ASCII, so logs stay greppable."""
    width = len(str(epochs))
    parts = [f"epoch {row['epoch']:>{width}}/{epochs}"]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.4f}")
    if row.get("lr") is not None:
        parts.append(f"lr {row['lr']:.4g}")
    if row.get("seconds") is not None:
        parts.append(f"{row['seconds']:.2f}s")
    if row.get("images_per_second") is not None:
        parts.append(f"{row['images_per_second']:.0f} img/s")
    return "  ".join(parts)


class Progress:
    """Progress display in one of three modes: 'bar' (tqdm), 'plain' (a line per epoch), 'none'."""

    def __init__(self, mode: str = "auto", epochs: int = 1, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.epochs = epochs
        self._bar: Any = None

    def message(self, text: str) -> None:
        """A one-off line (run start, resume notice); silent in 'none' mode."""
        if self.mode == "none":
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, steps: int, start: int = 0) -> None:
        """Open the bar for an epoch of `steps` steps, `start` of them already done (resume)."""
        if self.mode != "bar":
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=steps, initial=start, file=self.stream, leave=True,
                         desc=f"epoch {epoch}/{self.epochs}", unit="step", dynamic_ncols=True)

    def update(self, steps_done: int, stats: dict[str, float]) -> None:
        """Move the bar to steps_done and show loss, accuracy and throughput."""
        if self._bar is None:
            return
        self._bar.update(steps_done - self._bar.n)
        self._bar.set_postfix(_short(stats), refresh=True)

    def end_epoch(self, row: dict[str, Any]) -> None:
        """Close the epoch: final postfix on the bar, or one plain line."""
        if self.mode == "plain":
            print(format_epoch(row, self.epochs), file=self.stream, flush=True)
        elif self._bar is not None:
            self._bar.update(self._bar.total - self._bar.n)
            keys = ("train_loss", "train_acc", "val_loss", "val_acc", "images_per_second")
            self._bar.set_postfix(_short({k: row[k] for k in keys if row.get(k) is not None}))
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Close an open bar (on errors and interrupts)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _short(stats: dict[str, float]) -> dict[str, str]:
    names = {"train_loss": "loss", "train_acc": "acc", "images_per_second": "img/s"}
    out = {}
    for k, v in stats.items():
        out[names.get(k, k)] = f"{v:.0f}" if k == "images_per_second" else f"{v:.4f}"
    return out
