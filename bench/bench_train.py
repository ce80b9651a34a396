"""Training speed of cnnlab's engine side by side with d2l 1.0.3's Trainer, in one run.

    .venv/bin/python bench/bench_train.py             # LeNet 2 epochs, ResNet-18/VGG 5 batches
    .venv/bin/python bench/bench_train.py --full      # LeNet for the book's 10 epochs (+ accuracy)
    .venv/bin/python bench/bench_train.py --full --repeats 3 --only lenet   # median of 3 each
    .venv/bin/python bench/bench_train.py --variants  # cnnlab's speed knobs on LeNet, one by one
    .venv/bin/python bench/bench_train.py --only lenet --lenet-epochs 1 --skip-d2l --threads 1

What is compared (same data, same recipe, same machine, one after the other):
  lenet     the book's sigmoid LeNet, SGD lr 0.1, batch 128, Fashion-MNIST 28x28, validation every
            epoch: seconds per epoch (whole run / epochs) and the final validation accuracy.
  resnet18  ResNet-18 at 96x96, and vgg: the book's small VGG at 224x224: training images/s over
            --limit-batches N and 2N batches of 128 (d2l: its run.py --limit-batches, no
            validation; cnnlab: the same batches with eval_every=0); the difference of the two
            timings is the steady rate, start-up excluded on both sides.
d2l runs in its own venv (/work/refvenv/.d2l-venv) through ../shared/bench/d2l_reference/run.py.
Both sides use torch's default thread count unless --threads is given (cnnlab's `threads` field;
d2l gets OMP_NUM_THREADS). Timings on a shared machine are noisy: run when it is quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
D2L_RUN = REPO.parent / "shared" / "bench" / "d2l_reference" / "run.py"
D2L_PY = Path(os.environ.get("D2L_PYTHON", REPO.parent / "refvenv" / ".d2l-venv" / "bin" /
                             "python"))
MODELS = {  # name -> (cnnlab zoo model, d2l run.py model, input size, lr)
    "lenet": ("lenet", "lenet", 28, 0.1),
    "resnet18": ("resnet18", "resnet18", 96, 0.01),
    "vgg": ("vgg11_small", "vgg", 224, 0.01),
}


def data_dir() -> Path:
    root = Path(os.environ.get("CNNLAB_DATA", REPO.parent / "shared" / "data"))
    return root / "fashion-mnist"


def run_d2l(model: str, epochs: int, limit: int | None, threads: int) -> dict:
    """One d2l run.py invocation; its JSON line."""
    cmd = [str(D2L_PY), str(D2L_RUN), str(data_dir()), "--model", model, "--epochs", str(epochs)]
    if limit:
        cmd += ["--limit-batches", str(limit)]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if res.returncode != 0:
        raise SystemExit(f"d2l run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_cnnlab(model: str, epochs: int, limit: int | None, threads: int, lr: float,
               size: int, out: Path | None, **extra) -> dict:
    """One cnnlab training run in this process; figures shaped like d2l's JSON line."""
    import torch

    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, train

    ds = load_dataset("fashion-mnist", root=data_dir())
    config = TrainConfig(epochs=epochs, batch_size=128, lr=lr, resize=(size, size),
                         progress="none", threads=threads, limit_batches=limit or 0,
                         eval_every=0 if limit else 1, **extra)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    result = train(model, ds, config, out_dir=out)
    seconds = time.perf_counter() - t0
    h = result.history
    return {"seconds": round(seconds, 2), "seconds_per_epoch": round(seconds / epochs, 3),
            "epoch_seconds": round(sum(r["seconds"] for r in h) / len(h), 3),
            "train_seconds": sum(r["train_seconds"] for r in h),
            "val_acc": h[-1].get("val_acc"),
            "images_per_second": round(sum(r["images_per_second"] for r in h) / len(h), 1)}


def bench_lenet(args: argparse.Namespace) -> None:
    """The book's LeNet, d2l then cnnlab, --repeats times alternately; the median ratio counts.

    cnnlab's seconds are the whole `train()` call (model setup, every epoch with its validation,
    curves.png redrawn each epoch, checkpoints, TensorBoard events, the final result) divided by
    the epochs; d2l's are its `trainer.fit` divided by the epochs. Alternating the two keeps a
    noisy neighbour on this shared machine from favouring either side.
    """
    import statistics

    epochs = 10 if args.full else args.lenet_epochs
    print(f"\n## LeNet (book recipe), {epochs} epoch(s), batch 128, Fashion-MNIST 28x28, "
          f"{args.repeats} alternating run(s) each")
    ratios, ours_all, d2l_all = [], [], []
    for _ in range(args.repeats):
        d2l = None if args.skip_d2l else run_d2l("lenet", epochs, None, args.threads)
        with tempfile.TemporaryDirectory() as tmp:  # the full run folder: checkpoints, curves, TB
            ours = run_cnnlab("lenet", epochs, None, args.threads, 0.1, 28, Path(tmp) / "run")
        _row("cnnlab", ours)
        ours_all.append(ours)
        if d2l:
            _row("d2l 1.0.3", d2l)
            d2l_all.append(d2l)
            ratios.append(d2l["seconds_per_epoch"] / ours["seconds_per_epoch"])
            print(f"  speedup per epoch: {ratios[-1]:.2f}x")
    if ratios:
        med = statistics.median
        print(f"median s/epoch: cnnlab {med(r['seconds_per_epoch'] for r in ours_all):.2f} "
              f"(epoch loop alone {med(r['epoch_seconds'] for r in ours_all):.2f}), d2l "
              f"{med(r['seconds_per_epoch'] for r in d2l_all):.2f}")
        print(f"speedup per epoch: median {med(ratios):.2f}x (min {min(ratios):.2f}x, max "
              f"{max(ratios):.2f}x; target >= 3x);  val_acc: cnnlab {ours_all[-1]['val_acc']:.4f}"
              f" vs d2l {d2l_all[-1]['val_acc']:.4f} (target: within 2 points after 10 epochs)")


