"""Sweeps: a study over TrainConfig fields and model knobs, every trial an ordinary run folder.

    cnnlab sweep lenet --param lr=log:1e-3..0.3 --param momentum=0,0.9 --trials 20 --out runs/s
    cnnlab sweep --join runs/s            # one more worker, from another terminal
    run_sweep(SweepSpec("lenet", [parse_param("lr=log:1e-3..0.3")], config), "runs/s", trials=20)

The study, its samplers (grid, random, TPE) and pruners (median, successive halving) are
Optuna's. Selection is on validation only: every trial carves `val_size` out of the training
split, ranks on `metric`, and never scores the test split (`score_test=False`); the test split
is seen once, by `retrain_best`, which trains the best configuration on the whole training split.

The sweep folder holds `sweep.json` (the spec and every trial), `sweep.csv`, `sweep.html`,
`trials/NNNN-seedS/` (run folders the engine writes: report, inspect, compare and resume work on
them) and, unless `storage` names a database server, `study.journal`: Optuna's journal file,
whose appends are serialized by a lock file, so several processes on one machine share it safely
(SQLite is not made for concurrent writers: "database is locked" under load) and the folder can
be copied. A trial left running by a killed worker is handed to the next worker that starts: on
the same machine once its process is gone, from another machine (a shared database) once the
heartbeat its worker writes every minute is ten minutes old. The next worker continues that
trial's run folders from their last checkpoint, or starts them afresh where it cannot see them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cnnlab.errors import (
    CnnlabError,
    ConfigError,
    DataError,
    OutputError,
    RunFinished,
    TrainingInterrupted,
)
from cnnlab.runsview import RunsView, resolve
from cnnlab.sweep_page import (
    ENDED,
    best_of,
    fmt_params,
    fmt_score,
    redact,
    summarize,
    view_rows,
    view_summary,
    write_summary,
)
from cnnlab.sweep_space import (
    SweepSpec,
    apply_params,
    grid_size,
    grid_space,
    parse_budget,
    python_spec,
    suggest_params,
)
from cnnlab.train_config import TrainConfig

__all__ = ["SweepResult", "SweepSpec", "fmt_params", "fmt_score", "parse_budget", "read_sweep",
           "retrain_best", "run_sweep", "sweep"]

SWEEP_FILE = "sweep.json"
JOURNAL = "study.journal"
STUDY = "cnnlab-sweep"
# What a sweep writes into its folder; anything else there means another command's folder.
OURS = (SWEEP_FILE, "sweep.csv", "sweep.html", JOURNAL, "trials", "best")
HOST = socket.gethostname()
# A running trial's worker writes the time into the study this often ("beat"), so a worker on
# another machine, where its process cannot be looked up, can tell a trial whose machine died or
# lost its network: no beat for STALE_S (minutes, far beyond clock skew between machines).
HEARTBEAT_S = 60.0
STALE_S = 600.0


@dataclass
class SweepResult:
    """What a sweep holds after this worker: every trial (best first) and the best one."""

    out_dir: Path
    trials: list[dict[str, Any]]  # see summarize()
    best: dict[str, Any] | None
    ran: int  # trials this worker ran


# --- the folder and the study --------------------------------------------------------------

def read_sweep(out_dir: str | Path) -> dict[str, Any]:
    """sweep.json of a sweep folder; ConfigError when the folder holds no sweep."""
    import json

    path = Path(out_dir) / SWEEP_FILE
    if not Path(out_dir).is_dir():
        raise ConfigError(f"{out_dir} does not exist, so it holds no sweep; start one with "
                          f"cnnlab sweep NAME --param ... --out {out_dir}")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{out_dir} holds no sweep (no {SWEEP_FILE}); start one with "
                          f"cnnlab sweep NAME --param ... --out {out_dir}") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is damaged ({err}); the trials' run folders are intact") from None
    if not isinstance(data, dict) or data.get("written_by") != "cnnlab sweep" \
            or not isinstance(data.get("spec"), dict):
        raise ConfigError(f"{path} was not written by cnnlab sweep; choose another folder")
    return data


def _check_folder(out: Path, spec: SweepSpec | None) -> dict[str, Any]:
    """The saved sweep.json ({} for a new sweep); ConfigError when out is not this sweep's."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; name a folder for the sweep (--out DIR)")
    if spec is None or (out / SWEEP_FILE).exists():
        saved = read_sweep(out)
        if spec is not None and saved["spec"] != spec.to_dict():
            old, new = saved["spec"], spec.to_dict()
            diff = sorted(k for k in new if old.get(k) != new[k])
            if "config" in diff:
                diff.remove("config")
                diff += sorted(k for k in new["config"]
                               if old["config"].get(k) != new["config"][k])
            raise ConfigError(f"{out} holds a sweep with other settings ({', '.join(diff)}); "
                              f"continue it with cnnlab sweep --resume {out}, or start a new one "
                              "with another --out")
        return saved
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith((*OURS, "."))
                    ) if out.exists() else []
    if others:
        raise ConfigError(f"{out} holds files no sweep wrote ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); choose a new or empty folder "
                          "for the sweep (--out DIR)")
    return {}


