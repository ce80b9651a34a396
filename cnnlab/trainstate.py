"""A Trainer's checkpoint state: what it saves to continue at (epoch, step), and reading it back.

Both functions take the Trainer and touch only its attributes: its state, kept out of its loop."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.checkpoint import FORMAT_VERSION, rng_state, set_rng_state
from cnnlab.errors import TrainingError
from cnnlab.run import _acc_dtype


def trainer_state(trainer: Any, epoch: int, step: int) -> dict[str, Any]:
    """Everything needed to continue exactly at (epoch, step); tensors and plain data only."""
    return {"format": FORMAT_VERSION, "epoch": epoch, "step": step,
            "global_step": trainer.global_step,
            "model": trainer.raw_model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scheduler": {"name": trainer.config.schedule, "step": trainer.global_step},
            "scaler": trainer.scaler.state_dict(), "rng": rng_state(),
            "epoch_sums": trainer.meter.sums.detach().cpu(), "epoch_count": trainer.meter.count,
            "epoch_seconds": trainer.meter.elapsed(),
            "config": trainer.config.to_dict(), "model_kwargs": trainer.model_kwargs,
            "record": trainer.record,
            "cpu_threads": torch.get_num_threads(),  # a resume keeps the run's count
            "history": trainer.history, "steps_log": trainer.steps_log,
            "steps_window": list(trainer.meter.window), "best": trainer.best,
            "elapsed": trainer._elapsed(),
            "world_size": trainer.dist.world_size}

def load_trainer_state(trainer: Any, state: dict[str, Any]) -> tuple[int, int]:
    """Put a trainer_state back into a set-up Trainer; returns its (epoch, step)."""
    try:
        trainer.raw_model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        trainer.meter.sums = state["epoch_sums"].to(trainer.device, _acc_dtype(trainer.device))
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as err:
        raise TrainingError(f"checkpoint {trainer.source or 'state'} does not fit this model "
                            f"and optimizer: {_first_problem(err)}; it is damaged or from "
                            "another run") from None
    trainer.global_step = state["global_step"]
    trainer.history, trainer.best = list(state["history"]), state["best"]
    trainer.steps_log = list(state.get("steps_log") or [])
    trainer.meter.window = tuple(state.get("steps_window") or (0.0, 0))
    trainer._elapsed_before = state["elapsed"]
    trainer.meter.count = state["epoch_count"]
    trainer.meter.before = state["epoch_seconds"] if state["step"] else 0.0
    if trainer.source is None or trainer.source.name == "last.pt":
        trainer._saved = (state["epoch"], state["step"])  # what last.pt holds now
    return state["epoch"], state["step"]


def _first_problem(err: BaseException) -> str:
    """The telling part of a load_state_dict error: the first missing key or mis-shaped tensor."""
    if isinstance(err, KeyError):
        return f"missing entry {err.args[0]!r}"
    text = " ".join(str(err).split())
    for marker in ("Missing key(s)", "Unexpected key(s)", "size mismatch"):
        at = text.find(marker)
        if at >= 0:
            return text[at:at + 200].split(". ", 1)[0].rstrip(".")
    return text[:200]
