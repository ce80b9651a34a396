"""Speed records: each fast recipe trained N times as a fresh `cnnlab train` process.

    .venv/bin/python bench/bench_speed.py                       # fast and best_cpu, 3 seeds each
    .venv/bin/python bench/bench_speed.py --recipes fast --runs 3

The clock of a run starts when its process is spawned and stops when it prints its test
accuracy, so it includes interpreter start-up, imports, reading the dataset, any compile step,
every epoch and the final test evaluation (writing report.html afterwards is left out with
--no-report). Prints every run, then min/median/max accuracy and seconds per recipe, checked
against the targets (fast: >= 92.0% in <= 60 s; best_cpu: >= 94.0% in <= 600 s, by the median).
The processes' CPU seconds are printed too: on a shared machine wall time swells with the load,
CPU time much less. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# recipe -> (minimum test accuracy, maximum median seconds)
TARGETS = {"fast": (0.920, 60.0), "best_cpu": (0.940, 600.0)}
ACC_LINE = re.compile(r"^test accuracy: ([0-9.]+)")


def machine() -> str:
    """CPU model, cores and the load average right now (the others' work inflates wall time)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load}"


def run_once(recipe: str, seed: int, out: Path, extra: list[str]) -> dict:
    """Spawn `python -m cnnlab train RECIPE`; time it from spawn to its 'test accuracy' line."""
    cmd = [sys.executable, "-m", "cnnlab", "train", recipe, "--seed", str(seed),
           "--out", str(out), "--progress", "plain", "--no-report", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    acc = seconds = None
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        m = ACC_LINE.match(line)
        if m and acc is None:
            seconds = time.perf_counter() - t0
            acc = float(m.group(1))
    proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0 or acc is None:
        sys.stderr.write("".join(lines[-20:]))
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return {"recipe": recipe, "seed": seed, "test_acc": acc, "seconds": seconds,
            "cpu_seconds": cpu}


def summarize(recipe: str, runs: list[dict]) -> tuple[str, bool]:
    """One markdown row: accuracy and seconds as min / median / max, and the verdict."""
    accs = sorted(r["test_acc"] for r in runs)
    secs = sorted(r["seconds"] for r in runs)
    cpus = sorted(r["cpu_seconds"] for r in runs)
    acc_min, sec_max = TARGETS.get(recipe, (0.0, float("inf")))
    ok = accs[0] >= acc_min and statistics.median(secs) <= sec_max
    target = f">= {acc_min:.1%} in <= {sec_max:.0f} s" if recipe in TARGETS else "-"
    verdict = ("met" if ok else "MISSED") if recipe in TARGETS else "-"  # no target, no verdict
    row = (f"| `{recipe}` | {accs[0]:.2%} / {statistics.median(accs):.2%} / {accs[-1]:.2%} | "
           f"{secs[0]:.1f} / {statistics.median(secs):.1f} / {secs[-1]:.1f} | "
           f"{statistics.median(cpus):.0f} | {target} | {verdict} |")
    return row, ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=list(TARGETS), help="recipes to time")
    p.add_argument("--runs", type=int, default=3, help="fresh processes per recipe (seeds 0..)")
    p.add_argument("--seed0", type=int, default=0, help="seed of the first run")
    p.add_argument("--out", type=Path, help="keep the run folders here (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write every run's figures to this file")
    p.add_argument("extra", nargs="*", help="after --: more `cnnlab train` flags for every run")
    args = p.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"python {platform.python_version()}, command per run: python -m cnnlab train RECIPE "
          "--seed S --out DIR --progress plain --no-report", flush=True)
    all_runs = []
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        base = args.out or Path(tmp)
        for recipe in args.recipes:
            for i in range(args.runs):
                seed = args.seed0 + i
                r = run_once(recipe, seed, base / f"{recipe}-seed{seed}", args.extra)
                all_runs.append(r)
                print(f"{recipe} seed {seed}: test acc {r['test_acc']:.4f}  "
                      f"{r['seconds']:.1f} s wall  {r['cpu_seconds']:.1f} s CPU", flush=True)
    print(f"\nmachine after: {machine()}")
    print("\n| recipe | test acc min / median / max | seconds min / median / max | "
          "CPU s (median) | target | |")
    print("|---|---|---|---|---|---|")
    ok_all = True
    for recipe in args.recipes:
        row, ok = summarize(recipe, [r for r in all_runs if r["recipe"] == recipe])
        ok_all &= ok
        print(row)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "runs": all_runs}, indent=1))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
