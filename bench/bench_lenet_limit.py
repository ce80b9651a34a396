"""How close the book's LeNet recipe gets to this CPU's float32 limit, per epoch.

    .venv/bin/python bench/bench_lenet_limit.py                # engine variants, 3 epochs each
    .venv/bin/python bench/bench_lenet_limit.py --d2l          # plus d2l 1.0.3 side by side

The limit: the FLOPs of one epoch of the `lenet` recipe (60,000 training images forward and
backward at batch 128, plus the 10,000 validation images forward), counted with
torch.utils.flop_counter on the zoo LeNet, divided by this CPU's measured float32 matrix-multiply
rate (a large square sgemm with the same thread count). The fraction reached is
(epoch FLOPs / epoch seconds) / sgemm rate: 100% would mean every LeNet FLOP ran at the speed
of the best-case GEMM. An epoch's seconds come from the engine's history (training plus
validation); the first epoch, which pays for warm-up and compilation, is reported apart.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnlab.models import create_model  # noqa: E402
from cnnlab.recipes import get_recipe  # noqa: E402
from cnnlab.train import train  # noqa: E402

D2L_PYTHON = Path("/work/refvenv/.d2l-venv/bin/python")
D2L_RUN = ROOT.parent / "shared" / "bench" / "d2l_reference" / "run.py"
# name -> TrainConfig changes on top of the `lenet` recipe (the book's hyperparameters stay).
# The engine's defaults are channels_last on and amp="auto" (bf16 on a CPU with native bf16).
# The two compile variants are the same configuration: the first pays a cold compile (the
# script points TorchInductor at a fresh cache folder), the second finds its kernels cached.
VARIANTS = {
    "engine (recipe as is)": {},
    "- channels_last": {"channels_last": False},
    "- bf16 autocast": {"amp": "off"},
    "+ torch.compile (cold cache)": {"compile": True},
    "+ torch.compile (warm cache)": {"compile": True},
}


def sgemm_rate(threads: int, sizes: tuple[int, ...] = (1024, 2048, 3072)) -> float:
    """Best float32 GEMM rate in FLOP/s over a few square sizes (best of 5 runs each)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    best = 0.0
    try:
        for n in sizes:
            a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
            torch.mm(a, b, out=c)  # warm-up: MKL's first call pays for its setup
            for _ in range(5):
                t = time.perf_counter()
                torch.mm(a, b, out=c)
                best = max(best, 2 * n**3 / (time.perf_counter() - t))
    finally:
        torch.set_num_threads(saved)
    return best


def lenet_epoch_flops(n_train: int = 60_000, n_val: int = 10_000, batch: int = 128) -> float:
    """FLOPs of one epoch: forward+backward per training image, forward per validation image."""
    model = create_model("lenet")
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    train_per_image = fc.get_total_flops() / batch
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    val_per_image = fc.get_total_flops() / batch
    return train_per_image * n_train + val_per_image * n_val


def engine_epochs(changes: dict, epochs: int, threads: int, data_root: str | None) -> list[float]:
    """Per-epoch seconds (training + validation) of the `lenet` recipe through cnnlab.train."""
    recipe = get_recipe("lenet")
    config = recipe.config(epochs=epochs, threads=threads, progress="none", plot=False,
                           tensorboard=False, data_root=data_root, **changes)
    result = train(recipe.model, config.dataset, config, model_kwargs=dict(recipe.model_kwargs))
    return [row["seconds"] for row in result.history]


def d2l_epoch(epochs: int, data_dir: Path) -> float | None:
    """Seconds per epoch of the same recipe under d2l 1.0.3 (None when its venv is missing)."""
    if not D2L_PYTHON.exists() or not D2L_RUN.exists():
        return None
    out = subprocess.run([str(D2L_PYTHON), str(D2L_RUN), str(data_dir), "--model", "lenet",
                          "--epochs", str(epochs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds_per_epoch"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs per variant (>= 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--data-root", help="datasets folder (default: cnnlab.data's search order)")
    p.add_argument("--d2l", action="store_true", help="also time d2l 1.0.3 (reference venv)")
    p.add_argument("--d2l-data", type=Path, default=ROOT.parent / "shared/data/fashion-mnist")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # A fresh compile cache, so that the first compile variant is honestly cold; removed at exit.
    cache = tempfile.mkdtemp(prefix="cnnlab-inductor-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache

    rate = sgemm_rate(args.threads)
    flops = lenet_epoch_flops()
    limit = flops / rate
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"float32 sgemm rate: {rate / 1e9:.1f} GFLOP/s; one LeNet epoch: {flops / 1e9:.1f} GFLOP"
          f" -> limit {limit:.3f} s/epoch")
    print("\n| variant | first epoch s | steady epoch s (median) | GFLOP/s | fraction of limit |")
    print("|---|---|---|---|---|")
    for name in args.variants:
        secs = engine_epochs(VARIANTS[name], args.epochs, args.threads, args.data_root)
        steady = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]
        print(f"| {name} | {secs[0]:.2f} | {steady:.2f} | {flops / steady / 1e9:.1f} | "
              f"{limit / steady:.1%} |", flush=True)
    if args.d2l:
        sec = d2l_epoch(args.epochs, args.d2l_data)
        if sec is None:
            print("| d2l 1.0.3 | - | reference venv not found | - | - |")
        else:
            print(f"| d2l 1.0.3 | - | {sec:.2f} (its mean) | {flops / sec / 1e9:.1f} | "
                  f"{limit / sec:.1%} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
