"""What a person sees while a run goes: a live bar in a terminal, plain epoch lines elsewhere."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, TextIO

from cnnlab.schedule import format_lr


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
        parts.append(f"lr {format_lr(row['lr'])}")
    if row.get("seconds") is not None:
        parts.append(f"{row['seconds']:.2f}s")
    if row.get("images_per_second") is not None:
        parts.append(f"{row['images_per_second']:.0f} img/s")
    return "  ".join(parts)


def plural(n: int, word: str) -> str:
    """'1 epoch', '10 epochs', '2 batches', '60,000 train samples' (thousands separated)."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word[:-5] + 'batches' if word.endswith('batch') else word + 's'}"


def format_duration(seconds: float | None) -> str:
    """'00:07', '12:34', '1:02:03' (a clock, as progress bars show time); '?' when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m:02d}:{s % 60:02d}"


# Optional fields of the bar, most important first: the narrower the terminal, the more of them
# are dropped from the end. The epoch, the percentage, the ETA and the validation accuracy (once
# known) are never dropped.
_OPTIONAL = ("loss", "acc", "img/s", "elapsed", "steps", "val_loss")
_BAR_MIN, _BAR_MAX = 10, 30


def bar_line(epoch: int, epochs: int, done: int, total: int, elapsed: float, eta: float | None,
             stats: dict[str, float], width: int, unicode: bool = True) -> str:
    """The progress line for a terminal `width` columns wide (never longer than width - 1).

    stats may hold train_loss, train_acc, images_per_second, val_loss and val_acc; unicode=False
    draws the bar with '#' for terminals that cannot show block characters.
    """
    width = max(width - 1, 20)  # the last column would wrap on some terminals
    head = f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
    pct = f"{100 * done / max(total, 1):3.0f}%"
    fields = {"loss": f"loss {stats['train_loss']:.4f}" if "train_loss" in stats else None,
              "acc": f"acc {stats['train_acc']:.4f}" if "train_acc" in stats else None,
              "img/s": (f"{stats['images_per_second']:,.0f} img/s"
                        if stats.get("images_per_second") else None),
              "steps": f"{done}/{total}",
              "val_loss": f"val_loss {stats['val_loss']:.4f}" if "val_loss" in stats else None}
    val_acc = f"val_acc {stats['val_acc']:.4f}" if stats.get("val_acc") is not None else None
    keep = [k for k in _OPTIONAL if k == "elapsed" or fields.get(k)]

    def render(keep: list[str], bar_width: int) -> str:
        clock = (f"{format_duration(elapsed)}<{format_duration(eta)}" if "elapsed" in keep
                 else f"eta {format_duration(eta)}")
        left = [head, pct]
        if bar_width:
            filled = bar_width * done / max(total, 1)
            full, part = int(filled), int((filled - int(filled)) * 8)
            if unicode:
                bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if full < bar_width else "")
            else:
                bar = "#" * full
            left.append("|" + bar.ljust(bar_width)[:bar_width] + "|")
        right = ["steps" in keep and fields["steps"], clock]
        right += [fields[k] for k in ("loss", "acc") if k in keep]
        right += [val_acc, "val_loss" in keep and fields["val_loss"],
                  "img/s" in keep and fields["img/s"]]
        return " ".join(left + [p for p in right if p])

    while True:
        room = width - len(render(keep, 0)) - 3  # the bar's two edges and a space
        if room >= _BAR_MIN:
            return render(keep, min(room, _BAR_MAX))
        if not keep:
            break
        keep = keep[:-1]  # drop the least important field left
    line = render([], 0)
    if len(line) > width:  # a very narrow terminal: the bare numbers
        line = " ".join(p for p in (f"{epoch}/{epochs}", pct.strip(), f"eta {format_duration(eta)}",
                                     val_acc and f"val {stats['val_acc']:.4f}") if p)
    return line[:width]


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal `stream` writes to ($COLUMNS, else 80, when it is not one)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((80, 24)).columns


class Progress:
    """Progress display in one of three modes: 'bar' (a live line), 'plain' (a line per epoch),
    'none'."""

    def __init__(self, mode: str = "auto", epochs: int = 1, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.epochs = epochs
        self._open = False  # a bar line is on screen, without its newline yet
        self._val: dict[str, float] = {}  # the last validation, shown until the next one

    def message(self, text: str) -> None:
        """A one-off line (run start, resume notice); silent in 'none' mode."""
        if self.mode == "none":
            return
        if self._open:  # the message goes above the bar, which is drawn again below it
            self._write("\r\x1b[K" + text + "\n")
            self._draw()
        else:
            print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, steps: int, start: int = 0) -> None:
        """Open the bar for an epoch of `steps` steps, `start` of them already done (resume)."""
        if self.mode != "bar":
            return
        self._epoch, self._total, self._start, self._done = epoch, steps, start, start
        self._t0 = time.perf_counter()
        self._stats: dict[str, float] = {}
        self._open = True
        self._draw()

    def update(self, steps_done: int, stats: dict[str, float]) -> None:
        """Move the bar to steps_done and show loss, accuracy and throughput."""
        if not self._open:
            return
        self._done, self._stats = steps_done, dict(stats)
        self._draw()

    def end_epoch(self, row: dict[str, Any]) -> None:
        """Close the epoch: the bar's final line (with validation), or one plain line."""
        if self.mode == "plain":
            print(format_epoch(row, self.epochs), file=self.stream, flush=True)
        elif self._open:
            if row.get("val_acc") is not None:
                self._val = {k: row[k] for k in ("val_loss", "val_acc") if row.get(k) is not None}
            keys = ("train_loss", "train_acc", "images_per_second")
            self._done, self._stats = self._total, {k: row[k] for k in keys if row.get(k)}
            self._draw()
            self._write("\n")
            self._open = False

    def close(self) -> None:
        """End an open bar line (on errors and interrupts)."""
        if self._open:
            self._write("\n")
            self._open = False

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self._t0
        run = self._done - self._start
        eta = elapsed / run * (self._total - self._done) if run > 0 else None
        line = bar_line(self._epoch, self.epochs, self._done, self._total, elapsed, eta,
                        {**self._stats, **self._val}, terminal_width(self.stream),
                        unicode="utf" in (getattr(self.stream, "encoding", None) or "").lower())
        self._write("\r" + line + "\x1b[K")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
