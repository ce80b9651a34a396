"""What a newcomer waits for: `cnnlab models` and writing a run's report, before and after.

    .venv/bin/python bench/bench_first_hour.py --before 0a0db98 --run runs/lenet-...
    .venv/bin/python bench/bench_first_hour.py --before 0a0db98 --repeats 5

`--before` is a git revision whose `cnnlab/` is extracted (git archive) into a temporary folder;
"after" is this checkout. Each repeat runs both, alternating, in fresh processes (`python -m
cnnlab models`, and `python -c write_report(RUN)` on the same run folder, copied per side), so a
change of the host's load hits both alike. Reported: the median wall time and the median CPU
time (user + sys of the child, the figure a loaded shared machine distorts least), and their
ratios. Then write_report alone inside its process, as at the end of `cnnlab train`: before,
after, and after with the training's final evaluation passed in (what the CLI does). Without
`--run` a 2-epoch LeNet run is trained first (limit 50 batches, full test split).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_speed import machine  # noqa: E402

REPORT = "import sys; from cnnlab.report import write_report; write_report(sys.argv[1])"
# The report at the end of `cnnlab train`: the training's last validation (the final model on
# the test split) is passed in, as cnnlab.cli does; only write_report itself is timed, in the
# process, since the training process has already imported everything.
AFTER_TRAINING = """
import json, sys, time
from cnnlab.report import write_report
from cnnlab.run import evaluate_run, load_run
run = sys.argv[1]
ev = evaluate_run(load_run(run)) if sys.argv[2] == "reuse" else None
w, c = time.perf_counter(), time.process_time()
write_report(run, **({"evaluation": ev} if ev is not None else {}))
print(json.dumps([time.perf_counter() - w, time.process_time() - c]))
"""


def timed(cmd: list[str], src: Path, cwd: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one child process importing cnnlab from `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_process(src: Path, run: Path, mode: str) -> tuple[float, float]:
    """(wall, cpu) of write_report inside its process (see AFTER_TRAINING)."""
    out = subprocess.run([sys.executable, "-c", AFTER_TRAINING, str(run), mode], check=True,
                         env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True,
                         text=True).stdout
    wall, cpu = json.loads(out.strip().splitlines()[-1])
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git revision to compare against")
    p.add_argument("--run", type=Path, help="a finished run folder (default: train one)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "before"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "cnnlab"], cwd=ROOT,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        run = args.run
        if run is None:
            run = tmp / "run"
            subprocess.run([sys.executable, "-m", "cnnlab", "train", "lenet", "--epochs", "2",
                            "--limit-batches", "50", "--eval-batch-size", "10000",
                            "--progress", "none", "--no-report", "--out", str(run)],
                           cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        runs = {}
        for side in ("before", "after"):  # each side writes into its own copy of the run
            runs[side] = tmp / f"run-{side}"
            shutil.copytree(run, runs[side])
        sources = {"before": old, "after": ROOT}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for i in range(args.repeats):
            for side in (("before", "after") if i % 2 == 0 else ("after", "before")):
                src = sources[side]
                times.setdefault(("models", side), []).append(
                    timed([sys.executable, "-m", "cnnlab", "models"], src, tmp))
                times.setdefault(("report", side), []).append(
                    timed([sys.executable, "-c", REPORT, str(runs[side])], src, tmp))
                times.setdefault(("in-process", side), []).append(
                    in_process(src, runs[side], "fresh"))
            times.setdefault(("in-process", "reuse"), []).append(
                in_process(ROOT, runs["after"], "reuse"))
        print(f"{'command':<44} {'before':>16} {'after':>16} {'ratio':>12}")
        for what, label in (("models", "cnnlab models"),
                            ("report", f"write_report ({run.name})")):
            b, a = times[(what, "before")], times[(what, "after")]
            bw, bc = (statistics.median(x[k] for x in b) for k in (0, 1))
            aw, ac = (statistics.median(x[k] for x in a) for k in (0, 1))
            print(f"{label:<44} {bw:6.2f} s wall    {aw:6.2f} s wall    {bw / aw:5.2f}x")
            print(f"{'':<44} {bc:6.2f} s CPU     {ac:6.2f} s CPU     {bc / ac:5.2f}x")
        ip = {k: tuple(statistics.median(x[i] for x in times[("in-process", k)])
                       for i in (0, 1)) for k in ("before", "after", "reuse")}
        print("write_report inside its process (the end of `cnnlab train`):")
        for k, label in (("before", "before"), ("after", "after, evaluating again"),
                         ("reuse", "after, the training's evaluation reused")):
            print(f"  {label:<42} {ip[k][0]:6.2f} s wall {ip[k][1]:6.2f} s CPU   "
                  f"{ip['before'][0] / ip[k][0]:5.2f}x / {ip['before'][1] / ip[k][1]:5.2f}x")
        print(f"(median of {args.repeats} alternating repeats; {machine()})")


if __name__ == "__main__":
    main()
