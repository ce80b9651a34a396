"""Runs side by side: one table, overlaid learning curves, accuracy against time and compute.

    runs, skipped = collect_runs(["runs/chapter8"])     # a folder of runs, or run folders
    print(format_table(runs, "markdown"))
    write_compare(runs, "compare.html")                 # self-contained page, PNGs embedded

A run folder is read as the engine wrote it (config.json with its environment block, metrics.jsonl,
result.json), so runs from other machines and runs that have not finished compare as well:
an unfinished run has no result.json, is marked as such, and shows what its epochs recorded.
Parameters and MACs come from `cnnlab.cost.summary` of the recorded model (built afresh: no
checkpoint is loaded, nothing is evaluated again).

One idea, past ~600 lines: runs side by side (reading them, grouping seeds, the table in its
three formats and the page that draws the same rows); its pictures come from plots.py.
"""

from __future__ import annotations

import html
import json
import math
import platform
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.atomic import write_atomic
from cnnlab.errors import CnnlabError, DataError

__all__ = ["RunSummary", "SeedGroup", "collect_runs", "format_table", "group_seeds", "read_run",
           "write_compare"]

# The table's columns: (key of RunSummary.row(), heading).
COLUMNS = (("run", "run"), ("model", "model"), ("dataset", "dataset"), ("params", "params"),
           ("macs", "MACs/image"), ("precision", "precision"), ("epochs", "epochs"),
           ("test_acc", "test acc"), ("best_val_acc", "best val acc"),
           ("train_seconds", "train s"), ("images_per_second", "images/s"),
           ("machine", "machine"))
# Which columns a narrow screen keeps (pages.py hides p3, then p2): the run and its test accuracy
# always, then what says how it was trained; the rest on wide screens.
PRIORITY = {"run": "", "model": "", "test_acc": "", "best_val_acc": "p2", "epochs": "p2",
            "train_seconds": "p2"}

# Runs record the precision they resolved to (off, bf16, fp16); older runs recorded the setting.
_UNRESOLVED = {"auto": "auto (unresolved)", "fast": "fast (unresolved)"}