def _storage(out: Path, url: str | None) -> Any:
    import optuna

    if not url:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(out / JOURNAL)
        return optuna.storages.JournalStorage(
            JournalFileBackend(path, lock_obj=JournalFileOpenLock(path, grace_period=30)))
    import importlib.util

    kwargs: dict[str, Any] = {}
    target = url
    if url.startswith("postgresql"):  # an unreachable server fails in seconds, not minutes
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": 5}}
        if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
            # SQLAlchemy 2.1 reads postgresql:// as psycopg 3; psycopg2-binary is the extra
            target = "postgresql+psycopg2://" + url[len("postgresql://"):]
    try:
        return optuna.storages.RDBStorage(target, **kwargs)
    except Exception as err:  # sqlalchemy's errors have no common CnnlabError-like base
        first = " ".join(str(err).split())[:200]
        raise ConfigError(f"--storage {redact(url)} cannot be reached ({first}); check the "
                          "server, the address and the credentials") from None


def _sampler(spec: SweepSpec, seed: int) -> Any:
    import optuna

    if spec.sampler == "grid":
        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any) -> None:
                """Nothing: the worker stops at the grid's size itself (GridSampler would call
                Study.stop, which works only inside Study.optimize, not with ask and tell)."""

        return Grid(grid_space(spec.params), seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepSpec) -> Any:
    import optuna

    if spec.prune == "median":  # prune below the median of earlier trials at the same epoch
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if spec.prune == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


# --- running -----------------------------------------------------------------------------------

def run_sweep(spec: SweepSpec | None, out_dir: str | Path, *, trials: int | None = None,
              budget_s: float | None = None, storage: str | None = None, data: Any = None,
              stream: TextIO | None = None, progress: str = "auto") -> SweepResult:
    """Run trials of the sweep in out_dir until it holds `trials` of them or `budget_s` is spent.

    spec None joins (or resumes) the sweep out_dir already holds. Several processes may run this
    on one folder at once: each trial is run by exactly one of them. data: a Dataset to use
    instead of loading config.dataset (loaded once per process either way). progress: "auto"
    shows one live view in a notebook (the trial that runs, its epoch, the best so far, a table
    of finished trials, the best at the end) and otherwise a line per trial on `stream` (none
    without one); "notebook", "plain" or "none" force one (cnnlab.runsview).
    """
    import warnings

    with warnings.catch_warnings():  # in a kernel without ipywidgets optuna's import of
        # tqdm.auto warns "IProgress not found", about a progress bar cnnlab never uses
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(out_dir)
    if spec is not None:
        spec.check()
        _check_grid(spec, trials)
    saved = _check_folder(out, spec)
    if spec is None:
        spec = SweepSpec.from_dict(saved["spec"])
        if storage and saved.get("storage") and storage != saved["storage"]:
            raise ConfigError(f"{out} keeps its study in {redact(saved['storage'])}, not in "
                              f"{redact(storage)}; drop --storage to use it")
    url = storage or saved.get("storage")
    trials = trials if trials is not None else saved.get("trials")
    if spec.sampler == "grid":
        trials = _check_grid(spec, trials)
    if trials is None and budget_s is None:
        raise ConfigError("say how long to search: --trials N, --budget 30m, or both")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials {trials} must be at least 1")
    store = _storage(out, url) if url else None  # a server is checked before any file is written
    out.mkdir(parents=True, exist_ok=True)
    store = store or _storage(out, None)
    study = optuna.create_study(study_name=STUDY, storage=store, load_if_exists=True,
                                direction="maximize" if spec.metric == "val_acc" else "minimize",
                                pruner=_pruner(spec),
                                sampler=_sampler(spec, spec.seeds[0]))
    seed = spec.seeds[0] * 1_000_003 + len(study.trials) + (os.getpid() if saved else 0)
    study.sampler = _sampler(spec, seed)  # another stream per session: no repeated proposals
    header = {"written_by": "cnnlab sweep", "spec": spec.to_dict(), "storage": url,
              "trials": trials}
    show = RunsView(progress, stream, ("trial", "params", spec.metric, "status", "seconds"))
    worker = _Worker(spec, out, study, header, trials, budget_s, data, show)
    return worker.run()


