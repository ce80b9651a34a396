"""A sweep's summary: rows from the study and the trials' run folders, written as sweep.json
(every trial), sweep.csv and sweep.html (one page).

The page holds the trials table (best first), the metric against each parameter, a parallel
coordinates view of all parameters, the best configuration as a `cnnlab train` command, and the
curves of the best trials. Every file is written through cnnlab.atomic. The notebook's live
view of a sweep shows the same rows (`view_rows`) and the same best (`view_summary`).
"""

from __future__ import annotations

import csv
import html
import io
import math
import statistics
from pathlib import Path
from typing import Any

from cnnlab.atomic import write_atomic
from cnnlab.errors import CnnlabError
from cnnlab.pages import esc, figure, page, table
from cnnlab.runlog import to_json
from cnnlab.sweep_space import train_command

__all__ = ["ENDED", "best_of", "fmt_params", "fmt_score", "redact", "summarize", "view_rows",
           "view_summary", "write_summary"]

BEST_CURVES = 5  # trials whose curves the page draws


def write_summary(out: Path, header: dict[str, Any], rows: list[dict[str, Any]],
                  best: dict[str, Any] | None, spec: Any, page: bool = False) -> None:
    """sweep.json and sweep.csv (always), sweep.html (page=True)."""
    command = _best_command(best, spec)
    doc = {**header, "best": best and {k: best[k] for k in ("number", "params", "value", "std",
                                                          "runs")},
           "best_command": command, "trials_table": rows}
    write_atomic(out / "sweep.json", to_json(doc))
    write_atomic(out / "sweep.csv", _csv(rows, spec))
    if page:
        storage = redact(header["storage"]) if header.get("storage") else "study.journal"
        write_atomic(out / "sweep.html", _page(out, rows, best, command, spec, storage))


def _best_command(best: dict[str, Any] | None, spec: Any) -> str | None:
    """The `cnnlab train` line of the best trial's configuration (None without one)."""
    return train_command(spec.command, best["params"], spec.seeds[0]) if best else None


ENDED = ("done", "pruned", "failed")  # a trial's statuses once it has stopped running


def view_rows(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The notebook view's table: the trials that ended, in the order they ran."""
    return [{"trial": r["number"], "params": fmt_params(r["params"]), metric: fmt_score(r),
             "status": (f"pruned after epoch {r['epochs']}" if r["status"] == "pruned"
                        else r["status"]), "seconds": r["seconds"]}
            for r in sorted((r for r in rows if r["status"] in ENDED), key=lambda r: r["number"])]


def view_summary(rows: list[dict[str, Any]], spec: Any) -> str:
    """The notebook view's last words: the best trial, its parameters, the line that trains it."""
    best = best_of(rows)
    ended = sum(1 for r in rows if r["status"] in ENDED)
    if best is None:
        return f"{ended} trials ended; none finished, so there is no best configuration yet"
    return (f"best of {ended} trials: trial {best['number']}, {spec.metric} {fmt_score(best)} "
            f"({fmt_params(best['params'])})\ntrain it: {_best_command(best, spec)}")


def fmt_score(row: dict[str, Any]) -> str:
    """A trial's value, with ± the std over seeds when it has several."""
    if row["value"] is None:
        return "n/a"
    return f"{row['value']:.4f}" + (f" ± {row['std']:.4f}" if row.get("std") is not None else "")


def fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def redact(url: str) -> str:
    """A database URL without its password, for messages and the page."""
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _csv(rows: list[dict[str, Any]], spec: Any) -> str:
    names = [p.name for p in spec.params]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "status", *names, spec.metric, "std", "epochs", "seconds", "runs"])
    for r in rows:
        w.writerow([r["number"], r["status"], *(r["params"].get(n, "") for n in names),
                    "" if r["value"] is None else r["value"],
                    "" if r["std"] is None else r["std"], r["epochs"],
                    "" if r["seconds"] is None else r["seconds"], " ".join(r["runs"])])
    return buf.getvalue()


