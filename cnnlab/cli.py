"""`cnnlab` command line: subcommands are a dict of name -> function; TrainConfig fields are flags.

Errors a user can cause (CnnlabError) print one line on stderr and exit 2; a training stopped by
Ctrl-C or SIGTERM prints how to resume it and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.errors import (
    CnnlabError,
    ConfigError,
    DataError,
    HardInterrupt,
    RunFinished,
    TrainingInterrupted,
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
RUN_HELP = "a run folder written by `cnnlab train`."

EPILOGS = {
    "main": """\
examples:
  cnnlab train lenet                      the book's LeNet on Fashion-MNIST (10 epochs)
  cnnlab train resnet18 --epochs 2 --lr 0.05 --device cuda
  cnnlab report runs/lenet-20260101-120000
  cnnlab summary alexnet --format markdown
  cnnlab recipes""",
    "train": """\
examples:
  cnnlab train lenet                                   a recipe (see `cnnlab recipes`)
  cnnlab train lenet --epochs 2 --lr 0.05 --out runs/mine
  cnnlab train resnet18 --resize 64,64 --schedule cosine --momentum 0.9
  cnnlab train resnet18_small --dataset cifar10         3-channel data: 3-channel models
  cnnlab train fastnet --dataset folder:photos --image-size 64   photos/<class>/*.jpg
  cnnlab train lenet --model-arg channels=32,64,128 --model-arg kernel_size=3
                                                       vary the network (`cnnlab models lenet`)
  cnnlab train lenet --config my.toml                  TOML keys are the flags' names
  cnnlab train lenet --dry-run                         one batch, to check the setup
  cnnlab train lenet_modern --lr find                  lr from a range test (lr-find.png)
  cnnlab train --resume runs/lenet-20260101-120000     continue an interrupted run
  torchrun --nproc_per_node 2 -m cnnlab train lenet    two processes (data parallel)

precedence: recipe < --config file < flags; a [model] table in the file holds the model's
knobs (as --model-arg does).  A model name instead of a recipe trains it
with the book's settings (10 epochs, SGD, batch 128, lr 0.05) at its book input size; a name
that is both (lenet, resnet18, ...) runs the recipe.  `cnnlab train NAME --help` shows the
values NAME trains with.""",
    "eval": """\
examples:
  cnnlab eval runs/lenet-20260101-120000
  cnnlab eval runs/lenet-20260101-120000 --checkpoint best
  cnnlab eval runs/lenet-20260101-120000 --split train     how well it fits what it saw""",
    "predict": """\
examples:
  cnnlab predict runs/lenet-20260101-120000 shoe.png shirt.jpg
  cnnlab predict runs/lenet-20260101-120000 digit.png --top 3 --invert no

Images are converted like the dataset's: grayscale, 28x28, then the run's resize and
normalization. The datasets draw light objects on a dark ground, so a light-background image
is inverted (--invert auto).""",
    "summary": """\
examples:
  cnnlab summary lenet
  cnnlab summary resnet18 --input 1,224,224 --classes 1000 --format markdown
  cnnlab summary alexnet --format json
  cnnlab summary vgg --model-arg arch=1x64,1x128,2x256 --model-arg dense=1024""",
    "models": """\
examples:
  cnnlab models
  cnnlab models 'resnet*'
  cnnlab models lenet             one model's architecture knobs, defaults and allowed values

A knob is set with --model-arg KEY=VALUE (train, summary), a [model] table in --config, or
create_model(NAME, KEY=VALUE) in Python. Lists are comma lists (channels=32,64,128); blocks
are COUNTxCHANNELS (arch=1x64,1x128,2x256).""",
    "recipes": """\
examples:
  cnnlab recipes
  cnnlab recipes --format markdown""",
    "data": """\
examples:
  cnnlab data download fashion-mnist
  cnnlab data verify mnist
  cnnlab data verify cifar10 --root ~/datasets      its tarball against the published md5
  cnnlab data show folder:photos                    a folder of class folders of images
  cnnlab data show fashion-mnist --count 32 --out samples.png""",
    "export": """\
examples:
  cnnlab export runs/lenet-20260101-120000 --format onnx       -> <run>/lenet.onnx + .json
  cnnlab export runs/lenet-20260101-120000 --format torchscript --out lenet.pt
  cnnlab predict runs/lenet-20260101-120000/lenet.onnx shoe.png   through onnxruntime

The file takes float32 images (N, C, H, W) in [0, 1] at the run's input size; the run's
normalization is inside it. The .json sidecar holds the class names, the input shape and the
normalization. Each export is checked on 256 test images against PyTorch (every class must
agree). ONNX needs onnx, onnxscript and onnxruntime: pip install onnx onnxscript onnxruntime.""",
    "report": """\
examples:
  cnnlab report runs/lenet-20260101-120000      writes report.html, confusion.png, errors.png""",
    "inspect": """\
examples:
  cnnlab inspect runs/lenet-20260101-120000                  test image 0, first conv's filters
  cnnlab inspect runs/lenet-20260101-120000 --index 42 --out look
  cnnlab inspect runs/lenet-20260101-120000 --image shoe.png --layer net.3
  cnnlab inspect --edge-demo --out edges       chapter 7.2: a 1x2 kernel learns to find edges

Writes filters.png, feature-maps.png, attribution.png, mistakes.png and inspect.html (one
self-contained page). --layer takes a name as `cnnlab summary MODEL` prints it: a conv's filters
are drawn too (filters-NAME.png), and Grad-CAM looks there instead of at the last conv stage.""",
    "lr-find": """\
examples:
  cnnlab lr-find lenet_modern                          writes lr-find.png and lr-find.json
  cnnlab lr-find resnet18_small --optimizer adamw --batch-size 256 --out resnet-lr.png
  cnnlab train lenet_modern --lr find                  the range test, then the run

A fresh model trains --steps steps (100; at most 200) while the learning rate grows
exponentially from --start-lr to --end-lr, on the run's training split; the test stops once
the smoothed loss passes 4x its best. The suggestion is where the smoothed loss falls fastest
(--rule steepest, as Lightning) or a tenth of the lr at its minimum (--rule min/10, fastai's
old rule of thumb). The training flags are `cnnlab train`'s: the test uses the same data,
model, optimizer, precision and threads as that run.""",
    "compare": """\
examples:
  cnnlab compare runs/chapter8                  every run folder inside, side by side
  cnnlab compare runs/lenet-1 runs/fast-2 --out lenet-vs-fast.html
  cnnlab compare runs/chapter8 --format markdown --no-page
  cnnlab compare runs/seeds --per-seed          every run, not one row per group of seeds

Runs that differ only in their seed (same recipe, flags and data otherwise) are one row: the
mean test and validation accuracy ± their standard deviation over the seeds.""",
    "suite": """\
examples:
  cnnlab suite chapter8                        LeNet ... DenseNet at 28x28, 60 min in all
  cnnlab suite chapter8 --models lenet,bn_lenet,resnet18_small --budget 10
  cnnlab suite --models lenet,fastnet --epochs 2 --budget 3 --out runs/mine
  cnnlab suite chapter8                        again: resumes, skipping finished members

Every member gets the same share of --budget (minutes, the whole suite): a short timing probe
sizes its training subset so its --epochs and learning-rate schedule finish inside it, for
every seed. With --lr-find (chapter8's default) each member first runs the range test on its
training split (at most a quarter of its share) and trains at the lr it suggests.
Results land in --out (default runs/<suite>): one run folder per model, suite.json and
compare.html.""",
    "sweep": """\
examples:
  cnnlab sweep lenet --param lr=log:1e-3..0.3 --param momentum=0,0.9 --trials 20 --out runs/s
  cnnlab sweep lenet --param model.activation=relu,sigmoid --sampler grid --out runs/act
  cnnlab sweep lenet --param lr=0.03,0.1,0.3 --seeds 0,1,2 --sampler grid --out runs/seeds
  cnnlab sweep --join runs/s                   one more worker on the same sweep
  cnnlab sweep --resume runs/s --retrain-best  the best configuration on the whole training
                                               split, scored on the test split once

Trials rank on validation (val_size carved from the training split; 0.1 when unset) and never
see the test split. Every trial is a run folder under DIR/trials; DIR holds sweep.json,
sweep.csv, sweep.html and the study (study.journal, or --storage postgresql://...). Running the
same command again continues the sweep.""",
}


def _parser(sub: Any, name: str, help_: str, **kw: Any) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=help_, epilog=EPILOGS[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


def _add_config_flags(p: argparse.ArgumentParser, target: str | None = None) -> None:
    """The training flags; with a target (`cnnlab train NAME --help`) their defaults are the
    values NAME trains with, so --help shows the learning rate the run will use."""
    from cnnlab.recipes import MODEL_DEFAULTS, resolve
    from cnnlab.train_config import TrainConfig, add_arguments, format_setting

    recipe = None
    if target:
        try:
            recipe = resolve(target)
        except CnnlabError:
            pass  # the parse reports the unknown name
    base = TrainConfig()
    if recipe is not None:
        what = ("the recipe" if recipe.name in _recipe_names() else "the model, with the "
                "book's defaults")
        title = f"training settings of {recipe.name} ({what}; flags change them)"
        shown = {k: f"{format_setting(v)} for {recipe.name}" for k, v in recipe.overrides.items()}
    else:
        title = "training settings (TrainConfig fields; defaults from the recipe)"
        shown = {k: f"{getattr(base, k)!r}; {v!r} for a model name without a recipe"
                 for k, v in MODEL_DEFAULTS.items() if getattr(base, k) != v}
    add_arguments(p.add_argument_group(title), shown=shown)


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-arg", action="append", dest="model_args", default=[],
                   metavar="KEY=VALUE", help="Set an architecture knob of the model; repeat "
                   "the flag for several (`cnnlab models NAME` lists them).")


def _recipe_names() -> list[str]:
    from cnnlab.recipes import list_recipes

    return list_recipes()


def build_parser(train_target: str | None = None) -> argparse.ArgumentParser:
    """The full `cnnlab` argument parser (every subcommand, with examples in --help).

    train_target: the recipe or model `cnnlab train NAME --help` asks about.
    """
    p = argparse.ArgumentParser(
        prog="cnnlab", description="Convolutional networks of Dive into Deep Learning ch. 7-8.",
        epilog=EPILOGS["main"], formatter_class=argparse.RawDescriptionHelpFormatter)
    from cnnlab import __version__
    p.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = _parser(sub, "train", "Train a recipe or a zoo model; writes a run folder and its report.")
    t.add_argument("target", nargs="?", metavar="RECIPE_OR_MODEL",
                   help="a recipe (`cnnlab recipes`) or a model (`cnnlab models`).")
    t.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="TOML file of settings (keys: the flags' names, with _ or -).")
    t.add_argument("--out", metavar="DIR",
                   help="run folder (default: runs/<recipe>-<timestamp>, always a new one); "
                        "one that holds a run is refused unless --overwrite.")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out DIR: first remove everything it wrote.")
    t.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the run in DIR from checkpoints/last.pt.")
    t.add_argument("--from", dest="from_checkpoint", choices=("last", "best"), default=None,
                   help="with --resume: continue from last.pt (default) or best.pt (the epochs "
                        "after best are dropped and trained again).")
    _add_model_arg(t)
    _add_config_flags(t, train_target)

    lf = _parser(sub, "lr-find", "Find a learning rate: the range test of fastai's and "
                                 "Lightning's lr_find.")
    lf.add_argument("target", nargs="?", metavar="RECIPE_OR_MODEL",
                    help="a recipe (`cnnlab recipes`) or a model (`cnnlab models`).")
    lf.add_argument("--config", type=Path, metavar="FILE.toml",
                    help="TOML file of settings, as `cnnlab train --config` takes it.")
    lf.add_argument("--out", type=Path, default=Path("lr-find.png"), metavar="FILE.png",
                    help="the picture to write; the curve goes beside it as .json "
                         "(default: lr-find.png).")
    lf.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate (1e-7).")
    lf.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (10).")
    lf.add_argument("--steps", type=int, default=100,
                    help="training steps of the ramp (100; at most 200).")
    lf.add_argument("--rule", choices=("steepest", "min/10"), default="steepest",
                    help="how the suggestion is read off the curve (default: steepest).")
    _add_model_arg(lf)
    _add_config_flags(lf, train_target)

    e = _parser(sub, "eval", "Evaluate a run's checkpoint on its test (or train, val) split.")
    e.add_argument("run_dir", type=Path, metavar="RUN_DIR", help=RUN_HELP)
    e.add_argument("--checkpoint", choices=("best", "last"), default="last",
                   help="last: the final model, whose accuracy `train` printed (default); best: "
                        "the epoch with the best validation score.")
    e.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="which images: test (default), train (what the run trained on) or val "
                        "(what it validated on: the test split unless it set val_size).")
    e.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people, json for programs.")

    pr = _parser(sub, "predict", "Classify image files (PNG/JPEG) with a trained run.")
    pr.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                    help="a run folder written by `cnnlab train`, or an exported .onnx file "
                         "(with its .json sidecar).")
    pr.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG or JPEG files.")
    pr.add_argument("--checkpoint", choices=("best", "last"), default="last",
                    help="which checkpoint of the run (default: last).")
    pr.add_argument("--top", type=int, default=3, help="how many classes to show per image.")
    pr.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                    help="invert light-background images to the dataset's dark ground.")
    pr.add_argument("--format", choices=("text", "json"), default="text",
                    help="text for people, json for programs.")

    s = _parser(sub, "summary", "Per-layer shapes, parameters, MACs/FLOPs and memory of a model.")
    s.add_argument("model", metavar="MODEL", help="a zoo model (`cnnlab models`).")
    s.add_argument("--input", type=_triple, metavar="C,H,W",
                   help="input size (default: the size the book uses for this model).")
    s.add_argument("--classes", type=int, default=10, metavar="N", help="output classes.")
    s.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="batch the figures are for (FLOPs and memory scale with it).")
    s.add_argument("--no-measure", dest="measure", action="store_false",
                   help="skip running one real training step to measure its peak memory "
                        "(the counts and the memory estimate need no step).")
    s.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    _add_model_arg(s)

    m = _parser(sub, "models", "List the model zoo: input size and parameter count.")
    m.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'resnet*'.")
    m.add_argument("--format", choices=("table", "markdown"), default="table")

    r = _parser(sub, "recipes", "List the recipes: model, data, hyperparameters, measured result.")
    r.add_argument("--format", choices=("table", "markdown"), default="table")

    d = _parser(sub, "data", "Download, verify or look at a dataset.")
    d.add_argument("action", choices=("download", "verify", "show"))
    d.add_argument("name", metavar="NAME", help="fashion-mnist, mnist, cifar10 or folder:PATH.")
    d.add_argument("--root", "--data-root", dest="root", type=Path,
                   help="datasets folder, as `train --data-root` takes it (default: "
                        "$CNNLAB_DATA, then the user cache).")
    d.add_argument("--split", choices=("train", "test"), default="train", help="show: which split.")
    d.add_argument("--count", type=int, default=32, help="show: how many samples (1-256).")
    d.add_argument("--seed", type=int, default=0, help="show: which samples (seeded).")
    d.add_argument("--out", type=Path, help="show: PNG path (default: <name>-samples.png).")

    x = _parser(sub, "export", "Export a run's model as ONNX or TorchScript, checked against "
                               "PyTorch.")
    x.add_argument("run_dir", type=Path, metavar="RUN_DIR", help=RUN_HELP)
    x.add_argument("--format", choices=("onnx", "torchscript"), default="onnx",
                   help="onnx (needs pip install onnx onnxscript onnxruntime) or torchscript "
                   "(default: onnx).")
    x.add_argument("--out", type=Path, metavar="FILE",
                   help="where to write (default: <run>/<model>.onnx or .torchscript.pt).")
    x.add_argument("--checkpoint", choices=("best", "last"), default="last",
                   help="which checkpoint of the run (default: last).")

    rp = _parser(sub, "report", "Write a run's report.html (plus confusion.png and errors.png).")
    rp.add_argument("run_dir", type=Path, metavar="RUN_DIR", help=RUN_HELP)
    rp.add_argument("--checkpoint", choices=("best", "last"), default="last",
                    help="the checkpoint to evaluate (default: last, the final model).")
    rp.add_argument("--max-errors", type=int, default=32, metavar="N",
                    help="misclassified images to show (most confident first).")

    c = _parser(sub, "compare", "Compare runs side by side: table, curves, accuracy vs cost.")
    c.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="run folders, or folders holding run folders.")
    c.add_argument("--out", type=Path, default=Path("compare.html"),
                   help="the page to write (default: compare.html).")
    c.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="how the table is printed.")
    c.add_argument("--no-page", action="store_true", help="print the table only.")
    c.add_argument("--per-seed", action="store_true",
                   help="one row per run; by default runs that differ only in their seed are "
                        "one row, mean ± standard deviation (error bars on the page).")

    su = _parser(sub, "suite", "Train several models under one recipe and budget, then compare.")
    su.add_argument("name", nargs="?", metavar="SUITE",
                    help="a named suite: chapter8 (every chapter 7-8 architecture at 28x28).")
    su.add_argument("--models", type=_names, metavar="A,B,C",
                    help="zoo models to train instead of the suite's (`cnnlab models`).")
    su.add_argument("--epochs", type=int, help="epochs per model (default: the suite's, 3).")
    su.add_argument("--budget", type=float, metavar="MINUTES",
                    help="wall-clock minutes for the whole suite (default 30).")
    su.add_argument("--out", type=Path, metavar="DIR", help="suite folder (default runs/SUITE).")
    su.add_argument("--data-root", type=str, metavar="PATH", help="datasets folder.")
    su.add_argument("--test-samples", type=int, metavar="N",
                    help="test images (stratified subset; 0: all 10,000; default 1,000).")
    su.add_argument("--seeds", type=_seeds, metavar="0,1,2",
                    help="train every member once per seed; the table shows mean ± std "
                         "(default: chapter8 0,1,2; a --models suite 0).")
    su.add_argument("--lr-find", action=argparse.BooleanOptionalAction, default=None,
                    help="each member's learning rate from the range test on its training "
                         "split (default: on for chapter8, off for a --models suite).")
    _add_inspect_parser(sub)
    _add_sweep_parser(sub)
    return p


def _add_sweep_parser(sub: Any) -> None:
    from cnnlab.sweep_space import PRUNERS, SAMPLERS
    from cnnlab.train_config import MONITORS, add_arguments

    w = _parser(sub, "sweep", "Search training settings and model knobs; every trial a run.")
    w.add_argument("target", nargs="?", metavar="RECIPE_OR_MODEL",
                   help="A recipe (`cnnlab recipes`) or a model (`cnnlab models`).")
    w.add_argument("--param", action="append", metavar="SPEC",
                   help="What to vary, as NAME=VALUES (repeatable): lr=log:1e-3..0.3, "
                        "momentum=0,0.9, model.channels=6-16,32-64 (a TrainConfig field or "
                        "model.KNOB).")
    w.add_argument("--trials", type=int, metavar="N", help="How many trials in all.")
    w.add_argument("--budget", metavar="TIME",
                   help="Wall time of this command (30m, 2h, 90s): no trial starts after it.")
    w.add_argument("--sampler", choices=SAMPLERS, help="How trials are proposed: tpe (default), "
                                                        "random or grid.")
    w.add_argument("--prune", choices=PRUNERS,
                   help="How poor trials stop after an epoch: median (default), halving or off.")
    w.add_argument("--metric", choices=MONITORS,
                   help="The validation metric that ranks trials (default val_acc).")
    w.add_argument("--seeds", type=_seeds, metavar="A,B,C",
                   help="Run each configuration with these seeds and rank on the mean.")
    w.add_argument("--storage", metavar="URL",
                   help="A database server for the study (postgresql://user@host/db); by "
                        "default the study lives in DIR/study.journal.")
    w.add_argument("--out", metavar="DIR", help="The sweep folder (default runs/sweep-NAME).")
    w.add_argument("--join", type=Path, metavar="DIR", help="Add a worker to the sweep in DIR.")
    w.add_argument("--resume", type=Path, metavar="DIR", help="Continue the sweep in DIR.")
    w.add_argument("--retrain-best", action="store_true",
                   help="Then train the best configuration on the whole training split and "
                        "report its test accuracy, once.")
    w.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="A TOML file of training settings, with a [sweep] table of these "
                        "options.")
    _add_model_arg(w)
    add_arguments(w.add_argument_group("training settings of every trial (TrainConfig fields)"))


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not seeds such as 0,1,2") from None


def _add_inspect_parser(sub: Any) -> None:
    ins = _parser(sub, "inspect", "Look inside a trained network: filters, feature maps, "
                  "Grad-CAM and saliency (or chapter 7.2's edge detector).")
    ins.add_argument("run_dir", type=Path, nargs="?", metavar="RUN_DIR", help=RUN_HELP)
    which = ins.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, metavar="N",
                       help="the test image to follow through the network (default: 0).")
    which.add_argument("--image", type=Path, metavar="PATH",
                       help="a PNG or JPEG of your own instead of a test image.")
    ins.add_argument("--layer", metavar="NAME",
                     help="a layer as `cnnlab summary` names it: its filters (a conv) and "
                          "Grad-CAM there (default: first conv's filters, Grad-CAM on the last "
                          "conv stage).")
    ins.add_argument("--checkpoint", choices=("best", "last"), default="last",
                     help="the checkpoint to look into (default: last, the final model).")
    ins.add_argument("--mistakes", type=int, default=8, metavar="N",
                     help="most confident mistakes to explain (default: 8).")
    ins.add_argument("--out", type=Path, metavar="DIR",
                     help="folder for the PNGs and inspect.html (default: RUN_DIR/inspect, or "
                          "edge-demo/ with --edge-demo).")
    ins.add_argument("--edge-demo", action="store_true",
                     help="chapter 7.2: train a 1x2 kernel to detect edges (needs no run).")
    ins.add_argument("--steps", type=int, default=10, metavar="N",
                     help="--edge-demo: gradient steps (the book: 10).")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no model; give a,b,c")
    return names


def _seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2): distinct non-negative seeds."""
    try:
        seeds = tuple(int(p) for p in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of distinct seeds (0,1,2)")
    return seeds


def _triple(text: str) -> tuple[int, int, int]:
    from cnnlab.train_config import parse_ints

    return parse_ints(text, 3, "C,H,W (e.g. 1,28,28)")  # type: ignore[return-value]


# --- train -------------------------------------------------------------------------------------

def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (flags left out are None)."""
    from cnnlab.train_config import config_from_args

    return config_from_args(args, only_given=True)


def plan_train(args: argparse.Namespace) -> tuple[Any, Any, Path, dict[str, Any]]:
    """(recipe, validated TrainConfig, run folder, model kwargs) that `train` would run; with
    `--lr find` the config's lr is the recipe's, and args.lr_find is set."""
    from cnnlab.runlog import default_run_dir

    recipe, config, model_kwargs = plan_config(args)
    if args.out is not None and not args.out.strip():
        raise ConfigError('--out "" names no folder; name one, or leave --out out for a new '
                          "runs/<name>-<time>")
    out = Path(args.out) if args.out is not None else default_run_dir(recipe.name)
    return recipe, config, out, model_kwargs


def plan_config(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """(recipe, validated TrainConfig, model kwargs) from the target, --config, --model-arg and
    the training flags; args.lr_find says whether the lr is 'find' (then the config keeps the
    recipe's)."""
    from cnnlab.recipes import resolve
    from cnnlab.train_config import load_toml

    settings = load_toml(args.config) if args.config else {}
    file_knobs = settings.pop("model_args", {})
    flags = _flags(args)
    model = flags.pop("model", None)  # --model NAME names what to train, like the positional
    target = args.target or model or settings.get("recipe") or settings.get("model")
    settings.pop("recipe", None)
    settings.pop("model", None)
    if not target:
        raise ConfigError("name a recipe or a model: `cnnlab train lenet` (`cnnlab recipes`)")
    recipe = resolve(target)
    if model is not None and model != recipe.model:
        raise ConfigError(f"recipe {recipe.name!r} trains {recipe.model!r}, not --model {model!r}; "
                          "name one of them")
    given = {**settings, **flags}  # flags win over the file
    args.lr_find = given.get("lr") == "find"  # --lr find, or lr = "find" in the TOML file
    if args.lr_find:
        given.pop("lr")
    config = recipe.config(**given).validate()  # a recipe's size applies to its own data only
    from cnnlab.models import parse_model_args

    # The model's knobs: the recipe's < the [model] table < --model-arg, each checked.
    model_kwargs = {**parse_model_args(recipe.model, recipe.model_kwargs),
                    **parse_model_args(recipe.model, file_knobs),
                    **parse_model_args(recipe.model, args.model_args)}
    return recipe, config, model_kwargs


def cmd_train(args: argparse.Namespace) -> int:
    """Train a recipe or a model (or resume a run) and print the test accuracy and run folder."""
    from cnnlab import train as engine
    from cnnlab.distributed import is_rank0
    from cnnlab.memory import check_run_fits  # refuses at once a run that cannot fit
    from cnnlab.models import knob_text

    if args.resume is not None:
        if args.target or args.config or args.out is not None or args.overwrite:
            raise ConfigError("--resume DIR takes its recipe and settings from DIR; drop the "
                              "recipe name, --config, --out and --overwrite (flags still change "
                              "settings)")
        try:
            changes = _flags(args)
            if "model" in changes or args.model_args:
                raise ConfigError("--resume DIR trains the model recorded in DIR (with its "
                                  "knobs); drop --model and --model-arg")
            result = engine.resume(args.resume, checkpoint=args.from_checkpoint or "last",
                                   preflight=check_run_fits, **changes)
        except RunFinished as done:  # nothing to do is not a failure: say so, and how to go on
            return _finished_run(done, Path(args.resume))
        return _finish_train(result, Path(args.resume), args)
    if args.from_checkpoint is not None:
        raise ConfigError("--from picks the checkpoint of --resume DIR; add --resume DIR")

    recipe, config, out, model_kwargs = plan_train(args)
    knobs = knob_text(recipe.model, model_kwargs)
    knobs = f" ({knobs})" if knobs else ""
    extras: dict[str, Any] = {}
    if args.lr_find:  # the range test on a fresh model first; the run starts from a fresh init
        config, extras = _find_lr(recipe, config, model_kwargs)

    def header(cfg: Any) -> None:
        """Once the run passed the memory guard (a refusal is one line, nothing before it)."""
        if is_rank0():
            print(f"cnnlab: {recipe.name}: {recipe.model}{knobs} on {config.dataset} -> {out}",
                  file=sys.stderr)
            if recipe.note and not config.dry_run:
                print(f"cnnlab: note: {recipe.note}", file=sys.stderr)

    try:
        # The zoo name, not a built module: the run records it, seeds the init, can be resumed.
        result = engine.train(recipe.model, config.dataset, config, out_dir=out,
                              model_kwargs=model_kwargs, preflight=check_run_fits,
                              on_start=header, overwrite=args.overwrite, **extras)
    except BaseException:
        if args.out is None:  # the fresh runs/<name>-<time> this command made, if still empty
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return _finish_train(result, out, args)


def _find_lr(recipe: Any, config: Any, model_kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`train --lr find`: the range test, its line on stderr, the config with the found lr and
    what the run folder records of it (config.json's lr_find, lr-find.png, lr-find.json)."""
    from cnnlab.lrfind import lr_find
    from cnnlab.memory import check_run_fits  # the range test trains the same network

    print(f"cnnlab: {recipe.name}: finding the learning rate (range test, at most 100 steps)…",
          file=sys.stderr, flush=True)
    found = lr_find(recipe.model, config.dataset, config, model_kwargs=model_kwargs,
                    preflight=check_run_fits)
    print(f"cnnlab: lr-find: lr {found.suggestion:.3g} ({found.rule_text}; {found.steps} steps, "
          f"{found.stopped})", file=sys.stderr)
    return config.replace(lr=found.suggestion), found.run_files()


def cmd_lr_find(args: argparse.Namespace) -> int:
    """The learning-rate range test: print the suggestion and its rule, write the picture."""
    from cnnlab.atomic import write_atomic
    from cnnlab.lrfind import lr_find
    from cnnlab.memory import check_run_fits
    from cnnlab.plots import save_figure
    from cnnlab.runlog import to_json

    recipe, config, model_kwargs = plan_config(args)
    if args.lr_find:
        raise ConfigError("lr-find sweeps the learning rate itself; drop --lr find")
    found = lr_find(recipe.model, config.dataset, config, model_kwargs=model_kwargs,
                    preflight=check_run_fits, start_lr=args.start_lr, end_lr=args.end_lr,
                    steps=args.steps, rule=args.rule)
    png = save_figure(found.figure, args.out)
    curve = write_atomic(args.out.with_suffix(".json"), to_json(found.to_dict()))
    print(f"suggested lr: {found.suggestion:.3g}")
    print(f"rule: {found.rule_text}")
    print(f"steps: {found.steps} ({found.stopped} at lr {found.lrs[-1]:.3g})")
    print(f"picture: {png}")
    print(f"curve: {curve}")
    print(f"train with it: cnnlab train {recipe.name} --lr {found.suggestion:.3g}, "
          f"or --lr find", file=sys.stderr)
    return 0


def _finished_run(done: RunFinished, run_dir: Path) -> int:
    """`--resume` of a finished run: its message, then the result it recorded."""
    from cnnlab.distributed import is_rank0
    from cnnlab.run import read_json

    if not is_rank0():
        return 0
    print(f"cnnlab: {_one_line(done)}", file=sys.stderr)
    result = read_json(run_dir / "result.json")
    if result.get("test_acc") is not None:
        print(f"test accuracy: {result['test_acc']:.4f}")
    print(f"run folder: {run_dir}", flush=True)
    wanted = read_json(run_dir / "config.json").get("report", True)
    if wanted and not (run_dir / "report.html").is_file():  # a fault cost it: write it now
        print(f"report: {_write_report(run_dir)}")
    return 0


def _finish_train(result: Any, out: Path, args: argparse.Namespace) -> int:
    """Print what the run reached and where it lives, then write its report (rank 0 only)."""
    from cnnlab.distributed import is_rank0

    if not is_rank0():
        return 0
    run_dir = Path(getattr(result, "run_dir", None) or out)
    if result.config.dry_run:  # one batch says the setup works, nothing about accuracy
        print(f"dry run OK: one training and one evaluation batch of {result.config.model} "
              f"at {_fmt_size(result.config.resize)}")
    elif result.test_acc is not None:
        part = ""
        n, total = result.test_images, result.test_split_images
        if n and total and n < total:
            part = f" (on {n:,} of {total:,} test images: --limit-batches)"
        print(f"test accuracy: {result.test_acc:.4f}{part}")
    print(f"time: {result.seconds:.1f} s")
    print(f"run folder: {run_dir}", flush=True)
    # --no-report is a config field: recorded, so a --resume of the run keeps it.
    if result.config.report and not result.config.dry_run:  # a dry run has nothing to report
        # The engine's last validation was the final model on the test split: reused.
        path = _write_report(run_dir, evaluation=getattr(result, "evaluation", None))
        print(f"report: {path}")
    return 0


def _write_report(run_dir: Path, **kw: Any) -> Path:
    """write_report, saying first that it runs (it evaluates the model: seconds, not instant)."""
    from cnnlab.report import write_report

    print("writing report…", file=sys.stderr, flush=True)
    return write_report(run_dir, **kw)


def _fmt_size(size: Any) -> str:
    return "native size" if not size else f"{size[0]}x{size[1]}"


# --- eval / predict ---------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a run's checkpoint on its dataset's test split (or --split train/val)."""
    from cnnlab.progress import plural
    from cnnlab.run import evaluate_run, load_run

    run = load_run(args.run_dir, checkpoint=args.checkpoint)
    ev = evaluate_run(run, split=args.split)
    metrics = {"checkpoint": args.checkpoint, "split": args.split, "loss": ev.loss,
               "acc": ev.acc, "n": ev.n}
    if args.format == "json":
        print(json.dumps(metrics))
    else:
        same = " (= test: the run validated on it)" if (
            args.split == "val" and not run.config.get("val_size")) else ""
        print(f"{args.run_dir} [{args.checkpoint}.pt] on the {ev.dataset} {args.split} split"
              f"{same}: accuracy {ev.acc:.4f}, loss {ev.loss:.4f}, {plural(ev.n, 'image')}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify image files with a run's model (or an exported ONNX file); print the top classes."""
    if args.run_dir.suffix == ".onnx" and args.run_dir.is_file():
        from cnnlab.export import predict_onnx

        classes, preds = predict_onnx(args.run_dir, args.images, invert=args.invert)
    else:
        from cnnlab.run import load_run, predict_files

        run = load_run(args.run_dir, checkpoint=args.checkpoint)
        classes, preds = run.classes, predict_files(run, args.images, invert=args.invert)
    k = max(1, min(args.top, len(classes)))
    if args.format == "json":
        print(json.dumps([{"image": str(path), "top": [
            {"class": classes[i], "prob": float(probs[i])}
            for i in probs.argsort(descending=True)[:k].tolist()]}
            for path, probs in zip(args.images, preds)]))
        return 0
    for path, probs in zip(args.images, preds):
        top = probs.argsort(descending=True)[:k].tolist()
        ranked = ", ".join(f"{classes[i]} {probs[i]:.1%}" for i in top[1:])
        line = f"{path}: {classes[top[0]]} ({probs[top[0]]:.1%})"
        print(line + (f"   then {ranked}" if ranked else ""))
    return 0


# --- summary / models / recipes --------------------------------------------------------------

def cmd_summary(args: argparse.Namespace) -> int:
    """Print a model's cost summary."""
    from cnnlab.models import create_model, default_input_size, parse_model_args

    c, h, w = args.input or default_input_size(args.model)
    if args.classes < 1:
        raise ConfigError(f"--classes {args.classes} must be at least 1")
    model = create_model(args.model, num_classes=args.classes, in_channels=c, input_size=(h, w),
                         **parse_model_args(args.model, args.model_args))
    from cnnlab.cost import summary

    s = summary(model, (c, h, w), batch_size=args.batch_size, measure_memory=args.measure)
    out = {"table": str, "markdown": lambda x: x.to_markdown(), "json": lambda x: x.to_json()}
    print(out[args.format](s))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the zoo's models with their input size and parameter count."""
    from cnnlab.cost import model_rows

    rows = model_rows(args.pattern)
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r} (`cnnlab models` lists them all)")
    if args.format == "markdown":
        print("| model | book input (C,H,W) | parameters |\n|---|---|---:|")
        for name, size, n in rows:
            print(f"| `{name}` | {size} | {n:,} |")
        return 0
    width = max(len(r[0]) for r in rows)
    print(f"{'model'.ljust(width)}  input      parameters")
    for name, size, n in rows:
        print(f"{name.ljust(width)}  {size.ljust(9)}  {n:>12,}")
    if [name for name, _, _ in rows] == [args.pattern]:  # one model by name: its knobs too
        from cnnlab.models import knob_table

        print(f"\nknobs of {args.pattern} (--model-arg KEY=VALUE):\n{knob_table(args.pattern)}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """List the recipes."""
    from cnnlab.recipes import RECIPES, recipe_table

    if args.format == "markdown":
        print(recipe_table())
        return 0
    wrap = textwrap.TextWrapper(width=96, initial_indent="    ", subsequent_indent="    ")
    for r in RECIPES.values():
        m = r.measured
        got = "not yet measured" if m is None else (
            f"measured {m.test_acc:.1%} in {m.seconds / 60:.1f} min on {m.machine}"
            + (f", {m.data}" if m.data else ""))
        print(f"{r.name:<20} {r.model} on {r.dataset}: {r.hyperparameters()}")
        print(wrap.fill(f"{r.reproduces}; {got}"))
    return 0


# --- data / report -----------------------------------------------------------------------------

def cmd_data(args: argparse.Namespace) -> int:
    """Download, verify or show a dataset."""
    from cnnlab import data
    from cnnlab.plots import MAX_GRID_IMAGES

    if args.action == "show" and not 1 <= args.count <= MAX_GRID_IMAGES:
        raise ConfigError(f"--count {args.count} must be from 1 to {MAX_GRID_IMAGES} (a grid of "
                          "more images is not readable)")
    if args.action == "verify":
        files = data.verify_dataset(args.name, root=args.root)
        for name, how in sorted(files.items()):
            print(f"  {name}: {how}")
        ds = data.load_dataset(args.name, root=args.root, download=False)
        print(f"{ds.name}: OK, {len(ds.train)} train + {len(ds.test)} test images, "
              f"{len(ds.classes)} classes, in {ds.root}")
        if ds.note:  # intact, but not what published accuracies were measured on
            print(f"{ds.name}: {ds.note}")
        return 0
    ds = data.load_dataset(args.name, root=args.root, download=True)
    if args.action == "download":
        print(f"{ds.name}: {len(ds.train)} train + {len(ds.test)} test images in {ds.root}")
        return 0
    out = args.out or Path(f"{ds.name}-samples.png")
    ds.save_grid(out, args.split, args.count, seed=args.seed)
    print(f"{min(args.count, len(ds.train if args.split == 'train' else ds.test))} {args.split} "
          f"images of {ds.name} with their labels: {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """(Re)write a run folder's report.html, confusion.png and errors.png."""
    if args.max_errors < 0:
        raise ConfigError(f"--max-errors {args.max_errors} must not be negative")
    if Path(args.run_dir).is_dir():  # a read-only folder fails now, not after the evaluation
        from cnnlab.atomic import check_writable

        check_writable(args.run_dir)
    path = _write_report(args.run_dir, checkpoint=args.checkpoint, max_errors=args.max_errors)
    from cnnlab.run import torn_lines

    for name in torn_lines(args.run_dir):  # the report says so too
        print(f"cnnlab: note: the last line of {Path(args.run_dir) / name} is torn; the report "
              "skipped it", file=sys.stderr)
    print(f"report: {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run's model and print where it went and how it compares with PyTorch."""
    from cnnlab.export import export_run

    r = export_run(args.run_dir, args.format, args.out, checkpoint=args.checkpoint)
    print(f"{r.format}: {r.path}")
    print(f"sidecar: {r.sidecar}")
    print(f"checked on {r.n_checked} test images: largest logit difference from PyTorch "
          f"{r.max_abs_diff:.2e}, predicted classes agree {r.agreement:.0%}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Write a run's filters, feature maps, Grad-CAM and saliency (or the edge demo) as PNGs and
    one inspect.html."""
    if args.edge_demo:
        from cnnlab.edgedemo import edge_demo_page

        if args.run_dir or args.index is not None or args.image or args.layer:
            raise ConfigError("--edge-demo needs no run, image or layer: `cnnlab inspect "
                              "--edge-demo --out DIR`")
        page, demo = edge_demo_page(args.out or Path("edge-demo"), steps=args.steps)
        k = demo.kernel[0]
        print(f"learned kernel [{k[0]:.4f}, {k[1]:.4f}] (the book's: [1, -1]); squared error "
              f"{demo.losses[0]:.3f} -> {demo.losses[-1]:.4f} in {len(demo.losses)} steps")
        print(f"page: {page}")
        return 0
    if args.run_dir is None:
        raise ConfigError("name a run folder (`cnnlab inspect RUN_DIR`), or --edge-demo")
    if args.mistakes < 0:
        raise ConfigError(f"--mistakes {args.mistakes} must not be negative")
    from cnnlab.inspect_page import inspect_run

    *pngs, page = inspect_run(args.run_dir, args.out, index=args.index, image=args.image,
                                      layer=args.layer, checkpoint=args.checkpoint,
                                      n_mistakes=args.mistakes)
    print(f"pictures: {', '.join(p.name for p in pngs)} in {page.parent}")
    print(f"page: {page}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the runs' table and write the comparison page."""
    from cnnlab.compare import collect_runs, format_table, write_compare

    runs, skipped = collect_runs(args.run_dirs)
    if not runs and len(skipped) == 1:  # one line: why this one path is not a run to compare
        path, why = skipped[0]
        raise DataError(why if str(path) in why else f"{path} {why}")
    for path, why in skipped:
        print(f"cnnlab: warning: skipping {path}: {why}", file=sys.stderr)
    if not runs:
        raise DataError(f"no run folder to compare among {len(args.run_dirs)} path(s); give "
                        "folders written by `cnnlab train` or `cnnlab suite`")
    print(format_table(runs, args.format, group=not args.per_seed))
    if not args.no_page:
        print(f"page: {write_compare(runs, args.out, group=not args.per_seed)}", file=sys.stderr)
    return 0


def cmd_suite(args: argparse.Namespace) -> int:
    """Train a suite of models under one recipe and budget; resumable; writes compare.html."""
    from cnnlab.suite import plan_suite, run_suite

    plan = plan_suite(args.name, args.models, epochs=args.epochs, data_root=args.data_root,
                      test_samples=args.test_samples, budget=args.budget, out=args.out,
                      seeds=args.seeds, find_lr=args.lr_find)
    name, out, budget = plan.name, plan.out_dir, plan.budget_minutes
    t0 = time.perf_counter()
    try:
        result = run_suite(plan.models, out, budget_s=budget * 60, config=plan.config, name=name,
                           stream=sys.stderr, seeds=plan.seeds, find_lr=plan.find_lr)
    except (KeyboardInterrupt, TrainingInterrupted) as err:
        print("cnnlab: suite interrupted; finished members are kept", file=sys.stderr)
        print(f"resume with: {plan.again}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_INTERRUPTED)
    from cnnlab.compare import collect_runs, format_table, write_compare

    runs, _ = collect_runs([m.run_dir for m in result.members if m.status != "failed"])
    if runs:
        page = write_compare(runs, out / "compare.html", title=f"suite {name}")
        print(format_table(runs, "text"))
        print(f"comparison: {page}", file=sys.stderr)
    print(f"suite {name}: {time.perf_counter() - t0:.0f} s of wall clock in this command, "
          f"{result.total_seconds:.0f} s of training sessions in all (budget {budget * 60:.0f} s)",
          file=sys.stderr)
    failed = [m.run_dir.name for m in result.members if m.status == "failed"]
    if failed:
        print(f"cnnlab: {len(failed)} run(s) failed: {', '.join(failed)} "
              f"(see {out / 'suite.json'})", file=sys.stderr)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or join, or resume) a sweep; print one line per trial, the best, the page."""
    from cnnlab import sweep as sw
    from cnnlab.sweep_space import OPTIONS, plan_spec, sweep_options

    opts = sweep_options(args.config, {n: getattr(args, n, None) for n in OPTIONS})
    folder = args.join or args.resume
    if folder is not None:
        if args.join and args.resume:
            raise ConfigError("--join DIR and --resume DIR do the same; give one")
        if args.target or opts.get("param") or opts.get("out") or _flags(args) \
                or args.model_args:
            raise ConfigError(f"--{'join' if args.join else 'resume'} DIR takes the sweep's "
                              "settings from DIR; drop the name, --param, --out and training "
                              "flags (--trials, --budget and --retrain-best still apply)")
        spec, out = None, Path(folder)
    else:
        ns = argparse.Namespace(target=args.target, config=args.config,
                                model_args=args.model_args, out=opts.get("out") or "-",
                                **_flags(args))
        recipe, config, _, model_kwargs = plan_train(ns)
        spec = plan_spec(recipe, config, model_kwargs, opts, _flags(args), args.config)
        out = Path(opts.get("out") or Path("runs") / f"sweep-{recipe.name}")
    try:
        if spec is not None or not opts.get("retrain_best") or opts.get("trials") or \
                opts.get("budget"):
            best = sw.run_sweep(spec, out, trials=opts.get("trials"),
                                budget_s=sw.parse_budget(opts.get("budget")),
                                storage=opts.get("storage"), stream=sys.stderr).best
        else:
            best = sw.read_sweep(out).get("best")
    except (KeyboardInterrupt, TrainingInterrupted) as err:
        print("cnnlab: sweep interrupted; finished trials are kept; continue with: "
              f"cnnlab sweep --resume {out}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_INTERRUPTED)
    if best:
        saved = sw.read_sweep(out)
        print(f"best: trial {best['number']}, {saved['spec']['metric']} "
              f"{sw.fmt_score(best)} ({sw.fmt_params(best['params'])})")
        print(f"train it: {saved['best_command']}")
    print(f"sweep: {out / 'sweep.html'}", flush=True)
    if opts.get("retrain_best"):
        res = sw.retrain_best(out, stream=sys.stderr)
        print(f"test accuracy of the best configuration, trained on the whole training split: "
              f"{res.test_acc:.4f} (run folder {res.out_dir})")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "summary": cmd_summary,
    "models": cmd_models, "recipes": cmd_recipes, "data": cmd_data, "report": cmd_report,
    "export": cmd_export, "compare": cmd_compare, "suite": cmd_suite, "sweep": cmd_sweep,
    "lr-find": cmd_lr_find,
}
COMMANDS["inspect"] = cmd_inspect


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cnnlab` and `python -m cnnlab`; returns the exit status.

    0: done (also `--resume` of a finished run); 2: a CnnlabError, one line; 128 + the signal's
    number when Ctrl-C (130) or SIGTERM (143) stopped a training, with the command that resumes
    it when a checkpoint exists.
    """
    entry = argv is None  # the process's own command line: it exits when main returns
    argv = sys.argv[1:] if argv is None else list(argv)
    # `cnnlab train NAME --help`: the flags' defaults are NAME's (e.g. its learning rate).
    asks_help = "-h" in argv or "--help" in argv
    target = argv[1] if asks_help and argv[:1] == ["train"] and len(argv) > 1 and not argv[
        1].startswith("-") else None
    parser = build_parser(target)
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TrainingInterrupted as err:  # the engine checkpointed (if it could): say how to go on
        _exiting_on_a_signal(entry)
        print(f"cnnlab: {_one_line(err)}", file=sys.stderr)
        return err.exit_code
    except CnnlabError as err:
        print(f"cnnlab: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as err:  # a second signal, or one outside a training loop
        _exiting_on_a_signal(entry)
        from cnnlab.train import resume_hint

        hint = resume_hint(err.run_dir) if isinstance(err, HardInterrupt) else ""
        print("cnnlab: interrupted" + (f"; resume with: {hint}" if hint else ""),
              file=sys.stderr)
        return err.exit_code if isinstance(err, HardInterrupt) else EXIT_INTERRUPTED


def _exiting_on_a_signal(entry: bool) -> None:
    """The process ends because of Ctrl-C or SIGTERM: one more (20 ms later, say) must not
    interrupt the interpreter's exit ("Exception ignored in atexit callback", a traceback). Only
    for the process's own command line: an in-process caller keeps its handlers."""
    if entry:
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
