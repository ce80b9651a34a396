"""Suites: several zoo models trained under one shared recipe and one time budget, then compared.

    cnnlab suite chapter8                 # LeNet ... DenseNet on Fashion-MNIST at 28x28, <= 30 min
    cnnlab suite chapter8 --models lenet,resnet18_small --budget 5
    run_suite(["lenet", "bn_lenet"], "runs/two", budget_s=120)

How a budget becomes a schedule. The whole suite gets `budget_s` of wall time; after a margin for
the comparison page, every member gets the same share B. A member first runs a timing probe: the
engine itself trains the member for a few batches and evaluates a few hundred images, in a
scratch folder so the probe also pays for a checkpoint. From the seconds per training image, per
evaluated image, per checkpoint and for the setup, the planner picks how many training images
(`train_samples`, a seeded stratified subset: the same images every epoch) fit in B together with
`epochs` validations and the final test, so the learning-rate schedule runs to its end inside the
budget instead of being cut off. A member that can train on the whole split in less than B stops
there (the same epochs for everyone, never more). Should a member overrun (the machine got
busier), later members get min(B, what is left / members left): the total holds, at their cost.

Every member is an ordinary run folder under the suite folder, written by the engine; `suite.json`
records the plan. Running the same command again resumes: finished members (result.json) are
skipped, an interrupted one resumes from its last checkpoint, the rest are probed and trained.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from cnnlab.errors import CnnlabError, ConfigError, DataError, TrainingError, TrainingInterrupted
from cnnlab.runsview import RunsView
from cnnlab.train_config import TrainConfig

__all__ = ["SUITES", "SUITE_RECIPE", "Probe", "Suite", "SuitePlan", "SuiteResult", "plan_samples",
           "plan_suite", "run_suite"]

SUITE_FILE = "suite.json"
PAGE_SECONDS = 20.0  # kept back from the budget for the comparison page at the end
SAFETY = 0.92  # plan for this share of a member's budget: timings taken now vary by +-10 %
HEARTBEAT = 10.0  # seconds between updates of the session's time in suite.json
LR_FIND_SHARE = 0.25  # at most this share of a member's budget goes to its range test
LR_FIND_MIN_STEPS = 30  # fewer steps than this make too coarse a curve: the recipe's lr then


@dataclass(frozen=True)
class Suite:
    """A named list of zoo models and the one recipe they all train with."""

    name: str
    models: tuple[str, ...]  # in the order they run (and the book presents them)
    overrides: Mapping[str, Any]  # TrainConfig fields shared by every member
    describes: str
    budget_minutes: float = 30.0  # the whole suite's wall-clock budget by default
    seeds: tuple[int, ...] = (0,)  # every member trains once per seed; the table shows mean ± std
    find_lr: bool = False  # each member's lr from the range test (cnnlab.lrfind), not the recipe's


# The shared recipe of the chapter-8 comparison. One recipe has to train sigmoid LeNet, AlexNet
# and VGG (no batch norm, 4096-wide dense layers) as well as ResNet and DenseNet within minutes,
# so it is AdamW with a one-cycle schedule (no per-network learning rate to tune), no
# augmentation, float32 (amp off: the precision policy on a CPU) and the load-aware default
# threads (cnnlab.device.ThreadPolicy): on a shared 2-core machine two OpenMP threads ran the
# members 2-6x slower than one, on a quiet one faster; the policy picks by the load it sees.
# Validation uses 500 images held out of the training split and the test accuracy 1,000 images
# of the test split (stratified, the same for every member): on two loaded cores GoogLeNet
# evaluated 13-40 images/s, so all 10,000 would take longer than its whole budget.
SUITE_RECIPE: Mapping[str, Any] = MappingProxyType(dict(
    dataset="fashion-mnist", resize=(28, 28), epochs=3, batch_size=128, optimizer="adamw",
    lr=1e-3, weight_decay=0.05, schedule="onecycle", normalize=True, val_size=500,
    test_samples=1000, amp="off", threads=0, channels_last=True,
    eval_every=1,
    tensorboard=False, plot=True, progress="plain", seed=0,
))

SUITES: Mapping[str, Suite] = MappingProxyType({
    "chapter8": Suite(
        "chapter8",
        ("lenet", "alexnet_small", "vgg11_small28", "nin_small", "googlenet_small", "bn_lenet",
         "resnet18_small", "resnext_small", "densenet_small"),
        SUITE_RECIPE,
        "every architecture of D2L chapters 7-8 (LeNet to DenseNet) in its 28x28 form on "
        "Fashion-MNIST, one recipe, the same time budget each, each its own learning rate, "
        "three seeds", budget_minutes=60.0, seeds=(0, 1, 2), find_lr=True),
})


@dataclass
class MemberResult:
    """One member's outcome as the suite saw it."""

    model: str
    run_dir: Path
    status: str  # "done" (finished now), "skipped" (finished before), "failed"
    test_acc: float | None = None
    wall_seconds: float = 0.0
    budget_seconds: float = 0.0
    train_samples: int = 0
    error: str = ""
    seed: int = 0


