"""The learning-rate range test (Smith 2015; fastai's and Lightning's `lr_find`).

    found = lr_find("lenet", "fashion-mnist", TrainConfig())
    found.suggestion, found.rule        # 0.41, 'steepest descent of the smoothed loss'
    found.figure                        # loss against lr (log x), the suggestion marked

A fresh model, built by the engine exactly as `train` would build it (data, model, optimizer,
precision, threads), trains `steps` steps while the learning rate grows exponentially from
`start_lr` to `end_lr`; the test stops early once the smoothed loss passes `diverge` times its
best. A ramp that ends without diverging is still read when its smoothed loss fell and rose
again (AdamW's loss often climbs without exploding); a flat curve, or one still falling at the
end, is a TrainingError. It never touches the weights of a model passed in (it trains a copy)
and costs at most `steps` training steps (MAX_STEPS at most).

In a notebook (progress="auto" or "notebook") the cell shows where the test is (step, lr,
smoothed loss; at most one update a second) and at the end the suggestion and the figure, once:
the figure is the view's own picture, not pyplot's, so nothing draws it again, and the result's
repr is one line. Elsewhere lr_find prints nothing (the CLI prints its result).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.errors import ConfigError, TrainingError
from cnnlab.train_config import TrainConfig

__all__ = ["MAX_STEPS", "RULES", "LRFind", "lr_find", "suggest_lr"]

MAX_STEPS = 200  # the test's cost is bounded by this many training steps
# How a suggestion is read off the curve (the name, then the words the CLI and report print).
RULES = {"steepest": "steepest descent of the smoothed loss",
         "min/10": "a tenth of the learning rate at the smoothed loss's minimum"}
SKIP_START = 10  # the first points: the average is still settling (Lightning skips 10 too)
FELL = 0.9  # a curve whose smoothed loss never went below this share of its start is flat
TURNED = 1.1  # a ramp that ends this far above its minimum has turned up: readable


@dataclass
class LRFind:
    """A range test's curve and the learning rate it suggests."""

    lrs: list[float]  # the learning rate of each step
    losses: list[float]  # each step's training loss as measured
    smoothed: list[float]  # the bias-corrected exponential average of losses (beta)
    suggestion: float  # the learning rate suggested for training
    rule: str  # the key in RULES that chose it (after a fallback, the one used)
    rule_text: str  # the rule in words, with a fallback's reason
    stopped: str  # "diverged" (past diverge x its best loss, or not finite) or "turned" (the
    # ramp ended with the smoothed loss risen TURNED x above its minimum, not diverged)
    settings: dict[str, Any] = field(default_factory=dict)  # start_lr, end_lr, steps, ...

    def __repr__(self) -> str:  # a notebook shows this: one line, not the whole curve
        return (f"LRFind(suggestion={self.suggestion:.3g}, rule={self.rule!r}, "
                f"steps={self.steps}, stopped={self.stopped!r})")

    @property
    def steps(self) -> int:
        """Training steps the test took."""
        return len(self.lrs)

    @property
    def figure(self) -> Any:
        """Loss against learning rate (log x) with the suggestion marked: a matplotlib Figure."""
        from cnnlab.plots import lr_find_figure

        return lr_find_figure(self.lrs, self.losses, self.smoothed, self.suggestion,
                              self.rule_text)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record written to lr-find.json."""
        return {"suggestion": self.suggestion, "rule": self.rule, "rule_text": self.rule_text,
                "stopped": self.stopped, "steps": self.steps, "settings": self.settings,
                "lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LRFind:
        """A range test read back from its to_dict() record (lr-find.json, suite.json)."""
        return cls(list(d["lrs"]), list(d["losses"]), list(d["smoothed"]), d["suggestion"],
                   d["rule"], d["rule_text"], d["stopped"], dict(d.get("settings") or {}))

    def run_files(self) -> dict[str, Any]:
        """What `train(record=..., files=...)` writes of this test into a run folder: config.json's
        lr_find entry, lr-find.png and lr-find.json."""
        from cnnlab.plots import figure_png
        from cnnlab.runlog import to_json

        return {"record": {"lr_find": self.summary()},
                "files": {"lr-find.png": figure_png(self.figure),
                          "lr-find.json": to_json(self.to_dict())}}

    def summary(self) -> dict[str, Any]:
        """The few entries a run's config.json records (the curve lives in lr-find.json)."""
        return {"lr": self.suggestion, "rule": self.rule_text, "steps": self.steps,
                "stopped": self.stopped, "curve": "lr-find.json"}


