"""The book's Module / Classifier / Trainer: the book's training loop, with the same hooks.

Differences from d2l 1.0.3 that a user can observe (all deliberate):
- plotted points are sample-weighted: `val_acc` is the accuracy over the validation samples,
  not the mean of per-batch accuracies (they differ when the last batch is smaller);
- losses stay on the device until a point is plotted (the book reads every step back to the
  host), so a training step never waits for the GPU;
- gradient clipping uses `clip_grad_norm_` (same rule, no host sync);
- `fit` runs under the engine's speed settings that leave the book's numbers as they are
  (cnnlab.device.run_settings): on a CPU the load-aware thread count of `cnnlab train` (fewer
  threads while other programs hold cores, which keeps a busy laptop from running a small
  network many times slower), on CUDA cuDNN's autotuner; both are put back when `fit` returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.d2l import _base
from cnnlab.d2l._base import HyperParameters, ProgressBoard
from cnnlab.device import run_settings
from cnnlab.models import init_cnn  # the book's rule: Xavier for layers that have weights

__all__ = ["Module", "Classifier", "Trainer", "init_cnn", "init_cnn_lazy"]

_LAZY_TYPES = (nn.LazyLinear, nn.LazyConv2d)


def _xavier_after_materialize(module: nn.Module, args: Any) -> None:
    """Forward pre-hook that runs right after a Lazy layer has created its weights."""
    nn.init.xavier_uniform_(module.weight)
    module._cnnlab_init_hook.remove()
    del module._cnnlab_init_hook


def init_cnn_lazy(module: nn.Module) -> None:
    """Opt-in: `init_cnn` that also reaches Lazy layers which have not run yet.

    The book's `init_cnn` (d2l 1.0.3, and `d2l.init_cnn` here) only touches layers that already
    have weights, so `net.apply(d2l.init_cnn)` in an `__init__` full of Lazy layers (the book's
    AlexNet, DenseNet, RegNet ...) leaves PyTorch's default init in place. Pass this function
    instead to get Xavier there too: a Lazy layer has no weight shape until its first forward
    pass, so its init is deferred to that moment through a forward pre-hook registered after the
    layer's own materializing hook.
    """
    if type(module) in _LAZY_TYPES and isinstance(module.weight,
                                                  nn.parameter.UninitializedParameter):
        if not hasattr(module, "_cnnlab_init_hook"):
            module._cnnlab_init_hook = module.register_forward_pre_hook(
                _xavier_after_materialize)
        return
    init_cnn(module)


class Module(nn.Module, HyperParameters):
    """The base class of models: a network, its loss, its optimizer, and a board to plot on."""

    def __init__(self, plot_train_per_epoch: int = 2, plot_valid_per_epoch: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training objective (subclasses define it)."""
        raise NotImplementedError

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803
        """Run `self.net`."""
        assert hasattr(self, "net"), "Neural network is defined"
        return self.net(X)

    def plot(self, key: str, value: Any, train: bool) -> None:
        """Plot a point of `key` ('loss', 'acc', ...) on the board, weighted by the batch size."""
        assert hasattr(self, "trainer"), "Trainer is not inited"
        trainer = self.trainer
        self.board.xlabel = "epoch"
        if train:
            x = trainer.train_batch_idx / trainer.num_train_batches
            n = trainer.num_train_batches / self.plot_train_per_epoch
        else:
            x = trainer.epoch + 1
            n = trainer.num_val_batches / self.plot_valid_per_epoch
        self.board.draw(x, value, ("train_" if train else "val_") + key,
                        every_n=max(1, int(n)), weight=getattr(trainer, "batch_weight", 1))

    def training_step(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        """Loss of one batch (plotted), which the Trainer back-propagates."""
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor]) -> None:
        """Plot the loss of one validation batch."""
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Minibatch SGD at `self.lr`, as the book."""
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def apply_init(self, inputs: Sequence[torch.Tensor], init: Callable | None = None) -> None:
        """Run a dry batch (materializes Lazy layers), then apply `init` to every layer."""
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class Classifier(Module):
    """The base class of classification models: cross-entropy loss, accuracy, layer summary."""

    def validation_step(self, batch: Sequence[torch.Tensor]) -> None:
        """Plot loss and accuracy of one validation batch."""
        Y_hat = self(*batch[:-1])  # noqa: N806
        self.plot("loss", self.loss(Y_hat, batch[-1]), train=False)
        self.plot("acc", self.accuracy(Y_hat, batch[-1]), train=False)

    def accuracy(self, Y_hat: torch.Tensor, Y: torch.Tensor,  # noqa: N803
                 averaged: bool = True) -> torch.Tensor:
        """Fraction (or per-sample 0/1 when not averaged) of correct predictions."""
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))  # noqa: N806
        preds = Y_hat.argmax(dim=1).type(Y.dtype)
        compare = (preds == Y.reshape(-1)).type(torch.float32)
        return compare.mean() if averaged else compare

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor,  # noqa: N803
             averaged: bool = True) -> torch.Tensor:
        """Cross-entropy from logits."""
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))  # noqa: N806
        Y = Y.reshape((-1,))  # noqa: N806
        return F.cross_entropy(Y_hat, Y, reduction="mean" if averaged else "none")

    def layer_summary(self, X_shape: Sequence[int]) -> None:  # noqa: N803
        """Print each top-level layer's output shape for a random input of `X_shape`."""
        params = list(self.parameters())
        X = torch.randn(*X_shape, device=params[0].device if params else None)  # noqa: N806
        for layer in self.net:
            X = layer(X)  # noqa: N806
            print(layer.__class__.__name__, "output shape:\t", X.shape)