def sweep(model: str, params: str | list[str], *, trials: int | None = None,
          budget: str | float | None = None, out_dir: str | Path | None = None,
          sampler: str = "tpe", prune: str = "median", metric: str = "val_acc",
          seeds: tuple[int, ...] | None = None, model_kwargs: dict[str, Any] | None = None,
          data: Any = None, progress: str = "auto", **config: Any) -> SweepResult:
    """`cnnlab sweep` from Python, in one call: the --param specs (one string or a list), how
    long (trials, budget as in '30m'), where (out_dir, default runs/sweep-MODEL) and the
    TrainConfig fields every trial shares as keywords:

        sweep("lenet", ["lr=log:1e-3..0.3", "momentum=0,0.9"], trials=8, epochs=3)
    """
    spec = python_spec(model, params, config, model_kwargs, sampler=sampler, prune=prune,
                       metric=metric, seeds=seeds)
    out = Path(out_dir) if out_dir is not None else Path("runs") / f"sweep-{model}"
    return run_sweep(spec, out, trials=trials, budget_s=parse_budget(budget), data=data,
                     progress=progress)


def _check_grid(spec: SweepSpec, trials: int | None) -> int | None:
    """The trial count of a grid sweep (its size); ConfigError when --trials is smaller."""
    if spec.sampler != "grid":
        return trials
    points = grid_size(spec.params)
    if trials is not None and points > trials:
        raise ConfigError(f"the grid has {points} points but --trials is {trials}; raise "
                          f"--trials to {points}, or use --sampler random/tpe")
    return points