def _train_steps(trainer: Any, lrs: Iterable[float]) -> Iterator[float]:
    """Set the Trainer up as fit does (it has no run folder), then train one step per learning
    rate in lrs and yield each step's loss (one host sync a step). The process-wide settings come
    back when the generator ends or is closed."""
    try:
        trainer.setup()
        trainer.model.train()
        lrs = iter(lrs)
        for epoch in itertools.count():
            trainer.loader.set_epoch(epoch)
            for X, y in trainer.loader.batches(epoch):
                lr = next(lrs, None)
                if lr is None:
                    return
                for group in trainer.optimizer.param_groups:
                    group["lr"] = lr
                yield float(trainer.step(X, y)[1].detach())
    finally:
        trainer.close()


def lr_find(model: nn.Module | str, data: Any = None, config: TrainConfig | None = None, *,
            model_kwargs: dict[str, Any] | None = None, start_lr: float = 1e-7,
            end_lr: float = 10.0, steps: int = 100, diverge: float = 4.0, beta: float = 0.98,
            rule: str = "steepest", preflight: Any = None, progress: str = "auto") -> LRFind:
    """Run the range test for model (a zoo name or a module, which is copied) on data.

    config gives everything but the learning rate (optimizer, batch size, precision, threads,
    seed, train_samples, val_size: the test trains on the run's training split only).
    progress: "auto" or "notebook" shows the test in a notebook's cell; anything else, nothing.
    """
    from cnnlab.train import Trainer

    config = (config or TrainConfig()).validate()
    _check_settings(start_lr, end_lr, steps, diverge, beta, rule)
    if isinstance(model, nn.Module):
        model = copy.deepcopy(model)  # the caller's weights stay as they are
    # One step at a time, no checkpoint, no validation, no progress lines.
    trainer = Trainer(model, data, config.replace(progress="none", lr=start_lr), None,
                      model_kwargs=model_kwargs, preflight=preflight)
    ramp = [start_lr * (end_lr / start_lr) ** (i / max(steps - 1, 1)) for i in range(steps)]
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, stopped = 0.0, math.inf, "end"
    view = _view(progress, model, start_lr, end_lr, steps)
    run = _train_steps(trainer, ramp)
    try:
        for lr, loss in zip(ramp, run, strict=False):
            if not math.isfinite(loss) and not lrs:
                raise TrainingError(f"the loss is {loss} at the first step, at lr={start_lr:g}: "
                                    "the model or its data is broken before any learning rate "
                                    "matters; check the inputs, or try a lower --start-lr")
            lrs.append(lr)
            losses.append(loss)
            if not math.isfinite(loss):
                stopped = "diverged"
                smoothed.append(math.inf)
                break
            avg = beta * avg + (1 - beta) * loss
            smoothed.append(avg / (1 - beta ** len(lrs)))
            best = min(best, smoothed[-1])
            if view is not None:
                view.set_progress(f"step {len(lrs)} of {steps}  lr {lr:.3g}  smoothed loss "
                                  f"{smoothed[-1]:.4f}", len(lrs) / steps)
                view.refresh()
            if len(lrs) > SKIP_START and smoothed[-1] > diverge * best:
                stopped = "diverged"
                break
    finally:
        run.close()  # the engine puts back the process-wide settings
    stopped = stopped if stopped == "diverged" else _read_end(lrs, smoothed, diverge)
    suggestion, used, text = suggest_lr(lrs, smoothed, rule)
    settings = {"start_lr": start_lr, "end_lr": end_lr, "steps": steps, "diverge": diverge,
                "beta": beta, "rule": rule}
    found = LRFind(lrs, losses, [s if math.isfinite(s) else None for s in smoothed],  # JSON
                   suggestion, used, text, stopped, settings)
    if view is not None:
        view.finish(f"suggested lr {suggestion:.3g} ({text}); {found.steps} steps, {stopped} at "
                    f"lr {lrs[-1]:.3g}")
        view.refresh(force=True)
        view.show_figure(found.figure, "<lr-find>")
    return found


