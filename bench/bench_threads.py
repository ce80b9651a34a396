"""The CPU thread policy, quiet and with a busy neighbour: default threads against 1 and all cores.

    .venv/bin/python bench/bench_threads.py               # lenet, lenet_modern, fast, resnet18
    .venv/bin/python bench/bench_threads.py --recipes lenet --repeats 5

For each recipe, every thread setting (1, all cores, and the default `threads=0`, the load-aware
policy of cnnlab.device.ThreadPolicy) trains the recipe's first `--steps` batches in a fresh
process, and the engine's own training seconds give images/s (start-up and data loading are
left out). The settings alternate within each repeat, so a change of the host's load hits them
alike; the median of the repeats is reported. Then the same with a neighbour: a busy process
that keeps one core loaded, as a browser or a second job on a laptop does.

The policy's targets (issue 16): the default no more than 1.1x slower than the better of
{1 thread, all cores} on a quiet machine, and no more than 1.25x slower under load.
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
sys.path.insert(0, str(ROOT / "bench"))
from bench_speed import machine  # noqa: E402

# recipe -> steps per measurement (about 2-10 s of training each on a 2-core CPU)
STEPS = {"lenet": 400, "lenet_modern": 400, "fast": 150, "resnet18": 8}
TARGETS = {"quiet": 1.10, "neighbour": 1.25}


def measure(recipe: str, threads: int, steps: int, data_root: str | None) -> float:
    """Training images/s of `steps` batches of `recipe` with `threads` (0: the default policy)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "cnnlab", "train", recipe, "--epochs", "1",
               "--limit-batches", str(steps), "--eval-every", "0", "--threads", str(threads),
               "--progress", "none", "--no-plot", "--no-tensorboard", "--no-report",
               "--out", str(Path(tmp) / "run")]
        if data_root:
            cmd += ["--data-root", data_root]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        rows = [json.loads(line) for line in
                (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["images_per_second"]


def neighbour() -> subprocess.Popen:
    """A process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=",".join(STEPS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-root", default=os.environ.get("CNNLAB_DATA"))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    settings = {"1 thread": 1, f"{cores} threads": cores, "default": 0}
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}, repeats: {args.repeats}")
    print("| recipe | condition | " + " | ".join(f"{k} img/s" for k in settings)
          + " | default vs best | target |")
    print("|---|---|" + "---:|" * (len(settings) + 2))
    ok = True
    for recipe in args.recipes.split(","):
        for condition in ("quiet", "neighbour"):
            busy = neighbour() if condition == "neighbour" else None
            try:
                if busy:
                    time.sleep(1.0)
                got: dict[str, list[float]] = {k: [] for k in settings}
                for _ in range(args.repeats):
                    for name, n in settings.items():
                        got[name].append(measure(recipe, n, STEPS[recipe], args.data_root))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
            med = {k: statistics.median(v) for k, v in got.items()}
            best = max(v for k, v in med.items() if k != "default")
            slower = best / med["default"]
            target = TARGETS[condition]
            ok &= slower <= target
            print(f"| {recipe} | {condition} | "
                  + " | ".join(f"{med[k]:,.0f} ({min(got[k]):,.0f}-{max(got[k]):,.0f})"
                               for k in settings)
                  + f" | {slower:.2f}x slower | <= {target:.2f}x "
                  + ("ok |" if slower <= target else "MISSED |"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
