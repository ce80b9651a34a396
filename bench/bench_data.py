"""Data pipeline benchmark: cnnlab's Loader vs d2l 1.0.3's FashionMNIST, side by side in one run.

    .venv/bin/python bench/bench_data.py [--data DIR] [--d2l-python PY] [--limit-batches N] [--full]

(a) one pass over the Fashion-MNIST train split at 28x28, batch 128, float batches (target < 0.5 s)
(b) at 224 and 96 px: batches per second of cnnlab's Loader vs `d2l.FashionMNIST(batch_size=128,
    resize=...)` iterated once (its train loader: PIL resize + ToTensor in 4 worker processes),
    run by the d2l reference venv in a subprocess                                 (target >= 5x)
(c) peak RSS of a fresh process iterating one epoch at 224                         (target < 1.5 GB)

d2l at 224 takes about half a minute per epoch on 2 free cores, more on a loaded machine: by default
it is stopped after --limit-batches batches and the two pipelines are compared per batch (d2l's rate
counted after its first batch, i.e. without its worker start-up; cnnlab's over its whole epoch,
start-up included). --full iterates d2l's whole epoch too and also compares total times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from cnnlab.data import Loader, load_dataset  # noqa: E402

D2L_CHILD = textwrap.dedent("""
    import gzip, json, os, shutil, sys, tempfile, time
    from pathlib import Path
    data_dir, resize, limit = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    # d2l reads torchvision's unpacked layout under '../data' (see shared/bench/d2l_reference).
    root = Path(tempfile.mkdtemp())
    raw = root / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in data_dir.glob("*.gz"):
        with gzip.open(gz) as f, open(raw / gz.name[:-3], "wb") as g:
            shutil.copyfileobj(f, g)
    (root / "work").mkdir()
    os.chdir(root / "work")
    import warnings; warnings.filterwarnings("ignore")
    from d2l import torch as d2l
    import resource
    def cpu():  # this process and its reaped children (the loader's worker processes)
        r, c = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime
    t0 = time.perf_counter()
    data = d2l.FashionMNIST(batch_size=128, resize=(resize, resize))
    c0 = cpu()  # CPU time counts from here: iterating, worker start-up included
    n, first, it = 0, None, iter(data.get_dataloader(True))
    for X, y in it:
        n += 1
        if first is None:
            first = time.perf_counter()
        if n == limit:
            break
    end = time.perf_counter()
    del it  # shuts the workers down and reaps them, so their CPU time is counted
    c1 = cpu()
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"batches": n, "of": len(data.get_dataloader(True)), "total_s": end - t0,
                      "first_batch_s": first - t0, "steady_s_per_batch": (end - first) / (n - 1),
                      "cpu_s_per_batch": (c1 - c0) / n, "shape": list(X.shape)}))
""")

RSS_CHILD = textwrap.dedent("""
    import resource, sys, time
    sys.path.insert(0, sys.argv[1])
    import torch
    from cnnlab.data import Loader, load_dataset
    ds = load_dataset("fashion-mnist", root=sys.argv[2])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loader = Loader(ds.train, 128, shuffle=True, resize=224)
    t = time.perf_counter()
    for X, y in loader:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before, peak, len(loader), time.perf_counter() - t)
