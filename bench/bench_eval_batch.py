"""Evaluation speed against the evaluation batch size, on this machine's CPU, in one run.

    .venv/bin/python bench/bench_eval_batch.py                 # the zoo models below, 3 repeats
    .venv/bin/python bench/bench_eval_batch.py --models fastnet_wide --repeats 5

Each model (random weights, eval mode, channels_last as the engine runs it) classifies the same
random images through `cnnlab.run.evaluate` (the path every validation and test score takes) at
each batch size, alternating the sizes within each repeat; the median seconds are printed with
the ratio to the best size. Small CPU caches make huge batches slow: a 1024-image batch of
16-channel 28x28 maps is 51 MB per activation, far beyond L2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnlab.models import create_model  # noqa: E402
from cnnlab.run import evaluate  # noqa: E402

# name -> (input side, images): the big inputs get fewer images so each row takes seconds.
MODELS = {"lenet": (28, 10000), "bn_lenet": (28, 10000), "fastnet_deep": (28, 10000),
          "fastnet_wide": (28, 10000), "resnet18": (96, 2048), "vgg11_small": (224, 1024)}


def seconds(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    batches = [(X[i:i + batch], y[i:i + batch]) for i in range(0, len(X), batch)]
    t = time.perf_counter()
    evaluate(model, batches)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sizes", default="128,256,512,1024")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median seconds of "
          f"{args.repeats} (ratio to the fastest size)")
    print(f"{'model':<14}{'images':>8}  " + "".join(f"{s:>15}" for s in sizes))
    for name in args.models.split(","):
        side, n = MODELS[name]
        torch.manual_seed(0)
        model = create_model(name).eval().to(memory_format=torch.channels_last)
        X = torch.randn(n, 1, side, side).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (n,))
        seconds(model, X[:sizes[0]], y[:sizes[0]], sizes[0])  # warm-up: oneDNN's primitives
        times: dict[int, list[float]] = {s: [] for s in sizes}
        for _ in range(args.repeats):
            for s in sizes:
                times[s].append(seconds(model, X, y, s))
        med = {s: statistics.median(t) for s, t in times.items()}
        best = min(med.values())
        print(f"{name:<14}{n:>8}  " + "".join(f"{med[s]:>8.2f} ({med[s] / best:.2f}x)"
                                               for s in sizes), flush=True)


if __name__ == "__main__":
    main()
