"""Cost-analysis benchmark: how long `cnnlab.cost.summary` takes, and whether its figures are right.

    .venv/bin/python bench/bench_cost.py [--repeats N] [--no-measure]

(a) summary() of ResNet-50 at 3x224x224, batch 1: counting only (one forward + backward on the
    meta device), and with the measured memory of one real training step on the CPU
    (target < 5 s for the whole call); beside it, torch's FlopCounterMode over one real forward +
    backward of the same model, the cheapest way to get even the matmul counts alone.
(b) the reference figures (ImageNet configuration: 3 channels, 1000 classes, 224x224) against
    ours: VGG-16 138,357,544 params ~15.47 GMACs, ResNet-18 11,689,512 ~1.81 GMACs, ResNet-50
    25,557,032 ~4.09 GMACs (torchvision's published figures), exact integer params, MACs to 0.01 G.

Timings are wall-clock medians of --repeats runs; the machine is shared, so they are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cnnlab.cost import summary  # noqa: E402
from cnnlab.models import create_model  # noqa: E402

REFERENCE = {"vgg16": (138_357_544, 15.47), "resnet18": (11_689_512, 1.81),
             "resnet50": (25_557_032, 4.09)}


def timed(fn, repeats: int) -> tuple[float, float, object]:  # noqa: ANN001
    """Median wall seconds and median process CPU seconds of `repeats` calls, the last result.

    CPU seconds do not grow when other processes compete for the cores, so on a loaded machine
    they show what the call itself costs.
    """
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-measure", action="store_true", help="skip the measured-memory timing")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    model = create_model("resnet50", num_classes=1000, in_channels=3)
    x = torch.randn(1, 3, 224, 224)
    t_count, c_count, s = timed(lambda: summary(model, (3, 224, 224), measure_memory=False),
                                args.repeats)

    def flop_counter() -> int:
        with FlopCounterMode(display=False) as fc:
            model(x).sum().backward()
        model.zero_grad(set_to_none=True)
        return fc.get_total_flops()

    t_fc, c_fc, fc_flops = timed(flop_counter, args.repeats)
    print("\n(a) summary() of ResNet-50 at 3x224x224, batch 1 (median of "
          f"{args.repeats}; shared machine: noisy)")
    print(f"  {'':<37}{'wall':>8}{'CPU':>9}")
    print(f"  {'counting only (meta device)':<37}{t_count:7.2f}s{c_count:8.2f}s   target < 5 s: "
          f"{'PASS' if t_count < 5 else 'FAIL'}")
    print(f"  {'FlopCounterMode, real fwd+bwd':<37}{t_fc:7.2f}s{c_fc:8.2f}s   "
          f"(summary's counting is {t_fc / t_count:.1f}x faster)")
    ok = t_count < 5
    if not args.no_measure:
        t_all, c_all, s_all = timed(lambda: summary(model, (3, 224, 224)), args.repeats)
        m = s_all.measured
        print(f"  {'+ measured training step (profiler)':<37}{t_all:7.2f}s{c_all:8.2f}s   "
              f"target < 5 s: {'PASS' if t_all < 5 else 'FAIL'}")
        print(f"  memory: estimate {s_all.memory.total / 1e6:.1f} MB, measured peak "
              f"{m.peak / 1e6:.1f} MB ({m.peak / s_all.memory.total:.2f}x)")
        ok = t_all < 5
    conv_mm = 2 * (s.total_macs + s.macs_backward)
    print(f"  matmul FLOPs fwd+bwd: ours {conv_mm:,}, FlopCounterMode {fc_flops:,} "
          f"({'equal' if conv_mm == fc_flops else 'DIFFERENT'})")

    print("\n(b) reference figures (3 channels, 1000 classes, 224x224)")
    print(f"  {'model':<10}{'params (ref)':>15}{'params (ours)':>15}{'GMACs (ref)':>13}"
          f"{'GMACs (ours)':>14}  match")
    for name, (params, gmacs) in REFERENCE.items():
        with torch.device("meta"):
            net = create_model(name, num_classes=1000, in_channels=3)
        r = summary(net, (3, 224, 224), measure_memory=False)
        match = r.total_params == params and round(r.total_macs / 1e9, 2) == gmacs
        ok &= match
        print(f"  {name:<10}{params:>15,}{r.total_params:>15,}{gmacs:>13.2f}"
              f"{r.total_macs / 1e9:>14.4f}  {'yes' if match else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
