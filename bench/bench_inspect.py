"""Looking inside a trained LeNet: how long `cnnlab inspect` takes, and what the report's section
"What the network sees" adds to writing a report.

    .venv/bin/python bench/bench_inspect.py [--run RUN_DIR] [--repeats N]

(a) `cnnlab inspect RUN` as a user runs it, in a fresh process (python start, imports, loading the
    run, evaluating the 10,000 test images for the mistakes, four PNGs and inspect.html):
    target < 5 s wall on the 2-core CPU.
(b) the report's section, timed inside one process after the run is loaded and evaluated: the
    first call (it imports Captum) and a second one; beside it the whole `write_report`.
    Target: the section adds < 3 s.

Without --run, a LeNet (`lenet_modern`, 1 epoch of 100 batches) is trained first on the real
Fashion-MNIST ($CNNLAB_DATA). Times are medians of --repeats; the machine is shared, so each
line also gives CPU seconds (user + sys), which do not grow when other processes hold the cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(argv: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `python -m cnnlab ARGV` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), _child_cpu()
        subprocess.run([sys.executable, "-m", "cnnlab", *argv], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t)
        cpus.append(_child_cpu() - c)
    return statistics.median(walls), statistics.median(cpus)


def timed(fn, repeats: int = 1) -> tuple[float, float]:  # noqa: ANN001
    """Median wall and process CPU seconds of `repeats` calls of fn()."""
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a LeNet run folder (default: train one)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-inspect-"))
    run = args.run
    if run is None:
        run = tmp / "run"
        run_cli(["train", "lenet_modern", "--epochs", "1", "--limit-batches", "100",
                 "--no-report", "--no-plot", "--progress", "none", "--out", str(run)], 1)

    wall, cpu = run_cli(["inspect", str(run), "--out", str(tmp / "look")], args.repeats)
    print(f"(a) cnnlab inspect {run.name}: {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"(median of {args.repeats}; target < 5 s)")
    base_wall, base_cpu = run_cli(["eval", str(run)], args.repeats)
    print(f"    for scale, cnnlab eval of the same run: {base_wall:.2f} s wall, "
          f"{base_cpu:.2f} s CPU")

    import torch

    from cnnlab.inspect_page import report_section
    from cnnlab.report import write_report
    from cnnlab.run import evaluate_run, load_run

    loaded = load_run(run)
    ev = evaluate_run(loaded)
    first = timed(lambda: report_section(loaded, ev))
    warm = timed(lambda: report_section(loaded, ev), args.repeats)
    whole = timed(lambda: write_report(run), args.repeats)
    print(f"(b) report section: first call {first[0]:.2f} s wall ({first[1]:.2f} s CPU, with "
          f"the Captum import), then {warm[0]:.2f} s ({warm[1]:.2f} s CPU); whole write_report "
          f"{whole[0]:.2f} s ({whole[1]:.2f} s CPU); target: section < 3 s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
