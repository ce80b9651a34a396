"""What a person sees while several runs go (a sweep's trials, a suite's members): plain lines on
a stream, or, in a Jupyter or Colab cell, one live view (cnnlab.notebook.LiveView): what runs now
and its progress (the run's own Progress reports into it), a table of finished runs, and at the
end a summary that stays in the cell whatever it prints afterwards.

    with RunsView("auto", stream, columns=("trial", "params", "val_acc")) as show:
        show.say("trial 3 of 8 [lr=0.01]", at="now")   # a line, or the view's "now" line
        show.rows([...])                                 # the table of finished runs (view only)
        show.end("best: trial 3 ...")                    # the summary that stays
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from cnnlab.errors import ConfigError
from cnnlab.notebook import LiveView, in_notebook
from cnnlab.train_config import PROGRESS_MODES

__all__ = ["RunsView", "resolve"]


def resolve(progress: str, stream: TextIO | None) -> tuple[str, TextIO | None]:
    """(mode, stream) of a display asked for with `progress`: "notebook" in a kernel for "auto"
    and "notebook"; "none" for "none"; else "plain", on `stream` (for "auto" without one, on
    none: lines nobody asked for are not printed; "plain", "bar" and a "notebook" no kernel
    can draw print to stderr when no stream is given)."""
    if progress not in PROGRESS_MODES:
        raise ConfigError(f"progress={progress!r} is not one of {', '.join(PROGRESS_MODES)}")
    if progress in ("auto", "notebook") and in_notebook():
        return "notebook", None
    if progress == "none":
        return "none", None
    return "plain", stream if stream is not None or progress == "auto" else sys.stderr


class RunsView:
    """The live view ("notebook"), a line per `say` on a stream ("plain"), or nothing ("none"),
    as `resolve` reads `progress`; `columns` are the table's (the keys of `rows`)."""

    def __init__(self, progress: str, stream: TextIO | None, columns: tuple[str, ...]) -> None:
        self.mode, self.stream = resolve(progress, stream)
        self.view = LiveView(columns=columns, picture=None) if self.mode == "notebook" else None

    @property
    def inner(self) -> str | None:
        """The progress mode of the runs inside: "notebook" (they report into this view),
        "none", or None (plain lines: each keeps its own)."""
        return {"notebook": "notebook", "none": "none"}.get(self.mode)

    def open(self) -> None:
        """Make the view the one runs started from now on report their progress to."""
        if self.view is not None:
            self.view.__enter__()

    def close(self) -> None:
        """Runs report to their own views again; what is left to draw is drawn now."""
        if self.view is not None:
            self.view.__exit__()

    def __enter__(self) -> RunsView:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def say(self, text: str, at: str = "progress") -> None:
        """A plain line; in the view, the line `at`: "note" (above everything: what the whole
        thing is), "now" (what runs, kept until the next) or "progress" (a passing line)."""
        if self.view is not None:
            {"note": self.view.message, "now": self.view.set_now,
             "progress": self.view.set_progress}[at](text.strip())
            self.view.refresh()
        elif self.stream is not None:
            print(text, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """The view's line above everything; no plain line."""
        if self.view is not None:
            self.say(text, at="note")

    def rows(self, rows: list[dict[str, Any]]) -> None:
        """The table of finished runs (the view only: plain lines said each as it finished)."""
        if self.view is not None:
            self.view.set_rows(rows)
            self.view.refresh()

    def end(self, summary: str, say: bool = True) -> None:
        """The summary that stays in the view (drawn now); a plain line too when `say`."""
        if self.view is not None:
            self.view.finish(summary)
            self.view.refresh(force=True)
        elif say:
            self.say(summary)