@dataclass
class RunSummary:
    """What the comparison needs of one run folder."""

    path: Path
    label: str  # the name shown in the table and on the plots
    config: dict[str, Any]
    result: dict[str, Any] | None  # None: the run has not finished
    history: list[dict[str, Any]] = field(default_factory=list)
    params: int | None = None
    macs: int | None = None

    @property
    def finished(self) -> bool:
        """Whether the run wrote result.json (it ended, normally or by early stopping)."""
        return self.result is not None

    @property
    def test_acc(self) -> float | None:
        """Test accuracy of the final model (None while unfinished)."""
        v = (self.result or {}).get("test_acc")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def best_val_acc(self) -> float | None:
        """The best validation accuracy of any epoch recorded."""
        vals = [h["val_acc"] for h in self.history if isinstance(h.get("val_acc"), (int, float))]
        return max(vals) if vals else None

    @property
    def train_seconds(self) -> float | None:
        """Training wall time (all sessions of a resumed run; epochs so far when unfinished)."""
        v = (self.result or {}).get("seconds")
        if isinstance(v, (int, float)):
            return float(v)
        secs = [h["seconds"] for h in self.history if isinstance(h.get("seconds"), (int, float))]
        return float(sum(secs)) if secs else None

    @property
    def images_per_second(self) -> float | None:
        """Mean training throughput over the epochs."""
        v = (self.result or {}).get("images_per_second")
        if isinstance(v, (int, float)):
            return float(v)
        ips = [h["images_per_second"] for h in self.history if h.get("images_per_second")]
        return sum(ips) / len(ips) if ips else None

    @property
    def precision(self) -> str:
        """The arithmetic the run trained in, from its recorded `amp` setting."""
        from cnnlab.device import PRECISION_NAMES

        recorded = str(self.config.get("amp") or "n/a")
        return PRECISION_NAMES.get(recorded) or _UNRESOLVED.get(recorded, recorded)

    @property
    def epochs(self) -> str:
        """'3', or '1 of 3' while unfinished, or '2 of 10 (stopped early)'."""
        planned = self.config.get("epochs")
        done = len(self.history)
        if self.finished and not (self.result or {}).get("stopped_early"):
            return str(done or planned)
        text = f"{done} of {planned}"
        return text + (" (stopped early)" if self.finished else "")

    @property
    def machine(self) -> str:
        """Where it ran, from config.json's environment: 'CPU model, N threads @ host' or
        'GPU name (cuda:0) @ host'."""
        env = self.config.get("environment") or {}
        device = str(env.get("device") or "cpu")
        if device.startswith("cpu"):
            threads = self.config.get("threads") or env.get("cpu_threads")
            load_aware = env.get("cpu_thread_policy") == "load-aware"
            if isinstance(threads, str):  # run folders of 2026-12-01 recorded the console's
                load_aware = "fewer" in threads  # words: '2 threads (fewer while ...)'
                m = re.match(r"\s*(\d+)", threads)
                threads = int(m.group(1)) if m else None
            name = env.get("cpu_model") or env.get("device_name") or "cpu"
            # 'Intel(R) Xeon(R) Processor' -> 'Intel Xeon': the table's widest column, shorter
            name = " ".join(re.sub(r"\((R|TM|tm)\)|\bCPU\b|\bProcessor\b", " ", name).split())
            count = f"{'up to ' if load_aware else ''}{threads} thread{'s' if threads != 1 else ''}"
            text = f"{name}, {count}" if threads else name
        else:
            name = env.get("device_name")
            text = f"{name} ({device})" if name and name != device else device
        host = env.get("host")
        return f"{text} @ {host}" if host else text

    @property
    def limit_batches(self) -> int:
        """N when the run trained only the first N batches of each epoch (--limit-batches)."""
        n = self.config.get("limit_batches")
        return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0

    @property
    def test_images(self) -> int | None:
        """How many test images the test accuracy counts (None: the whole test split)."""
        n = self.config.get("test_samples")
        return int(n) if n else None

    @property
    def knobs(self) -> str:
        """The model's architecture knobs that differ from its defaults: 'channels=4,8' or ''."""
        from cnnlab.models import knob_text

        model = self.config.get("model")
        try:
            return knob_text(model, self.config.get("model_kwargs") or {}) if model else ""
        except CnnlabError:  # a model or knob this install does not know
            return "?"

    def row(self) -> dict[str, Any]:
        """The table's values (None where unknown), JSON-ready."""
        return {"run": self.label, "model": self.config.get("model") or "custom module",
                "knobs": self.knobs,
                "dataset": self.config.get("dataset"), "params": self.params, "macs": self.macs,
                "precision": self.precision, "epochs": self.epochs, "test_acc": self.test_acc,
                "best_val_acc": self.best_val_acc, "train_seconds": self.train_seconds,
                "images_per_second": self.images_per_second, "machine": self.machine,
                "finished": self.finished, "test_images": self.test_images,
                "train_samples": self.config.get("train_samples") or None,
                "limit_batches": self.limit_batches or None, "path": str(self.path)}


# --- repeats of one experiment ----------------------------------------------------------------

# config.json entries that do not change what a run computes (or, for the seed, that a repeat
# changes on purpose): finished runs that differ only in these are one experiment's seeds.
NOT_THE_EXPERIMENT = ("seed", "environment", "lr_find", "progress", "log_every", "tensorboard",
                      "plot", "checkpoint_every", "data_root", "threads", "eval_batch_size")


def experiment_key(config: dict[str, Any]) -> str:
    """What a run computed, less its seed: equal keys are repeats. A run whose lr the range test
    found counts as `lr=find` (each seed may find a slightly different value)."""
    cfg = {k: v for k, v in config.items() if k not in NOT_THE_EXPERIMENT}
    if isinstance(config.get("lr_find"), dict):
        cfg["lr"] = "find"
    return json.dumps(cfg, sort_keys=True, default=str)


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1) of the known values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None


