"""Colab's situation, reproduced: `pip install` of this checkout into an environment that already
has torch and numpy 2 keeps that torch, and cnnlab then imports and trains from outside the
checkout.

    .venv/bin/python bench/bench_colab_install.py                  # a fresh venv in a temp folder
    .venv/bin/python bench/bench_colab_install.py --venv /tmp/cv   # keep (or reuse) that venv

Steps: (1) a venv without system site-packages (Colab's preinstalled packages are in its own
environment, not borrowed) gets torch==2.13.0 (the CPU wheel this machine holds) and numpy>=2,
the way Colab ships them; (2) from a scratch folder outside the checkout, `pip install CHECKOUT`
(what `pip install "cnnlab @ git+https://..."` does with a clone); (3) checks: torch's version
and the hash of its compiled core are unchanged (pip did not replace torch), numpy is still 2.x,
`cnnlab` is imported from site-packages and not from the checkout, and both the Python API and
the `cnnlab` command train LeNet for a few batches on Fashion-MNIST ($CNNLAB_DATA). Prints one
line per check and exits 1 on any failure. Takes minutes (step 1 unpacks a 200 MB wheel), so it
is a benchmark script, not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the version cnnlab's Makefile installs; a CUDA build satisfies >=2.1


def sh(*cmd: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout; SystemExit with its stderr's tail on failure."""
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-3000:]}")
    return res.stdout


def torch_fingerprint(py: Path, cwd: Path) -> str:
    """'version md5-of-torch/_C*.so' of the venv's torch: changes if pip reinstalls torch."""
    code = ("import torch, pathlib, hashlib; so = next(pathlib.Path(torch.__file__).parent"
            ".glob('_C*.so')); print(torch.__version__, hashlib.md5(so.read_bytes()).hexdigest())")
    return sh(str(py), "-c", code, cwd=cwd).strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", type=Path, help="venv folder to make (or reuse, if it has torch)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="cnnlab-colab-"))  # outside the checkout
    venv = args.venv or scratch / "venv"
    py = venv / "bin" / "python"
    failures = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)

    if not py.exists():
        sh(sys.executable, "-m", "venv", str(venv), cwd=scratch)
    has_torch = subprocess.run([str(py), "-c", "import torch, numpy"], cwd=scratch,
                               capture_output=True).returncode == 0
    if not has_torch:
        sh(str(py), "-m", "pip", "install", "-q", TORCH, "numpy>=2", cwd=scratch)
    before = torch_fingerprint(py, scratch)
    print(f"preinstalled: torch {before} ({time.perf_counter() - t0:.0f} s)", flush=True)

    t1 = time.perf_counter()
    sh(str(py), "-m", "pip", "install", "-q", str(ROOT), cwd=scratch)
    print(f"pip install {ROOT}: {time.perf_counter() - t1:.0f} s", flush=True)
    after = torch_fingerprint(py, scratch)
    check(after == before, f"torch kept: {after}")
    info = sh(str(py), "-c", "import numpy, cnnlab; print(numpy.__version__); "
              "print(cnnlab.__file__)", cwd=scratch).split()
    check(info[0].startswith("2."), f"numpy still 2.x: {info[0]}")
    check(str(venv) in info[1] and str(ROOT) not in info[1], f"cnnlab from {info[1]}")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no checkout on the path
    code = ("from cnnlab.train import TrainConfig, train; r = train('lenet', 'fashion-mnist', "
            "TrainConfig(epochs=1, limit_batches=5, progress='none'), out_dir='api-run'); "
            "print(r.test_acc)")
    acc = float(sh(str(py), "-c", code, cwd=scratch, env=env).split()[-1])
    check(0 <= acc <= 1 and (scratch / "api-run" / "result.json").exists(),
          f"Python API trained 5 batches: test_acc {acc:.3f}")
    out = sh(str(venv / "bin" / "cnnlab"), "train", "lenet", "--epochs", "1", "--limit-batches",
             "5", "--progress", "none", "--no-report", "--out", "cli-run", cwd=scratch, env=env)
    check("test accuracy" in out and (scratch / "cli-run" / "result.json").exists(),
          "`cnnlab train lenet --limit-batches 5` from outside the checkout")
    print(f"{'all checks passed' if not failures else f'{failures} failed'} "
          f"({time.perf_counter() - t0:.0f} s in all)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