class _Worker:
    """One process's share of a sweep: ask, train, tell, until the count or budget is reached."""

    def __init__(self, spec: SweepSpec, out: Path, study: Any, header: dict[str, Any],
                 trials: int | None, budget_s: float | None, data: Any,
                 show: RunsView):
        self.spec, self.out, self.study, self.header = spec, out, study, header
        self.trials, self.budget_s, self.show = trials, budget_s, show
        self.data = data
        self.ran = 0
        self._rows: list[dict[str, Any]] = []  # the study's trials as last written
        self.me = {"host": HOST, "pid": os.getpid(), "started": _proc_start(os.getpid())}

    def say(self, text: str) -> None:
        self.show.say(text)

    def run(self) -> SweepResult:
        with self.show:
            return self._run()

    def _run(self) -> SweepResult:
        from cnnlab.data import load_dataset

        names = ", ".join(p.name for p in self.spec.params)
        self.show.note(f"sweep of {self.spec.model} over {names} -> {self.out}")
        self._show(self._write())
        t0 = time.perf_counter()
        cfg = self.spec.config
        if self.data is None:  # once per process: trials only carve their splits from it
            self.data = load_dataset(cfg.dataset, root=cfg.data_root,
                                     image_size=cfg.image_size or None)
        while self.budget_s is None or time.perf_counter() - t0 < self.budget_s:
            self._recover()
            # a dead worker's trial queued for a rerun is one of the count: it still has to run
            if self.trials is not None and self._counted() >= self.trials \
                    and not self.study.get_trials(deepcopy=False, states=(_state("WAITING"),)):
                break
            trial = self.study.ask()
            if self.trials is not None and self._rank(trial.number) >= self.trials:
                trial.set_user_attr("surplus", True)  # another worker asked at the same time
                self.study.tell(trial, state=_state("FAIL"))
                break
            self._run_trial(trial)
            self.ran += 1
        rows = self._write(page=True)
        self._show(rows)
        self.show.end(view_summary(rows, self.spec), say=False)  # plain: the caller prints the best
        return SweepResult(self.out, rows, best_of(rows), self.ran)

    # -- counting, and trials left by killed workers ----------------------------------------

    def _counted_trials(self) -> list[Any]:
        trials = self.study.get_trials(deepcopy=False)
        continued = {t.user_attrs.get("continues") for t in trials}
        return [t for t in trials if not t.user_attrs.get("surplus")
                and not (t.state == _state("FAIL") and t.number in continued)]

    def _counted(self) -> int:
        return len(self._counted_trials())

    def _rank(self, number: int) -> int:
        return sum(1 for t in self._counted_trials() if t.number < number)

    def _recover(self) -> None:
        """Hand every trial whose worker died to the next worker, once: on this machine when its
        process is gone, on another when its heartbeat stopped STALE_S ago."""
        for t in self.study.get_trials(deepcopy=False, states=(_state("RUNNING"),)):
            who = t.user_attrs.get("worker")
            if who is None:  # killed between ask and its first note: stale after a minute
                started = t.datetime_start.timestamp() if t.datetime_start else time.time()
                if time.time() - started < 60:
                    continue
            elif who.get("host") != HOST:
                beat = t.user_attrs.get("beat")
                if beat is None or time.time() - float(beat) < STALE_S:
                    continue
            elif _alive(who):
                continue
            self._hand_over(t.number, t.params, t.user_attrs.get("folder"))

    def _hand_over(self, number: int, params: dict[str, Any], folder: str | None) -> None:
        """Fail trial `number` and queue its continuation, unless another worker did first."""
        try:
            self.study.tell(number, state=_state("FAIL"))
        except (RuntimeError, ValueError):  # finished meanwhile, or taken over by another
            return
        self.study.enqueue_trial(params, user_attrs={"continues": number,
                                                     "folder": folder or f"{number:04d}"})

    # -- one trial ----------------------------------------------------------------------------

    def _run_trial(self, trial: Any) -> None:
        spec = self.spec
        values = suggest_params(trial, spec.params)
        folder = trial.user_attrs.get("folder") or f"{trial.number:04d}"
        trial.set_user_attr("folder", folder)
        trial.set_user_attr("worker", self.me)
        with _heartbeat(trial):
            self._run_trial_beating(trial, values, folder)

    def _run_trial_beating(self, trial: Any, values: dict[str, Any], folder: str) -> None:
        spec = self.spec
        self._now(trial.number, values)
        t0 = time.perf_counter()
        scores: list[float] = []
        pruned: list[int] = []

        def on_epoch(row: dict[str, Any]) -> bool:
            trial.report(float(row[spec.metric]), int(row["epoch"]))
            if row["epoch"] < spec.config.epochs and trial.should_prune():  # last: finished
                pruned.append(int(row["epoch"]))
                return True
            return False

        try:
            cfg, kwargs = apply_params(spec.config, spec.model_kwargs, values, spec.model)
            for i, seed in enumerate(spec.seeds):
                hook = on_epoch if i == 0 and spec.prune != "off" else None
                final = self._train(self.out / "trials" / f"{folder}-seed{seed}",
                                    cfg.replace(seed=seed), kwargs, hook)
                if pruned:
                    break
                scores.append(float(final[spec.metric]))
        except (KeyboardInterrupt, CnnlabError) as err:
            if isinstance(err, (KeyboardInterrupt, OutputError, TrainingInterrupted)):
                # stopped, or cannot write: the next worker continues this trial
                self._hand_over(trial.number, trial.params, folder)
                raise
            trial.set_user_attr("error", " ".join(str(err).split()))
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            self.study.tell(trial, state=_state("FAIL"))
            self._show(self._write())
            self.say(f"trial {trial.number} failed: {' '.join(str(err).split())}")
            return
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        if pruned:
            self.study.tell(trial, state=_state("PRUNED"))
        else:
            trial.set_user_attr("values", scores)
            self.study.tell(trial, statistics.fmean(scores))
        rows = self._write()
        self._show(rows)
        self._announce(trial.number, rows)

    def _train(self, run_dir: Path, cfg: TrainConfig, kwargs: dict[str, Any],
               hook: Any) -> dict[str, Any]:
        """The final metrics row of one run: trained, continued, or as a finished one left it."""
        from cnnlab.run import read_json
        from cnnlab.runlog import run_state
        from cnnlab.train import resume, train

        inner = self.show.inner or cfg.progress  # in the view: the trial's epochs report to it
        if run_state(run_dir) == "checkpoint":
            try:
                return resume(run_dir, data=self.data, on_epoch=hook, progress=inner).final
            except RunFinished:
                return read_json(run_dir / "result.json")["final"]
        return train(self.spec.model, self.data, cfg.replace(progress=inner), out_dir=run_dir,
                     model_kwargs=kwargs, on_epoch=hook, overwrite=True).final

    def _announce(self, number: int, rows: list[dict[str, Any]]) -> None:
        row = next(r for r in rows if r["number"] == number)
        done = sum(1 for r in rows if r["status"] in ENDED)
        total = f"/{self.trials}" if self.trials else ""
        what = (f"pruned after epoch {row['epochs']}" if row["status"] == "pruned"
                else "done")
        best = best_of(rows)
        self.say(f"trial {number} ({done}{total}) {what} in {row['seconds']:.1f} s: "
                 f"{self.spec.metric} {fmt_score(row)} [{fmt_params(row['params'])}]"
                 + (f"; best: trial {best['number']}, {self.spec.metric} {fmt_score(best)}"
                    if best else ""))

    def _now(self, number: int, values: dict[str, Any]) -> None:
        """The view's line of the trial that starts: which, its parameters, the best so far."""
        if self.show.view is None:
            return
        best = best_of(self._rows)
        rank = self._rank(number) + 1
        self.show.say(f"trial {number} ({rank}{f' of {self.trials}' if self.trials else ''}) "
                      f"[{fmt_params(values)}]"
                      + (f"; best so far: trial {best['number']}, {self.spec.metric} "
                         f"{fmt_score(best)}" if best else ""), at="now")

    def _show(self, rows: list[dict[str, Any]]) -> None:
        """The view's table: the finished trials in the order they ran."""
        self._rows = rows
        if self.show.view is not None:
            self.show.rows(view_rows(rows, self.spec.metric))

    def _write(self, page: bool = False) -> list[dict[str, Any]]:
        """sweep.json and sweep.csv from the study as it stands (and sweep.html at the end)."""
        rows = summarize(self.study, self.spec, self.out)
        write_summary(self.out, self.header, rows, best_of(rows), self.spec, page=page)
        return rows


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