def _view(progress: str, model: Any, start_lr: float, end_lr: float, steps: int) -> Any:
    """The test's live view in a notebook (within a suite, a part of the suite's), else None."""
    from cnnlab.notebook import live_view
    from cnnlab.runsview import resolve

    if resolve(progress, None)[0] != "notebook":
        return None
    view = live_view(columns=(), picture=None)
    name = model if isinstance(model, str) else type(model).__name__
    view.message(f"lr-find for {name}: at most {steps} steps, lr from {start_lr:g} to {end_lr:g}")
    return view


def _read_end(lrs: list[float], smoothed: list[float], diverge: float) -> str:
    """How a ramp that never diverged ended: "turned" when the smoothed loss fell and then rose
    again (an adaptive optimizer's loss often climbs without exploding); else TrainingError."""
    start, low = smoothed[SKIP_START], min(smoothed)
    where = f"over {len(lrs)} steps from lr={lrs[0]:g} to {lrs[-1]:g}"
    if low > FELL * start:
        raise TrainingError(f"the smoothed loss never fell {where} (from {start:.3g} to at best "
                            f"{low:.3g}): this model does not start learning within the range "
                            "test at any of these learning rates; try more --steps, another "
                            "optimizer, or a learning rate of the book's")
    if smoothed[-1] < TURNED * low:
        raise TrainingError(f"the loss never diverged {where}: the smoothed loss was still at "
                            f"{smoothed[-1]:.3g}, within {diverge:g}x of its best ({low:.3g}) "
                            "and not rising, so the curve has no right edge to read a "
                            "suggestion from; raise --end-lr or --steps")
    return "turned"


def suggest_lr(lrs: list[float], smoothed: list[float], rule: str = "steepest"
               ) -> tuple[float, str, str]:
    """(lr, rule used, the rule in words) read off a range test's smoothed loss.

    steepest: where the smoothed loss falls fastest against log(lr) (a slope over a twentieth
    of the ramp each side), between the SKIP_START-th point and the minimum (after it the loss
    is already climbing); with too few points before the minimum, min/10 instead.
    min/10: a tenth of the lr at the minimum, the rule of thumb of fastai's first course.
    """
    finite = [i for i, s in enumerate(smoothed) if s is not None and math.isfinite(s)]
    low = min(finite, key=lambda i: smoothed[i])
    if rule == "steepest":
        window = [i for i in finite if SKIP_START <= i <= low]
        # the slope over a span of a twentieth of the ramp each side: a step's noise (a dip of
        # 0.03 between neighbours 0.08 decades apart) must not outweigh the real descent
        w = max(1, len(lrs) // 20)
        if len(window) > 2 * w:
            logs = [math.log10(lrs[i]) for i in window]
            vals = [smoothed[i] for i in window]
            slopes = {k: (vals[k + w] - vals[k - w]) / (logs[k + w] - logs[k - w])
                      for k in range(w, len(window) - w)}
            k = min(slopes, key=slopes.__getitem__)
            return lrs[window[k]], "steepest", RULES["steepest"]
        text = (f"{RULES['min/10']} (the loss reached its minimum after only {low + 1} steps, "
                "too early for its steepest descent)")
        return lrs[low] / 10, "min/10", text
    return lrs[low] / 10, "min/10", RULES["min/10"]


def _check_settings(start_lr: float, end_lr: float, steps: int, diverge: float, beta: float,
                    rule: str) -> None:
    if not 0 < start_lr < end_lr or not math.isfinite(end_lr):
        raise ConfigError(f"the range test needs 0 < start_lr < end_lr, got start_lr={start_lr:g}, "
                          f"end_lr={end_lr:g}")
    if not SKIP_START + 3 <= steps <= MAX_STEPS:
        raise ConfigError(f"steps={steps}: the range test takes {SKIP_START + 3} to {MAX_STEPS} "
                          "steps (fastai and Lightning take 100)")
    if not diverge > 1:
        raise ConfigError(f"diverge={diverge:g} must be above 1 (a multiple of the best loss)")
    if not 0 <= beta < 1:
        raise ConfigError(f"beta={beta:g} must be in [0, 1) (the loss's smoothing)")
    if rule not in RULES:
        raise ConfigError(f"rule={rule!r} is not one of {', '.join(RULES)}")
