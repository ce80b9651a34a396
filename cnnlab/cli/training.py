"""The training commands: train (and --resume), lr-find, suite and sweep."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from cnnlab.cli.runs import write_report_saying
from cnnlab.errors import ConfigError, RunFinished, TrainingInterrupted, one_line

EXIT_INTERRUPTED = 130


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (flags left out are None)."""
    from cnnlab.train_config import config_from_args

    return config_from_args(args, only_given=True)


def plan_train(args: argparse.Namespace) -> tuple[Any, Any, Path, dict[str, Any]]:
    """(recipe, validated TrainConfig, run folder, model kwargs) that `train` would run; with
    `--lr find` the config's lr is the recipe's, and args.lr_find is set."""
    from cnnlab.runlog import default_run_dir

    recipe, config, model_kwargs = plan_config(args)
    if args.out is not None and not args.out.strip():
        raise ConfigError('--out "" names no folder; name one, or leave --out out for a new '
                          "runs/<name>-<time>")
    out = Path(args.out) if args.out is not None else default_run_dir(recipe.name)
    return recipe, config, out, model_kwargs


def plan_config(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """(recipe, validated TrainConfig, model kwargs) from the target, --config, --model-arg and
    the training flags; args.lr_find says whether the lr is 'find' (then the config keeps the
    recipe's)."""
    from cnnlab.recipes import resolve
    from cnnlab.train_config import load_toml

    settings = load_toml(args.config) if args.config else {}
    file_knobs = settings.pop("model_args", {})
    flags = _flags(args)
    model = flags.pop("model", None)  # --model NAME names what to train, like the positional
    target = args.target or model or settings.get("recipe") or settings.get("model")
    settings.pop("recipe", None)
    settings.pop("model", None)
    if not target:
        raise ConfigError("name a recipe or a model: `cnnlab train lenet` (`cnnlab recipes`)")
    recipe = resolve(target)
    if model is not None and model != recipe.model:
        raise ConfigError(f"recipe {recipe.name!r} trains {recipe.model!r}, not --model {model!r}; "
                          "name one of them")
    given = {**settings, **flags}  # flags win over the file
    args.lr_find = given.get("lr") == "find"  # --lr find, or lr = "find" in the TOML file
    if args.lr_find:
        given.pop("lr")
    config = recipe.config(**given).validate()  # a recipe's size applies to its own data only
    from cnnlab.models import parse_model_args

    # The model's knobs: the recipe's < the [model] table < --model-arg, each checked.
    model_kwargs = {**parse_model_args(recipe.model, recipe.model_kwargs),
                    **parse_model_args(recipe.model, file_knobs),
                    **parse_model_args(recipe.model, args.model_args)}
    return recipe, config, model_kwargs


def cmd_train(args: argparse.Namespace) -> int:
    """Train a recipe or a model (or resume a run) and print the test accuracy and run folder."""
    from cnnlab import train as engine
    from cnnlab.distributed import is_rank0
    from cnnlab.memory import check_run_fits  # refuses at once a run that cannot fit
    from cnnlab.models import knob_text

    if args.resume is not None:
        if args.target or args.config or args.out is not None or args.overwrite:
            raise ConfigError("--resume DIR takes its recipe and settings from DIR; drop the "
                              "recipe name, --config, --out and --overwrite (flags still change "
                              "settings)")
        try:
            changes = _flags(args)
            if "model" in changes or args.model_args:
                raise ConfigError("--resume DIR trains the model recorded in DIR (with its "
                                  "knobs); drop --model and --model-arg")
            result = engine.resume(args.resume, checkpoint=args.from_checkpoint or "last",
                                   preflight=check_run_fits, **changes)
        except RunFinished as done:  # nothing to do is not a failure: say so, and how to go on
            return _finished_run(done, Path(args.resume))
        return _finish_train(result, Path(args.resume))
    if args.from_checkpoint is not None:
        raise ConfigError("--from picks the checkpoint of --resume DIR; add --resume DIR")

    recipe, config, out, model_kwargs = plan_train(args)
    knobs = knob_text(recipe.model, model_kwargs)
    knobs = f" ({knobs})" if knobs else ""
    extras: dict[str, Any] = {}
    if args.lr_find:  # the range test on a fresh model first; the run starts from a fresh init
        config, extras = _find_lr(recipe, config, model_kwargs)

    def header(cfg: Any) -> None:
        """Once the run passed the memory guard (a refusal is one line, nothing before it)."""
        if is_rank0():
            print(f"cnnlab: {recipe.name}: {recipe.model}{knobs} on {config.dataset} -> {out}",
                  file=sys.stderr)
            if recipe.note and not config.dry_run:
                print(f"cnnlab: note: {recipe.note}", file=sys.stderr)

    try:
        # The zoo name, not a built module: the run records it, seeds the init, can be resumed.
        result = engine.train(recipe.model, config.dataset, config, out_dir=out,
                              model_kwargs=model_kwargs, preflight=check_run_fits,
                              on_start=header, overwrite=args.overwrite, **extras)
    except BaseException:
        if args.out is None:  # the fresh runs/<name>-<time> this command made, if still empty
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return _finish_train(result, out)


def _find_lr(recipe: Any, config: Any, model_kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`train --lr find`: the range test, its line on stderr, the config with the found lr and
    what the run folder records of it (config.json's lr_find, lr-find.png, lr-find.json)."""
    from cnnlab.lrfind import lr_find
    from cnnlab.memory import check_run_fits  # the range test trains the same network

    print(f"cnnlab: {recipe.name}: finding the learning rate (range test, at most 100 steps)…",
          file=sys.stderr, flush=True)
    found = lr_find(recipe.model, config.dataset, config, model_kwargs=model_kwargs,
                    preflight=check_run_fits)
    print(f"cnnlab: lr-find: lr {found.suggestion:.3g} ({found.rule_text}; {found.steps} steps, "
          f"{found.stopped})", file=sys.stderr)
    return config.replace(lr=found.suggestion), found.run_files()


def cmd_lr_find(args: argparse.Namespace) -> int:
    """The learning-rate range test: print the suggestion and its rule, write the picture."""
    from cnnlab.atomic import write_atomic
    from cnnlab.lrfind import lr_find
    from cnnlab.memory import check_run_fits
    from cnnlab.plots import save_figure
    from cnnlab.runlog import to_json

    recipe, config, model_kwargs = plan_config(args)
    if args.lr_find:
        raise ConfigError("lr-find sweeps the learning rate itself; drop --lr find")
    found = lr_find(recipe.model, config.dataset, config, model_kwargs=model_kwargs,
                    preflight=check_run_fits, start_lr=args.start_lr, end_lr=args.end_lr,
                    steps=args.steps, rule=args.rule)
    png = save_figure(found.figure, args.out)
    curve = write_atomic(args.out.with_suffix(".json"), to_json(found.to_dict()))
    print(f"suggested lr: {found.suggestion:.3g}")
    print(f"rule: {found.rule_text}")
    print(f"steps: {found.steps} ({found.stopped} at lr {found.lrs[-1]:.3g})")
    print(f"picture: {png}")
    print(f"curve: {curve}")
    print(f"train with it: cnnlab train {recipe.name} --lr {found.suggestion:.3g}, "
          f"or --lr find", file=sys.stderr)
    return 0


def _finished_run(done: RunFinished, run_dir: Path) -> int:
    """`--resume` of a finished run: its message, then the result it recorded."""
    from cnnlab.distributed import is_rank0
    from cnnlab.run import read_json

    if not is_rank0():
        return 0
    print(f"cnnlab: {one_line(done)}", file=sys.stderr)
    result = read_json(run_dir / "result.json")
    if result.get("test_acc") is not None:
        print(f"test accuracy: {result['test_acc']:.4f}")
    print(f"run folder: {run_dir}", flush=True)
    wanted = read_json(run_dir / "config.json").get("report", True)
    if wanted and not (run_dir / "report.html").is_file():  # a fault cost it: write it now
        print(f"report: {write_report_saying(run_dir)}")
    return 0


def _finish_train(result: Any, out: Path) -> int:
    """Print what the run reached and where it lives, then write its report (rank 0 only)."""
    from cnnlab.distributed import is_rank0

    if not is_rank0():
        return 0
    run_dir = Path(getattr(result, "run_dir", None) or out)
    if result.config.dry_run:  # one batch says the setup works, nothing about accuracy
        print(f"dry run OK: one training and one evaluation batch of {result.config.model} "
              f"at {_fmt_size(result.config.resize)}")
    elif result.test_acc is not None:
        part = ""
        n, total = result.test_images, result.test_split_images
        if n and total and n < total:
            part = f" (on {n:,} of {total:,} test images: --limit-batches)"
        print(f"test accuracy: {result.test_acc:.4f}{part}")
    print(f"time: {result.seconds:.1f} s")
    print(f"run folder: {run_dir}", flush=True)
    # --no-report is a config field: recorded, so a --resume of the run keeps it.
    if result.config.report and not result.config.dry_run:  # a dry run has nothing to report
        # The engine's last validation was the final model on the test split: reused.
        path = write_report_saying(run_dir, evaluation=getattr(result, "evaluation", None))
        print(f"report: {path}")
    return 0


def _fmt_size(size: Any) -> str:
    return "native size" if not size else f"{size[0]}x{size[1]}"


def cmd_suite(args: argparse.Namespace) -> int:
    """Train a suite of models under one recipe and budget; resumable; writes compare.html."""
    from cnnlab.suite import plan_suite, run_suite

    plan = plan_suite(args.name, args.models, epochs=args.epochs, data_root=args.data_root,
                      test_samples=args.test_samples, budget=args.budget, out=args.out,
                      seeds=args.seeds, find_lr=args.lr_find)
    name, out, budget = plan.name, plan.out_dir, plan.budget_minutes
    t0 = time.perf_counter()
    try:
        result = run_suite(plan.models, out, budget_s=budget * 60, config=plan.config, name=name,
                           stream=sys.stderr, seeds=plan.seeds, find_lr=plan.find_lr)
    except (KeyboardInterrupt, TrainingInterrupted) as err:
        print("cnnlab: suite interrupted; finished members are kept", file=sys.stderr)
        print(f"resume with: {plan.again}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_INTERRUPTED)
    from cnnlab.compare import collect_runs, format_table, write_compare

    runs, _ = collect_runs([m.run_dir for m in result.members if m.status != "failed"])
    if runs:
        page = write_compare(runs, out / "compare.html", title=f"suite {name}")
        print(format_table(runs, "text"))
        print(f"comparison: {page}", file=sys.stderr)
    print(f"suite {name}: {time.perf_counter() - t0:.0f} s of wall clock in this command, "
          f"{result.total_seconds:.0f} s of training sessions in all (budget {budget * 60:.0f} s)",
          file=sys.stderr)
    failed = [m.run_dir.name for m in result.members if m.status == "failed"]
    if failed:
        print(f"cnnlab: {len(failed)} run(s) failed: {', '.join(failed)} "
              f"(see {out / 'suite.json'})", file=sys.stderr)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or join, or resume) a sweep; print one line per trial, the best, the page."""
    from cnnlab import sweep as sw
    from cnnlab.sweep_space import OPTIONS, plan_spec, sweep_options

    opts = sweep_options(args.config, {n: getattr(args, n, None) for n in OPTIONS})
    folder = args.join or args.resume
    if folder is not None:
        if args.join and args.resume:
            raise ConfigError("--join DIR and --resume DIR do the same; give one")
        if args.target or opts.get("param") or opts.get("out") or _flags(args) \
                or args.model_args:
            raise ConfigError(f"--{'join' if args.join else 'resume'} DIR takes the sweep's "
                              "settings from DIR; drop the name, --param, --out and training "
                              "flags (--trials, --budget and --retrain-best still apply)")
        spec, out = None, Path(folder)
    else:
        ns = argparse.Namespace(target=args.target, config=args.config,
                                model_args=args.model_args, out=opts.get("out") or "-",
                                **_flags(args))
        recipe, config, _, model_kwargs = plan_train(ns)
        spec = plan_spec(recipe, config, model_kwargs, opts, _flags(args), args.config)
        out = Path(opts.get("out") or Path("runs") / f"sweep-{recipe.name}")
    try:
        if spec is not None or not opts.get("retrain_best") or opts.get("trials") or \
                opts.get("budget"):
            best = sw.run_sweep(spec, out, trials=opts.get("trials"),
                                budget_s=sw.parse_budget(opts.get("budget")),
                                storage=opts.get("storage"), stream=sys.stderr).best
        else:
            best = sw.read_sweep(out).get("best")
    except (KeyboardInterrupt, TrainingInterrupted) as err:
        print("cnnlab: sweep interrupted; finished trials are kept; continue with: "
              f"cnnlab sweep --resume {out}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_INTERRUPTED)
    if best:
        saved = sw.read_sweep(out)
        print(f"best: trial {best['number']}, {saved['spec']['metric']} "
              f"{sw.fmt_score(best)} ({sw.fmt_params(best['params'])})")
        print(f"train it: {saved['best_command']}")
    print(f"sweep: {out / 'sweep.html'}", flush=True)
    if opts.get("retrain_best"):
        res = sw.retrain_best(out, stream=sys.stderr)
        print(f"test accuracy of the best configuration, trained on the whole training split: "
              f"{res.test_acc:.4f} (run folder {res.out_dir})")
    return 0