@dataclass
class SeedGroup:
    """Finished runs of one experiment with different seeds: the table's mean ± std row."""

    runs: list[RunSummary]
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = _group_label([r.label for r in self.runs]) or self.runs[0].label

    finished = True
    path = property(lambda self: self.runs[0].path.parent)
    config = property(lambda self: self.runs[0].config)
    params = property(lambda self: self.runs[0].params)
    macs = property(lambda self: self.runs[0].macs)
    precision = property(lambda self: self.runs[0].precision)
    epochs = property(lambda self: self.runs[0].epochs)
    test_images = property(lambda self: self.runs[0].test_images)
    limit_batches = property(lambda self: self.runs[0].limit_batches)

    @property
    def seeds(self) -> list[int]:
        """The seeds of the runs, in their order."""
        return [r.config.get("seed") for r in self.runs]

    # Over the seeds: the mean ([0]) or the sample standard deviation ([1]) of a run's figure.
    test_acc = property(lambda self: self._over_seeds("test_acc")[0])
    test_acc_std = property(lambda self: self._over_seeds("test_acc")[1])
    best_val_acc = property(lambda self: self._over_seeds("best_val_acc")[0])
    best_val_acc_std = property(lambda self: self._over_seeds("best_val_acc")[1])
    train_seconds = property(lambda self: self._over_seeds("train_seconds")[0])  # of one run
    images_per_second = property(lambda self: self._over_seeds("images_per_second")[0])

    def _over_seeds(self, name: str) -> tuple[float | None, float | None]:
        return _mean_std([getattr(r, name) for r in self.runs])

    @property
    def machine(self) -> str:
        """The machine, or the machines joined when the seeds ran on several."""
        return "; ".join(dict.fromkeys(r.machine for r in self.runs))

    def row(self) -> dict[str, Any]:
        """The table's values: means, with the standard deviations and the seeds beside them."""
        row = {**self.runs[0].row(), "run": self.label, "test_acc": self.test_acc,
               "best_val_acc": self.best_val_acc, "train_seconds": self.train_seconds,
               "images_per_second": self.images_per_second, "machine": self.machine,
               "path": str(self.path)}
        row.update(test_acc_std=self.test_acc_std, best_val_acc_std=self.best_val_acc_std,
                   seeds=self.seeds, runs=[r.label for r in self.runs])
        return row


def _group_label(labels: list[str]) -> str:
    """'bn_lenet-seed0', 'bn_lenet-seed1' -> 'bn_lenet': the shared prefix, less a seed tail."""
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    return re.sub(r"[-_.]*(seed|s)?[-_.]*$", "", prefix)


def group_seeds(runs: list[RunSummary]) -> list[RunSummary | SeedGroup]:
    """The runs with each set of finished repeats (same experiment_key, distinct seeds, two or
    more) replaced by one SeedGroup where its first run stood."""
    by_key: dict[str, list[RunSummary]] = {}
    for r in runs:
        if r.finished:
            by_key.setdefault(experiment_key(r.config), []).append(r)
    groups = {id(members[0]): SeedGroup(members) for members in by_key.values()
              if len(members) > 1
              and len({m.config.get("seed") for m in members}) == len(members)}
    grouped = {id(m) for g in groups.values() for m in g.runs}
    return [groups.get(id(r), r) for r in runs if id(r) in groups or id(r) not in grouped]


# --- reading -----------------------------------------------------------------------------------

def _is_run(path: Path) -> bool:
    return (path / "config.json").is_file()