def _page(out: Path, rows: list[dict[str, Any]], best: dict[str, Any] | None,
          command: str | None, spec: Any, storage: str) -> str:
    names = [p.name for p in spec.params]
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("done", "pruned", "failed")}
    epochs = sum(r["trial_epochs"] for r in rows)
    stats = "".join(f'<div class="stat"><b>{html.escape(str(v))}</b><span>{k}</span></div>'
                    for k, v in (("best " + spec.metric, fmt_score(best) if best else "n/a"),
                                 ("trials done", counts["done"]),
                                 ("pruned", counts["pruned"]), ("failed", counts["failed"]),
                                 ("trial-epochs", epochs)))
    body = [f"<header><h1>Sweep: {esc(spec.model)}</h1><p>{esc(len(rows))} trials, sampler "
            f"{esc(spec.sampler)}, pruning {esc(spec.prune)}, seeds {esc(list(spec.seeds))}, "
            f"ranked on validation {esc(spec.metric)} (the test split is not used); study in "
            f"{esc(storage)}</p></header><main><div class=stats>{stats}</div>"]
    if best:
        body.append("<section><h2>The best configuration</h2><p>Trial "
                    f"{best['number']}: {esc(spec.metric)} {html.escape(fmt_score(best))}. "
                    "Train it (on the whole training split, scored on test) with:</p>"
                    f"<pre>{html.escape(command or '')}</pre><p class=muted>or "
                    f"<code>cnnlab sweep --resume {esc(out)} --retrain-best</code></p></section>")
    # The metric beside the trial number, so a phone (pages.py hides p3, then p2) still shows it.
    head = ("trial", spec.metric, *names, "status", "epochs", "seconds", "run folders")
    col_cls = ("", "", *("" for _ in names), "p2", "p3", "p3", "p3")
    cells = [(str(r["number"]), html.escape(fmt_score(r)),
              *(esc(r["params"].get(n)) for n in names),
              esc(r["status"] + (f" (as {r['continued_as']})"
                                 if r.get("continued_as") is not None else "")),
              str(r["epochs"]), esc(r["seconds"]), esc(", ".join(r["runs"]))) for r in rows]
    body.append("<section><h2>Trials, best first</h2><div class=scroll>"
                f"{table(cells, head, 'nowrap', col_cls)}</div></section>")
    scored = [r for r in rows if r["value"] is not None]
    if scored:
        from cnnlab.plots import figure_png

        body.append("<section><h2>The metric against each parameter</h2>" + figure(
            figure_png(_scatter(scored, spec)), f"{spec.metric} against each parameter",
            "filled: finished trials; hollow: pruned (their last validated value)") +
            "</section>")
        body.append("<section><h2>All parameters at once</h2>" + figure(
            figure_png(_parallel(scored, spec)), "parallel coordinates",
            f"one line per trial, coloured by {esc(spec.metric)}; grey: pruned") + "</section>")
        curves = [r for r in rows if r["curves"] and r["curves"][0]][:BEST_CURVES]
        if curves:
            body.append("<section><h2>Curves of the best trials</h2>" + figure(
                figure_png(_curves(curves, spec)), "validation curves",
                f"validation {esc(spec.metric)} per epoch (first seed)") + "</section>")
    body.append("<footer>written by cnnlab sweep</footer></main>")
    return page(f"sweep {spec.model}", "".join(body))


def _axis_values(rows: list[dict[str, Any]], p: Any) -> tuple[list[float], list[str] | None]:
    """A parameter's values as positions, with tick labels for choices."""
    if p.kind == "choice":
        labels = [str(c) for c in p.choices]
        return [labels.index(str(r["params"].get(p.name))) for r in rows], labels
    return [float(r["params"].get(p.name)) for r in rows], None