def _batch_len(batch: Sequence[Any]) -> int:
    """Samples in a batch (its last element's first dimension), for weighting plotted points."""
    last = batch[-1]
    return int(last.shape[0]) if hasattr(last, "shape") and len(last.shape) else 1


def epoch_line(board: ProgressBoard, epoch: int, max_epochs: int, seconds: float) -> str:
    """'epoch 3/10  train_loss 0.5123  val_loss 0.5500  val_acc 0.8012  (4.1 s)': the mean of
    each curve's points the board plotted during epoch `epoch` (0-based)."""
    parts = [f"epoch {epoch + 1:>{len(str(max_epochs))}}/{max_epochs}"]
    for label, points in board.data.items():
        ys = [p.y for p in points if epoch < p.x <= epoch + 1]
        if ys:
            parts.append(f"{label} {sum(ys) / len(ys):.4f}")
    return "  ".join(parts) + f"  ({seconds:.1f} s)"


class Trainer(HyperParameters):
    """Fits a Module to a DataModule: `Trainer(max_epochs, num_gpus).fit(model, data)`."""

    def __init__(self, max_epochs: int, num_gpus: int = 0, gradient_clip_val: float = 0):
        self.save_hyperparameters()
        self.gpus = [_base.gpu(i) for i in range(min(num_gpus, _base.num_gpus()))]

    def prepare_data(self, data: Any) -> None:
        """Get the loaders; cnnlab's image data makes its batches directly on the device."""
        make = getattr(data, "_loaders_on", None)
        loaders = make(self.gpus[0]) if self.gpus and make is not None else None
        if loaders is not None:
            self.train_dataloader, self.val_dataloader = loaders
        else:
            self.train_dataloader = data.train_dataloader()
            self.val_dataloader = data.val_dataloader()
        self.num_train_batches = len(self.train_dataloader)
        self.num_val_batches = len(self.val_dataloader) if self.val_dataloader is not None else 0

    def prepare_model(self, model: Module) -> None:
        """Attach the model to this trainer (and move it to the accelerator)."""
        model.trainer = self
        model.board.xlim = [0, self.max_epochs]
        if model.board.path is None and model.board.default_name == "progress":
            model.board.default_name = f"{type(model).__name__}_progress"
        if self.gpus:
            model.to(self.gpus[0])
        self.model = model

    def fit(self, model: Module, data: Any) -> None:
        """Train `model` for max_epochs, validating after each epoch."""
        self.prepare_data(data)
        self.prepare_model(model)
        self.optim = model.configure_optimizers()
        self.epoch = 0
        self.train_batch_idx = 0
        self.val_batch_idx = 0
        # In a notebook the board draws inline, as in the book. In a script nothing would show
        # until the end: say where the picture goes, then one line per epoch with its values.
        board = model.board
        lines = board.display and not _base.in_notebook()
        if lines:
            print(f"{type(model).__name__}: the progress board is drawn to {board.target()}",
                  file=sys.stderr, flush=True)
        # The engine's process-wide settings (cnnlab.device.run_settings), put back afterwards:
        # the load-aware thread policy on a CPU, cuDNN's autotuner on CUDA; neither when the
        # user asked for deterministic algorithms. The book's own seeding is left alone.
        device = self.gpus[0] if self.gpus else torch.device("cpu")
        fixed = torch.are_deterministic_algorithms_enabled()
        try:
            with run_settings(device, deterministic=fixed, seed=None) as self.thread_policy:
                for epoch in range(self.max_epochs):
                    self.epoch = epoch
                    start = time.perf_counter()
                    for loader in (self.train_dataloader, self.val_dataloader):
                        if hasattr(loader, "set_epoch"):  # a fresh shuffle each epoch
                            loader.set_epoch(self.epoch)
                    self.fit_epoch()
                    if lines:
                        print(epoch_line(board, epoch, self.max_epochs,
                                         time.perf_counter() - start), file=sys.stderr, flush=True)
        finally:
            self.thread_policy = None  # a fit_epoch called on its own runs as the book's
        if model.board.display:
            model.board.flush()  # the last epoch's points, whatever the save throttle held back

    def prepare_batch(self, batch: Sequence[Any]) -> list[Any]:
        """Move a batch to the accelerator (a no-op for batches already there)."""
        if self.gpus:
            return [a.to(self.gpus[0], non_blocking=True) for a in batch]
        return list(batch)

    def fit_epoch(self) -> None:
        """One pass over the training data, then one over the validation data."""
        self.model.train()
        policy = getattr(self, "thread_policy", None)  # set by fit (None off the CPU)
        for batch in self.train_dataloader:
            if policy is not None:
                policy.step()
            batch = self.prepare_batch(batch)
            self.batch_weight = _batch_len(batch)
            loss = self.model.training_step(batch)
            self.optim.zero_grad()
            loss.backward()
            if self.gradient_clip_val > 0:
                self.clip_gradients(self.gradient_clip_val, self.model)
            self.optim.step()
            self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        self.model.eval()
        with torch.no_grad():  # not inference_mode: the book's scratch BatchNorm checks grad mode
            for batch in self.val_dataloader:
                batch = self.prepare_batch(batch)
                self.batch_weight = _batch_len(batch)
                self.model.validation_step(batch)
                self.val_batch_idx += 1

    def clip_gradients(self, grad_clip_val: float, model: nn.Module) -> None:
        """Rescale all gradients so their global norm is at most `grad_clip_val`."""
        params = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
        nn.utils.clip_grad_norm_(params, grad_clip_val)
