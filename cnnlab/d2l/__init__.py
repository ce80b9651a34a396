"""Drop-in for the book's `from d2l import torch as d2l`, chapters 7-8: `from cnnlab import d2l`.

Code written for *Dive into Deep Learning* runs unchanged except for the import line: the same
classes (HyperParameters, Module, Classifier, DataModule, FashionMNIST, Trainer, ProgressBoard),
helpers (add_to_class, init_cnn, corr2d, try_gpu, show_images ...) and the book's models (LeNet ...
DenseNet, Lazy layers and all).

It keeps the book's own training loop: `Trainer.fit` / `fit_epoch` call the model's
`training_step`, `validation_step` and `configure_optimizers` as d2l does (cnnlab's engine,
`cnnlab.train`, is not used). Underneath is cnnlab's data path: the datasets are read by
`cnnlab.data` into one uint8 tensor per split and batched by `cnnlab.loader.Loader` (index slices,
resizing per batch, no worker processes, no torchvision). The loop keeps losses on the device
until a point is plotted and weights metrics by samples; pictures are saved as PNG outside
Jupyter. Nothing in cnnlab imports this package.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.d2l._base import (
    HyperParameters,
    ProgressBoard,
    add_to_class,
    corr2d,
    cpu,
    gpu,
    num_gpus,
    output_dir,
    set_output_dir,
    show_images,
    try_all_gpus,
    try_gpu,
)
from cnnlab.d2l._data import MNIST, DataModule, FashionMNIST
from cnnlab.d2l._models import (
    VGG,
    AlexNet,
    BNLeNet,
    DenseBlock,
    DenseNet,
    GoogleNet,
    Inception,
    LeNet,
    NiN,
    Residual,
    ResNet,
    ResNet18,
    ResNeXtBlock,
    conv_block,
    nin_block,
    transition_block,
    vgg_block,
)
from cnnlab.d2l._train import Classifier, Module, Trainer, init_cnn, init_cnn_lazy

__all__ = [
    "HyperParameters", "ProgressBoard", "add_to_class", "corr2d", "cpu", "gpu", "num_gpus",
    "output_dir", "set_output_dir", "show_images", "try_all_gpus", "try_gpu",
    "MNIST", "DataModule", "FashionMNIST",
    "Classifier", "Module", "Trainer", "init_cnn", "init_cnn_lazy",
    "LeNet", "AlexNet", "vgg_block", "VGG", "nin_block", "NiN", "Inception", "GoogleNet",
    "BNLeNet", "Residual", "ResNet", "ResNet18", "ResNeXtBlock", "conv_block", "DenseBlock",
    "transition_block", "DenseNet",
]

# The book's framework-neutral tensor aliases (d2l.zeros, d2l.reshape, ...), as d2l.torch defines
# them, so cells written against them keep working.
nn_Module = nn.Module
ones_like, ones, zeros_like, zeros = torch.ones_like, torch.ones, torch.zeros_like, torch.zeros
tensor, arange, meshgrid, linspace = torch.tensor, torch.arange, torch.meshgrid, torch.linspace
sin, sinh, cos, cosh, tanh = torch.sin, torch.sinh, torch.cos, torch.cosh, torch.tanh
exp, log, normal, rand, randn = torch.exp, torch.log, torch.normal, torch.rand, torch.randn
matmul, int32, int64, float32 = torch.matmul, torch.int32, torch.int64, torch.float32
concat, stack, abs, eye = torch.cat, torch.stack, torch.abs, torch.eye
sigmoid, batch_matmul = torch.sigmoid, torch.bmm
numpy = lambda x, *args, **kwargs: x.detach().numpy(*args, **kwargs)
size = lambda x, *args, **kwargs: x.numel(*args, **kwargs)
reshape = lambda x, *args, **kwargs: x.reshape(*args, **kwargs)
to = lambda x, *args, **kwargs: x.to(*args, **kwargs)
reduce_sum = lambda x, *args, **kwargs: x.sum(*args, **kwargs)
argmax = lambda x, *args, **kwargs: x.argmax(*args, **kwargs)
astype = lambda x, *args, **kwargs: x.type(*args, **kwargs)
transpose = lambda x, *args, **kwargs: x.t(*args, **kwargs)
reduce_mean = lambda x, *args, **kwargs: x.mean(*args, **kwargs)
expand_dims = lambda x, *args, **kwargs: x.unsqueeze(*args, **kwargs)
swapaxes = lambda x, *args, **kwargs: x.swapaxes(*args, **kwargs)
repeat = lambda x, *args, **kwargs: x.repeat(*args, **kwargs)


def __getattr__(name: str):
    """`d2l.plt` on demand: importing pyplot is slow and picks a GUI backend, so only if asked."""
    if name == "plt":
        from matplotlib import pyplot

        return pyplot
    raise AttributeError(f"module 'cnnlab.d2l' has no attribute {name!r}")
