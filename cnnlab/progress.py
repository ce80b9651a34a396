"""What a person sees while a run goes: a live view in a notebook, a live bar in a terminal,
plain epoch lines elsewhere."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, TextIO

from cnnlab.notebook import in_notebook, live_view
from cnnlab.schedule import format_lr


def resolve_mode(mode: str, stream: TextIO) -> str:
    """'auto' becomes 'notebook' in a Jupyter or Colab kernel, 'bar' on a terminal and 'plain'
    otherwise (CI, a log file, a pipe); 'notebook' outside a kernel, where nothing can draw the
    view, becomes 'plain'."""
    if mode == "notebook" or (mode == "auto" and in_notebook()):
        return "notebook" if in_notebook() else "plain"
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


def _hours_minutes(seconds: float) -> str:
    """'7 min', '2 h 05 min': a forecast's precision."""
    m = max(1, round(seconds / 60))
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


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


# Plain mode (a log file, a notebook, CI) prints a line per epoch; inside a long epoch it also
# prints where the epoch is, first after PLAIN_FIRST seconds, then every PLAIN_EVERY seconds.
PLAIN_FIRST, PLAIN_EVERY = 30.0, 300.0
# Once FORECAST_AFTER seconds of steps have been timed, a run with more than FORECAST_MIN
# seconds of training left says, once, how long that will take at the pace so far.
FORECAST_AFTER, FORECAST_MIN = 10.0, 300.0


def plain_progress(epoch: int, epochs: int, done: int, total: int, eta: float | None,
                   stats: dict[str, float]) -> str:
    """One plain line from inside an epoch: where it is, the running metrics, its ETA."""
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}", f"step {done:,}/{total:,}",
             f"{100 * done // max(total, 1)}%"]
    for key in ("train_loss", "train_acc"):
        if stats.get(key) is not None:
            parts.append(f"{key} {stats[key]:.4f}")
    if stats.get("images_per_second") is not None:
        parts.append(f"{stats['images_per_second']:,.0f} img/s")
    parts.append(f"epoch eta {format_duration(eta)}")
    return "  ".join(parts)


def summary_line(rows: list[dict[str, Any]], epochs: int) -> str:
    """What a finished (or stopped) run did, in one line: the epochs, the time, the accuracy."""
    if not rows:
        return "stopped before its first epoch ended"
    last = rows[-1]
    done = last["epoch"] >= epochs
    text = (f"finished: {plural(epochs, 'epoch')}" if done
            else f"stopped after epoch {last['epoch']} of {epochs}")
    seconds = sum(r.get("seconds") or 0.0 for r in rows)
    text += f" in {format_duration(seconds)}"
    vals = [r for r in rows if r.get("val_acc") is not None]
    if vals:
        best = max(vals, key=lambda r: r["val_acc"])
        text += f"; val_acc {vals[-1]['val_acc']:.4f}"
        if best["val_acc"] > vals[-1]["val_acc"]:
            text += f" (best {best['val_acc']:.4f}, epoch {best['epoch']})"
    elif last.get("train_acc") is not None:
        text += f"; train_acc {last['train_acc']:.4f}"
    return text


