"""The info commands: summary, models, recipes and data."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from cnnlab.errors import ConfigError


def cmd_summary(args: argparse.Namespace) -> int:
    """Print a model's cost summary."""
    from cnnlab.models import create_model, default_input_size, parse_model_args

    c, h, w = args.input or default_input_size(args.model)
    if args.classes < 1:
        raise ConfigError(f"--classes {args.classes} must be at least 1")
    model = create_model(args.model, num_classes=args.classes, in_channels=c, input_size=(h, w),
                         **parse_model_args(args.model, args.model_args))
    from cnnlab.cost import summary

    s = summary(model, (c, h, w), batch_size=args.batch_size, measure_memory=args.measure)
    out = {"table": str, "markdown": lambda x: x.to_markdown(), "json": lambda x: x.to_json()}
    print(out[args.format](s))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the zoo's models with their input size and parameter count."""
    from cnnlab.cost import model_rows

    rows = model_rows(args.pattern)
    if not rows:
        raise ConfigError(f"no model matches {args.pattern!r} (`cnnlab models` lists them all)")
    if args.format == "markdown":
        print("| model | book input (C,H,W) | parameters |\n|---|---|---:|")
        for name, size, n in rows:
            print(f"| `{name}` | {size} | {n:,} |")
        return 0
    width = max(len(r[0]) for r in rows)
    print(f"{'model'.ljust(width)}  input      parameters")
    for name, size, n in rows:
        print(f"{name.ljust(width)}  {size.ljust(9)}  {n:>12,}")
    if [name for name, _, _ in rows] == [args.pattern]:  # one model by name: its knobs too
        from cnnlab.models import knob_table

        print(f"\nknobs of {args.pattern} (--model-arg KEY=VALUE):\n{knob_table(args.pattern)}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """List the recipes."""
    from cnnlab.recipes import RECIPES, recipe_table

    if args.format == "markdown":
        print(recipe_table())
        return 0
    wrap = textwrap.TextWrapper(width=96, initial_indent="    ", subsequent_indent="    ")
    for r in RECIPES.values():
        m = r.measured
        got = "not yet measured" if m is None else (
            f"measured {m.test_acc:.1%} in {m.seconds / 60:.1f} min on {m.machine}"
            + (f", {m.data}" if m.data else ""))
        print(f"{r.name:<20} {r.model_spec()} on {r.dataset}: {r.hyperparameters()}")
        print(wrap.fill(f"{r.reproduces}; {got}"))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Download, verify or show a dataset."""
    from cnnlab import data
    from cnnlab.plots import MAX_GRID_IMAGES

    if args.action == "show" and not 1 <= args.count <= MAX_GRID_IMAGES:
        raise ConfigError(f"--count {args.count} must be from 1 to {MAX_GRID_IMAGES} (a grid of "
                          "more images is not readable)")
    if args.action == "verify":
        files = data.verify_dataset(args.name, root=args.root)
        for name, how in sorted(files.items()):
            print(f"  {name}: {how}")
        ds = data.load_dataset(args.name, root=args.root, download=False)
        print(f"{ds.name}: OK, {len(ds.train)} train + {len(ds.test)} test images, "
              f"{len(ds.classes)} classes, in {ds.root}")
        if ds.note:  # intact, but not what published accuracies were measured on
            print(f"{ds.name}: {ds.note}")
        return 0
    ds = data.load_dataset(args.name, root=args.root, download=True)
    if args.action == "download":
        print(f"{ds.name}: {len(ds.train)} train + {len(ds.test)} test images in {ds.root}")
        return 0
    out = args.out or Path(f"{ds.name}-samples.png")
    ds.save_grid(out, args.split, args.count, seed=args.seed)
    print(f"{min(args.count, len(ds.train if args.split == 'train' else ds.test))} {args.split} "
          f"images of {ds.name} with their labels: {out}")
    return 0


