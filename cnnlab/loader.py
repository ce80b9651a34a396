"""The in-memory loader: batches by index slicing, transforms on the whole batch on the device.

    loader = Loader(ds.train, 128, shuffle=True, resize=224, device="cuda")
    for epoch in range(10):
        for X, y in loader.batches(epoch):   # X float32 (128, C, 224, 224) in [0, 1]

Grayscale splits hold images (N, H, W) and give C = 1; colour splits hold (N, C, H, W).

Each batch is gathered by index from one uint8 tensor on the device, converted to float and
resized as a whole: no DataLoader workers, no per-sample Python. Resizing applies PIL's bilinear
filter (antialiased when shrinking) as two small matrix products, or for an integer enlargement
such as 28 -> 224 as 2-tap row interpolations, so it matches the book's `transforms.Resize` to
within PIL's uint8 rounding (<= 1/255). Measured figures: bench/bench_data.py.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError
from cnnlab.shapes import pair

__all__ = ["Augment", "Loader", "Split", "phase_plan", "resize_weights"]


# --- transforms on whole batches ---------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def resize_weights(in_size: int, out_size: int) -> torch.Tensor:
    """(out_size, in_size) matrix of PIL's bilinear resampling along one axis.

    PIL's triangle filter over pixel centres, widened by the scale factor when shrinking (that
    widening is the antialiasing); each row is normalized over the pixels inside the image.
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    w = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = 1 - ((torch.arange(lo, hi, dtype=torch.float64) + 0.5 - center) / support).abs()
        taps = taps.clamp(min=0)
        w[i, lo:hi] = taps / taps.sum()
    return w.float()


def phase_plan(w: torch.Tensor) -> list[tuple[int, float]] | None:
    """For an integer upscale, each output row phase r as (offset, weight), else None.

    Output row i*f + r of an f-times enlargement is lerp(Y[i-1+off], Y[i+off], weight) of the
    input rows Y padded by repeating the first and last rows. That is 2 multiply-adds per pixel
    instead of the dense product's in_size; the plan is used only if it rebuilds `w` exactly.
    """
    n_out, n_in = w.shape
    if n_out % n_in or n_out <= n_in or n_in < 3:
        return None
    f = n_out // n_in
    plan = []
    for r in range(f):
        row = w[f + r]  # an output row of input row 1, away from the borders
        taps = row.nonzero().squeeze(1).tolist()
        if len(taps) == 1:
            plan.append((taps[0], 0.0))
        elif len(taps) == 2 and taps[1] == taps[0] + 1:
            plan.append((taps[0], float(row[taps[1]])))
        else:
            return None
    rebuilt = torch.zeros(n_out, n_in + 2, dtype=torch.float64)
    for i in range(n_in):
        for r, (off, wt) in enumerate(plan):
            rebuilt[i * f + r, i + off] += 1 - wt
            rebuilt[i * f + r, i + off + 1] += wt
    rebuilt[:, 1] += rebuilt[:, 0]  # the repeated first and last rows
    rebuilt[:, n_in] += rebuilt[:, n_in + 1]
    return plan if torch.allclose(rebuilt[:, 1:n_in + 1].float(), w, atol=1e-6) else None


@dataclass(frozen=True)
class Augment:
    """Batched augmentation: random crop from a zero-padded image, random horizontal flip."""

    crop_padding: int = 0  # pixels of zeros on each side before cropping back to size
    hflip: bool = False  # flip each image left-right with probability 1/2

    def __post_init__(self) -> None:
        p = self.crop_padding
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0:
            raise ConfigError(f"crop_padding={p!r} must be an integer >= 0")
        if not isinstance(self.hflip, bool):
            raise ConfigError(f"hflip={self.hflip!r} must be True or False")

    def __bool__(self) -> bool:
        return bool(self.crop_padding or self.hflip)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch (B, C, H, W); random draws come from `generator` (a CPU one)."""
        b, c, h, w = x.shape
        if self.crop_padding:
            p = self.crop_padding
            dy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
            padded = F.pad(x, (p, p, p, p))  # (B, C, H+2p, W+2p), zeros outside
            # Every window as a view (B, C, 2p+1, 2p+1, H, W), then one window per image:
            # indexing by B offsets, not by B*H*W coordinates (5x faster).
            windows = padded.unfold(2, h, 1).unfold(3, w, 1)
            x = windows[torch.arange(b, device=x.device), :, dy, dx]  # (B, C, H, W)
        if self.hflip:
            flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
        return x


def _seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers, e.g. (seed, epoch, batch)."""
    return int(np.random.SeedSequence([v % 2**64 for v in values]).generate_state(
        2, np.uint64)[0] >> np.uint64(1))


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


