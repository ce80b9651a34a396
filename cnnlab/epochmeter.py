"""An epoch's running training figures, kept on the device so a step costs no host sync: the
loss and accuracy sums, the images, the time, and the window of the steps log's last point."""

from __future__ import annotations

import time

import torch

from cnnlab.run import _acc_dtype


class EpochMeter:
    """The Trainer's meter of the epoch under way; its fields go into every checkpoint."""

    def __init__(self, device: torch.device, world_size: int = 1):
        self.sums = torch.zeros(2, dtype=_acc_dtype(device), device=device)  # (loss, correct)
        self.count = 0  # images of this epoch, in every session of it
        self.window: tuple[float, int] = (0.0, 0)  # (loss sum, count) at the last steps-log point
        self.before = 0.0  # seconds of this epoch in earlier sessions (before a resume)
        self.samples = 0  # images since this process started the epoch (for images/s)
        self.world_size = world_size
        self.t0 = time.perf_counter()

    def start(self, fresh: bool) -> None:
        """A session of an epoch begins, at its first step (fresh) or mid-epoch (a resume)."""
        if fresh:
            self.sums.zero_()
            self.count = 0
            self.before = 0.0
        self.t0 = time.perf_counter()
        self.samples = 0
        if fresh:  # a point is the mean loss since the one before
            self.window = (0.0, 0)

    def end(self) -> None:
        """The epoch's row is written: the checkpoint at its end holds a fresh epoch."""
        self.sums.zero_()
        self.count = 0
        self.before = 0.0
        self.t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """One step's batch (call under no_grad; batch sizes are known on the host: no sync)."""
        self.count += y.shape[0]
        self.samples += y.shape[0]
        self.sums[0] += loss * y.shape[0]
        self.sums[1] += (out.argmax(1) == y).sum()

    def elapsed(self) -> float:
        """Seconds of this epoch, earlier sessions included."""
        return self.before + (time.perf_counter() - self.t0)

    def stats(self) -> tuple[dict[str, float], float]:
        """The epoch's running loss, accuracy and images/s (one host sync), and its loss sum."""
        loss_sum, correct = self.sums.tolist()
        n = max(self.count, 1)
        secs = time.perf_counter() - self.t0
        return {"train_loss": loss_sum / n, "train_acc": correct / n,
                "images_per_second": self.samples * self.world_size / max(secs, 1e-9)}, loss_sum

    def since_point(self, loss_sum: float) -> float:
        """The mean training loss since the steps log's last point, which this one becomes."""
        before_sum, before_n = self.window
        n = self.count - before_n
        self.window = (loss_sum, self.count)
        return (loss_sum - before_sum) / n if n else loss_sum / max(self.count, 1)
