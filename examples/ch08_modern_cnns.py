# %% [markdown]
# # Chapter 8 with cnnlab: what modern networks cost, and how they compare
#
# The companion of *Dive into Deep Learning* chapter 8. The book's networks are in cnnlab's zoo
# by name (`cnnlab models`), and `cnnlab.cost.summary` counts what each layer costs without
# training anything: parameters, multiply-accumulates (MACs) per image, memory. The
# exercises about cost are answered by counting; the comparison at the end trains every
# family of the chapter in its 28x28 form on Fashion-MNIST, as `cnnlab suite chapter8` does.
#
# `CNNLAB_QUICK=1` (the tests set it) trains three small networks on a few hundred images
# instead; the first output says which of the two the saved outputs come from.

# %%
import io
import os

import torch
from IPython.display import Image, display

from cnnlab.cost import compare_models, format_si, summary
from cnnlab.models import create_model, default_input_size

QUICK = os.environ.get("CNNLAB_QUICK") == "1"  # small subsets, few batches (the tests)


def show(fig):
    """Draw a matplotlib Figure (cnnlab's plots return them) in this notebook."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    display(Image(buf.getvalue()))


def cost(name, size=None):
    """The summary of zoo model `name` at `size` (default: its book size), on the meta device:
    counting needs shapes only, so no weights are allocated (VGG-19 has 140 M)."""
    size = tuple(size or default_input_size(name))
    with torch.device("meta"):
        model = create_model(name, in_channels=size[0])
    return summary(model, size, measure_memory=False)


print("quick mode" if QUICK else "full run", "| torch", torch.__version__)

# %% [markdown]
# ## 8.1 AlexNet: where the parameters and the work are
#
# **Exercise 8.1.3**: which part of AlexNet takes the most memory, and which the most
# computation? Sum the summary's layers by type.

# %%
s = cost("alexnet")
by_type = {}
for row in s.rows:
    if row.is_leaf:
        p, m = by_type.get(row.type, (0, 0))
        by_type[row.type] = (p + row.params, m + row.macs)
for kind, (p, m) in by_type.items():
    if p:
        print(f"{kind:8} {p / s.total_params:6.1%} of the parameters, "
              f"{m / s.total_macs:6.1%} of the MACs")
print(f"AlexNet at 224x224: {s.total_params:,} parameters, {format_si(s.total_macs, 'MAC')} "
      "per image")

# %% [markdown]
# ## 8.2 VGG against AlexNet
#
# **Exercise 8.2.1**: VGG is slower than AlexNet and needs more memory. By how much, and why?
# Both at 224x224, one grey channel, ten classes.

# %%
c = compare_models("alexnet", "vgg11")
print(c)
print(f"VGG-11 does {c.ratios['macs']:.1f}x the work of AlexNet per image and keeps "
      f"{c.ratios['activations']:.1f}x the activations for the backward pass: its 3x3 "
      "convolutions run at full resolution with 64-512 channels, where AlexNet strides 4 first.")

# %% [markdown]
# **Exercise 8.2.3**: VGG-16 and VGG-19 are the same VGG class with another `arch` (the
# configurations D and E of the VGG paper).

# %%
for name in ("vgg11", "vgg13", "vgg16", "vgg19"):
    with torch.device("meta"):
        arch = create_model(name).arch
    s = cost(name)
    convs = sum(n for n, _ in arch)
    print(f"{name}: arch {arch}, {convs + 3} weight layers, {s.total_params / 1e6:.1f} M "
          f"parameters, {format_si(s.total_macs, 'MAC')} per image")
print(compare_models("vgg16", "vgg19"))

# %% [markdown]
# ## 8.6 ResNet variants
#
# **Exercises 8.6.2-8.6.4**: deeper ResNets, the bottleneck block of ResNet-50, and ResNeXt's
# grouped convolutions, side by side with the book's ResNet-18 (96x96), and the small-input
# forms that train on 28x28 images.

# %%
print(f"{'model':18}{'input':>14}{'parameters':>14}{'MACs/image':>14}")
for name in ("resnet18", "resnet34", "resnet50", "resnext50_32x4d", "resnet18_small",
             "resnext_small"):
    s = cost(name)
    print(f"{name:18}{str(s.input_size):>14}{s.total_params:>14,}"
          f"{format_si(s.total_macs, 'MAC'):>14}")
c = compare_models("resnet50", "resnext50_32x4d")
print(f"ResNeXt-50 against ResNet-50: {c.ratios['params']:.2f}x the parameters, "
      f"{c.ratios['macs']:.2f}x the MACs")

# %% [markdown]
# ## The chapter's networks, compared
#
# Every family of chapters 7-8 in its 28x28 form, trained under one recipe (the suite's:
# AdamW with a one-cycle schedule, 3 epochs) on the same stratified subset of Fashion-MNIST,
# then put side by side by `cnnlab.compare` (the table and `compare.html`). A full run trains
# each on 2,000 images; `cnnlab suite chapter8` gives each an equal time budget instead.

# %%
from cnnlab.compare import collect_runs, format_table, write_compare
from cnnlab.plots import plot_tradeoffs
from cnnlab.suite import SUITE_RECIPE, SUITES
from cnnlab.train import train
from cnnlab.train_config import TrainConfig

networks = ("lenet", "bn_lenet", "nin_small") if QUICK else SUITES["chapter8"].models
recipe = dict(SUITE_RECIPE, progress="none", plot=False,
              train_samples=256 if QUICK else 2000, epochs=1 if QUICK else 3,
              val_size=128 if QUICK else 500, test_samples=256 if QUICK else 1000)
for name in networks:
    r = train(name, recipe["dataset"], TrainConfig(model=name, **recipe),
              out_dir=f"runs/chapter8/{name}", overwrite=True)
    print(f"{name:16} test accuracy {r.test_acc:.3f}  ({r.seconds:.0f} s)")

# %%
runs, skipped = collect_runs([f"runs/chapter8/{name}" for name in networks])
print(format_table(runs))
page = write_compare(runs, "runs/chapter8/compare.html", title="Chapter 8 on Fashion-MNIST")
print("page:", page)
points = [{"label": r.label, "test_acc": r.test_acc, "seconds": r.train_seconds, "macs": r.macs}
          for r in runs]
display(Image(filename=str(plot_tradeoffs(points, "runs/chapter8/tradeoffs.png"))))

# %% [markdown]
# What the table shows, and what it does not: three epochs on 2,000 images at one learning rate
# say as much about the recipe as about the networks. The sigmoid LeNet stays near chance, as
# the book's own LeNet does for its first two epochs on all 60,000 images (7.6), and NiN and
# GoogLeNet are still climbing after their few dozen steps. `cnnlab suite chapter8` gives each
# network its own learning rate from the range test below and three seeds under an equal time
# budget; its table is in the README (there LeNet reaches 88.0 ± 1.1 %).
#
# ## A learning rate of its own: the range test
#
# One recipe for every network (above) favours some of them. `lr_find` trains a fresh BN-LeNet
# for about a hundred steps while the learning rate grows exponentially, and suggests the rate
# where the smoothed loss falls fastest (`cnnlab lr-find bn_lenet` from a terminal;
# `cnnlab train NAME --lr find` runs it first and records it in the run). The model's weights
# are not touched: the real run starts from a fresh initialization.

# %%
from cnnlab.lrfind import lr_find
from cnnlab.recipes import get_recipe

found = lr_find("bn_lenet", config=get_recipe("bn_lenet").config(
    train_samples=2048 if QUICK else 0), steps=60 if QUICK else 100)
found  # the cell shows the test as it runs, then the suggestion and the curve

# %% [markdown]
# ## Exercise 7.6.2 as a sweep
#
# "Adjust the convolution window size, the number of output channels, the activation function
# ... adjust learning rates": each such LeNet is one trial of a sweep. The sweep proposes
# configurations (TPE), stops poor trials after an epoch (the median rule), and ranks them on
# a validation split carved from the training images: the test split is not looked at. The
# cell shows the sweep as it runs (the trial, its epoch, the best so far, the finished trials).
# Every trial is an ordinary run folder; `sweep.html` holds the table and the pictures. The same
# search from a terminal is `cnnlab sweep lenet --param model.activation=relu,sigmoid --param
# model.kernel_size=3,5 ... --trials 16 --out runs/sweep-7.6.2`, and running it again continues
# it rather than starting over.

# %%
from cnnlab.sweep import fmt_params, fmt_score, sweep

result = sweep("lenet", ["model.activation=relu,sigmoid", "model.kernel_size=3,5",
                         "model.channels=6-16,16-32", "model.pool=avg,max", "lr=log:0.01..0.5"],
               trials=3 if QUICK else 16, out_dir="runs/sweep-7.6.2", optimizer="sgd",
               batch_size=128, epochs=1 if QUICK else 4, train_samples=512 if QUICK else 20000,
               val_size=256 if QUICK else 5000, plot=False, tensorboard=False)
print("the best six of", len(result.trials), "trials:")
for row in result.trials[:6]:
    print(f"trial {row['number']:2}  {row['status']:7} val acc {fmt_score(row):8}  "
          f"{fmt_params(row['params'])}")
pruned = sum(r["status"] == "pruned" for r in result.trials)
print(f"{len(result.trials)} trials, {pruned} pruned; the best: "
      f"{fmt_params(result.best['params'])}")
print("page:", result.out_dir / "sweep.html")