def read_run(path: str | Path) -> RunSummary:
    """One run folder as a RunSummary; DataError when it is not a (readable) run folder."""
    from cnnlab.run import read_history, read_json

    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} is not a folder")
    if not _is_run(path):
        raise DataError(f"{path} has no config.json, so it is not a run folder")
    config = read_json(path / "config.json")  # damaged or ill-typed: a DataError naming it
    if not ("model" in config or "dataset" in config):
        raise DataError(f"{path}/config.json is not a cnnlab run configuration")
    result = read_json(path / "result.json") if (path / "result.json").exists() else None
    history = read_history(path)
    run = RunSummary(path, path.name, config, result, history)
    run.params, run.macs = _cost(config)
    return run


_COST_CACHE: dict[tuple[Any, ...], tuple[int | None, int | None]] = {}


def _cost(config: dict[str, Any]) -> tuple[int | None, int | None]:
    """(parameters, MACs per image) of the recorded zoo model, counted on the meta device."""
    model = config.get("model")
    if not model:
        return None, None  # a custom nn.Module: nothing recorded to rebuild it from
    try:
        from cnnlab.cost import summary
        from cnnlab.inputs import build_model, recorded_shape

        shape = recorded_shape(config)  # the channels, size and classes the run trained with
        if shape is None:
            return None, None  # its data is gone (a folder dataset): nothing to build it for
        kwargs = {k: v for k, v in (config.get("model_kwargs") or {}).items()
                  if k != "input_size"}  # the knobs; the size is the recorded shape's
        key = (model, shape, json.dumps(kwargs, sort_keys=True))
        if key not in _COST_CACHE:
            # Built for real, not on the meta device: about a second, and the counts never depend
            # on what the meta device supports (a meta DenseNet once counted 57,000x too high).
            s = summary(build_model(model, shape, kwargs), shape.chw, measure_memory=False)
            _COST_CACHE[key] = (int(s.total_params), int(s.total_macs))
        return _COST_CACHE[key]
    except (CnnlabError, RuntimeError, ValueError, TypeError):
        return None, None  # a model this install does not know: the rest still compares


def collect_runs(paths: list[str | Path]) -> tuple[list[RunSummary], list[tuple[Path, str]]]:
    """Run folders from paths (a run folder, or a folder holding run folders), and the skipped
    paths with the reason. A suite folder keeps its suite's order; other folders sort by name."""
    runs: list[RunSummary] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key in seen:
            return
        seen.add(key)
        try:
            run = read_run(p)
        except CnnlabError as err:
            skipped.append((p, " ".join(str(err).split())))
            return
        if run.config.get("dry_run") is True:  # one batch: its numbers mean nothing
            skipped.append((p, "is a --dry-run (one training batch), left out of the comparison"))
        else:
            runs.append(run)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            skipped.append((p, "does not exist"))
        elif not p.is_dir():
            skipped.append((p, "is not a folder"))
        elif _is_run(p):
            add(p)
        else:
            children = _children(p)
            if not any(_is_run(c) for c in children):
                skipped.append((p, "is not a run folder and holds none"))
                continue
            for c in children:
                if _is_run(c):
                    add(c)
                else:
                    skipped.append((c, "is not a run folder"))
    _unique_labels(runs)
    return runs, skipped


def _children(folder: Path) -> list[Path]:
    """Sub-folders in the suite's order when suite.json lists it, else by name."""
    subs = sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith("."))
    try:
        state = json.loads((folder / "suite.json").read_text())
        order = state.get("runs") or state.get("models") or []  # runs: MODEL-seedN folders
    except (OSError, json.JSONDecodeError, AttributeError):
        order = []
    rank = {name: i for i, name in enumerate(order)}
    return sorted(subs, key=lambda c: (rank.get(c.name, len(rank)), c.name))


def _unique_labels(runs: list[RunSummary]) -> None:
    """Label by folder name; where two share one, prefix the parent folder's name."""
    names = [r.label for r in runs]
    for r in runs:
        if names.count(r.label) > 1:
            r.label = f"{r.path.parent.name}/{r.path.name}"


# --- the table ---------------------------------------------------------------------------------

