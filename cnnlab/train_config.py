"""TrainConfig: every knob of a training run as one typed, validated, JSON-ready dataclass.

Field types stay simple (int, float, str, bool, tuple[int, int] | None) because the CLI builds its
flags from these fields and config.json stores them as they are.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, suggest

# The evaluation batch when none is given (here and in cnnlab.run's evaluate and predict). Larger
# batches outgrow the CPU's caches: FastNet evaluates 1.65-1.8x slower at 1024 than at 256, and
# no zoo model was faster at 1024 (bench/bench_eval_batch.py, BENCHMARKS.md). Not measured on a
# GPU, where a big network may want larger batches (--eval-batch-size).
EVAL_BATCH_SIZE = 256

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
AMP_MODES = ("auto", "fast", "off", "bf16", "fp16")  # resolved by cnnlab.device
DEVICES = ("auto", "cpu", "cuda", "mps")
PROGRESS_MODES = ("auto", "notebook", "bar", "plain", "none")
MONITORS = ("val_acc", "val_loss")


def knob(default: Any, help: str) -> Any:
    """A TrainConfig field with its --help sentence (a whole sentence, ending with a period)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Hyperparameters, data pipeline and run mechanics of one training run."""

    # Each field's help (metadata) is the sentence `cnnlab train --help` shows for its flag.

    # --- what to train on -------------------------------------------------------------------
    model: str = knob("", "Zoo name (`cnnlab models`), as the positional; recorded for `resume`.")
    dataset: str = knob("fashion-mnist", "fashion-mnist, mnist, cifar10 or folder:PATH (a folder "
                        "of class folders).")
    data_root: str | None = knob(None, "Folder holding the datasets (none: cnnlab.data's search "
                                 "order).")
    image_size: int = knob(0, "For folder:PATH only: the side images are stored at (0: the "
                           "smallest-side rule).")
    resize: tuple[int, int] | None = knob(None, "Resize batches to H,W (none: on 28x28 data the "
                                          "model's book size, else the data's own size).")
    normalize: bool = knob(False, "Standardize with the train split's mean and std.")
    augment_crop: int = knob(0, "Random-crop padding in pixels (0: no crop augmentation).")
    augment_flip: bool = knob(False, "Flip training images horizontally at random.")
    val_size: float = knob(0, "Validation carved from train: 0 validates on the test split (as "
                           "the book), below 1 a fraction, else a count.")
    train_samples: int = knob(0, "Train on a seeded stratified subset of this many samples (0: "
                              "all).")
    test_samples: int = knob(0, "Test on a seeded stratified subset of the test split (0: all of "
                             "it).")
    score_test: bool = knob(True, "Score the final model on the test split (off: validation "
                            "only, as a sweep's trials; needs val_size).")

    # --- optimization ----------------------------------------------------------------------
    epochs: int = knob(10, "Passes over the training split.")
    batch_size: int = knob(128, "Global batch (split evenly across processes under torchrun).")
    eval_batch_size: int = knob(EVAL_BATCH_SIZE, "Evaluation batch (256 suits CPU caches; a GPU "
                                "evaluating a big network may take more).")
    optimizer: str = knob("sgd", "The optimizer: sgd or adamw.")
    lr: float = knob(0.1, "Peak learning rate (`--lr find`: the range test picks it).")
    momentum: float = knob(0.0, "SGD momentum (the book uses plain SGD: 0).")
    nesterov: bool = knob(False, "Nesterov momentum for SGD (needs momentum > 0).")
    weight_decay: float = knob(0.0, "Weight decay: decoupled for AdamW, L2 for SGD.")
    schedule: str = knob("constant", "Learning-rate schedule, per step: constant, cosine or "
                         "onecycle.")
    warmup_epochs: float = knob(0.0, "Linear warmup from 0 to lr over this many epochs (for "
                                "onecycle the ramp, default 30%).")
    label_smoothing: float = knob(0.0, "Cross-entropy label smoothing in [0, 1).")
    grad_clip: float = knob(0.0, "Clip the global gradient norm to this (0: off).")

    # --- speed and reproducibility ---------------------------------------------------------
    amp: str = knob("auto", "Precision: auto is bf16 on CUDA and float32 elsewhere; fast is bf16 "
                    "also on CPUs with native bf16; off is float32; bf16 and fp16 always apply. "
                    "config.json records the resolved word.")
    channels_last: bool = knob(True, "NHWC memory format: faster convolutions on CPUs (oneDNN) "
                               "and GPUs.")
    compile: bool = knob(False, "torch.compile the model (opt-in: compilation takes a while).")
    seed: int = knob(0, "Seeds model init (zoo models), data order, augmentation and dropout.")
    deterministic: bool = knob(False, "Deterministic kernels (bitwise reproducible on the CPU).")
    device: str = knob("auto", "auto picks cuda, then mps, then cpu; or cpu, cuda, cuda:1, mps.")
    threads: int = knob(0, "CPU threads (0: all cores, fewer while other programs load the CPU).")

    # --- run mechanics ---------------------------------------------------------------------
    eval_every: int = knob(1, "Validate every this many epochs, and after the last (0: never).")
    checkpoint_every: int = knob(0, "Also write checkpoints/last.pt every this many steps (0: "
                                 "once per epoch).")
    patience: int = knob(0, "Early stopping: epochs without improvement of monitor (0: off).")
    monitor: str = knob("val_acc", "The metric that picks best.pt and drives early stopping.")
    limit_batches: int = knob(0, "Train and evaluate only the first N batches of each epoch (0: "
                              "all).")
    progress: str = knob("auto", "Progress display: auto (a live view in Jupyter or Colab, a bar "
                         "on a terminal, else plain), notebook, bar, plain or none.")
    log_every: int = knob(50, "Steps between progress refreshes (the only per-step host syncs).")
    tensorboard: bool = knob(True, "Write TensorBoard event files when tensorboard is installed.")
    plot: bool = knob(True, "Redraw curves.png after every epoch.")
    report: bool = knob(True, "Write report.html when the run ends (a --resume keeps the run's "
                        "choice).")
    dry_run: bool = knob(False, "Stop after one training batch and one evaluation batch.")

    def __post_init__(self) -> None:
        # JSON has no tuples; accept a list or a single int for resize.
        if isinstance(self.resize, int) and not isinstance(self.resize, bool):
            self.resize = (self.resize, self.resize)
        elif isinstance(self.resize, list):
            self.resize = tuple(self.resize)

    def validate(self) -> TrainConfig:
        """Raise ConfigError naming the first invalid field; return self when all are valid."""
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _field_types()[f.name])
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("progress", self.progress, PROGRESS_MODES)
        _choice("monitor", self.monitor, MONITORS)
        dev, _, index = self.device.partition(":")
        if dev not in DEVICES or (index and not (dev == "cuda" and index.isdigit())):
            raise ConfigError(f"device={self.device!r} is not one of {', '.join(DEVICES)} "
                              "(or cuda:N); pick one of those")
        if not self.dataset:
            raise ConfigError("dataset is empty; name a dataset such as 'fashion-mnist'")
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _positive("lr", self.lr)
        for name in ("train_samples", "test_samples", "threads", "eval_every",
                     "checkpoint_every", "patience", "limit_batches", "augment_crop"):
            _non_negative(name, getattr(self, name))
        _positive("log_every", self.log_every)
        _non_negative("image_size", self.image_size)
        if self.image_size and not self.dataset.startswith("folder:"):
            raise ConfigError(f"image_size={self.image_size} applies to folder:PATH datasets; "
                              f"resize {self.dataset} with resize (--resize H,W) instead")
        for name in ("weight_decay", "grad_clip", "warmup_epochs", "val_size"):
            _non_negative(name, getattr(self, name))
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum={self.momentum} must be in [0, 1)")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov=True needs optimizer='sgd' and momentum > 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        if self.patience and not self.eval_every:
            raise ConfigError(f"patience={self.patience} needs validation to watch, but "
                              "eval_every=0 never validates; set eval_every >= 1 or patience=0")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} exceeds epochs={self.epochs}")
        if self.val_size >= 1 and self.val_size != int(self.val_size):
            raise ConfigError(f"val_size={self.val_size}: a count must be whole, a fraction < 1")
        if not self.score_test and not self.val_size:
            raise ConfigError("score_test=False needs val_size > 0: without a validation split "
                              "the run validates on the test split")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
            raise ConfigError(f"resize={self.resize} must be (height, width) with positive sizes")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        out = dataclasses.asdict(self)
        if out["resize"] is not None:
            out["resize"] = list(out["resize"])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build and validate a config from a dict such as config.json (skips "environment" and
        the model's "model_kwargs")."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"environment", "model_kwargs"})
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; "
                              f"known fields are: {', '.join(sorted(names))}")
        return cls(**{k: v for k, v in d.items() if k in names}).validate()

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes).validate()


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's tables and keys; ConfigError (one line) when it cannot be read."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError("--config needs Python 3.11+ (tomllib) or `pip install tomli`"
                              ) from None
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; name a TOML file") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        line = err.object[:err.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (line {line} holds byte "
                          f"0x{err.object[err.start]:02x}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    return raw


def load_toml(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file: keys are TrainConfig fields ('-' or '_'), plus `recipe`;
    a [sweep] table is `cnnlab sweep`'s (read with read_toml)."""
    raw = read_toml(path)
    raw.pop("sweep", None)
    # Settings are top-level keys, or keys of a [train] table, or both (each key once).
    # The model's knobs: a [model] table (its `name` may name the model to train).
    knobs = raw.pop("model") if isinstance(raw.get("model"), dict) else None
    table = raw.pop("train", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'train' must be a [train] table of settings, "
                          f"not {type(table).__name__}")
    names = [f.name for f in dataclasses.fields(TrainConfig)] + ["recipe"]
    out: dict[str, Any] = {}
    for where, settings in (("", raw), (" in [train]", table)):
        for key, value in settings.items():
            name = key.replace("-", "_")
            if name not in names:
                kind = "table" if isinstance(value, dict) else "setting"
                raise ConfigError(f"{path}: unknown {kind} {key!r}{where}{suggest(name, names)}")
            if name in out:
                raise ConfigError(f"{path}: {key!r} is set both at the top level and in "
                                  "[train]; keep one")
            out[name] = value
    if isinstance(out.get("resize"), list):
        out["resize"] = tuple(out["resize"])
    if knobs is not None:
        if "name" in knobs:
            out["model"] = knobs.pop("name")
        out["model_args"] = knobs
    return out


