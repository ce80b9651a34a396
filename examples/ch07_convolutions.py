# %% [markdown]
# # Chapter 7 with cnnlab: convolutions, padding, pooling, LeNet
#
# The companion of *Dive into Deep Learning* chapter 7. The book's own cells run unchanged
# through the drop-in (`from cnnlab import d2l` instead of `from d2l import torch as d2l`), and
# every exercise below is answered by running something: a shape rule checked against torch,
# an operation written from scratch checked against torch's, a network trained and looked into.
#
# Run it top to bottom. `CNNLAB_QUICK=1` (the tests set it) trains on small subsets for a few
# batches instead of the book's full runs; the first output says which of the two the saved
# outputs come from.
# Fashion-MNIST and MNIST are found as the README says (`$CNNLAB_DATA`, the cache, or a
# download).

# %%
import io
import os

import torch
from IPython.display import Image, display
from torch import nn
from torch.nn import functional as F

from cnnlab import d2l  # the book: from d2l import torch as d2l

QUICK = os.environ.get("CNNLAB_QUICK") == "1"  # small subsets, few batches (the tests)
torch.manual_seed(0)


def show(fig):
    """Draw a matplotlib Figure (cnnlab's plots return them) in this notebook."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    display(Image(buf.getvalue()))


print("quick mode" if QUICK else "full run", "| torch", torch.__version__)

# %% [markdown]
# ## 7.2 Convolutions for images
#
# The book's cross-correlation, its edge detector, and the kernel learned from data.

# %%
X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
print(d2l.corr2d(X, K))

X = torch.ones((6, 8))
X[:, 2:6] = 0
K = torch.tensor([[1.0, -1.0]])
Y = d2l.corr2d(X, K)
print(Y)
print(d2l.corr2d(X.t(), K))  # the transposed image: the vertical-edge kernel sees nothing

# %% [markdown]
# Learning the kernel (the book's loop, verbatim), then cnnlab's version of the same
# experiment, which keeps the kernel after every step so we can watch it approach `[1, -1]`.

# %%
conv2d = nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)
X4, Y4 = X.reshape((1, 1, 6, 8)), Y.reshape((1, 1, 6, 7))
lr = 3e-2  # Learning rate
for i in range(10):
    Y_hat = conv2d(X4)
    l = (Y_hat - Y4) ** 2  # noqa: E741 (the book's name)
    conv2d.zero_grad()
    l.sum().backward()
    conv2d.weight.data[:] -= lr * conv2d.weight.grad
    if (i + 1) % 2 == 0:
        print(f"epoch {i + 1}, loss {l.sum():.3f}")
print(conv2d.weight.data.reshape((1, 2)))

# %%
from cnnlab.edgedemo import edge_demo, plot_edge_demo

demo = edge_demo(steps=10, lr=3e-2)
print("learned kernel:", demo.kernel.round(3), "| loss", demo.losses[0].round(2), "->",
      demo.losses[-1].round(4))
show(plot_edge_demo(demo))

# %% [markdown]
# **Exercise 7.2.1** (an image with diagonal edges). What does `K` find on it, on its
# transpose, and what does `K.t()` find?

# %%
D = torch.eye(8)  # a diagonal line
print("K on the diagonal:\n", d2l.corr2d(D, K))
print("K on its transpose: the same picture, since the image is symmetric:",
      torch.equal(d2l.corr2d(D.t(), K), d2l.corr2d(D, K)))
print("K.t() on the diagonal:\n", d2l.corr2d(D, K.t()))

# %% [markdown]
# **Exercise 7.2.4** (kernels by hand): a second-derivative kernel `[1, -2, 1]` marks both
# sides of each edge; a blur kernel of size `d` averages `d` neighbours.

# %%
X = torch.ones((6, 8))
X[:, 2:6] = 0
print("second derivative:\n", d2l.corr2d(X, torch.tensor([[1.0, -2.0, 1.0]])))
print("blur 1x3:\n", d2l.corr2d(X, torch.full((1, 3), 1 / 3)).round(decimals=2))

# %% [markdown]
# ## 7.3 Padding and stride
#
# The book's cells: the output shape of four convolutions of an 8x8 input.

# %%
def comp_conv2d(conv2d, X):
    X = X.reshape((1, 1) + X.shape)
    Y = conv2d(X)
    return Y.reshape(Y.shape[2:])


X = torch.rand(size=(8, 8))
print(comp_conv2d(nn.LazyConv2d(1, kernel_size=3, padding=1), X).shape)
print(comp_conv2d(nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1)), X).shape)
print(comp_conv2d(nn.LazyConv2d(1, kernel_size=3, padding=1, stride=2), X).shape)
print(comp_conv2d(nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)), X).shape)

# %% [markdown]
# **Exercise 7.3.1**: the last example by the book's formula
# ⌊(n − k + p + s) / s⌋, where p is the padding of both sides together, next to
# `cnnlab.shapes.conv2d_output_shape` (the rule cnnlab uses everywhere) and torch.

# %%
from cnnlab.shapes import conv2d_output_shape

by_hand = ((8 - 3 + 0 + 3) // 3, (8 - 5 + 2 + 4) // 4)
print("by hand:", by_hand)
print("cnnlab.shapes:", conv2d_output_shape((8, 8), (3, 5), stride=(3, 4), padding=(0, 1)))

# %% [markdown]
# **Exercise 7.3.2**: try other combinations. 500 random kernel / padding / stride / dilation
# choices on random input sizes: the rule and torch agree on every one.

# %%
g = torch.Generator().manual_seed(0)


def rint(lo, hi):
    return int(torch.randint(lo, hi + 1, (), generator=g))


agree = tried = 0
for _ in range(500):
    h, w, kh, kw = rint(5, 20), rint(5, 20), rint(1, 5), rint(1, 5)
    pad, stride, dil = (rint(0, 2), rint(0, 2)), (rint(1, 4), rint(1, 4)), (rint(1, 2), rint(1, 2))
    if h + 2 * pad[0] < dil[0] * (kh - 1) + 1 or w + 2 * pad[1] < dil[1] * (kw - 1) + 1:
        continue  # the kernel does not fit: both refuse it
    conv = nn.Conv2d(1, 1, (kh, kw), stride=stride, padding=pad, dilation=dil)
    ours = conv2d_output_shape((h, w), (kh, kw), stride=stride, padding=pad, dilation=dil)
    tried += 1
    agree += tuple(ours) == tuple(conv(torch.zeros(1, 1, h, w)).shape[2:])
print(f"shape rule == torch on {agree} of {tried} random convolutions")

# %% [markdown]
# **Exercise 7.3.4**: a stride of 2 on an 8x8 input halves each side: a 4x4 output, a
# quarter of the positions to compute (the cost counted by `cnnlab.cost.conv2d_cost`).

# %%
from cnnlab.cost import conv2d_cost

for s in (1, 2):
    c = conv2d_cost(1, 1, 8, 8, 3, 3, p_h=2, p_w=2, s_h=s, s_w=s)
    print(f"stride {s}: output {c.output_hw}, {c.forward_mults} multiplications")

# %% [markdown]
# ## 7.4 Multiple input and output channels
#
# A 1x1 convolution is a fully connected layer applied at every pixel: cnnlab's from-scratch
# `corr2d_multi_in_out` (the book's) and `corr2d_multi_in_out_1x1` (a matrix product) agree.

# %%
from cnnlab import ops

X = torch.normal(0, 1, (3, 3, 3))
K = torch.normal(0, 1, (2, 3, 1, 1))
print("1x1 conv == matrix product:",
      torch.allclose(ops.corr2d_multi_in_out(X, K), ops.corr2d_multi_in_out_1x1(X, K), atol=1e-6))

# %% [markdown]
# **Exercise 7.4.3**: the cost of a convolution with c_i=64 input and c_o=128 output channels,
# a 3x3 kernel on 56x56 with padding 1, forward and backward.

# %%
c = conv2d_cost(64, 128, 56, 56, 3, 3, p_h=2, p_w=2)
print(f"output {c.output_hw}; forward {c.forward_mults / 1e6:.0f} M multiplications, "
      f"backward {c.backward_mults / 1e6:.0f} M; memory {c.bytes()['forward'] / 1e6:.1f} MB "
      f"forward, {c.bytes()['backward'] / 1e6:.1f} MB backward (float32)")

# %% [markdown]
# ## 7.5 Pooling
#
# The book's cells, then exercises 7.5.1, 7.5.3 and 7.5.6 answered with cnnlab's layers built
# from convolutions (`cnnlab.layers.scratch`), each checked against torch's pooling.

# %%
X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
print(nn.MaxPool2d(3)(X))
print(nn.MaxPool2d(3, padding=1, stride=2)(X))
print(nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X))
X = torch.cat((X, X + 1), 1)
print(nn.MaxPool2d(3, padding=1, stride=2)(X))

# %%
from cnnlab.layers.scratch import AvgPoolConv, MinPool2d, ReLUMaxPool2d

X = torch.randn(2, 3, 9, 9, dtype=torch.float64)
print("7.5.1 average pooling as a convolution == F.avg_pool2d:",
      torch.allclose(AvgPoolConv(3, stride=2, padding=1)(X), F.avg_pool2d(X, 3, 2, 1)))
print("7.5.3 max pooling from convolutions and ReLU == F.max_pool2d:",
      torch.allclose(ReLUMaxPool2d(3, stride=2, padding=1)(X), F.max_pool2d(X, 3, 2, 1)))
print("7.5.6 min pooling == -max_pool(-X):",
      torch.allclose(MinPool2d(2)(X), -F.max_pool2d(-X, 2)))

# %% [markdown]
# **Exercise 7.5.2**: the cost of a pooling layer: c channels of an h x w input, a p_h x p_w
# window, padding and stride. Counted here by the windows torch computes.

# %%
from cnnlab.shapes import pool2d_output_shape

c_, h, w = 64, 56, 56
for k, s in ((2, 2), (3, 2), (3, 1)):
    ho, wo = pool2d_output_shape((h, w), k, stride=s)
    print(f"{k}x{k} window, stride {s}: {c_ * ho * wo:,} outputs, "
          f"{c_ * ho * wo * (k * k - 1):,} comparisons (max) or additions (avg)")

# %% [markdown]
# ## 7.6 LeNet
#
# The book's LeNet through the drop-in: its layer summary, then its training cell. The book
# trains 10 epochs (a full run here does too); sigmoid LeNet stays near chance for the first
# epochs, exactly as in the book.

# %%
def init_cnn(module):
    """Initialize weights for CNNs."""
    if type(module) == nn.Linear or type(module) == nn.Conv2d:  # noqa: E721 (the book's test)
        nn.init.xavier_uniform_(module.weight)


class LeNet(d2l.Classifier):
    """The LeNet-5 model."""

    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(),
            nn.LazyLinear(84), nn.Sigmoid(),
            nn.LazyLinear(num_classes))


model = LeNet()
model.layer_summary((1, 1, 28, 28))

# %%
data = d2l.FashionMNIST(batch_size=128)
if QUICK:  # a few batches: the first 1,024 training and 512 validation images
    data.train.split = data.train.split.subset(range(1024))
    data.val.split = data.val.split.subset(range(512))
trainer = d2l.Trainer(max_epochs=1 if QUICK else 10, num_gpus=1)
model = LeNet(lr=0.1)
model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)
trainer.fit(model, data)

# %%
model.eval()
with torch.no_grad():
    Xv, yv = next(iter(data.get_dataloader(False)))
    print(f"book LeNet: validation accuracy on one batch {model.accuracy(model(Xv), yv):.3f}")

# %% [markdown]
# ## Exercise 7.6.1: the modernized LeNet, on Fashion-MNIST and MNIST
#
# ReLU instead of sigmoid and max- instead of average pooling (`lenet_modern` in cnnlab's zoo,
# the `lenet_modern` and `lenet_modern_mnist` recipes), trained by cnnlab's engine. Each run is
# a folder under `runs/` with its `report.html`.

# %%
from cnnlab.recipes import get_recipe
from cnnlab.train import train

quick = {"epochs": 1, "train_samples": 6000, "test_samples": 1000} if QUICK else {}
results = {}
for recipe in ("lenet_modern", "lenet_modern_mnist"):
    config = get_recipe(recipe).config(**quick, plot=False, tensorboard=False)
    r = train(config.model, config.dataset, config, out_dir=f"runs/{recipe}", overwrite=True)
    results[recipe] = r
for recipe, r in results.items():
    print(f"{recipe}: test accuracy {r.test_acc:.4f} after {r.config.epochs} epochs "
          f"({r.seconds:.0f} s)")

# %% [markdown]
# ## Exercise 7.6.4: what the first two layers see
#
# The activations of the modernized LeNet's two conv stages for a pullover (the book's
# "sweater"), a coat, and noise. Do a pullover and a coat light up the same channels, and does
# noise? The correlation of the two stages' activations (every channel and position) between
# two inputs answers it in numbers.

# %%
import cnnlab
from cnnlab.inspect import feature_maps, plot_feature_maps
from cnnlab.loader import Split

run = cnnlab.load_run("runs/lenet_modern")  # the trained network, as the run folder keeps it
test = run.split("test")
pullover = test.images[(test.labels == 2).nonzero()[0, 0]]
coat = test.images[(test.labels == 4).nonzero()[0, 0]]
noise = torch.randint(0, 256, (28, 28), generator=torch.Generator().manual_seed(0),
                      dtype=torch.uint8)
names = ("pullover", "coat", "noise")
three = Split(torch.stack([pullover, coat, noise]), torch.tensor([2, 4, 0]))
xs, _ = next(iter(run.loader(three)))  # fed to the model exactly as training fed it
acts = {}
for name, x in zip(names, xs):
    maps = feature_maps(run.model, x)
    acts[name] = [torch.from_numpy(a).flatten() for _, a in maps]  # (C*H*W,) per stage
    print(f"{name}: " + "; ".join(f"{s.label}: mean activation {a.mean():.3f}"
                                   for s, a in maps[:2]))
    show(plot_feature_maps(run.model, x, title=name))

# %%
for layer in (0, 1):
    sim = {pair: torch.corrcoef(torch.stack([acts[pair[0]][layer], acts[pair[1]][layer]]))[0, 1]
           for pair in (("pullover", "coat"), ("pullover", "noise"), ("coat", "noise"))}
    print(f"stage {layer + 1}: correlation of the activations " +
          ", ".join(f"{a}~{b} {v:.2f}" for (a, b), v in sim.items()))