def _cell(key: str, v: Any) -> str:
    if v is None:
        return "n/a"
    if key in ("test_acc", "best_val_acc"):
        return f"{v:.2%}"
    if key == "params":
        return f"{v:,}"
    if key == "macs":
        from cnnlab.cost import format_si

        return format_si(v, spec=".3g")
    if key == "train_seconds":
        return f"{v:,.1f}"
    if key == "images_per_second":
        return f"{v:,.0f}"
    return str(v)


def _cells(run: RunSummary | SeedGroup) -> list[str]:
    row = run.row()
    out = [_cell(k, row[k]) for k, _ in COLUMNS]
    for i, (k, _) in enumerate(COLUMNS):
        std = row.get(f"{k}_std")
        if isinstance(std, float) and math.isfinite(std):
            out[i] += f" ± {std * 100:.2f}"  # points of accuracy, as the mean is in %
    if row["knobs"]:  # the model as it was varied: `lenet (channels=4,8)`
        out[1] += f" ({row['knobs']})"
    if isinstance(run, SeedGroup):
        out[0] += f" ({len(run.runs)} seeds)"
    elif not run.finished:
        out[0] += " (unfinished)"
    if run.limit_batches:
        out[0] += f" ({_partial(run)})"
    return out


def _partial(run: RunSummary) -> str:
    """'20 batches/epoch': the flag of a run that trained on part of each epoch."""
    return f"{run.limit_batches} batches/epoch"


def format_table(runs: list[RunSummary], fmt: str = "text", group: bool = True) -> str:
    """The comparison table as aligned text, a markdown table or JSON (a list of rows).

    group: runs that differ only in their seed become one row, mean ± standard deviation.
    """
    runs = group_seeds(runs) if group else runs  # type: ignore[assignment]
    if fmt == "json":
        return json.dumps([r.row() for r in runs], indent=2)
    head = [h for _, h in COLUMNS]
    rows = [_cells(r) for r in runs]
    right = {i for i, (k, _) in enumerate(COLUMNS)
             if k in ("params", "macs", "test_acc", "best_val_acc", "train_seconds",
                      "images_per_second")}
    notes = _notes(runs)
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines + ([""] + notes if notes else []))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
                     + notes)


def _notes(runs: list[RunSummary]) -> list[str]:
    """Footnotes a reader needs to read the numbers right (subsets, unfinished runs)."""
    notes = []
    tests = {r.test_images for r in runs}
    if tests != {None}:
        sizes = ", ".join("all" if n is None else f"{n:,}" for n in sorted(
            tests, key=lambda n: -1 if n is None else n))
        notes.append(f"test acc counts a stratified subset of the test split: {sizes} images")
    sub = [r.label for r in runs if r.config.get("train_samples")]
    if sub:
        notes.append("trained on a subset of the training split (budget): " + ", ".join(
            f"{r.label} {r.config['train_samples']:,}" for r in runs
            if r.config.get("train_samples")))
    partial = [r for r in runs if r.limit_batches]
    if partial:
        notes.append("partial: trained and evaluated on the first N batches of each epoch "
                     "(--limit-batches), not comparable with whole runs: " + ", ".join(
                         f"{r.label} {r.limit_batches}" for r in partial))
    if any(not r.finished for r in runs):
        notes.append("unfinished: no result.json yet; epochs, time and val acc so far")
    groups = [r for r in runs if isinstance(r, SeedGroup)]
    if groups:
        notes.append("N seeds: runs that differ only in their seed, one row: the mean ± the "
                     "standard deviation over the seeds (n - 1), in points; "
                     + "; ".join(f"{g.label}: seeds {', '.join(map(str, g.seeds))}"
                                 for g in groups))
    return notes


# --- the page ----------------------------------------------------------------------------------

