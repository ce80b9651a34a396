"""What a sweep costs (issue 23, item 6): a trial against a plain `cnnlab train`, pruning on an
exercise-7.6.2 search, and the learning-rate finder against 200 training steps.

    .venv/bin/python bench/bench_sweep.py                       # all three parts
    .venv/bin/python bench/bench_sweep.py --only overhead --repeats 3
    .venv/bin/python bench/bench_sweep.py --only pruning --keep runs/bench-sweep

Every side runs as the user runs it, on Fashion-MNIST ($CNNLAB_DATA, else ../shared/data), with
the `lenet` recipe (the book's 7.6 LeNet: SGD at lr 0.1, batch 128) and a 10,000-image validation
split carved from the training images, as every sweep trial does.

overhead  `cnnlab train lenet --epochs E --val-size 10000 --no-score-test --no-report` against
          `cnnlab sweep lenet --param lr=0.1 --trials 1 --prune off --epochs E`: the same
          configuration, each a fresh process timed from spawn to exit, alternating, median of
          --repeats. A trial writes no report.html (`cnnlab report` makes it when wanted), so
          the plain run is timed without one. Target: the sweep costs at most 1 s more.
pruning   the same 16-point grid of the LeNet family (activation x pool x channels x lr, the
          knobs exercise 7.6.2 names), 5 epochs a trial, once with `--prune off` and once with
          `--prune median`: trial-epochs trained (from sweep.json) and the best validation
          accuracy of each. Grid with one sampler seed: both sweeps visit the same 16 points in
          the same order. Targets: pruning saves >= 40% of the trial-epochs, and its best is within
          0.5 points of the unpruned sweep's best.
lr-find   `lr_find("bn_lenet", data, config)` (its default 100-step ramp) against `train(...)` of
          the same config for 200 steps (--limit-batches 200, one epoch, no validation), both in
          one process on the data loaded once, alternating, median of --repeats. Target: the
          finder costs at most the time of the 200 steps. BN-LeNet, the `bn_lenet` recipe: the
          book's sigmoid LeNet learns nothing in 100 steps at any rate (it needs about two
          epochs to start), and lr_find says so rather than suggest a rate.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_d2l_busy import _env as checkout_env  # noqa: E402  (this checkout's cnnlab)
from bench_speed import machine  # noqa: E402
from bench_train import data_dir  # noqa: E402

GRID = ["model.activation=relu,sigmoid", "model.pool=avg,max", "model.channels=6-16,16-32",
        "lr=0.03,0.3"]
TARGET_OVERHEAD_S = 1.0
TARGET_SAVED = 0.40
TARGET_POINTS = 0.5
VAL = "10000"


def _env() -> dict[str, str]:
    """bench_d2l_busy's environment for this checkout, with the data where the benches find it."""
    return {"CNNLAB_DATA": str(data_dir().parent), **checkout_env()}


def _timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *cmd], cwd=cwd, env=_env(),
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"`cnnlab {' '.join(cmd)}` failed ({proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    return seconds


def overhead(tmp: Path, repeats: int, epochs: int) -> bool:
    common = ["--epochs", str(epochs), "--progress", "none"]
    times: dict[str, list[float]] = {"train": [], "sweep": []}
    for i in range(repeats):
        for side in (("train", "sweep") if i % 2 == 0 else ("sweep", "train")):
            out = tmp / f"{side}-{i}"
            if side == "train":
                cmd = ["train", "lenet", "--val-size", VAL, "--no-score-test", "--no-report",
                       *common, "--out", str(out)]
            else:
                cmd = ["sweep", "lenet", "--param", "lr=0.1", "--trials", "1", "--prune", "off",
                       *common, "--out", str(out)]
            times[side].append(_timed(cmd, tmp))
    train, sweep = (statistics.median(times[k]) for k in ("train", "sweep"))
    print(f"\noverhead: one configuration (lenet, {epochs} epoch(s), {VAL} validation images), "
          f"fresh process each, median of {repeats}")
    for k in ("train", "sweep"):
        print(f"  {'cnnlab ' + k:<14} {statistics.median(times[k]):7.2f} s   "
              f"(runs: {', '.join(f'{t:.2f}' for t in times[k])})")
    extra = sweep - train
    ok = extra <= TARGET_OVERHEAD_S
    print(f"  a trial costs {extra:+.2f} s against the plain run (target <= "
          f"{TARGET_OVERHEAD_S:.0f} s): {'met' if ok else 'MISSED'}")
    return ok


