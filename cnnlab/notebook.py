"""Pictures and text in Jupyter and Colab that are drawn again in place, and a run's live view.

Everything goes through IPython's display handles (`display(..., display_id=True)`, then
`handle.update(...)`), never `clear_output`: an output drawn this way stays in its cell whatever
the cell prints after it, and drawing it again adds no output. IPython is imported only where a
kernel already runs (it is there whenever one is); ipywidgets is not needed.

- `in_notebook()`: inside a Jupyter or Colab kernel.
- `Slot`: one output of the running cell that each `show` draws again in place (the drop-in's
  progress board, both parts of the live view).
- `LiveView`: what a run shows in a notebook: a status block (what runs, where the epoch is, a
  table of finished epochs, at the end a summary) and the learning curves, at most one update per
  second. `cnnlab.progress.Progress` drives it in "notebook" mode, so anything that reports
  through a Progress (train, resume, and whatever else runs epochs) gets the same view.
- `live_view()`: the view a run opens: a LiveView of its own, or, while a larger view is open
  (`with LiveView(...)`: a sweep, a suite), a part of that one: the run's progress becomes the
  larger view's progress line and nothing else is drawn, so a cell keeps one view.
"""

from __future__ import annotations

import base64
import html
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["EPOCH_COLUMNS", "LiveView", "Slot", "in_notebook", "learning_curves", "live_view",
           "png_bundle"]


def _shell() -> Any:
    """The running IPython shell, or None (IPython never imported just to find out)."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Colab's included), where outputs are drawn in the cell."""
    shell = _shell()
    if shell is None:
        return False
    return getattr(shell, "kernel", None) is not None or "IPKernelApp" in getattr(shell,
                                                                                  "config", {})


def png_bundle(png: bytes, text: str) -> dict[str, str]:
    """A display bundle of a PNG picture, with `text` for front ends that show no images."""
    return {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text}


# Which cell runs: counted by an IPython pre_run_cell hook (a cell's execution_count is already
# the next one's in post_run_cell), so a Slot tells "again in this cell" from "in a new cell".
_cell_number = 0
_watching = False
_pending: weakref.WeakSet[Slot] = weakref.WeakSet()


def _next_cell(*_: Any) -> None:
    global _cell_number
    _cell_number += 1


def _cell_ended(*_: Any) -> None:
    """Draw what throttled Slots held back, before the cell's output is complete."""
    for slot in list(_pending):
        slot.flush()


def _watch_cells() -> None:
    global _watching
    shell = _shell()
    if not _watching and shell is not None and hasattr(shell, "events"):
        shell.events.register("pre_run_cell", _next_cell)
        shell.events.register("post_run_cell", _cell_ended)
        _watching = True


class Slot:
    """One output of the running cell, drawn again in place by each `show`.

    The first `show` in a cell opens the output; later ones in the same cell replace it. A `show`
    from another cell (the same board plotted again later) opens a new output in that cell and
    leaves the old one as it was. With `every` > 0 a `show` within `every` seconds of the last
    draw is held back, and the last one held is drawn by the next `show`, `flush()`, or the end
    of the cell, whichever comes first: the cell always ends with the latest picture.
    """

    def __init__(self, every: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.updates = 0  # how many times an open output was drawn again
        self._handle: Any = None
        self._cell = -1
        self._last = -float("inf")
        self._held: Callable[[], dict[str, str]] | None = None

    def show(self, make: Callable[[], dict[str, str]], force: bool = False) -> None:
        """Draw the bundle (mime type -> data) that `make()` returns, in place if this cell
        already shows it; `make` runs only when the draw happens."""
        if not force and self.clock() - self._last < self.every:
            self._held = make
            _pending.add(self)
            return
        self._draw(make())

    def flush(self) -> None:
        """Draw the bundle a throttled `show` held back, if any."""
        if self._held is not None:
            self._draw(self._held())

    def _draw(self, bundle: dict[str, str]) -> None:
        from IPython import display

        self._held = None
        _pending.discard(self)
        _watch_cells()
        if self._handle is None or self._cell != _cell_number:
            self._handle = display.display(bundle, raw=True, display_id=True)
            self._cell = _cell_number
        else:
            self._handle.update(bundle, raw=True)
            self.updates += 1
        self._last = self.clock()


def learning_curves(rows: list[dict[str, Any]]) -> Any:
    """The engine's curves (cnnlab.plots.curves_figure) of a run's epoch rows."""
    from cnnlab.plots import curves_figure  # matplotlib: only once a view draws

    return curves_figure(rows)


EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                 "images_per_second")


_HEADS = {"train_loss": "train loss", "train_acc": "train acc", "val_loss": "val loss",
          "val_acc": "val acc", "images_per_second": "img/s"}  # a key's column head