def write_compare(runs: list[RunSummary] | list[str | Path], out: str | Path = "compare.html",
                  title: str | None = None, group: bool = True) -> Path:
    """Write the self-contained comparison page of runs (summaries or folders) to `out`.

    group: the table and the accuracy plots show runs that differ only in their seed as one
    entry, mean ± standard deviation (error bars); the curves still show every run.
    """
    from cnnlab.plots import plot_compare_curves, plot_tradeoffs

    if runs and not isinstance(runs[0], RunSummary):
        runs, skipped = collect_runs(list(runs))  # type: ignore[arg-type]
        if not runs:
            raise DataError("no run folder to compare: " + "; ".join(f"{p} {why}"
                                                                     for p, why in skipped))
    runs = list(runs)  # type: ignore[arg-type]
    if not runs:
        raise DataError("no run folder to compare")
    out = Path(out)
    series = [_series(r) for r in runs]
    entries = group_seeds(runs) if group else runs
    points = [{"label": r.label, "test_acc": r.test_acc, "seconds": r.train_seconds,
               "macs": r.macs, "test_acc_std": getattr(r, "test_acc_std", None)}
              for r in entries if r.test_acc is not None]
    with tempfile.TemporaryDirectory(prefix="cnnlab-compare-") as tmp:
        # Each picture twice: side-by-side panels for wide screens, stacked for phones.
        curves = [plot_compare_curves(series, Path(tmp) / f"curves{c}.png", columns=c)
                  .read_bytes() for c in (2, 1)]
        trade = [plot_tradeoffs(points, Path(tmp) / f"trade{c}.png", columns=c).read_bytes()
                 for c in (2, 1)] if points else None
    return write_atomic(out, _render(runs, entries, curves, trade, title))


def _series(run: RunSummary) -> dict[str, Any]:
    """A run's validation curve by epoch and by cumulative wall-clock seconds."""
    pts, t = [], 0.0
    for i, h in enumerate(run.history):
        t += float(h.get("seconds") or 0.0)
        pts.append({"epoch": h.get("epoch", i + 1), "seconds": t, "val_acc": h.get("val_acc"),
                    "val_loss": h.get("val_loss")})
    flag = ("" if run.finished else " (unfinished)") + (f" ({_partial(run)})"
                                                         if run.limit_batches else "")
    return {"label": run.label + flag, "points": pts,
            "finished": run.finished}


