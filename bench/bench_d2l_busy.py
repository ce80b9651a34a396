"""The d2l drop-in on a busy laptop: its LeNet epoch beside `cnnlab train lenet` and d2l 1.0.3,
each while a neighbour process keeps one core busy.

    .venv/bin/python bench/bench_d2l_busy.py                    # 1 epoch each, 3 repeats
    .venv/bin/python bench/bench_d2l_busy.py --repeats 1 --limit-batches 100   # a quick look
    D2L_PYTHON=/path/to/.d2l-venv/bin/python .venv/bin/python bench/bench_d2l_busy.py

Three sides train the book's LeNet (7.6: sigmoid, average pooling, SGD at lr 0.1, batch 128) on
Fashion-MNIST ($CNNLAB_DATA, else ../shared/data), each as a fresh process with torch's default
thread count (what a user gets), while `neighbour()` spins on one core, as a browser tab or a
second job does on a laptop:
  drop-in      the book's cells with `from cnnlab import d2l` (bench_d2l.py's script);
  cnnlab train `cnnlab train lenet --epochs 1`;
  d2l 1.0.3    the reference venv (../shared/bench/d2l_reference/setup.sh makes it; found at
               $D2L_PYTHON, else ../refvenv/.d2l-venv), run.py. Left out, with a note, when that
               venv is missing (--require-d2l makes it an error).
Two clocks, each compared only with its own kind:
  epoch        the epoch itself, training and validation: the drop-in's epoch line on stderr
               (`(6.1 s)`) against the `seconds` of cnnlab train's metrics.jsonl row;
  fit          `Trainer.fit`'s time per epoch, the drop-in's against d2l's: it also holds the
               fit's one-off set-up, the same on both sides (the first optimizer that torch
               builds in a process imports torch._dynamo, which takes seconds).
With --limit-batches N every side trains N batches per epoch and skips validation. The sides
alternate within each repeat, so a change of the host's load hits them alike; medians of the
repeats are reported, with the range. Targets (issue 24): the drop-in's epoch within 1.25x of
`cnnlab train`'s, and at least 2x faster than d2l's. Exit status 1 when one is missed.
A full run is 3 repeats x 3 fresh processes of one LeNet epoch each, most of the time d2l's.
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
from bench_d2l import OURS  # noqa: E402  (the book's cells on the drop-in)
from bench_speed import machine  # noqa: E402
from bench_threads import neighbour  # noqa: E402
from bench_train import D2L_PY, data_dir, run_d2l  # noqa: E402  (one owner for running d2l)

TARGET_VS_ENGINE = 1.25  # drop-in epoch / cnnlab train epoch, at most
TARGET_VS_D2L = 2.0  # d2l epoch / drop-in epoch, at least


def _env() -> dict[str, str]:
    """This checkout's cnnlab (main() has dropped any OMP_NUM_THREADS of the caller)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=cwd, check=False)
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd[:4])} ...\n{res.stderr[-2000:]}")
    return res


Clocks = dict[str, float]  # "epoch" and/or "fit": seconds


def drop_in(limit: int) -> Clocks:
    """The drop-in's epoch (its epoch line) and `Trainer.fit` seconds per epoch (one epoch)."""
    with tempfile.TemporaryDirectory() as out:
        res = _run([sys.executable, "-c", OURS, "lenet", "1", str(limit), str(data_dir()), out],
                   Path(out))
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("epoch 1/1"))
    epoch = float(line.rsplit("(", 1)[1].split()[0])  # '... val_acc 0.1000  (6.1 s)'
    return {"epoch": epoch,
            "fit": json.loads(res.stdout.strip().splitlines()[-1])["seconds_per_epoch"]}


def engine(limit: int) -> Clocks:
    """The epoch of `cnnlab train lenet --epochs 1`: its metrics.jsonl `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "cnnlab", "train", "lenet", "--epochs", "1",
               "--data-root", str(data_dir().parent), "--progress", "none", "--no-plot",
               "--no-tensorboard", "--no-report", "--out", str(run)]
        if limit:
            cmd += ["--limit-batches", str(limit), "--eval-every", "0"]
        _run(cmd, ROOT)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"epoch": rows[-1]["seconds"]}


def d2l(limit: int) -> Clocks:
    """d2l 1.0.3's `Trainer.fit` seconds per epoch (torch's default threads)."""
    return {"fit": run_d2l("lenet", 1, limit or None, threads=0)["seconds_per_epoch"]}


def _median(runs: list[Clocks], clock: str) -> tuple[float, float, float] | None:
    """(median, min, max) of one clock over the repeats, None if that side has no such clock."""
    xs = [r[clock] for r in runs if clock in r]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit-batches", type=int, default=0,
                    help="train N batches per epoch and skip validation (a quick look)")
    ap.add_argument("--require-d2l", action="store_true",
                    help="fail instead of leaving d2l out when its venv is missing")
    args = ap.parse_args()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # every side: torch's default threads
        os.environ.pop(name, None)
    sides = {"drop-in": drop_in, "cnnlab train": engine}
    if D2L_PY.exists():
        sides["d2l 1.0.3"] = d2l
    elif args.require_d2l:
        raise SystemExit(f"d2l reference venv not found at {D2L_PY}: make it with "
                         "../shared/bench/d2l_reference/setup.sh or set D2L_PYTHON")
    if not (data_dir() / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {data_dir()} (set CNNLAB_DATA)")
    print(f"machine: {machine()}")
    what = (f"{args.limit_batches} batches per epoch, no validation" if args.limit_batches
            else "a whole epoch with validation")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}, repeats: {args.repeats}, {what}, "
          "a neighbour spinning on one core")
    got: dict[str, list[Clocks]] = {k: [] for k in sides}
    busy = neighbour()
    try:
        time.sleep(1.0)  # the neighbour is running before the first side starts
        for _ in range(args.repeats):
            for name, measure in sides.items():
                got[name].append(measure(args.limit_batches))
                print(f"  {name}: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                                got[name][-1].items()), flush=True)
    finally:
        busy.kill()
        busy.wait()
    med = {(name, clock): _median(runs, clock) for name, runs in got.items()
           for clock in ("epoch", "fit")}
    print("\n| side | epoch s (median, range) | fit s per epoch (median, range) |")
    print("|---|---:|---:|")
    for name in sides:
        cells = [f"{m[0]:.2f} ({m[1]:.2f}-{m[2]:.2f})" if m else "" for m in
                 (med[name, "epoch"], med[name, "fit"])]
        print(f"| {name} | " + " | ".join(cells) + " |")
    vs_engine = med["drop-in", "epoch"][0] / med["cnnlab train", "epoch"][0]
    ok = vs_engine <= TARGET_VS_ENGINE
    print(f"\nepoch, drop-in / cnnlab train: {vs_engine:.2f}x (target <= {TARGET_VS_ENGINE}x) "
          + ("ok" if ok else "MISSED"))
    if "d2l 1.0.3" in sides:
        speedup = med["d2l 1.0.3", "fit"][0] / med["drop-in", "fit"][0]
        ok &= speedup >= TARGET_VS_D2L
        print(f"fit per epoch, d2l 1.0.3 / drop-in: {speedup:.2f}x (target >= {TARGET_VS_D2L}x) "
              + ("ok" if speedup >= TARGET_VS_D2L else "MISSED"))
    else:
        print(f"d2l 1.0.3: left out, no reference venv at {D2L_PY} "
              "(../shared/bench/d2l_reference/setup.sh makes one; or set D2L_PYTHON)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