def _format(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key == "images_per_second":
        return f"{value:,.0f}"
    if key == "seconds":
        return f"{value:.1f}"
    if key == "lr":
        return f"{value:.3g}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


class LiveView:
    """A run's view in a notebook: a status block and the learning curves, each one output of
    the cell updated in place, at most once every `every` seconds (`refresh(force=True)` draws
    now). Text front ends get the same status as plain text.

    Feed it with `message` (lines above everything: what runs, notes), `set_now` (what runs now,
    one line kept until the next), `set_progress` (where the epoch is, one line), `add_row` (a
    finished epoch: a table row and new curves) or `set_rows` (the whole table), `show_figure`
    (a picture drawn now) and `finish` (the summary that stays; one line or several). A view of
    other rows than epochs (a sweep's trials, say) names its `columns` (the keys of a row shown,
    in order; those no row has are left out) and its `picture` (rows -> a matplotlib Figure, or
    None for no picture). `with view:` makes it the larger view that runs started inside report
    to (`live_view`). `clock` is injectable for tests of the throttle.
    """

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 columns: tuple[str, ...] = EPOCH_COLUMNS,
                 picture: Callable[[list[dict[str, Any]]], Any] | None = learning_curves) -> None:
        self.every = every
        self.clock = clock
        self.columns = columns
        self.picture = picture
        self.messages: list[str] = []
        self.now = ""
        self.progress = ""
        self.fraction: float | None = None
        self.rows: list[dict[str, Any]] = []
        self.summary = ""
        self.status, self.curves = Slot(), Slot()
        self.draws = 0  # refreshes that drew something (at most one per `every` seconds)
        self._last = -float("inf")
        self._status_due = self._curves_due = False

    def message(self, text: str) -> None:
        self.messages.append(text)
        self._status_due = True

    def set_now(self, text: str) -> None:
        self.now, self.progress, self.fraction = text, "", None
        self._status_due = True

    def set_progress(self, text: str, fraction: float | None = None) -> None:
        self.progress, self.fraction = text, fraction
        self._status_due = True

    def add_row(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        self.progress, self.fraction = "", None
        self._status_due = self._curves_due = True

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = [dict(r) for r in rows]
        self.now, self.progress, self.fraction = "", "", None
        self._status_due = self._curves_due = True

    def finish(self, summary: str) -> None:
        self.summary = summary
        self.now, self.progress, self.fraction = "", "", None
        self._status_due = True

    def show_figure(self, figure: Any, text: str = "<figure>") -> None:
        """Draw a matplotlib Figure in the picture's place now (the view's own, never pyplot's:
        nothing shows it a second time at the end of the cell)."""
        from cnnlab.plots import figure_png

        self.curves.show(lambda: png_bundle(figure_png(figure, dpi=80), text), force=True)

    def __enter__(self) -> LiveView:
        _outer.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _outer.remove(self)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Draw what changed since the last draw, unless that was under `every` seconds ago."""
        now = self.clock()
        if not (self._status_due or self._curves_due):
            return
        if not force and now - self._last < self.every:
            return
        self._last = now
        self.draws += 1
        if self._status_due:
            self._status_due = False
            self.status.show(lambda: {"text/html": self.html(), "text/plain": self.text()})
        if self._curves_due and self.rows and self.picture is not None:
            from cnnlab.plots import figure_png

            self._curves_due = False
            self.curves.show(lambda: png_bundle(
                figure_png(self.picture(self.rows), dpi=80, tight=False), "<learning curves>"))

    def _table_rows(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        keys = [k for k in self.columns if any(r.get(k) is not None for r in self.rows)]
        head = tuple(_HEADS.get(k, k) for k in keys)
        return head, [tuple(_format(k, r.get(k)) for k in keys) for r in self.rows]

    def text(self) -> str:
        """The status as plain text."""
        lines = list(self.messages)
        if self.now:
            lines.append(self.now)
        if self.progress:
            lines.append(self.progress)
        if self.rows:
            head, rows = self._table_rows()
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
            lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
        if self.summary:
            lines.append(self.summary)
        return "\n".join(lines)

    def html(self) -> str:
        """The status as HTML: a progress bar, the epoch table, the summary in bold."""
        out = [f"<div>{html.escape(m)}</div>" for m in [*self.messages, self.now] if m]
        if self.progress:
            bar = ("" if self.fraction is None else
                   f'<progress value="{self.fraction:.3f}" max="1" '
                   'style="width:12em;vertical-align:middle"></progress> ')
            out.append(f"<div>{bar}<code>{html.escape(self.progress)}</code></div>")
        if self.rows:
            from cnnlab.pages import table

            head, rows = self._table_rows()
            out.append(table([tuple(html.escape(c) for c in r) for r in rows], head))
        if self.summary:
            out += [f"<div><b>{html.escape(s)}</b></div>" for s in self.summary.splitlines()]
        return '<div class="cnnlab-live">' + "".join(out) + "</div>"


# The larger views open now (`with LiveView(...)`), innermost last.
_outer: list[LiveView] = []


class _Part:
    """A run's share of a larger view: its progress is that view's progress line; its messages,
    table, summary and pictures are the run's own business, drawn nowhere."""

    def __init__(self, outer: LiveView) -> None:
        self.outer = outer
        self.rows: list[dict[str, Any]] = []

    def set_progress(self, text: str, fraction: float | None = None) -> None:
        self.outer.set_progress(text, fraction)

    def add_row(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    def refresh(self, force: bool = False) -> None:
        self.outer.refresh()  # the larger view's throttle, even for the run's final draw

    def message(self, text: str) -> None:
        pass

    def finish(self, summary: str) -> None:
        pass

    def show_figure(self, figure: Any, text: str = "") -> None:
        pass


def live_view(**kwargs: Any) -> Any:
    """The view a run reports to: a new LiveView(**kwargs), or a part of the larger view open
    now (the same methods; only `set_progress` reaches the cell)."""
    return _Part(_outer[-1]) if _outer else LiveView(**kwargs)
