"""Learning-rate schedules as pure functions of the global step (a checkpoint stores the step)."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "constant",
          warmup_steps: int = 0) -> float:
    """Learning rate for the optimizer step number `step` (0-based) of `total_steps`.

    constant: lr after an optional linear warmup. cosine: warmup, then cosine decay to 0.
    onecycle: linear ramp from lr/25 to lr over warmup_steps (default 30% of the run), then
    cosine decay to lr/25/1e4, as torch's OneCycleLR with its default factors.
    """
    total_steps = max(total_steps, 1)
    if schedule == "onecycle":
        ramp = warmup_steps or max(1, round(0.3 * total_steps))
        start, end = lr / 25, lr / 25 / 1e4
        if step < ramp:
            return start + (lr - start) * step / ramp
        t = min(1.0, (step - ramp) / max(1, total_steps - ramp))
        return end + (lr - end) * 0.5 * (1 + math.cos(math.pi * t))
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps  # never exactly 0: the first step already learns
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return lr * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {schedule!r}")


def format_lr(lr: float) -> str:
    """A learning rate as people compare them along a schedule: always '1.00e-01', '6.54e-07'.

    One notation for every value, so 0.09946 never prints next to 6.543e-07.
    """
    return f"{lr:.2e}"