@dataclass
class SuiteResult:
    """What run_suite did: one entry per member, the suite folder, the page, the wall time."""

    out_dir: Path
    members: list[MemberResult]
    wall_seconds: float  # this session
    total_seconds: float  # all sessions together (suite.json)


# --- planning ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """Timings of one member measured by a short engine run."""

    train_image: float  # seconds per training image (warm-up included: errs on the safe side)
    eval_image: float  # seconds per evaluated image
    checkpoint: float  # seconds per epoch beyond training and validation (checkpoint, curves)
    setup: float  # seconds to build the model and the data pipeline
    wall: float  # what the probe itself took


def plan_samples(budget: float, probe: Probe, *, epochs: int, val_images: int,
                 test_images: int, n_max: int, batch_size: int) -> int:
    """Training images per epoch that fit `budget` seconds (after the probe), at least one batch.

    time = setup + epochs * (n * train_image + val_images * eval_image + checkpoint)
           + test_images * eval_image
    """
    fixed = (probe.setup + epochs * (val_images * probe.eval_image + probe.checkpoint)
             + test_images * probe.eval_image)
    left = SAFETY * (budget - probe.wall) - fixed
    n = math.floor(left / (epochs * probe.train_image)) if left > 0 else 0
    return max(batch_size, min(n, n_max))


def _probe(model: str, config: TrainConfig, model_kwargs: dict[str, Any], data: Any) -> Probe:
    """Time the engine on a few batches of this member (scratch folder, deleted after)."""
    from cnnlab.train import train

    n_train = 2 * config.batch_size
    n_eval = 128
    cfg = config.replace(epochs=1, train_samples=n_train, val_size=0, test_samples=n_eval,
                         progress="none", plot=True, tensorboard=False)
    scratch = Path(tempfile.mkdtemp(prefix="cnnlab-probe-"))
    t0 = time.perf_counter()
    try:
        result = train(model, data, cfg, out_dir=scratch, model_kwargs=model_kwargs)
    finally:
        wall = time.perf_counter() - t0
        shutil.rmtree(scratch, ignore_errors=True)
    row = result.history[-1]
    train_s = float(row["train_seconds"])
    return Probe(train_image=train_s / n_train,
                 eval_image=max(float(row["seconds"]) - train_s, 0.0) / n_eval,
                 checkpoint=max(result.seconds - float(row["seconds"]), 0.0),
                 setup=max(wall - result.seconds, 0.0), wall=wall)


# --- the suite folder --------------------------------------------------------------------------

def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it to start the suite "
                        "again (finished members are kept)") from None


def _write_state(path: Path, state: dict[str, Any]) -> None:
    from cnnlab.atomic import write_atomic
    from cnnlab.runlog import to_json

    write_atomic(path, to_json(state))


def _check_models(models: Sequence[str], config: TrainConfig) -> dict[str, dict[str, Any]]:
    """Model kwargs per member; ConfigError naming every model that cannot take the input."""
    import torch

    from cnnlab.inputs import build_model, recorded_shape
    from cnnlab.models import create_model, default_input_size, list_models

    known = set(list_models())
    unknown = [m for m in models if m not in known]
    if unknown:
        from cnnlab.errors import suggest

        hints = "".join(suggest(m, sorted(known)) for m in unknown[:1])
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}{hints} "
                          "(`cnnlab models` lists them)")
    if len(set(models)) != len(models):
        raise ConfigError(f"--models names a model twice: {','.join(models)}")
    kwargs: dict[str, dict[str, Any]] = {}
    bad = []
    for m in models:
        kwargs[m] = {}  # the input size comes from the run's inputs, never as a knob
        if not config.resize or default_input_size(m)[1:] == tuple(config.resize):
            continue  # built for this size (tests/test_models.py checks every model at its own)
        shape = recorded_shape({**config.to_dict(), "model": m})  # what the run will feed it
        try:
            with torch.device("meta"):  # shapes only: no memory, no init
                if shape is None:
                    create_model(m, input_size=tuple(config.resize))
                else:
                    build_model(m, shape)
        except CnnlabError as err:
            bad.append(f"{m} ({' '.join(str(err).split())[:90]})")
    if bad:
        size = "x".join(map(str, config.resize)) if config.resize else "its size"
        raise ConfigError(f"cannot train at {size}: {'; '.join(bad)}; pick the *_small "
                          "variants (`cnnlab models '*small*'`) or another --resize")
    return kwargs


