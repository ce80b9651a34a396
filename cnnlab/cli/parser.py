"""The `cnnlab` argument parser: every subcommand's flags, with examples in its --help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

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