def make_optimizer(params: Any, optimizer: str, lr: float, momentum: float = 0.0,
                   nesterov: bool = False, weight_decay: float = 0.0) -> Any:
    """The torch optimizer a TrainConfig names (one of OPTIMIZERS): the engine's, and the one
    cnnlab.memory measures."""
    import torch

    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"optimizer={optimizer!r} is not one of {', '.join(OPTIMIZERS)}")


def format_setting(value: Any) -> str:
    """A setting as people write it: on/off for switches, 28,28 for a size, 0.1 for a number."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(format_setting(v) for v in value)
    return "none" if value is None else str(value)


def field_help() -> dict[str, str]:
    """Field name -> the sentence that documents it (its metadata; the CLI's --help)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainConfig)}


CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "amp": AMP_MODES,
           "progress": PROGRESS_MODES, "monitor": MONITORS}


def add_arguments(parser: Any, exclude: tuple[str, ...] = (),
                  shown: dict[str, str] | None = None) -> None:
    """Add one --flag per TrainConfig field to an argparse parser or group (defaults None).

    The one generator of training flags: `cnnlab train` takes exactly these. A flag left out
    parses as None, so a recipe or a config file keeps its value (see `config_from_args`).
    `shown` replaces the default --help states for some fields (a recipe's value, say).
    """
    import argparse

    helps = field_help()
    for f in dataclasses.fields(TrainConfig):
        if f.name in exclude:
            continue
        tp = _field_types()[f.name]
        help_ = helps.get(f.name, "")
        default = (shown or {}).get(f.name, repr(f.default))
        text = f"{help_} [default {default}]" if help_ else f"[default {default}]"
        kw: dict[str, Any] = {"dest": f.name, "default": None,
                              "help": text.replace("%", "%%")}  # argparse formats help with %
        flag = "--" + f.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        optional = type(None) in typing.get_args(tp)
        base = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
        conv, metavar = (parse_hw, "H,W") if typing.get_origin(base) is tuple else (
            base, f.name.upper())
        if f.name == "lr":  # `--lr find`: the learning-rate range test picks it (cnnlab.lrfind)
            conv = parse_lr
        choices = CHOICES.get(f.name)
        parser.add_argument(flag, type=_or_none(conv) if optional else conv, choices=choices,
                            metavar="{" + ",".join(choices) + "}" if choices else metavar, **kw)


