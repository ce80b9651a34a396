"""`cnnlab` command line: subcommands are a dict of name -> function; TrainConfig fields are flags.

Errors a user can cause (CnnlabError) print one line on stderr and exit 2; a training stopped by
Ctrl-C or SIGTERM prints how to resume it and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cnnlab.cli.info import cmd_data, cmd_models, cmd_recipes, cmd_summary
from cnnlab.cli.parser import build_parser
from cnnlab.cli.runs import cmd_compare, cmd_eval, cmd_export, cmd_inspect, cmd_predict, cmd_report
from cnnlab.cli.training import (
    EXIT_INTERRUPTED,
    cmd_lr_find,
    cmd_suite,
    cmd_sweep,
    cmd_train,
    plan_train,
)
from cnnlab.errors import CnnlabError, HardInterrupt, TrainingInterrupted, one_line

__all__ = ["COMMANDS", "build_parser", "main", "plan_train"]

EXIT_USER_ERROR = 2

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "summary": cmd_summary,
    "models": cmd_models, "recipes": cmd_recipes, "data": cmd_data, "report": cmd_report,
    "export": cmd_export, "compare": cmd_compare, "suite": cmd_suite, "sweep": cmd_sweep,
    "lr-find": cmd_lr_find, "inspect": cmd_inspect,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cnnlab` and `python -m cnnlab`; returns the exit status.

    0: done (also `--resume` of a finished run); 2: a CnnlabError, one line; 128 + the signal's
    number when Ctrl-C (130) or SIGTERM (143) stopped a training, with the command that resumes
    it when a checkpoint exists.
    """
    entry = argv is None  # the process's own command line: it exits when main returns
    argv = sys.argv[1:] if argv is None else list(argv)
    # `cnnlab train NAME --help`: the flags' defaults are NAME's (e.g. its learning rate).
    asks_help = "-h" in argv or "--help" in argv
    target = argv[1] if asks_help and argv[:1] == ["train"] and len(argv) > 1 and not argv[
        1].startswith("-") else None
    parser = build_parser(target)
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TrainingInterrupted as err:  # the engine checkpointed (if it could): say how to go on
        _exiting_on_a_signal(entry)
        print(f"cnnlab: {one_line(err)}", file=sys.stderr)
        return err.exit_code
    except CnnlabError as err:
        print(f"cnnlab: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as err:  # a second signal, or one outside a training loop
        _exiting_on_a_signal(entry)
        from cnnlab.train import resume_hint

        hint = resume_hint(err.run_dir) if isinstance(err, HardInterrupt) else ""
        print("cnnlab: interrupted" + (f"; resume with: {hint}" if hint else ""),
              file=sys.stderr)
        return err.exit_code if isinstance(err, HardInterrupt) else EXIT_INTERRUPTED


def _exiting_on_a_signal(entry: bool) -> None:
    """The process ends because of Ctrl-C or SIGTERM: one more (20 ms later, say) must not
    interrupt the interpreter's exit ("Exception ignored in atexit callback", a traceback). Only
    for the process's own command line: an in-process caller keeps its handlers."""
    if entry:
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    raise SystemExit(main())