@contextlib.contextmanager
def _cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch limited to `n` CPU threads (None: leave torch's setting)."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)  # a setting, not a new thread pool: ~0.1 us
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class Split:
    """One split in memory: images uint8 (N, H, W) greyscale or (N, C, H, W), labels int64 (N,).

    A Loader reads a Split and never changes it: batches are new tensors.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or not isinstance(self.labels, torch.Tensor):
            raise ConfigError("Split takes two tensors: images uint8 (N, [C,] H, W), labels (N,)")
        if self.images.dim() not in (3, 4) or self.labels.shape != (len(self.images),):
            raise ConfigError(f"Split needs images (N, H, W) or (N, C, H, W) and labels (N,), "
                              f"got {tuple(self.images.shape)} and {tuple(self.labels.shape)}")
        if self.images.dtype != torch.uint8:
            raise ConfigError(f"Split images must be uint8 pixels 0-255, got {self.images.dtype}; "
                              "convert with (x * 255).round().to(torch.uint8)")
        if self.labels.dtype.is_floating_point or self.labels.dtype == torch.bool:
            raise ConfigError(f"Split labels must be integer classes, got {self.labels.dtype}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        """1 for greyscale images (N, H, W), else C of (N, C, H, W)."""
        return 1 if self.images.dim() == 3 else int(self.images.shape[1])

    def subset(self, indices: torch.Tensor | Sequence[int] | np.ndarray) -> Split:
        """The samples at `indices`, in that order."""
        idx = torch.as_tensor(indices, device=self.images.device)
        idx = idx.nonzero().squeeze(1) if idx.dtype == torch.bool else idx.long()  # a mask too
        return Split(self.images[idx], self.labels[idx])

    def __repr__(self) -> str:
        return f"Split({len(self)} images of {tuple(self.images.shape[1:])})"



class Loader:
    """Batches of a split held on `device`: (X float32 (B, C, H, W), y int64 (B,)).

    The order of an epoch is a pure function of (seed, epoch) and the same on every rank; each
    rank takes its shard rank::world_size (equal lengths: padded by wrapping around, or cut with
    drop_last). Augmentation draws depend only on (seed, epoch, batch index), so
    `batches(epoch, start=k)` resumes exactly where batch k of an interrupted epoch would be.

    `threads` caps torch's CPU threads while a batch is prepared (default 1, None: torch's
    setting). A batch is a few milliseconds of work; split over OpenMP threads it gains little on
    a free machine and loses up to 10x when other processes share the cores, because every
    parallel op then waits for its slowest, descheduled thread. The model's own ops are untouched.
    """

    def __init__(self, split: Split, batch_size: int, *, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0,
                 resize: int | tuple[int, int] | None = None,
                 normalize: tuple[float, float] | None = None, augment: Augment | None = None,
                 device: str | torch.device = "cpu", channels_last: bool = False,
                 rank: int = 0, world_size: int = 1, threads: int | None = 1) -> None:
        self.batch_size = batch_size_ = _check_int("batch_size", batch_size, 1)
        self.threads = None if threads is None else _check_int("threads", threads, 1)
        self.world_size = _check_int("world_size", world_size, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ConfigError(f"rank={rank} must be below world_size={world_size}")
        self.seed = _check_int("seed", seed, -(2**63))
        if augment is not None and not isinstance(augment, Augment):
            raise ConfigError(f"augment={augment!r} must be an Augment(...) or None")
        self.shuffle, self.drop_last, self.augment = bool(shuffle), bool(drop_last), augment
        self.channels_last = bool(channels_last)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"device={device!r} is not a torch device ('cpu', 'cuda', "
                              "'cuda:1', 'mps')") from e
        self.images = split.images.to(self.device)  # uint8 (N, [C,] H, W): the split, once
        self.labels = split.labels.to(self.device)
        self.channels = 1 if split.images.dim() == 3 else int(split.images.shape[1])
        self.normalize = self._check_normalize(normalize, self.channels)
        self._norm = None if self.normalize is None else tuple(
            torch.tensor(v, dtype=torch.float32, device=self.device).view(-1, 1, 1)
            for v in self.normalize)  # (C or 1, 1, 1): broadcasts over (B, C, h, w)
        in_hw = tuple(split.images.shape[-2:])
        self.size = in_hw if resize is None else pair(resize, "resize")
        self._weights = self._phases = None
        if self.size != in_hw:
            # x -> wh @ x @ ww: wh resizes rows, ww columns (with the /255 folded in).
            self._weights = (resize_weights(in_hw[0], self.size[0]).to(self.device),
                             (resize_weights(in_hw[1], self.size[1]).T / 255).contiguous()
                             .to(self.device))
            self._phases = phase_plan(resize_weights(in_hw[0], self.size[0]))
        n, ws = len(split), self.world_size
        self.num_samples = n if ws == 1 else (n // ws if self.drop_last else -(-n // ws))
        self.epoch = 0
        self._len = (self.num_samples // batch_size_ if self.drop_last
                     else -(-self.num_samples // batch_size_))

    @staticmethod
    def _check_normalize(normalize: object, channels: int = 1
                         ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(mean, std), each one number or one per channel -> two tuples of floats."""
        if normalize is None:
            return None
        try:
            mean, std = (tuple(float(x) for x in np.asarray(v, dtype=np.float64).reshape(-1))
                         for v in normalize)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            mean = std = ()
        ok = (len(mean) in (1, channels) and len(std) in (1, channels)
              and all(math.isfinite(v) for v in mean + std) and min(std, default=0) > 0)
        if not ok:
            raise ConfigError(f"normalize={normalize!r} must be (mean, std) with std > 0, each one "
                              f"number or one per channel ({channels}), e.g. "
                              "dataset_stats('fashion-mnist')")
        return mean, std

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order `iter(loader)` yields."""
        self.epoch = _check_int("epoch", epoch, 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(self.epoch)

    def order(self, epoch: int) -> torch.Tensor | None:
        """This rank's sample indices for `epoch` (None: the split in its stored order)."""
        n, ws = len(self.labels), self.world_size
        if not self.shuffle and ws == 1:
            return None
        if self.shuffle:
            g = torch.Generator().manual_seed(_seed(self.seed, epoch))
            perm = torch.randperm(n, generator=g)
        else:
            perm = torch.arange(n)
        if ws > 1:
            total = self.num_samples * ws
            perm = perm[:total] if self.drop_last else perm[torch.arange(total) % max(n, 1)]
            perm = perm[self.rank::ws]
        return perm

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of `epoch`, beginning at batch index `start`."""
        epoch = _check_int("epoch", epoch, 0)
        start = _check_int("start", start, 0)
        if start > len(self):
            raise ConfigError(f"start={start} is past the {len(self)} batches of an epoch")
        return self._batches(epoch, start)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order(epoch)
        if order is not None:
            order = order.to(self.device)
        bs = self.batch_size
        threads = self.threads if self.device.type == "cpu" else None
        for i in range(start, len(self)):
            lo, hi = i * bs, min((i + 1) * bs, self.num_samples)
            with _cpu_threads(threads):  # only around our work, never around the yield
                if order is None:
                    x, y = self.images[lo:hi], self.labels[lo:hi].clone()  # not a view of ours
                else:
                    idx = order[lo:hi]
                    x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
                x = self.transform(x, epoch, i)
            yield x, y

    def transform(self, x: torch.Tensor, epoch: int = 0, index: int = 0) -> torch.Tensor:
        """uint8 (B, [C,] H, W) -> float32 (B, C, h, w): scale, resize, augment, normalize."""
        batch, c = x.shape[0], self.channels
        # A new tensor (the caller's split is never touched); channels resize like images.
        x = x.to(torch.float32, copy=True).reshape(batch * c, *x.shape[-2:])
        if self._weights is not None:
            wh, ww = self._weights
            b, h, w = x.shape
            # Columns first as one GEMM over all rows of the batch, then rows per image.
            x = torch.mm(x.reshape(b * h, w), ww).view(b, h, self.size[1])  # (B, H, w_out)
            if self._phases is None:
                x = torch.matmul(wh, x)  # (h_out, H) @ (B, H, w_out) -> (B, h_out, w_out)
            else:  # an integer enlargement (28 -> 224): 2 taps a row, 1.6x less CPU
                xp = torch.cat([x[:, :1], x, x[:, -1:]], 1)  # (B, H+2, w_out)
                out = x.new_empty(b, h, len(self._phases), self.size[1])
                for r, (off, wt) in enumerate(self._phases):
                    torch.lerp(xp[:, off:off + h], xp[:, off + 1:off + 1 + h], wt, out=out[:, :, r])
                x = out.view(b, self.size[0], self.size[1])
        else:
            x = x.div_(255)
        x = x.view(batch, c, *self.size)  # (B, C, h, w)
        if self.augment:
            g = torch.Generator().manual_seed(_seed(self.seed, epoch, index))
            x = self.augment(x, g)
        if self._norm is not None:
            mean, std = self._norm
            x = x.sub_(mean).div_(std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __repr__(self) -> str:
        return (f"Loader({len(self.labels)} samples -> {len(self)} batches of {self.batch_size}, "
                f"size={self.size}, shuffle={self.shuffle}, device={self.device}, "
                f"rank={self.rank}/{self.world_size})")