""")


def epoch_seconds(loader: Loader, limit: int | None = None) -> tuple[float, int, float]:
    """Wall seconds to draw one epoch (or its first `limit` batches), batches, CPU seconds."""
    t, c, n = time.perf_counter(), time.process_time(), 0
    for x, _ in loader.batches(0):
        dtype = x.dtype
        n += 1
        if n == limit:
            break
    assert dtype == torch.float32
    return time.perf_counter() - t, n, time.process_time() - c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get(
        "CNNLAB_DATA", REPO.parent / "shared" / "data")), help="folder holding fashion-mnist/")
    p.add_argument("--d2l-python", default=os.environ.get(
        "D2L_PYTHON", str(REPO.parent / "refvenv" / ".d2l-venv" / "bin" / "python")))
    p.add_argument("--limit-batches", type=int, default=120,
                   help="d2l batches per size (default 120; ignored with --full)")
    p.add_argument("--full", action="store_true", help="iterate d2l's whole epoch")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 96])
    p.add_argument("--repeats", type=int, default=5, help="passes for (a); the median counts")
    args = p.parse_args()
    fm = args.data / "fashion-mnist"
    ds = load_dataset("fashion-mnist", root=fm)
    load1 = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, load average {load1:.1f} at start "
          "(other jobs share this machine: timings are noisy)")

    # (a) the 28x28 pass
    loader = Loader(ds.train, 128, shuffle=True)
    epoch_seconds(loader)  # warm-up: first-touch allocations
    runs = [epoch_seconds(loader)[0] for _ in range(args.repeats)]
    med = statistics.median(runs)
    print(f"\n(a) full pass, train split 28x28, batch 128, shuffled float batches: median "
          f"{med:.3f} s of {args.repeats} (min {min(runs):.3f} s) -> "
          f"{len(ds.train) / med:,.0f} images/s   "
          f"target < 0.5 s: {'PASS' if med < 0.5 else 'FAIL'}")

    # (b) cnnlab vs d2l, side by side, per size
    print("\n(b) batch 128, train split, iterated once (d2l: "
          + ("whole epoch" if args.full else f"first {args.limit_batches} batches") + ")")
    head = (f"{'size':>4} | {'cnnlab ms/batch':>15} {'CPU ms':>6} {'epoch s':>7} | "
            f"{'d2l ms/batch':>12} {'CPU ms':>6} {'1st batch s':>11} {'batches':>9} | "
            f"{'speed-up':>8} {'CPU ratio':>9}")
    rows = []
    have_d2l = Path(args.d2l_python).exists()
    for size in args.sizes:
        ld = Loader(ds.train, 128, shuffle=True, resize=size)
        epoch_seconds(ld, limit=3)  # warm-up
        secs, n, cpu = epoch_seconds(ld)
        ours = secs / n
        ref = None
        if have_d2l:
            limit = 10**9 if args.full else args.limit_batches
            out = subprocess.run([args.d2l_python, "-c", D2L_CHILD, str(fm), str(size),
                                  str(limit)], capture_output=True, text=True, check=True)
            ref = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((size, ours, secs, cpu / n, ref))
    print(head)
    print("-" * len(head))
    for size, ours, secs, cpu, ref in rows:
        mine = f"{size:>4} | {ours * 1e3:>15.2f} {cpu * 1e3:>6.2f} {secs:>7.2f} | "
        if ref is None:
            print(f"{mine}d2l venv not found at {args.d2l_python}")
            continue
        d2l_ms, d2l_cpu = ref["steady_s_per_batch"] * 1e3, ref["cpu_s_per_batch"] * 1e3
        print(f"{mine}{d2l_ms:>12.2f} {d2l_cpu:>6.2f} "
              f"{ref['first_batch_s']:>11.2f} {ref['batches']:>4}/{ref['of']:<4} | "
              f"{ref['steady_s_per_batch'] / ours:>7.1f}x {ref['cpu_s_per_batch'] / cpu:>8.1f}x")
    print("  (ms/batch: wall time; CPU ms: CPU time per batch summed over threads and, for d2l,\n"
          "   its worker processes; it shows the work done, whatever else loads the machine)")
    for size, ours, secs, _, ref in rows:
        if ref is None:
            continue
        ratio = ref["steady_s_per_batch"] / ours
        line = (f"  {size}px: cnnlab {1 / ours:,.1f} batches/s vs d2l "
                f"{1 / ref['steady_s_per_batch']:,.1f} batches/s -> {ratio:.1f}x   "
                f"target >= 5x: {'PASS' if ratio >= 5 else 'FAIL'}")
        if ref["batches"] == ref["of"]:
            line += (f"; whole epoch {secs:.1f} s vs {ref['total_s']:.1f} s "
                     f"({ref['total_s'] / secs:.1f}x)")
        print(line)

    # (c) peak memory in a fresh process
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(REPO), str(fm)],
                         capture_output=True, text=True, check=True)
    before, peak, n, secs = out.stdout.split()
    peak_mb, before_mb = int(peak) / 1024, int(before) / 1024  # ru_maxrss is KiB on Linux
    print(f"\n(c) peak RSS of a fresh process iterating one epoch at 224 ({n} batches, "
          f"{float(secs):.1f} s): {peak_mb:,.0f} MB "
          f"(after loading the dataset: {before_mb:,.0f} MB)"
          f"   target < 1.5 GB: {'PASS' if peak_mb < 1536 else 'FAIL'}")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}; "
          f"own peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