def _render(runs: list[RunSummary], entries: list[RunSummary | SeedGroup], curves: list[bytes],
            trade: list[bytes] | None, title: str | None) -> str:
    """The page: counts and times over every run; the table, the best card and the settings
    over the entries (a group of seeds is one)."""
    from cnnlab.pages import page, picture_tag, table
    from cnnlab.report import _duration

    esc = html.escape
    title = title or f"{len(runs)} runs compared"
    best = max((r for r in entries if r.test_acc is not None), key=lambda r: r.test_acc,
               default=None)
    fastest = min((r for r in runs if r.train_seconds), key=lambda r: r.train_seconds,
                  default=None)
    machines = sorted({r.machine for r in runs})
    best_text = "n/a" if best is None else f"{best.test_acc:.2%}" + (
        f" ± {best.test_acc_std * 100:.2f}" if getattr(best, "test_acc_std", None) else "")
    cards = [("hero", best_text,
              f"best test acc ({best.label})" if best else "best test acc"),
             ("", str(len(runs)), "runs"),
             ("", str(sum(not r.finished for r in runs)), "unfinished"),
             ("", _duration(sum(r.train_seconds or 0 for r in runs)), "training time, all runs"),
             ("", _duration(fastest.train_seconds) if fastest else "n/a",
              f"shortest ({fastest.label})" if fastest else "shortest")]
    stats = "".join(f'<div class="stat {c}"><b>{esc(v)}</b><span>{esc(t)}</span></div>'
                    for c, v, t in cards)
    datasets = sorted({str(r.config.get("dataset")) for r in runs})
    parts = [f"<header><h1>{esc(title)}</h1><p>{len(runs)} runs on {esc(', '.join(datasets))}"
             f" &middot; {esc(', '.join(machines))}</p></header><main>",
             f'<div class="stats">{stats}</div>']

    right = {"params", "macs", "test_acc", "best_val_acc", "train_seconds", "images_per_second"}
    # One dataset for all (the usual case) is said in the header: the column would only repeat it.
    columns = [(k, h) for k, h in COLUMNS if k != "dataset" or len(datasets) > 1]
    rows = []
    for r in sorted(entries, key=lambda r: -(r.test_acc if r.test_acc is not None else -1)):
        cells = dict(zip((k for k, _ in COLUMNS), _cells(r)))
        row = []
        for k, _ in columns:
            text = esc(cells[k])
            if k == "run":
                flags = ([f"{len(r.runs)} seeds"] if isinstance(r, SeedGroup) else []) + (
                    [] if r.finished else ["unfinished"]) + (
                    [_partial(r)] if r.limit_batches else [])
                text = (f"<b>{esc(r.label)}</b>" if not flags else
                        f'{esc(r.label)}<br><span class="muted">{esc(", ".join(flags))}</span>')
            row.append(f'<span class="num">{text}</span>' if k in right else text)
        rows.append(tuple(row))
    notes = "".join(f"<p class=muted>{esc(n)}.</p>" for n in _notes(entries))
    runs_table = table(rows, tuple(h for _, h in columns), cls="runs nowrap",
                       col_cls=tuple(PRIORITY.get(k, "p3") for k, _ in columns))
    hidden = ", ".join(h for k, h in columns if PRIORITY.get(k, "p3"))
    notes += (f'<p class="muted narrow-only">On this narrow screen some columns are hidden '
              f"({esc(hidden)}): widen the window or turn the phone to see them.</p>")
    parts.append("<section><h2>Runs, best test accuracy first</h2>"
                 f'<div class="scroll">{runs_table}</div>{notes}</section>')
    parts.append("<section><h2>Validation accuracy and loss</h2><p class=muted>Every run's "
                 "validation curves, against the epoch (left) and against the wall-clock "
                 "seconds of training and validation (right). Dashed: unfinished runs.</p>"
                 f"{picture_tag(*curves, 'validation accuracy and loss of every run')}</section>")
    if trade is not None:
        missing = [r.label for r in runs if r.test_acc is None]
        extra = (f" Not shown (no test accuracy yet): {esc(', '.join(missing))}."
                 if missing else "")
        parts.append("<section><h2>Accuracy against time and compute</h2><p class=muted>Test "
                     "accuracy of each run against its training seconds and against the "
                     f"multiply-accumulates of one image's forward pass (log scales).{extra}</p>"
                     f"{picture_tag(*trade, 'test accuracy against seconds and MACs')}</section>")
    rows_cfg = [(esc(r.label), esc(_recipe_text({**r.config, "seed": None})
                                   + f" seeds={','.join(map(str, r.seeds))}"
                                   if isinstance(r, SeedGroup) else _recipe_text(r.config)))
                for r in entries]
    parts.append("<section><h2>Settings</h2>" + table(rows_cfg, ("run", "recipe"), cls="kv")
                 + "</section>")
    now = time.strftime("%Y-%m-%d %H:%M")
    parts.append(f"<footer>cnnlab compare &middot; {len(runs)} runs &middot; written {now} on "
                 f"{esc(platform.node())}</footer></main>")
    return page(f"{title} · cnnlab compare", "".join(parts))


def _recipe_text(cfg: dict[str, Any]) -> str:
    keys = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule",
            "resize", "normalize", "augment_crop", "augment_flip", "label_smoothing",
            "train_samples", "val_size", "test_samples", "seed")
    parts = []
    for k in keys:
        v = cfg.get(k)
        if v in (None, 0, 0.0, False, "") and k not in ("epochs", "lr"):
            continue
        if isinstance(v, list):
            v = "x".join(map(str, v))
        parts.append(f"{k}={v}")
    return " ".join(parts)