def _fmt_min(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _table(results: list[MemberResult]) -> list[dict[str, Any]]:
    """The live view's table: one row per member (its seeds' test accuracy as mean ± std)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r.model, {"member": r.model, "accs": [], "time": r.wall_seconds,
                                        "status": r.status})
        row["accs"] += [r.test_acc] if r.test_acc is not None else []
        row["status"] = "failed" if r.status == "failed" else row["status"]
    for row in rows.values():
        accs = row.pop("accs")
        row["test acc"] = ("n/a" if not accs else _pct(accs[0]) if len(accs) == 1 else
                           f"{_pct(statistics.fmean(accs))} ± {_pct(statistics.stdev(accs))}")
        row["time"] = _fmt_min(row["time"])
    return list(rows.values())


# --- running -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SuitePlan:
    """What `cnnlab suite` will run: the members, their shared config, budget and folder, and
    the command that runs (or resumes) exactly this suite again."""

    name: str
    models: list[str]
    config: TrainConfig
    budget_minutes: float
    out_dir: Path
    again: str
    seeds: tuple[int, ...] = (0,)  # one run per member and seed
    find_lr: bool = False  # each member's lr from the range test


def plan_suite(name: str | None, models: Sequence[str] | None = None, *,
               epochs: int | None = None, data_root: str | None = None,
               test_samples: int | None = None, budget: float | None = None,
               out: str | Path | None = None, seeds: Sequence[int] | None = None,
               find_lr: bool | None = None) -> SuitePlan:
    """A named suite (SUITES) or a custom list of models, with the given settings changed
    (seeds, find_lr: None keeps the suite's; a custom suite has seed 0 and the recipe's lr)."""
    if name is None and not models:
        raise ConfigError("name a suite (chapter8) or the models to train: --models a,b,c")
    if name is not None and name not in SUITES:
        from cnnlab.errors import suggest

        raise ConfigError(f"no suite named {name!r}{suggest(name, list(SUITES))} "
                          f"(suites: {', '.join(SUITES)})")
    suite = SUITES.get(name or "")
    label = name or "custom"
    recipe = dict(suite.overrides if suite else SUITE_RECIPE)
    for key, value in (("epochs", epochs), ("data_root", data_root),
                       ("test_samples", test_samples)):
        if value is not None:
            recipe[key] = value
    config = TrainConfig(**recipe).validate()
    minutes = budget if budget is not None else (suite.budget_minutes if suite else 30)
    out_dir = Path(out) if out is not None else Path("runs") / label
    again = " ".join(["cnnlab suite", *([name] if name else []),
                      *([f"--models {','.join(models)}"] if models else []),
                      *([f"--epochs {epochs}"] if epochs is not None else []),
                      *([f"--test-samples {test_samples}"] if test_samples is not None else []),
                      *([f"--seeds {','.join(map(str, seeds))}"] if seeds else []),
                      *([f"--{'' if find_lr else 'no-'}lr-find"] if find_lr is not None else []),
                      f"--budget {minutes:g}", f"--out {out_dir}"])
    return SuitePlan(label, list(models or suite.models), config, minutes, out_dir, again,
                     tuple(seeds or (suite.seeds if suite else (0,))),
                     find_lr if find_lr is not None else bool(suite and suite.find_lr))


def run_suite(models: Sequence[str], out_dir: str | Path, *, budget_s: float = 1800.0,
              config: TrainConfig | None = None, name: str = "custom",
              stream: TextIO | None = sys.stderr, data: Any = None,
              seeds: Sequence[int] = (0,), find_lr: bool = False,
              progress: str = "auto") -> SuiteResult:
    """Train `models` one after another under `config` and `budget_s` seconds in all; resumable.

    config is the shared recipe (default: SUITE_RECIPE); data a Dataset to use instead of
    config.dataset (tests pass a tiny one). Progress lines go to `stream`. The comparison page
    is the caller's to write (`cnnlab.compare.write_compare`; `cnnlab suite` does).
    seeds: each member trains once per seed (run folders MODEL-seedN when more than one), on
    the same training subset. find_lr: each member's lr comes from the range test
    (cnnlab.lrfind) on its training split, instead of config.lr. progress: "auto" shows one
    live view in a notebook (the member that runs and its progress, a table of finished members,
    a summary at the end) and the lines on `stream` elsewhere; "notebook", "plain" or "none"
    force one (cnnlab.runsview).
    """
    from cnnlab import data as cdata
    from cnnlab.run import read_json
    from cnnlab.train import resume, train

    t_session = time.perf_counter()
    config = (config or TrainConfig(**dict(SUITE_RECIPE))).validate()
    models = list(models)
    if not models:
        raise ConfigError("a suite needs at least one model (--models a,b,c)")
    if budget_s <= 0:
        raise ConfigError(f"budget={budget_s / 60:g} min must be positive")
    kwargs = _check_models(models, config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; name a folder for the suite (--out DIR)")
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / SUITE_FILE
    state = _read_state(state_path)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise ConfigError("a suite needs at least one seed (--seeds 0,1,2)")
    recipe = config.to_dict()
    recipe.pop("progress")  # how progress is shown is no part of the experiment
    recipe["lr"] = "find" if find_lr else recipe["lr"]
    if state and state.get("recipe") != recipe:
        diff = sorted(k for k in set(recipe) | set(state.get("recipe", {}))
                      if recipe.get(k) != state.get("recipe", {}).get(k))
        raise ConfigError(f"{out} holds a suite trained with other settings ({', '.join(diff)}"
                          "); rerun with the same settings to resume it, or use --out NEW_DIR")
    state.setdefault("name", name)
    state["recipe"] = recipe
    state["models"] = models
    state["seeds"] = seeds
    state["runs"] = [_run_dir(out, m, s, seeds).name for m in models for s in seeds]
    state["budget_seconds"] = budget_s
    state.setdefault("members", {})
    state.setdefault("sessions", [])
    state["sessions"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0})
    _write_state(state_path, state)
    con = RunsView(progress, stream, ("member", "test acc", "time", "status"))
    inner = con.inner or config.progress  # in the view, the members' epochs report to it

    def spent_before() -> float:
        return sum(s["seconds"] for s in state["sessions"][:-1])

    lock = threading.Lock()

    def save_session() -> None:
        with lock:
            state["sessions"][-1]["seconds"] = round(time.perf_counter() - t_session, 1)
            _write_state(state_path, json.loads(json.dumps(state)))

    # A killed suite's time counts too: the session's seconds are rewritten every few seconds,
    # so a restart knows how much of the budget is gone (at most HEARTBEAT lost).
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT):
            try:
                save_session()
            except RuntimeError:  # the main thread was changing `state` mid-copy: next tick
                pass

    usable = max(budget_s - PAGE_SECONDS, 0.0) if budget_s > 3 * PAGE_SECONDS else budget_s
    share = usable / len(models)
    ds = data if data is not None else cdata.load_dataset(config.dataset, root=config.data_root)
    n_val = int(config.val_size) if config.val_size >= 1 else round(config.val_size
                                                                    * len(ds.train))
    n_max = len(ds.train) - n_val
    n_test = min(config.test_samples or len(ds.test), len(ds.test))
    results: list[MemberResult] = []
    con.open()
    con.say(f"suite {state['name']}: {len(models)} models, {config.epochs} epochs each"
            + (f", seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else "")
            + (", the lr of each from the range test" if find_lr else "") + ", "
            f"budget {_fmt_min(budget_s)} ({_fmt_min(share)} per model) -> {out}", at="note")
    threading.Thread(target=heartbeat, name="cnnlab-suite-clock", daemon=True).start()
    try:
        for i, model in enumerate(models):
            info = state["members"].setdefault(model, {})
            dirs = {seed: _run_dir(out, model, seed, seeds) for seed in seeds}
            if all((d / "result.json").exists() for d in dirs.values()):
                for seed, run_dir in dirs.items():
                    res = read_json(run_dir / "result.json")  # damaged: one line naming it
                    results.append(MemberResult(model, run_dir, "skipped", res.get("test_acc"),
                                                info.get("wall_seconds", 0.0),
                                                info.get("budget_seconds", 0.0),
                                                info.get("train_samples", 0), seed=seed))
                accs = ", ".join(_pct(r.test_acc) for r in results[-len(dirs):])
                con.say(f"[{i + 1}/{len(models)}] {model}: finished before, skipped "
                        f"(test acc {accs})")
                con.rows(_table(results))
                continue
            elapsed = spent_before() + time.perf_counter() - t_session
            # Time this member already had (a resumed run) is its own, not the others'.
            before = info.get("wall_seconds", 0.0) if info.get("status") == "running" else 0.0
            left = len(models) - i
            budget = min(share, max(usable - (elapsed - before), 0.0) / left)
            eta = time.time() + max(budget - before, 0.0) + share * (left - 1)
            con.say(f"[{i + 1}/{len(models)}] {model}: budget {_fmt_min(budget)}; suite "
                    f"{_fmt_min(elapsed)} in, ETA {time.strftime('%H:%M', time.localtime(eta))}"
                    f" ({_fmt_min(eta - time.time())} left)", at="now")
            t0 = time.perf_counter()
            try:
                if "train_samples" not in info or not any(d.exists() for d in dirs.values()):
                    _plan_member(model, config, kwargs[model], ds, info, budget, before,
                                 seeds=seeds, find_lr=find_lr, n_val=n_val, n_test=n_test,
                                 n_max=n_max, say=con.say, progress=con.inner or "none")
                    save_session()
            except CnnlabError as err:
                if isinstance(err, TrainingInterrupted):
                    raise
                info.update(status="failed", error=" ".join(str(err).split()))
                save_session()
                results.append(MemberResult(model, out / model, "failed", error=str(err)))
                con.say(f"  {model} failed: {' '.join(str(err).split())}")
                con.rows(_table(results))
                continue
            n = info["train_samples"]
            member_cfg = config.replace(train_samples=0 if n >= n_max else n,
                                        lr=info.get("lr", config.lr))
            extras = {}
            if isinstance(info.get("lr_find"), dict) and "lrs" in info["lr_find"]:
                from cnnlab.lrfind import LRFind

                extras = LRFind.from_dict(info["lr_find"]).run_files()
            failed = 0
            for seed, run_dir in dirs.items():
                if (run_dir / "result.json").exists():
                    res = read_json(run_dir / "result.json")
                    results.append(MemberResult(model, run_dir, "skipped", res.get("test_acc"),
                                                seed=seed))
                    continue
                try:
                    if (run_dir / "checkpoints" / "last.pt").exists():
                        con.say(f"  resuming {run_dir.name} from its last checkpoint")
                        result = resume(run_dir, data=ds, stream=stream,
                                        progress=inner, epochs=config.epochs)
                    else:
                        if run_dir.exists():  # a start killed before its first checkpoint
                            shutil.rmtree(run_dir)
                        result = train(model, ds, member_cfg.replace(seed=seed,
                                                                     progress=inner),
                                       out_dir=run_dir, model_kwargs=kwargs[model],
                                       stream=stream, **extras)
                except CnnlabError as err:
                    if isinstance(err, TrainingInterrupted):
                        raise
                    failed += 1
                    info.setdefault("errors", {})[str(seed)] = " ".join(str(err).split())
                    results.append(MemberResult(model, run_dir, "failed", None,
                                                train_samples=n, error=str(err), seed=seed))
                    con.say(f"  {run_dir.name} failed: {' '.join(str(err).split())}")
                    continue
                results.append(MemberResult(model, run_dir, "done", result.test_acc,
                                            train_samples=n, seed=seed))
                con.say(f"  {run_dir.name}: test acc {_pct(result.test_acc)}")
            wall = before + time.perf_counter() - t0
            for r in results[-len(dirs):]:
                r.wall_seconds, r.budget_seconds = wall, budget
            accs = [r.test_acc for r in results[-len(dirs):] if r.test_acc is not None]
            info.update(status="failed" if failed else "done", wall_seconds=round(wall, 1),
                        test_acc=sum(accs) / len(accs) if accs else None)
            save_session()
            con.say(f"  {model}: test acc {_pct(info['test_acc'])}"
                    + (f" (mean of {len(accs)} seeds)" if len(accs) > 1 else "")
                    + f" in {_fmt_min(wall)} (budget {_fmt_min(budget)})")
            con.rows(_table(results))
    finally:
        stop.set()
        save_session()
        con.close()
    wall = time.perf_counter() - t_session
    total = spent_before() + wall
    con.end(f"suite {state['name']}: {len(models)} models in {_fmt_min(wall)} this session, "
            f"{_fmt_min(total)} in all (budget {_fmt_min(budget_s)})")
    return SuiteResult(out, results, wall, total)


def _run_dir(out: Path, model: str, seed: int, seeds: Sequence[int]) -> Path:
    """A member's run folder: out/MODEL with one seed, out/MODEL-seedN with several."""
    return out / model if len(seeds) == 1 else out / f"{model}-seed{seed}"


def _plan_member(model: str, config: TrainConfig, model_kwargs: dict[str, Any], ds: Any,
                 info: dict[str, Any], budget: float, before: float, *, seeds: Sequence[int],
                 find_lr: bool, n_val: int, n_test: int, n_max: int, say: Any,
                 progress: str = "none") -> None:
    """Probe the member, find its lr (find_lr), and size its training subset so that every seed
    fits the member's budget; the plan goes into info (suite.json)."""
    probe = _probe(model, config, model_kwargs, ds)
    spent = probe.wall
    lr: float = config.lr
    if find_lr:
        lr, found, spent = _member_lr(model, config.replace(seed=seeds[0]), model_kwargs, ds,
                                      probe, budget, spent, say, progress)
        info["lr_find"] = found
    per_seed = max(budget - spent, 0.0) / len(seeds)
    n = plan_samples(per_seed, dataclasses.replace(probe, wall=0.0), epochs=config.epochs,
                     val_images=n_val, test_images=n_test, n_max=n_max,
                     batch_size=config.batch_size)
    info.update(status="running", budget_seconds=round(budget, 1), train_samples=n, lr=lr,
                probe={k: round(v, 6) for k, v in dataclasses.asdict(probe).items()},
                wall_seconds=round(before + spent, 1))
    say(f"  probe: {1 / probe.train_image:,.0f} train img/s, "
        f"{1 / max(probe.eval_image, 1e-9):,.0f} eval img/s -> lr {lr:.3g}, "
        f"{n:,} training images x {config.epochs} epochs x {len(seeds)} "
        f"seed{'s' if len(seeds) > 1 else ''}")


def _member_lr(model: str, config: TrainConfig, model_kwargs: dict[str, Any], ds: Any,
               probe: Probe, budget: float, spent: float, say: Any, progress: str = "none"
               ) -> tuple[float, dict[str, Any], float]:
    """(lr, what suite.json records of the range test, seconds spent so far): the test gets at
    most LR_FIND_SHARE of the member's budget; with too little time, or a curve it cannot read
    (a model that does not start learning within the test), the recipe's lr, and why."""
    from cnnlab.lrfind import lr_find

    steps = min(100, int(LR_FIND_SHARE * budget / (config.batch_size * probe.train_image)))
    if steps < LR_FIND_MIN_STEPS:
        why = (f"no time for the range test ({steps} steps fit {LR_FIND_SHARE:.0%} of the "
               f"member's {_fmt_min(budget)}): the recipe's lr {config.lr:g}")
        say(f"  lr: {why}")
        return config.lr, {"error": why}, spent
    t0 = time.perf_counter()
    try:
        found = lr_find(model, ds, config, model_kwargs=model_kwargs, steps=steps,
                        progress=progress)
    except TrainingError as err:  # a flat curve: say so, and keep the recipe's lr
        why = f"{' '.join(str(err).split())}; the recipe's lr {config.lr:g}"
        say(f"  lr: {why}")
        return config.lr, {"error": why}, spent + time.perf_counter() - t0
    took = time.perf_counter() - t0
    say(f"  lr-find: lr {found.suggestion:.3g} ({found.rule_text}; {found.steps} steps, "
        f"{found.stopped}, {_fmt_min(took)})")
    return found.suggestion, {**found.to_dict(), "seconds": round(took, 1)}, spent + took


def _pct(v: Any) -> str:
    return f"{v:.2%}" if isinstance(v, (int, float)) else "n/a"