@contextlib.contextmanager
def _heartbeat(trial: Any) -> Iterator[None]:
    """Write the time into `trial` ("beat") now and every HEARTBEAT_S until the block ends.

    A beat that cannot be written (the database server briefly away) is skipped: the trial's own
    writes will say so if the server stays away; a worker that stops beating for STALE_S loses
    its trial to another worker.
    """
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                trial.set_user_attr("beat", time.time())
            except Exception:  # noqa: BLE001 - a missed beat is harmless, the next one may land
                pass
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="cnnlab-sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _proc_start(pid: int) -> str | None:
    """The process's start time (Linux clock ticks since boot), so a reused pid is not taken
    for the worker that died; None where /proc does not say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(who: dict[str, Any]) -> bool:
    from cnnlab.atomic import pid_alive

    pid = int(who.get("pid", 0))
    if not pid or not pid_alive(pid):
        return False
    return who.get("started") is None or _proc_start(pid) in (None, who["started"])


# --- the test split, once ------------------------------------------------------------------

def retrain_best(out_dir: str | Path, *, data: Any = None, stream: TextIO | None = None,
                 progress: str = "auto") -> Any:
    """Train the sweep's best configuration on the whole training split into DIR/best and score
    it on the test split, once (a finished DIR/best is read, not trained again). progress:
    "auto" is the engine's live view in a notebook, else plain lines on `stream` (none without
    one); "notebook", "plain" or "none" force one."""
    from cnnlab.run import read_json
    from cnnlab.runlog import run_state
    from cnnlab.train import TrainResult, resume, train

    out = Path(out_dir)
    saved = read_sweep(out)
    best = saved.get("best")
    if not best:
        raise ConfigError(f"{out} has no finished trial yet, so there is no best configuration "
                          "to retrain; run more trials first")
    spec = SweepSpec.from_dict(saved["spec"])
    mode, stream = resolve(progress, stream)
    cfg, kwargs = apply_params(spec.config, spec.model_kwargs, best["params"], spec.model)
    cfg = cfg.replace(val_size=0, score_test=True, eval_every=0, patience=0,
                      seed=spec.seeds[0], progress=mode if mode != "plain" or stream else "none")
    run_dir = out / "best"
    if run_state(run_dir) == "checkpoint":
        try:
            return resume(run_dir, data=data, stream=stream, progress=cfg.progress)
        except RunFinished:
            res = read_json(run_dir / "result.json")
            return TrainResult(history=[], final=res.get("final") or {}, best=res.get("best"),
                               test_acc=res.get("test_acc"), test_loss=res.get("test_loss"),
                               seconds=float(res.get("seconds") or 0), out_dir=run_dir,
                               config=cfg)
    return train(spec.model, data if data is not None else cfg.dataset, cfg, out_dir=run_dir,
                 model_kwargs=kwargs, stream=stream, overwrite=True)