def steady_rates(name: str, n: int, threads: int = 0, d2l: bool = True, device: str = "auto",
                 size: int | None = None) -> dict[str, tuple[float, float, float]]:
    """label -> (seconds for n batches, for 2n batches, steady images/s) of cnnlab and d2l.

    Each side is timed at N and 2N training batches; (2N - N) * 128 images over the difference in
    seconds cancels what is paid once. d2l: its `trainer.fit` seconds (DataLoader workers and the
    first batches cancel). cnnlab: the engine's own training seconds of the epoch (setup and the
    final evaluation are outside that clock; the first batches cancel). `size` replaces the
    book's input size on cnnlab's side only (a CPU smoke test; d2l then has nothing to match).
    """
    zoo, d2l_name, book_size, lr = MODELS[name]
    size = size or book_size
    rates = {}
    for label in ("cnnlab",) + (("d2l 1.0.3",) if d2l else ()):
        runs = []
        for limit in (n, 2 * n):
            if label == "cnnlab":
                r = run_cnnlab(zoo, 1, limit, threads, lr, size, None, eval_batch_size=128,
                               device=device)
                runs.append(r["train_seconds"])
            else:
                runs.append(run_d2l(d2l_name, 1, limit, threads)["seconds"])
        rates[label] = (runs[0], runs[1], n * 128 / max(runs[1] - runs[0], 1e-9))
    return rates


def bench_throughput(name: str, args: argparse.Namespace) -> None:
    """Steady training images/s of both sides, start-up excluded on both (see steady_rates)."""
    zoo, _, size, _ = MODELS[name]
    n = args.limit_batches
    print(f"\n## {zoo} at {size}x{size}: training throughput, batches of 128, "
          f"{n} and {2 * n} batches (difference = steady state)")
    rates = steady_rates(name, n, args.threads, not args.skip_d2l)
    for label, (t1, t2, rate) in rates.items():
        print(f"  {label:<10} {n} batches {t1:7.2f} s, {2 * n} batches {t2:7.2f} s "
              f"-> {rate:7.1f} img/s steady ({2 * n * 128 / t2:.1f} img/s over {2 * n})")
    if len(rates) == 2:
        print(f"speedup (steady images/s): {rates['cnnlab'][2] / rates['d2l 1.0.3'][2]:.2f}x"
              "  (target >= 2x)")


def bench_variants(args: argparse.Namespace) -> None:
    """Each speed knob alone on LeNet (train images/s over --variant-batches batches)."""
    import torch

    n = args.variant_batches
    print(f"\n## cnnlab speed knobs, LeNet 28x28, {n} batches of 128 (train images/s)")
    variants = {"baseline": {}, "channels_last": {"channels_last": True},
                "threads=1": {"threads": 1}, "bf16 autocast": {"amp": "bf16"}}
    for label, extra in variants.items():
        kw = {"threads": args.threads, **extra}
        r = run_cnnlab("lenet", 1, n, kw.pop("threads"), 0.1, 28, None, **kw)
        print(f"  {label:<16} {r['images_per_second']:>9.0f} img/s")
    torch.set_flush_denormal(True)
    r = run_cnnlab("lenet", 1, n, args.threads, 0.1, 28, None)
    torch.set_flush_denormal(False)
    print(f"  {'flush_denormal':<16} {r['images_per_second']:>9.0f} img/s")


def _row(label: str, r: dict) -> None:
    acc = f"  val_acc {r['val_acc']:.4f}" if r.get("val_acc") is not None else ""
    print(f"  {label:<10} {r['seconds_per_epoch']:>8.2f} s/epoch  "
          f"{r['images_per_second']:>8.1f} img/s{acc}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="lenet,resnet18,vgg", help="any of lenet,resnet18,vgg")
    p.add_argument("--lenet-epochs", type=int, default=2, help="LeNet epochs (default 2)")
    p.add_argument("--full", action="store_true", help="LeNet for the book's 10 epochs")
    p.add_argument("--repeats", type=int, default=1, help="LeNet runs per side, alternating")
    p.add_argument("--limit-batches", type=int, default=5, help="batches for ResNet-18/VGG")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both (0: default)")
    p.add_argument("--skip-d2l", action="store_true", help="only cnnlab's figures")
    p.add_argument("--variants", action="store_true", help="also measure cnnlab's speed knobs")
    p.add_argument("--variant-batches", type=int, default=100)
    args = p.parse_args()
    if not args.skip_d2l and not D2L_PY.exists():
        raise SystemExit(f"d2l reference venv not found at {D2L_PY} (set D2L_PYTHON or use "
                         "--skip-d2l)")
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_train: torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, load average {load:.1f} at start")
    only = args.only.split(",")
    if "lenet" in only:
        bench_lenet(args)
    for name in ("resnet18", "vgg"):
        if name in only:
            bench_throughput(name, args)
    if args.variants:
        bench_variants(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n# load average {load:.1f} at the end (figures are noisy when it exceeds the cores)")


if __name__ == "__main__":
    main()