def config_from_args(args: Any, only_given: bool = False) -> dict[str, Any]:
    """Field values from parsed flags: all fields (defaults filled in), or only the given ones."""
    out = {} if only_given else TrainConfig().to_dict()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            out[f.name] = value
    return out


def parse_ints(text: str, n: int, what: str) -> tuple[int, ...]:
    """'1,28,28' or '1x28x28' -> (1, 28, 28): `n` positive ints; one int for n=2 is square."""
    import argparse

    try:
        vals = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        vals = ()
    if n == 2 and len(vals) == 1:
        vals = vals * 2
    if len(vals) != n or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} with positive sizes")
    return vals


def parse_hw(text: str) -> tuple[int, int]:
    """'96' -> (96, 96); '96,64' or '96x64' -> (96, 64)."""
    return parse_ints(text, 2, "H,W (e.g. 96,96) or one size")  # type: ignore[return-value]


def parse_lr(text: str) -> float | str:
    """'0.05' -> 0.05; 'find' -> 'find' (the learning-rate range test chooses it)."""
    import argparse

    if text.strip().lower() == "find":
        return "find"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a learning rate (a number such as "
                                         "0.05) or 'find'") from None


def _or_none(conv: Any) -> Any:
    """A flag type that also takes 'none' (for fields whose default is None)."""
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else conv(text)
    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


_TYPES: dict[str, Any] | None = None


def _field_types() -> dict[str, Any]:
    global _TYPES
    if _TYPES is None:
        _TYPES = typing.get_type_hints(TrainConfig)
    return _TYPES


def _check_type(name: str, value: Any, tp: Any) -> None:
    """ConfigError unless value fits the (simple) annotated type; ints are accepted as floats."""
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ConfigError(f"{name}={value} is not a finite number; give a finite value")
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    elif tp == (str | None):
        ok = value is None or isinstance(value, str)
    else:  # tuple[int, int] | None
        ok = value is None or (isinstance(value, tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value))
    if not ok:
        raise ConfigError(f"{name}={value!r} has the wrong type; expected {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name}={value} must be positive")


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{name}={value} must not be negative")


__all__ = ["EVAL_BATCH_SIZE", "OPTIMIZERS", "TrainConfig", "add_arguments", "config_from_args",
           "field_help", "load_toml", "make_optimizer", "parse_hw", "parse_ints", "read_toml"]