class Progress:
    """Progress display in one of four modes: 'notebook' (a live view in a Jupyter cell: the
    epoch's progress, a table of finished epochs and the curves, updated in place, with a summary
    at the end; cnnlab.notebook), 'bar' (a live line), 'plain' (a line per epoch, and a line every
    few minutes inside a long one), 'none'.

    Anything that runs epochs (train, resume, a learning-rate finder, a sweep's trials) gets
    all four by reporting through one Progress: message, start_epoch, update, end_epoch, close.

    In 'bar' and 'plain' mode a long run also gets one forecast line: how long its remaining
    epochs take at the pace of the steps timed so far. `long_run_hint`, when set, is added to
    a forecast of over an hour (the engine sets it on a CPU).
    """

    def __init__(self, mode: str = "auto", epochs: int = 1, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.epochs = epochs
        self.long_run_hint = ""
        self._open = False  # a bar line is on screen, without its newline yet
        self._val: dict[str, float] = {}  # the last validation, shown until the next one
        self._forecast_done = False
        self._t0: float | None = None  # when the open epoch started (None: none started yet)
        self.view = live_view() if self.mode == "notebook" else None  # a sweep's: a part

    def earlier(self, rows: list[dict[str, Any]]) -> None:
        """The epochs a resumed run trained before: the live view's table and curves start with
        them (the other modes show only what happens now)."""
        for row in rows:
            if self.view is not None:
                self.view.add_row(row)

    def message(self, text: str) -> None:
        """A one-off line (run start, resume notice); silent in 'none' mode."""
        if self.mode == "none":
            return
        if self.view is not None:
            self.view.message(text)
            self.view.refresh()
        elif self._open:  # the message goes above the bar, which is drawn again below it
            self._write("\r\x1b[K" + text + "\n")
            self._draw()
        else:
            print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, steps: int, start: int = 0) -> None:
        """Open the bar for an epoch of `steps` steps, `start` of them already done (resume)."""
        if self.mode == "none":
            return
        self._epoch, self._total, self._start, self._done = epoch, steps, start, start
        self._t0 = time.perf_counter()
        self._stats: dict[str, float] = {}
        self._next_plain = PLAIN_FIRST
        if self.mode == "bar":
            self._open = True
            self._draw()
        elif self.view is not None:
            self.view.set_progress(plain_progress(epoch, self.epochs, start, steps, None, {}),
                                   start / max(steps, 1))
            self.view.refresh()

    def update(self, steps_done: int, stats: dict[str, float]) -> None:
        """Move the bar to steps_done and show loss, accuracy and throughput (plain mode: a
        line when the last one is a few minutes old)."""
        if self.mode == "none" or self._t0 is None:
            return
        self._done, self._stats = steps_done, dict(stats)
        elapsed = time.perf_counter() - self._t0
        self._forecast(elapsed)
        if self._open:
            self._draw()
        elif self.view is not None:
            self.view.set_progress(plain_progress(self._epoch, self.epochs, self._done,
                                                  self._total, self._eta(elapsed), self._stats),
                                   self._done / max(self._total, 1))
            self.view.refresh()
        elif self.mode == "plain" and elapsed >= self._next_plain:
            print(plain_progress(self._epoch, self.epochs, self._done, self._total,
                                 self._eta(elapsed), self._stats), file=self.stream, flush=True)
            self._next_plain = elapsed + PLAIN_EVERY

    def _eta(self, elapsed: float) -> float | None:
        """Seconds to the end of this epoch at its pace so far (None before its first step)."""
        run = self._done - self._start
        return elapsed / run * (self._total - self._done) if run > 0 else None

    def _forecast(self, elapsed: float) -> None:
        """Once per run, after FORECAST_AFTER seconds of steps: how long the rest will take."""
        run = self._done - self._start
        if self._forecast_done or run <= 0 or elapsed < FORECAST_AFTER:
            return
        self._forecast_done = True
        steps_left = self._total - self._done + (self.epochs - self._epoch) * self._total
        left = elapsed / run * steps_left
        if left < FORECAST_MIN:
            return
        pace = self._stats.get("images_per_second")
        text = (f"forecast: about {_hours_minutes(left)} of training to the end of epoch "
                f"{self.epochs}" + (f" at {pace:,.0f} images/s" if pace else "")
                + "; validation comes on top")
        if left >= 3600 and self.long_run_hint:
            text += f". {self.long_run_hint}"
        self.message(text)

    def end_epoch(self, row: dict[str, Any]) -> None:
        """Close the epoch: the bar's final line (with validation), or one plain line."""
        if self.mode == "plain":
            print(format_epoch(row, self.epochs), file=self.stream, flush=True)
        elif self.view is not None:
            self.view.add_row(row)
            self.view.refresh()
        elif self._open:
            if row.get("val_acc") is not None:
                self._val = {k: row[k] for k in ("val_loss", "val_acc") if row.get(k) is not None}
            keys = ("train_loss", "train_acc", "images_per_second")
            self._done, self._stats = self._total, {k: row[k] for k in keys if row.get(k)}
            self._draw()
            self._write("\n")
            self._open = False

    def close(self) -> None:
        """End an open bar line (on errors and interrupts); the live view's final draw."""
        if self.view is not None:
            self.view.finish(summary_line(self.view.rows, self.epochs))
            self.view.refresh(force=True)
        if self._open:
            self._write("\n")
            self._open = False

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self._t0
        eta = self._eta(elapsed)
        line = bar_line(self._epoch, self.epochs, self._done, self._total, elapsed, eta,
                        {**self._stats, **self._val}, terminal_width(self.stream),
                        unicode="utf" in (getattr(self.stream, "encoding", None) or "").lower())
        self._write("\r" + line + "\x1b[K")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
