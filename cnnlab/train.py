"""The training engine: train any cnnlab model on any cnnlab dataset, fast, observable, resumable.

    result = train("lenet", "fashion-mnist", TrainConfig(epochs=10), out_dir="runs/lenet")
    result = resume("runs/lenet")                       # after a crash, SIGKILL, Ctrl-C or SIGTERM
    torchrun --nproc_per_node 2 -m cnnlab train lenet --out runs/ddp          # data parallel

Data lives on the device and batches are index slices (cnnlab.data.Loader); metrics accumulate
on the device, so the only per-step host syncs are the progress refreshes every `log_every` steps
(and two early ones, at steps 10 and 25 of an epoch, so a slow run's forecast comes soon).

One idea: a run from its first step to its result (train, resume, the Trainer's loop, and how it
stops: patience, divergence, Ctrl-C and SIGTERM, a failed write). What it stands on is
runsetup.py's, its checkpoint state trainstate.py's, its files and signals the services'.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import distributed as ddp
from cnnlab.atomic import is_storage_error, output_error, remove_orphans, write_atomic
from cnnlab.checkpoint import (
    RunLock,
    load_checkpoint,
    save_checkpoint,
)
from cnnlab.device import (
    autocast,
)
from cnnlab.epochmeter import EpochMeter
from cnnlab.errors import (
    CnnlabError,
    ConfigError,
    OutputError,
    RunFinished,
    TrainingError,
    TrainingInterrupted,
)
from cnnlab.progress import Progress
from cnnlab.run import better, evaluate, evaluate_sums, evaluation, predict
from cnnlab.runlog import RunFolder, claim_run_folder, run_state
from cnnlab.runsetup import set_up
from cnnlab.schedule import lr_at
from cnnlab.stopsignals import StopSignals
from cnnlab.train_config import TrainConfig
from cnnlab.trainstate import load_trainer_state, trainer_state

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "Trainer", "evaluate", "predict",
           "resume", "train"]

# A check run once the config is resolved and before any work: (config, dataset, device,
# model_kwargs) -> None, raising a CnnlabError to refuse the run (the CLI's memory guard).
Preflight = Callable[[TrainConfig, Any, torch.device, dict[str, Any]], None]
# Told the resolved config once the run passed its checks, before any data is copied (the CLI
# prints its header from it); the engine never calls up into the CLI itself.
OnStart = Callable[[TrainConfig], None]
# Told each epoch's metrics row; returning True ends the run there, as patience does (sweeps).
OnEpoch = Callable[[dict[str, Any]], Any]


@dataclass
class TrainResult:
    """What a run produced: per-epoch history, final and best rows, test metrics, timings."""

    history: list[dict[str, Any]]  # one row per epoch (see Trainer._epoch_row)
    final: dict[str, Any]  # the last epoch's row
    best: dict[str, Any] | None  # the row with the best `monitor` value (None: never validated)
    test_acc: float | None  # accuracy of the final model on the dataset's test split
    test_loss: float | None  # mean cross-entropy on the test split
    seconds: float  # training wall time, summed over resumed sessions
    out_dir: Path | None  # the run folder (None: nothing written)
    config: TrainConfig  # the resolved config the run used
    stopped_early: bool = False  # early stopping ended the run before config.epochs
    model: nn.Module | None = field(default=None, repr=False)  # the trained network
    test_images: int | None = None  # images test_acc covers (fewer than the split: limit_batches)
    test_split_images: int | None = None  # images in the whole test split
    # the final model's predictions on the test split, when training computed them anyway
    evaluation: Any = field(default=None, repr=False)

    @property
    def run_dir(self) -> Path | None:
        """Alias of out_dir (the CLI's name for it)."""
        return self.out_dir

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary written to result.json."""
        ips = [r["images_per_second"] for r in self.history if r.get("images_per_second")]
        return {"model": self.config.model, "dataset": self.config.dataset,
                "test_acc": self.test_acc, "test_loss": self.test_loss,
                "test_images": self.test_images, "seconds": round(self.seconds, 3),
                "epochs_completed": len(self.history), "stopped_early": self.stopped_early,
                "images_per_second": round(sum(ips) / len(ips), 1) if ips else None,
                "final": self.final, "best": self.best, "dry_run": self.config.dry_run,
                "out_dir": str(self.out_dir) if self.out_dir else None}


# --- the public entry points -----------------------------------------------------------------

def train(model: nn.Module | str, data: Any = None, config: TrainConfig | None = None,
          out_dir: str | Path | None = None, *, model_kwargs: dict[str, Any] | None = None,
          stream: TextIO | None = None, preflight: Preflight | None = None,
          overwrite: bool = False, on_start: OnStart | None = None,
          on_epoch: OnEpoch | None = None, record: dict[str, Any] | None = None,
          files: dict[str, str | bytes] | None = None) -> TrainResult:
    """Train model (an nn.Module or a zoo name) on data (a Dataset or dataset name).

    With out_dir, the run folder gets config.json, metrics, curves.png, checkpoints, TensorBoard
    files and result.json, and can be resumed. A folder that already holds a run is refused
    unless overwrite=True, which first removes everything that run wrote. model_kwargs (with a
    zoo name in config.model) are recorded so `resume` can rebuild the network. preflight, if
    given, is called with the resolved config, the dataset, the device and model_kwargs before
    any data is copied or any model built, and may refuse the run by raising (the CLI's memory
    guard); on_start is then told the resolved config; on_epoch is told each epoch's metrics row
    and ends the run early by returning True. record: entries config.json gets beside the fields
    (how a setting was chosen, e.g. the lr-finder's {"lr_find": {...}}), kept through resumes;
    files: name -> content written into the run folder once it is claimed (e.g. lr-find.png).
    """
    config = (config or TrainConfig()).validate()
    trainer = Trainer(model, data, config, out_dir, model_kwargs=model_kwargs, stream=stream,
                      preflight=preflight, overwrite=overwrite, on_start=on_start,
                      on_epoch=on_epoch, record=record, files=files)
    return trainer.fit()


# Steps (before the first log_every one) at which the progress display also hears the pace, so
# a slow network's forecast comes within a few steps: one host sync each.
EARLY_TICKS = (10, 25)

# Settings a resumed run cannot change: each would mix two different runs in one history.
FIXED_ON_RESUME = ("dataset", "optimizer", "resize", "normalize", "val_size", "train_samples",
                   "seed")
# What a checkpoint must hold to continue a run (load_checkpoint checks only the format).
STATE_KEYS = ("epoch", "step", "global_step", "model", "optimizer", "scaler", "rng", "epoch_sums",
              "epoch_count", "epoch_seconds", "config", "history", "best", "elapsed")


def resume(out_dir: str | Path, model: nn.Module | None = None, data: Any = None, *,
           checkpoint: str = "last", stream: TextIO | None = None,
           preflight: Preflight | None = None, on_start: OnStart | None = None,
           on_epoch: OnEpoch | None = None, **changes: Any) -> TrainResult:
    """Continue the run in out_dir from checkpoints/last.pt, exactly where it stopped.

    checkpoint="best" continues from best.pt instead: the epochs after it are dropped from the
    history and trained again. The model is rebuilt from the recorded zoo name unless given;
    changes override config fields (e.g. epochs=20 to train longer, lr=0.01), except those in
    FIXED_ON_RESUME; the batch size changes only at the end of an epoch. A run that has trained
    all its epochs raises RunFinished (pass a larger `epochs` to train further).
    """
    if checkpoint not in ("last", "best"):
        raise ConfigError(f"checkpoint={checkpoint!r} is not 'last' or 'best'")
    out_dir = Path(out_dir)
    path = out_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        _no_checkpoint(out_dir, path)
    state = load_checkpoint(path)
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise TrainingError(f"checkpoint {path} lacks {', '.join(map(repr, missing))}; it is "
                            "damaged or was not written by cnnlab's trainer")
    saved = TrainConfig.from_dict(state["config"])
    changes = {k: v for k, v in changes.items() if k != "model"}
    config = saved.replace(**changes) if changes else saved
    _check_changes(saved, config, state, out_dir)
    if checkpoint == "last" and _finished(out_dir, state, config, changes):
        done = len(state["history"])
        raise RunFinished(f"{out_dir} has finished: it trained {done} of {saved.epochs} epochs, "
                          "so there is nothing to resume; to train further, ask for more: "
                          f"cnnlab train --resume {out_dir} --epochs N (N above {done})",
                          out_dir, done)
    kwargs = dict(state.get("model_kwargs") or {})
    if model is None:
        if not config.model:
            raise TrainingError(f"{out_dir} was trained with a custom nn.Module; "
                                "pass it: resume(out_dir, model=MyNet())")
        model = config.model
    trainer = Trainer(model, data, config, out_dir, model_kwargs=kwargs, stream=stream,
                      preflight=preflight, on_start=on_start, on_epoch=on_epoch,
                      record=state.get("record"))
    trainer.source = path
    if not config.threads and not config.deterministic:  # the count the run chose at its start
        trainer.kept_threads = int(state.get("cpu_threads") or 0)
    return trainer.fit(state)


def _no_checkpoint(out_dir: Path, path: Path) -> None:
    """Why `resume` has nothing to continue from, as a TrainingError: a live run that has not
    checkpointed yet holds the folder ("in use"); a run stopped before its first checkpoint
    starts over with --overwrite (its killed writers' temporary files are removed now)."""
    if (out_dir / ".lock").is_file():  # a run folder: is a run in it alive?
        with RunLock(out_dir):  # "in use by process N" for a live run
            for folder in (out_dir, out_dir / "checkpoints"):
                remove_orphans(folder)
    if path.name == "last.pt" and run_state(out_dir) == "started":
        model = _recorded_model(out_dir)
        raise TrainingError(
            f"{out_dir} holds a run that stopped before its first checkpoint, so there is "
            f"nothing to resume; start it over in the same folder: cnnlab train {model} --out "
            f"{out_dir} --overwrite (with the flags it had)")
    load_checkpoint(path)  # its one-line message for a folder that holds no run


def _recorded_model(out_dir: Path) -> str:
    from cnnlab.run import read_json

    try:
        return str(read_json(out_dir / "config.json").get("model") or "MODEL")
    except CnnlabError:
        return "MODEL"


def _finished(out_dir: Path, state: dict[str, Any], config: TrainConfig,
              changes: dict[str, Any]) -> bool:
    """True when last.pt ends a completed run and the changes ask for no further epochs."""
    from cnnlab.run import read_json

    if state["step"] or not (out_dir / "result.json").is_file():
        return False  # mid-epoch, or killed before it wrote its result: there is work left
    if state["epoch"] >= config.epochs:
        return True
    try:
        stopped_early = bool(read_json(out_dir / "result.json").get("stopped_early"))
    except CnnlabError:
        return False
    return stopped_early and not ({"epochs", "patience"} & set(changes))


def _check_changes(saved: TrainConfig, new: TrainConfig, state: dict[str, Any],
                   out_dir: Path) -> None:
    """ConfigError when the settings of a resume cannot continue the saved run."""
    for name in FIXED_ON_RESUME:
        old, now = getattr(saved, name), getattr(new, name)
        if name == "dataset":
            old, now = _dataset_key(old), _dataset_key(now)
        if old != now:
            raise ConfigError(f"{out_dir} was trained with {name}={getattr(saved, name)!r}; "
                              f"a resumed run cannot change it to {getattr(new, name)!r} (it "
                              "would mix two runs in one history); start a new run with --out")
    if state["step"] and new.batch_size != saved.batch_size:
        epoch = state["epoch"] + 1
        raise ConfigError(
            f"{out_dir} stopped in the middle of epoch {epoch} (step {state['step']}, batch size "
            f"{saved.batch_size}); another batch size would skip or repeat samples of that epoch; "
            f"finish it first (cnnlab train --resume {out_dir} --epochs {epoch}), then resume "
            f"with --batch-size {new.batch_size}")


def _dataset_key(name: str) -> str:
    from cnnlab.data import dataset_info

    try:
        return dataset_info(name).name
    except CnnlabError:  # a folder dataset: compare the names as given
        return name


def resume_hint(run_dir: str | Path | None) -> str:
    """The command that resumes run_dir when it holds a checkpoint, else ''.

    'cnnlab train --resume DIR'; under torchrun the same torchrun line around it, since a run
    resumes with the number of processes it was started with.
    """
    if run_dir is None or not (Path(run_dir) / "checkpoints" / "last.pt").is_file():
        return ""
    if not ddp.launched_by_torchrun():
        return f"cnnlab train --resume {run_dir}"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    nodes = f"--nnodes {world // local} " if local != world else ""
    return f"torchrun {nodes}--nproc_per_node {local} -m cnnlab train --resume {run_dir}"


# --- the engine --------------------------------------------------------------------------------

class Trainer:
    """One training run: set up once, then fit() from scratch or from a checkpoint's state."""

    def __init__(self, model: nn.Module | str, data: Any, config: TrainConfig,
                 out_dir: str | Path | None = None, *, model_kwargs: dict[str, Any] | None = None,
                 stream: TextIO | None = None, preflight: Preflight | None = None,
                 overwrite: bool = False, on_start: OnStart | None = None,
                 on_epoch: OnEpoch | None = None, record: dict[str, Any] | None = None,
                 files: dict[str, str | bytes] | None = None):
        self.config = config.validate()
        self.preflight, self.on_start, self.on_epoch = preflight, on_start, on_epoch
        self.record = dict(record or {})  # extra config.json entries (see train)
        self.files = dict(files or {})
        if out_dir is not None and not str(out_dir).strip():
            raise ConfigError("the output folder is empty (--out \"\"); name a folder, or leave "
                              "--out out for a fresh runs/<name>-<time>")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if isinstance(model, str) and model_kwargs:  # checked, typed, old names renamed
            from cnnlab.models import check_model_kwargs

            model_kwargs = check_model_kwargs(model, model_kwargs)
        self.model_kwargs = dict(model_kwargs or {})
        self.stream = stream
        self.overwrite = overwrite
        self.source: Path | None = None  # the checkpoint file fit(state) continues from
        self.kept_threads = 0  # resume: the CPU thread count the run chose at its start
        self._model_arg = model
        self._data_arg = data
        self.stop = StopSignals(self.out_dir)  # Ctrl-C and SIGTERM (cnnlab.stopsignals)
        self._started = False  # training began: a failure from now on can be resumed
        self._saved: tuple[int, int] | None = None  # (epoch, step) of the last last.pt written
        self._settings = contextlib.ExitStack()  # the process-wide settings of fit()
        self._made: list[Path] = []  # what claiming the folder created (folder, lock, checkpoints/)
        self.dist = ddp.DistInfo()

    # -- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        """Device, precision, settings, inputs, model and optimizer (cnnlab.runsetup); close()
        puts the process-wide settings back."""
        setup = set_up(self.config, self._model_arg, self._data_arg, self._settings,
                       model_kwargs=self.model_kwargs, preflight=self.preflight,
                       on_start=self.on_start, kept_threads=self.kept_threads)
        # device, dist, amp, thread_policy, notes, inputs, dataset, loaders, models, optimizer...
        vars(self).update(vars(setup))
        self.setup = setup

    def _save(self, name: str, epoch: int, step: int) -> None:
        """Write checkpoints/{name}.pt (rank 0), only from a run whose losses and weights are all
        finite so far; a dry run writes none."""
        self._check_finite(epoch)
        if self.run is None or self.config.dry_run:
            return
        if not all(bool(torch.isfinite(t).all()) for t in self.raw_model.state_dict().values()
                   if t.is_floating_point()):
            raise TrainingError(self._diverged(f"the weights became NaN or infinite by epoch "
                                               f"{epoch + 1 if step else epoch}"))
        with self.stop.saving():  # a second Ctrl-C now waits for the file to be complete
            save_checkpoint(trainer_state(self, epoch, step), self.run.checkpoints / f"{name}.pt")
        if name == "last":
            self._saved = (epoch, step)

    def _elapsed(self) -> float:
        return self._elapsed_before + (time.perf_counter() - self._t_start)

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, state: dict[str, Any] | None = None) -> TrainResult:
        """Train from scratch, or from a checkpoint's state; returns the result."""
        self.run: RunFolder | None = None
        lock = None
        self.stop.__enter__()  # Ctrl-C and SIGTERM are ours until the run ends
        try:
            if self.out_dir is not None and ddp.is_rank0():
                # Claimed before the data loads: a second run on the folder fails in a moment.
                lock, self._made = claim_run_folder(self.out_dir, resuming=state is not None,
                                                    overwrite=self.overwrite)
                self.run = RunFolder(self.out_dir, tensorboard=self.config.tensorboard,
                                     plot=self.config.plot)
            # A resume failing again (a disk still full) gets the resume hint too.
            with _output_errors(self.out_dir, lambda: self._started or self.source is not None):
                self.setup()
                if state is not None:
                    self._check_resumed_data(state)
                return self._fit(state)
        finally:
            self.stop.__exit__(None, None, None)
            if self.run is not None:
                self.run.close()
            if lock is not None:
                lock.release()
            if not self._started:  # refused or stopped before training: leave no empty folder
                _remove_empty(self._made)
            self.close()

    def close(self) -> None:
        """Put back the process-wide settings of setup() and leave the process group."""
        self._settings.close()
        ddp.teardown(self.dist)

    def _check_resumed_data(self, state: dict[str, Any]) -> None:
        """The dataset actually loaded (a Dataset object may be passed) is the recorded one."""
        saved = state["config"].get("dataset")
        if saved and _dataset_key(saved) != _dataset_key(self.config.dataset):
            raise ConfigError(f"{self.out_dir} was trained on {saved!r}, not on "
                              f"{self.config.dataset!r}; resume it with its own data")

    def _fit(self, state: dict[str, Any] | None) -> TrainResult:
        cfg = self.config
        self.history: list[dict[str, Any]] = []
        self.steps_log: list[dict[str, Any]] = []  # training loss and lr within epochs
        self.final_evaluation: Any = None  # see _end_epoch
        self.best: dict[str, Any] | None = None
        self.global_step, self._elapsed_before = 0, 0.0
        self.meter = EpochMeter(self.device, self.dist.world_size)
        self._t_start = time.perf_counter()
        start_epoch, start_step = 0, 0
        if state is not None:
            start_epoch, start_step = load_trainer_state(self, state)
            if (self.run is not None and self.best is not None and not start_step
                    and self.best.get("epoch") == start_epoch):
                # last.pt holds the best epoch's weights: write best.pt again, since a fault
                # (a full disk) between the two writes may have cost it.
                with self.stop.saving():
                    save_checkpoint(trainer_state(self, start_epoch, 0),
                                    self.run.checkpoints / "best.pt")
        steps = len(self.loader) if not cfg.limit_batches else min(cfg.limit_batches,
                                                                   len(self.loader))
        epochs = cfg.epochs
        if cfg.dry_run:
            steps, epochs = 1, 1
        self.steps_per_epoch, self.total_steps = steps, steps * epochs
        progress = Progress(cfg.progress if self.dist.is_main else "none", epochs, self.stream)
        progress.earlier(self.history)  # a resumed run's epochs so far (the notebook view's)
        if self.device.type == "cpu":
            progress.long_run_hint = (
                "That is long for a CPU: fewer --epochs, a smaller --resize or --train-samples "
                "shorten it, and the 28x28 models of `cnnlab suite chapter8` train in minutes")
        if self.run is not None:
            self.run.write_config({**cfg.to_dict(), "model_kwargs": self.model_kwargs,
                                   **self.record}, self.setup.environment())
            for name, content in self.files.items():
                write_atomic(self.run.path / name, content)
            self.run.write_history(self.history, self.steps_log)
            self.run.tensorboard(purge_step=self.global_step if state is not None else None)
        self.stop.in_loop = self._started = True  # a first Ctrl-C now finishes the step, saves
        start = "" if state is None else f", from {_where(start_epoch, start_step)}" + (
            f" ({self.source.name})" if self.source and self.source.name != "last.pt" else "")
        progress.message(("resuming " if state is not None else "training ")
                         + self.setup.describe(steps, epochs) + start)
        for note in self.notes:
            progress.message(note)
        stopped_early = False
        try:
            for epoch in range(start_epoch, epochs):
                self._train_epoch(epoch, start_step if epoch == start_epoch else 0, progress)
                row = self._end_epoch(epoch, epochs, progress)
                if self.stop.signum:
                    self._raise_interrupted(epoch + 1, 0)
                if self._should_stop(row) or (self.on_epoch and self.on_epoch(dict(row))):
                    stopped_early = True
                    break
        finally:
            self.stop.in_loop = False
            progress.close()
        return self._finish(stopped_early)

    def _train_epoch(self, epoch: int, start: int, progress: Progress) -> None:
        cfg, model = self.config, self.model
        self.meter.start(fresh=start == 0)
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.loader.set_epoch(epoch)
        progress.start_epoch(epoch + 1, self.steps_per_epoch, start)
        model.train()
        for step, (X, y) in enumerate(self.loader.batches(epoch, start=start), start=start):
            if step >= self.steps_per_epoch:
                break
            lr = lr_at(self.global_step, self.total_steps, cfg.lr, cfg.schedule,
                       round(cfg.warmup_epochs * self.steps_per_epoch))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            out, loss = self.step(X, y)
            self.global_step += 1
            # Metrics and the NaN watch stay on the device: no host sync here.
            with torch.no_grad():
                loss_d = loss.detach()
                self.meter.add(loss_d, out, y)
                bad = ~torch.isfinite(loss_d) & (self._bad_step < 0)
                self._bad_step = torch.where(bad, step, self._bad_step)
            done = step + 1
            if done % cfg.log_every == 0 and done < self.steps_per_epoch:
                self._log_progress(epoch, done, progress)
            elif done in EARLY_TICKS and done < min(cfg.log_every, self.steps_per_epoch):
                self._tick_progress(done, progress)
            if self._interrupt_requested(done):
                self._save("last", epoch, done)
                self._raise_interrupted(epoch, done)
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 \
                    and done < self.steps_per_epoch:
                self._save("last", epoch, done)

    def step(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch at the lr the param groups hold: (logits, loss)."""
        cfg, opt = self.config, self.optimizer
        if self.thread_policy is not None:
            self.thread_policy.step()
        with autocast(self.device, self.amp):
            out = self.model(X)
            loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
        self.scaler.step(opt)
        self.scaler.update()
        opt.zero_grad(set_to_none=True)
        return out, loss

    def _tick_progress(self, done: int, progress: Progress) -> None:
        """An early look at the pace, before the first log_every step: on a slow network that
        step can be many minutes away, and the forecast should not wait for it."""
        progress.update(done, self.meter.stats()[0])

    def _log_progress(self, epoch: int, done: int, progress: Progress) -> None:
        """Every log_every steps: one host sync for the bar, TensorBoard and the NaN watch."""
        self._check_finite(epoch)
        stats, loss_sum = self.meter.stats()
        progress.update(done, stats)
        point = self._step_point(epoch, done, loss_sum)
        if self.run is not None:
            self.run.log_scalars({"step/train_loss": point["train_loss"],
                                  "step/lr": point["lr"]}, self.global_step)

    def _step_point(self, epoch: int, done: int, loss_sum: float) -> dict[str, Any]:
        """Log the mean training loss of the steps since the last point, and the lr now."""
        point = {"epoch": round(epoch + done / self.steps_per_epoch, 4), "step": self.global_step,
                 "train_loss": self.meter.since_point(loss_sum),
                 "lr": self.optimizer.param_groups[0]["lr"]}
        self.steps_log.append(point)
        return point

    def _check_finite(self, epoch: int) -> None:
        bad = int(self._bad_step)
        if bad >= 0:
            raise TrainingError(self._diverged(
                f"the loss became NaN or infinite at epoch {epoch + 1}, step {bad + 1}"))

    def _diverged(self, what: str) -> str:
        """The message of a run that diverged: what happened, what to do, what is kept."""
        if self.run is None:
            kept = "no output folder, so nothing was saved"
        elif self._saved is None:
            kept = "no checkpoint was written before it"
        else:
            kept = (f"checkpoints/last.pt, from {_where(*self._saved)}, is the last one with "
                    "finite weights")
        return (f"{what}; lower the learning rate (lr={self.config.lr}) or clip gradients "
                f"(grad_clip=1.0); {kept}")

    def _end_epoch(self, epoch: int, epochs: int, progress: Progress) -> dict[str, Any]:
        cfg = self.config
        self._check_finite(epoch)
        meter = self.meter
        self._step_point(epoch, self.steps_per_epoch, float(meter.sums[0]))
        sums = torch.cat([meter.sums, meter.sums.new_tensor([meter.count])])
        loss_sum, correct, n = ddp.all_reduce_sum(sums, self.dist).tolist()
        train_seconds = meter.elapsed()
        row: dict[str, Any] = {"epoch": epoch + 1, "step": self.global_step,
                               "train_loss": loss_sum / n, "train_acc": correct / n}
        last = epoch + 1 == epochs
        if cfg.eval_every and (last or (epoch + 1) % cfg.eval_every == 0):
            limit = 1 if cfg.dry_run else cfg.limit_batches
            if last and self.val_is_test and not limit and not self.dist.enabled:
                # The final model on the whole test split: keep every prediction, so the report
                # written next reuses them instead of evaluating the same model again.
                ev = evaluation(self.raw_model, self.val_loader, self.device, self.amp,
                                self.dataset.name)
                self.final_evaluation = ev
                row.update(val_loss=ev.loss, val_acc=ev.acc, val_images=ev.n)  # as below
            else:
                val = ddp.all_reduce_sum(evaluate_sums(self.raw_model, self.val_loader,
                                                    self.device, self.amp, limit), self.dist)
                v_loss, v_correct, v_n = val.tolist()
                row.update(val_loss=v_loss / v_n, val_acc=v_correct / v_n, val_images=int(v_n))
            if not math.isfinite(row["val_loss"]):  # weights finite but useless (e.g. 1e25)
                raise TrainingError(self._diverged(
                    f"the validation loss became NaN or infinite after epoch {epoch + 1}"))
        seconds = meter.elapsed()
        if self.device.type == "cpu":  # the CPU threads used, averaged over the epoch's time
            row["threads"] = round(self.thread_policy.mean_threads() if self.thread_policy
                                   else float(torch.get_num_threads()), 2)
        row.update(lr=self.optimizer.param_groups[0]["lr"], seconds=round(seconds, 4),
                   train_seconds=round(train_seconds, 4),
                   images_per_second=round(n / max(train_seconds, 1e-9), 1))
        self.history.append(row)
        improved = better(row, self.best, self.config.monitor)
        if improved:
            self.best = dict(row)
        meter.end()
        self._save("last", epoch + 1, 0)
        if improved:
            self._save("best", epoch + 1, 0)
        if self.run is not None:
            self.run.write_history(self.history, self.steps_log)
            self.run.log_scalars({f"epoch/{k}": row.get(k) for k in
                                  ("train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                   "images_per_second")}, row["epoch"])
        progress.end_epoch(row)
        return row

    def _should_stop(self, row: dict[str, Any]) -> bool:
        """Early stopping: `patience` epochs since the best epoch."""
        if not self.config.patience or self.best is None:
            return False
        return row["epoch"] - self.best["epoch"] >= self.config.patience

    def _finish(self, stopped_early: bool) -> TrainResult:
        final = self.history[-1] if self.history else {}
        if self.val_is_test and final.get("val_acc") is not None:
            test_loss, test_acc = final["val_loss"], final["val_acc"]
            test_images = final.get("val_images")
        elif not self.config.score_test:  # validation-only (a sweep's trial): test unseen
            test_loss = test_acc = test_images = None
        else:
            limit = 1 if self.config.dry_run else self.config.limit_batches
            sums = ddp.all_reduce_sum(evaluate_sums(self.raw_model, self.test_loader, self.device,
                                                 self.amp, limit), self.dist)
            loss_sum, correct, n = sums.tolist()
            test_loss, test_acc, test_images = loss_sum / n, correct / n, int(n)
        result = TrainResult(history=self.history, final=final, best=self.best,
                             test_acc=test_acc, test_loss=test_loss, seconds=self._elapsed(),
                             out_dir=self.out_dir, config=self.config,
                             stopped_early=stopped_early, model=self.raw_model,
                             test_images=test_images,
                             test_split_images=len(self.dataset.test),
                             evaluation=self.final_evaluation)
        if self.run is not None:
            self.run.write_result(result.to_dict())
        # Every rank leaves together: a rank that tears down its gloo group while another is
        # still inside a collective aborts the process ("terminate called ...").
        ddp.barrier(self.dist)
        return result

    # -- Ctrl-C and SIGTERM --------------------------------------------------------------------

    def _interrupt_requested(self, done: int) -> bool:
        if not self.dist.enabled:
            return bool(self.stop.signum)
        # Ranks must stop at the same step: agree at the log_every syncs.
        if done % self.config.log_every:
            return False
        flag = torch.tensor([float(self.stop.signum)], device=self.device)
        if ddp.all_reduce_sum(flag, self.dist).item() > 0:
            self.stop.signum = self.stop.signum or int(signal.SIGINT)
        return bool(self.stop.signum)

    def _raise_interrupted(self, epoch: int, step: int) -> None:
        signum = int(self.stop.signum) or int(signal.SIGINT)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        where = f"training stopped by {name} at {_where(epoch, step)}"
        hint = resume_hint(self.out_dir)
        if self.out_dir is None:
            raise TrainingInterrupted(f"{where}; no output folder, so nothing was saved", None,
                                      signum)
        if not hint:
            raise TrainingInterrupted(f"{where}; no checkpoint was saved", self.out_dir, signum)
        raise TrainingInterrupted(f"{where}; checkpoint saved; resume with: {hint}",
                                  self.out_dir, signum)


@contextlib.contextmanager
def _output_errors(out_dir: Path | None, started: Callable[[], bool]) -> Iterator[None]:
    """A failed write as one OutputError naming the file, and, once training has started, the
    command that resumes the run when it is fixed."""
    def error(message: str, path: Any) -> OutputError:
        hint = resume_hint(out_dir)
        if hint and started():
            message += f"; once that is fixed, resume with: {hint}"
        return OutputError(message, path=path, run_dir=out_dir)

    try:
        yield
    except OutputError as err:  # a write failed: say where, and how to go on
        raise error(str(err), err.path) from None
    except OSError as err:  # a write the atomic writer did not make (folders, TensorBoard)
        inside = err.filename and out_dir is not None and Path(
            os.path.abspath(err.filename)).is_relative_to(out_dir.absolute())
        if not (is_storage_error(err) and inside):
            raise
        raise error(str(output_error(err, err.filename)), err.filename) from None


def _remove_empty(paths: list[Path]) -> None:
    """Remove these files and empty folders, last first; anything that holds more stays."""
    for path in reversed(paths):
        try:
            path.rmdir() if path.is_dir() else path.unlink()
        except OSError:
            pass


def _where(epoch: int, step: int) -> str:
    """A checkpoint's position in words: (1, 7) -> 'epoch 2, step 7'; (3, 0) -> 'the end of
    epoch 3'."""
    if step:
        return f"epoch {epoch + 1}, step {step}"
    return f"the end of epoch {epoch}" if epoch else "the start"