def _scatter(rows: list[dict[str, Any]], spec: Any) -> Any:
    from matplotlib.figure import Figure

    n = len(spec.params)
    cols = min(n, 3)
    fig = Figure(figsize=(3.6 * cols, 2.9 * math.ceil(n / cols)))
    for i, p in enumerate(spec.params):
        ax = fig.add_subplot(math.ceil(n / cols), cols, i + 1)
        xs, labels = _axis_values(rows, p)
        for r, x in zip(rows, xs):
            done = r["status"] == "done"
            ax.plot(x, r["value"], "o", color="#2f6fde", mfc="#2f6fde" if done else "none",
                    ms=6)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        elif p.kind == "log":
            ax.set_xscale("log")
        ax.set_xlabel(p.name)
        ax.set_ylabel(spec.metric)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _parallel(rows: list[dict[str, Any]], spec: Any) -> Any:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    axes = list(spec.params)
    fig = Figure(figsize=(max(5.0, 1.8 * (len(axes) + 1)), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    columns = []
    for p in axes:
        xs, labels = _axis_values(rows, p)
        if labels is not None:
            span = max(len(labels) - 1, 1)
            columns.append(([x / span for x in xs], labels, None))
        else:
            vals = [math.log10(x) if p.kind == "log" else x for x in xs]
            lo, hi = min(vals), max(vals)
            columns.append(([(v - lo) / ((hi - lo) or 1) for v in vals], None,
                            (min(xs), max(xs))))
    values = [r["value"] for r in rows]
    lo, hi = min(values), max(values)
    columns.append(([(v - lo) / ((hi - lo) or 1) for v in values], None, (lo, hi)))
    cmap = colormaps["viridis"]
    good = (lambda v: (v - lo) / ((hi - lo) or 1)) if spec.metric == "val_acc" else (
        lambda v: (hi - v) / ((hi - lo) or 1))
    for j, r in enumerate(rows):
        ys = [c[0][j] for c in columns]
        pruned = r["status"] != "done"
        ax.plot(range(len(columns)), ys, color="#bbbbbb" if pruned else cmap(good(r["value"])),
                lw=1 if pruned else 1.8, alpha=0.7 if pruned else 0.9, zorder=1 if pruned else 2)
    names = [p.name for p in axes] + [spec.metric]
    for k, (_, labels, span) in enumerate(columns):
        ax.axvline(k, color="#333333", lw=0.8)
        if labels is not None:
            for i, lab in enumerate(labels):
                ax.text(k + 0.03, i / max(len(labels) - 1, 1), lab, fontsize=8, va="center")
        elif span is not None:
            ax.text(k + 0.03, 0, f"{span[0]:.3g}", fontsize=8, va="bottom")
            ax.text(k + 0.03, 1, f"{span[1]:.3g}", fontsize=8, va="top")
    ax.set_xticks(range(len(columns)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(columns) - 0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    # Fixed margins: the axes have no y ticks, and tight_layout gives up (with a warning on
    # stderr) on a one-value column, whose labels all sit at one height.
    fig.subplots_adjust(left=0.08, right=0.95, top=0.95, bottom=0.14)
    return fig


def _curves(rows: list[dict[str, Any]], spec: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    for r in rows:
        ys = [y for y in r["curves"][0] if y is not None]
        ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3,
                ls="--" if r["status"] == "pruned" else "-",
                label=f"trial {r['number']} ({r['status']})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {spec.metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- rows from the study --------------------------------------------------------------

def summarize(study: Any, spec: Any, out: Path) -> list[dict[str, Any]]:
    """Every trial as a row, best first: finished by value, then pruned, running, failed."""
    from cnnlab.run import read_history

    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs.get("continues"): t.number for t in trials}
    rows = []
    for t in trials:
        if t.user_attrs.get("surplus"):
            continue
        status = {"COMPLETE": "done", "PRUNED": "pruned", "RUNNING": "running",
                  "WAITING": "waiting", "FAIL": "failed"}[t.state.name]
        if status == "failed" and t.number in continued:
            status = "interrupted"
        folder = t.user_attrs.get("folder") or f"{t.number:04d}"
        runs = [f"trials/{folder}-seed{s}" for s in spec.seeds]
        curves = []
        for run in runs if status != "interrupted" else ():  # its continuation owns the runs
            try:
                history = read_history(out / run)
            except (CnnlabError, ValueError):
                history = []
            curves.append([r.get(spec.metric) for r in history])
        values = t.user_attrs.get("values") or []
        value = t.value if status == "done" else (
            t.intermediate_values[max(t.intermediate_values)]
            if status == "pruned" and t.intermediate_values else None)
        rows.append({"number": t.number, "status": status, "params": dict(t.params),
                     "value": value, "std": statistics.stdev(values) if len(values) > 1 else None,
                     "values": values, "epochs": len(curves[0]) if curves else 0,
                     "trial_epochs": sum(len(c) for c in curves), "curves": curves,
                     "seconds": t.user_attrs.get("seconds"), "runs": runs,
                     "continues": t.user_attrs.get("continues"),
                     "continued_as": continued.get(t.number),
                     "error": t.user_attrs.get("error")})
    sign = -1 if spec.metric == "val_acc" else 1
    order = {"done": 0, "pruned": 1, "running": 2, "waiting": 3, "failed": 4, "interrupted": 5}
    rows.sort(key=lambda r: (order[r["status"]], sign * r["value"] if r["value"] is not None
                             else 0, r["number"]))
    return rows


def best_of(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return rows[0] if rows and rows[0]["status"] == "done" else None