def _sweep(out: Path, prune: str, epochs: int) -> list[dict]:
    """The grid sweep's trials (sweep.json's table). Run again on a kept folder, the sweep
    command finds its 16 trials done and only rewrites the summary."""
    cmd = ["sweep", "lenet", "--sampler", "grid", "--trials", "16", "--prune", prune,
           "--epochs", str(epochs), "--progress", "none", "--out", str(out)]
    for p in GRID:
        cmd += ["--param", p]
    _timed(cmd, out.parent)
    return json.loads((out / "sweep.json").read_text())["trials_table"]


def pruning(tmp: Path, epochs: int) -> bool:
    print(f"\npruning: a 16-point grid of the LeNet family, {epochs} epochs a trial: "
          + " ".join(f"--param {p}" for p in GRID))
    found = {}
    for prune in ("off", "median"):
        trials = _sweep(tmp / f"grid-{prune}", prune, epochs)
        seconds = sum(t["seconds"] or 0 for t in trials)  # the trials' own wall time
        best = max((t for t in trials if t["status"] == "done"), key=lambda t: t["value"])
        found[prune] = {"trial_epochs": sum(t["trial_epochs"] for t in trials),
                        "pruned": sum(t["status"] == "pruned" for t in trials),
                        "best": best["value"], "params": best["params"], "seconds": seconds}
        f = found[prune]
        print(f"  --prune {prune:<7} {f['trial_epochs']:3d} trial-epochs, {f['pruned']:2d} pruned, "
              f"{seconds:6.0f} s in trials, best val acc {f['best']:.4f} with "
              + ", ".join(f"{k}={v}" for k, v in f["params"].items()))
    frac = 1 - found["median"]["trial_epochs"] / found["off"]["trial_epochs"]
    gap = 100 * (found["off"]["best"] - found["median"]["best"])
    time_saved = 1 - found["median"]["seconds"] / found["off"]["seconds"]
    ok = frac >= TARGET_SAVED and gap <= TARGET_POINTS
    print(f"  pruning saves {frac:.0%} of the trial-epochs ({time_saved:.0%} of the trials' "
          f"seconds); its best is {gap:.2f} points below the unpruned best (targets >= "
          f"{TARGET_SAVED:.0%}, <= {TARGET_POINTS} points): {'met' if ok else 'MISSED'}")
    return ok


def lr_find_cost(tmp: Path, repeats: int) -> bool:
    os.environ.setdefault("CNNLAB_DATA", _env()["CNNLAB_DATA"])
    from cnnlab.data import load_dataset
    from cnnlab.lrfind import lr_find
    from cnnlab.recipes import get_recipe
    from cnnlab.train import train

    config = get_recipe("bn_lenet").config(val_size=int(VAL), progress="none", plot=False,
                                        tensorboard=False, report=False)
    data = load_dataset(config.dataset)
    times: dict[str, list[float]] = {"lr_find": [], "train": []}
    steps = 0
    for i in range(repeats):
        for side in (("lr_find", "train") if i % 2 == 0 else ("train", "lr_find")):
            t0 = time.perf_counter()
            if side == "lr_find":
                found = lr_find("bn_lenet", data, config)
                steps = len(found.lrs)
            else:
                train("bn_lenet", data, config.replace(epochs=1, limit_batches=200, eval_every=0,
                                                    score_test=False),
                      out_dir=tmp / f"steps-{i}")
            times[side].append(time.perf_counter() - t0)
    finder, plain = (statistics.median(times[k]) for k in ("lr_find", "train"))
    ok = finder <= plain
    print(f"\nlr-find: lr_find('bn_lenet') ({steps} steps of the ramp) against "
          f"200 training steps, in one process, median of {repeats}")
    print(f"  lr_find {finder:6.2f} s, 200 steps {plain:6.2f} s: {finder / plain:.2f}x "
          f"(target <= 1.00x): {'met' if ok else 'MISSED'}")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("overhead", "pruning", "lr-find"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5, help="epochs of a pruning-grid trial")
    p.add_argument("--overhead-epochs", type=int, default=1)
    p.add_argument("--keep", type=Path, help="keep the sweep folders here (else a temp folder)")
    args = p.parse_args()
    print(f"machine: {machine()}")
    ok = True
    with tempfile.TemporaryDirectory() as t:
        tmp = args.keep or Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        for part in ("overhead", "lrfind"):
            (tmp / part).mkdir(exist_ok=True)
        if args.only in (None, "overhead"):
            ok &= overhead(tmp / "overhead", args.repeats, args.overhead_epochs)
        if args.only in (None, "lr-find"):
            ok &= lr_find_cost(tmp / "lrfind", args.repeats)
        if args.only in (None, "pruning"):
            ok &= pruning(tmp, args.epochs)
    print(f"\n({machine()})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
