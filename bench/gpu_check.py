"""One command that checks the CUDA path end to end, ready for the day a GPU is lent.

    .venv/bin/python bench/gpu_check.py                  # everything: one table, exit 1 on failure
    .venv/bin/python bench/gpu_check.py --skip-timing    # leave out the d2l timing (no d2l venv)
    .venv/bin/python bench/gpu_check.py --compile-all    # torch.compile every zoo model, not one
                                                         # per family (each compile takes a while)

On a CUDA machine it runs, on the GPU:
  zoo       every zoo model forward and backward at its book size (batch 4) in float32, under
            bf16 and fp16 autocast, and in channels_last; torch.compile (bf16, channels_last) on
            one model per family (--compile-all: every model); each checks finite loss and grads;
  train     `cnnlab train` of lenet, resnet18 (96 px) and vgg_small (224 px), --limit-batches;
  d2l       the drop-in's LeNet fit (cnnlab.d2l.Trainer(num_gpus=1)), one short epoch;
  torchrun  `torchrun --nproc_per_node 1 -m cnnlab train lenet` (NCCL on CUDA);
  export    `cnnlab export` of the lenet run to ONNX, checked against PyTorch by the exporter;
  timing    the book's ResNet-18 (96 px) and VGG (224 px) recipes against d2l 1.0.3 on the same
            GPU: steady training images/s and their ratio (bench_train.steady_rates; d2l from
            ../shared/bench/d2l_reference, set D2L_PYTHON to its venv's python).
Without CUDA it says so and runs the CPU subset: the same checks at tiny sizes (72 px for the
networks of 96-224 px, a few batches, compile on LeNet only, no fp16), the cnnlab half of the
timing on 2 batches, and no d2l side. Prints one table (check, status, seconds, detail) and
exits 1 when any check failed; a check that cannot run here (no d2l venv, no onnx) is "skip".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import D2L_PY, steady_rates  # noqa: E402  (one owner for d2l runs)

# One model per family file of cnnlab/models: what torch.compile is tried on by default.
COMPILE_FAMILY = ("lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "resnext50_32x4d",
                  "densenet", "regnetx32", "fastnet")


class Skip(Exception):
    """A check that cannot run on this machine (not a failure)."""


class Checks:
    """Runs named checks, never stopping at a failure, and prints them as one table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, str]] = []

    def run(self, name: str, fn: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        try:
            status, detail = "ok", fn()
        except Skip as exc:
            status, detail = "skip", str(exc)
        except Exception as exc:  # noqa: BLE001 (every failure becomes a row)
            status = "FAIL"
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            traceback.print_exc(file=sys.stderr)
        seconds = time.perf_counter() - t0
        self.rows.append((name, status, seconds, detail))
        print(f"  {status:<4} {name} ({seconds:.1f} s) {detail}", file=sys.stderr, flush=True)

    def table(self) -> str:
        w = max(len(r[0]) for r in self.rows)
        lines = [f"{'check':<{w}}  status  seconds  detail", "-" * (w + 40)]
        lines += [f"{n:<{w}}  {s:<6}  {sec:7.1f}  {d}" for n, s, sec, d in self.rows]
        return "\n".join(lines)

    @property
    def failed(self) -> int:
        return sum(r[1] == "FAIL" for r in self.rows)


def cnnlab(*args: str, cwd: Path | None = None, prefix: tuple[str, ...] = ()) -> str:
    """Run `python -m cnnlab ARGS` (or `PREFIX -m cnnlab ARGS`); its stdout; raise on failure."""
    cmd = list(prefix or (sys.executable,)) + ["-m", "cnnlab", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"exit {res.returncode}: {tail}")
    return res.stdout


def zoo_check(name: str, device, size: int | None, variant: str) -> str:
    """Forward and backward of zoo model `name` in one variant; finite loss and gradients."""
    import torch
    from torch.nn import functional as F

    from cnnlab.models import create_model, default_input_size

    c, h, w = default_input_size(name)
    if size and h > 28:  # the CPU subset: 96-224 px networks at a tiny size
        h = w = size
    try:  # LeNet, AlexNet and VGG size their classifier by the input
        model = create_model(name, in_channels=c, input_size=(h, w))
    except TypeError:
        model = create_model(name, in_channels=c)
    model = model.to(device).train()
    x = torch.randn(4, c, h, w, device=device)
    y = torch.randint(0, 10, (4,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(variant)
    if variant in ("channels_last", "compile"):
        model, x = model.to(memory_format=torch.channels_last), x.to(
            memory_format=torch.channels_last)
    if variant == "compile":
        model, dtype = torch.compile(model), torch.bfloat16
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if not math.isfinite(loss.item()) or any(g is None or not torch.isfinite(g).all()
                                             for g in grads):
        raise RuntimeError(f"non-finite loss or gradient (loss {loss.item():.4g})")
    return f"{c}x{h}x{w}, loss {loss.item():.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-timing", action="store_true", help="no cnnlab-vs-d2l timing")
    p.add_argument("--compile-all", action="store_true", help="compile every zoo model")
    p.add_argument("--models", default="", help="only these zoo models (comma-separated)")
    p.add_argument("--timing-batches", type=int, default=0,
                   help="N for the N/2N-batch timing (default 20 on CUDA, 1 on the CPU)")
    args = p.parse_args(argv)

    import torch

    from cnnlab.models import list_models

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        print(f"# gpu_check: CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
              f"torch {torch.__version__}")
    else:
        print(f"# gpu_check: no CUDA on this machine (torch {torch.__version__}): running the "
              "CPU subset at tiny sizes; the GPU checks need a CUDA machine")
    size = None if cuda else 72  # small, and enough for every zoo network (NiN needs 67)
    limit = "20" if cuda else "2"
    checks = Checks()
    models = args.models.split(",") if args.models else list_models()
    variants = ("fp32", "bf16", "fp16", "channels_last") if cuda else (
        "fp32", "bf16", "channels_last")
    for name in models:
        for variant in variants:
            checks.run(f"zoo {name} {variant}",
                       lambda n=name, v=variant: zoo_check(n, device, size, v))
        if (args.compile_all or name in COMPILE_FAMILY) and (cuda or name == "lenet"):
            checks.run(f"zoo {name} compile",
                       lambda n=name: zoo_check(n, device, size, "compile"))

    with tempfile.TemporaryDirectory(prefix="cnnlab-gpu-check-") as tmp:
        work = Path(tmp)
        dev = "cuda" if cuda else "cpu"
        # (recipe, extra flags): the book's sizes on CUDA, tiny ones on the CPU
        trains = [("lenet", []), ("resnet18", [] if cuda else ["--resize", "72,72"]),
                  ("vgg_small", [] if cuda else ["--resize", "72,72"])]
        for recipe, extra in trains:
            def train_one(recipe=recipe, extra=extra) -> str:
                out = work / recipe
                cnnlab("train", recipe, "--epochs", "1", "--limit-batches", limit, "--device",
                       dev, "--progress", "none", "--no-report", "--out", str(out), *extra)
                res = json.loads((out / "result.json").read_text())
                cfg = json.loads((out / "config.json").read_text())
                return (f"{cfg.get('resize')} px, amp {cfg.get('amp')}, "
                        f"test_acc {res.get('test_acc', float('nan')):.3f} on "
                        f"{res.get('test_images', '?')} images")
            checks.run(f"cnnlab train {recipe}", train_one)

        def d2l_fit() -> str:
            from cnnlab import d2l

            data = d2l.FashionMNIST(batch_size=128)
            data.train.split = data.train.split.subset(range(2048))
            data.val.split = data.val.split.subset(range(1024))
            model = d2l.LeNet(lr=0.1)
            model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
            old = os.getcwd()
            os.chdir(work)  # the board's PNG lands here
            try:
                d2l.Trainer(max_epochs=1, num_gpus=1 if cuda else 0).fit(model, data)
            finally:
                os.chdir(old)
            where = next(model.parameters()).device
            if where.type != device.type:
                raise RuntimeError(f"the model trained on {where}, not {device}")
            return f"LeNet on {where}, 16 batches"
        checks.run("d2l drop-in LeNet fit", d2l_fit)

        def torchrun() -> str:
            launcher = Path(sys.executable).with_name("torchrun")
            if not launcher.exists():
                raise Skip(f"no torchrun beside {sys.executable}")
            out = work / "torchrun"
            cnnlab("train", "lenet", "--epochs", "1", "--limit-batches", limit, "--device", dev,
                   "--progress", "none", "--no-report", "--out", str(out),
                   prefix=(str(launcher), "--nproc_per_node", "1", "--standalone"))
            from cnnlab.checkpoint import load_checkpoint

            state = load_checkpoint(out / "checkpoints" / "last.pt")
            return (f"world_size {state['world_size']} under torchrun, backend "
                    f"{'nccl' if cuda else 'gloo'}")
        checks.run("torchrun 1 process", torchrun)

        def export() -> str:
            import importlib.util

            missing = [m for m in ("onnx", "onnxscript", "onnxruntime")
                       if importlib.util.find_spec(m) is None]
            if missing:
                raise Skip("needs " + ", ".join(missing) + " (pip install onnx onnxscript "
                           "onnxruntime)")
            if not (work / "lenet" / "result.json").exists():
                raise RuntimeError("no lenet run to export (its train check failed)")
            target = work / "lenet.onnx"
            cnnlab("export", str(work / "lenet"), "--format", "onnx", "--out", str(target))
            return f"ONNX {target.stat().st_size / 1e3:.0f} kB, checked against PyTorch"
        checks.run("export lenet onnx", export)

    if not args.skip_timing:
        n = args.timing_batches or (20 if cuda else 1)
        for name in ("resnet18", "vgg"):
            def timing(name=name) -> str:
                d2l = cuda and D2L_PY.exists()
                rates = steady_rates(name, n, d2l=d2l, device="cuda" if cuda else "cpu",
                                     size=None if cuda else 72)
                ours = rates["cnnlab"][2]
                if not d2l:
                    why = "no CUDA" if not cuda else f"no d2l venv at {D2L_PY}"
                    return f"cnnlab {ours:.0f} img/s; d2l not timed ({why})"
                theirs = rates["d2l 1.0.3"][2]
                return f"cnnlab {ours:.0f} img/s, d2l {theirs:.0f} img/s: {ours / theirs:.2f}x"
            checks.run(f"timing {name} vs d2l", timing)

    print(checks.table())
    print(f"{len(checks.rows)} checks: {checks.failed} failed, "
          f"{sum(r[1] == 'skip' for r in checks.rows)} skipped")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
