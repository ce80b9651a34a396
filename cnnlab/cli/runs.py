"""The run-folder commands: eval, predict, report, export, inspect and compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, DataError


def write_report_saying(run_dir: Path, **kw: Any) -> Path:
    """write_report, saying first that it runs (it evaluates the model: seconds, not instant)."""
    from cnnlab.report import write_report

    print("writing report…", file=sys.stderr, flush=True)
    return write_report(run_dir, **kw)



def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a run's checkpoint on its dataset's test split (or --split train/val)."""
    from cnnlab.progress import plural
    from cnnlab.run import evaluate_run, load_run

    run = load_run(args.run_dir, checkpoint=args.checkpoint)
    ev = evaluate_run(run, split=args.split)
    metrics = {"checkpoint": args.checkpoint, "split": args.split, "loss": ev.loss,
               "acc": ev.acc, "n": ev.n}
    if args.format == "json":
        print(json.dumps(metrics))
    else:
        same = " (= test: the run validated on it)" if (
            args.split == "val" and not run.config.get("val_size")) else ""
        print(f"{args.run_dir} [{args.checkpoint}.pt] on the {ev.dataset} {args.split} split"
              f"{same}: accuracy {ev.acc:.4f}, loss {ev.loss:.4f}, {plural(ev.n, 'image')}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify image files with a run's model (or an exported ONNX file); print the top classes."""
    if args.run_dir.suffix == ".onnx" and args.run_dir.is_file():
        from cnnlab.export import predict_onnx

        classes, preds = predict_onnx(args.run_dir, args.images, invert=args.invert)
    else:
        from cnnlab.run import load_run, predict_files

        run = load_run(args.run_dir, checkpoint=args.checkpoint)
        classes, preds = run.classes, predict_files(run, args.images, invert=args.invert)
    k = max(1, min(args.top, len(classes)))
    if args.format == "json":
        print(json.dumps([{"image": str(path), "top": [
            {"class": classes[i], "prob": float(probs[i])}
            for i in probs.argsort(descending=True)[:k].tolist()]}
            for path, probs in zip(args.images, preds)]))
        return 0
    for path, probs in zip(args.images, preds):
        top = probs.argsort(descending=True)[:k].tolist()
        ranked = ", ".join(f"{classes[i]} {probs[i]:.1%}" for i in top[1:])
        line = f"{path}: {classes[top[0]]} ({probs[top[0]]:.1%})"
        print(line + (f"   then {ranked}" if ranked else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """(Re)write a run folder's report.html, confusion.png and errors.png."""
    if args.max_errors < 0:
        raise ConfigError(f"--max-errors {args.max_errors} must not be negative")
    if Path(args.run_dir).is_dir():  # a read-only folder fails now, not after the evaluation
        from cnnlab.atomic import check_writable

        check_writable(args.run_dir)
    path = write_report_saying(args.run_dir, checkpoint=args.checkpoint, max_errors=args.max_errors)
    from cnnlab.run import torn_lines

    for name in torn_lines(args.run_dir):  # the report says so too
        print(f"cnnlab: note: the last line of {Path(args.run_dir) / name} is torn; the report "
              "skipped it", file=sys.stderr)
    print(f"report: {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run's model and print where it went and how it compares with PyTorch."""
    from cnnlab.export import export_run

    r = export_run(args.run_dir, args.format, args.out, checkpoint=args.checkpoint)
    print(f"{r.format}: {r.path}")
    print(f"sidecar: {r.sidecar}")
    print(f"checked on {r.n_checked} test images: largest logit difference from PyTorch "
          f"{r.max_abs_diff:.2e}, predicted classes agree {r.agreement:.0%}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Write a run's filters, feature maps, Grad-CAM and saliency (or the edge demo) as PNGs and
    one inspect.html."""
    if args.edge_demo:
        from cnnlab.edgedemo import edge_demo_page

        if args.run_dir or args.index is not None or args.image or args.layer:
            raise ConfigError("--edge-demo needs no run, image or layer: `cnnlab inspect "
                              "--edge-demo --out DIR`")
        page, demo = edge_demo_page(args.out or Path("edge-demo"), steps=args.steps)
        k = demo.kernel[0]
        print(f"learned kernel [{k[0]:.4f}, {k[1]:.4f}] (the book's: [1, -1]); squared error "
              f"{demo.losses[0]:.3f} -> {demo.losses[-1]:.4f} in {len(demo.losses)} steps")
        print(f"page: {page}")
        return 0
    if args.run_dir is None:
        raise ConfigError("name a run folder (`cnnlab inspect RUN_DIR`), or --edge-demo")
    if args.mistakes < 0:
        raise ConfigError(f"--mistakes {args.mistakes} must not be negative")
    from cnnlab.inspect_page import inspect_run

    *pngs, page = inspect_run(args.run_dir, args.out, index=args.index, image=args.image,
                                      layer=args.layer, checkpoint=args.checkpoint,
                                      n_mistakes=args.mistakes)
    print(f"pictures: {', '.join(p.name for p in pngs)} in {page.parent}")
    print(f"page: {page}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the runs' table and write the comparison page."""
    from cnnlab.compare import collect_runs, format_table, write_compare

    runs, skipped = collect_runs(args.run_dirs)
    if not runs and len(skipped) == 1:  # one line: why this one path is not a run to compare
        path, why = skipped[0]
        raise DataError(why if str(path) in why else f"{path} {why}")
    for path, why in skipped:
        print(f"cnnlab: warning: skipping {path}: {why}", file=sys.stderr)
    if not runs:
        raise DataError(f"no run folder to compare among {len(args.run_dirs)} path(s); give "
                        "folders written by `cnnlab train` or `cnnlab suite`")
    print(format_table(runs, args.format, group=not args.per_seed))
    if not args.no_page:
        print(f"page: {write_compare(runs, args.out, group=not args.per_seed)}", file=sys.stderr)
    return 0


