"""A run folder's files read back: one reader for eval, report, inspect, compare, export, predict,
resume and load_run, so a damaged or ill-typed file is one DataError naming it, never a traceback.

    read_run_json(run / "config.json")           # a dict, its fields' types checked
    read_run_lines(run / "metrics.jsonl")        # (rows, 0); a bad line: "this run folder is
                                                 # damaged: FILE (line 3 is not valid JSON ...)"
    read_run_lines(path, skip_torn=True)         # (rows, 1) past a torn last line (the report)

runlog.py writes these files; this module only reads them (and imports nothing of cnnlab's but
errors, so every reader of a run, down to `cnnlab.load_run`, may use it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnlab.errors import DataError

__all__ = ["damaged", "read_run_json", "read_run_lines"]


def damaged(path: str | Path, what: str) -> DataError:
    """The one error for a run folder's file that cannot be used: the file and what is wrong."""
    return DataError(f"this run folder is damaged: {path} ({what}); restore the file from a copy "
                     "or train the run again")


def _is(kinds: tuple[type, ...], v: Any) -> bool:
    return v is None or (isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool)))


_NAME = ((str,), "a name")
_INT = ((int,), "a whole number")
_NUM = ((int, float), "a number")
_BOOL = ((bool,), "true or false")
_OBJECT = ((dict,), "an object")
_SIZE = ((list, int), "[height, width]")
# The fields the readers use, and their JSON types (null is allowed for each): anything else in
# them is damage, reported before it could surface as a TypeError somewhere downstream.
_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "config.json": {"model": _NAME, "dataset": _NAME, "data_root": _NAME, "image_size": _INT,
                    "resize": _SIZE, "normalize": _BOOL, "amp": _NAME, "device": _NAME,
                    "epochs": _INT, "batch_size": _INT, "lr": _NUM, "seed": _INT,
                    "train_samples": _INT, "monitor": _NAME, "dry_run": _BOOL,
                    "limit_batches": _INT, "environment": _OBJECT},
    "result.json": {"model": _NAME, "dataset": _NAME, "test_acc": _NUM, "test_loss": _NUM,
                    "test_images": _INT, "seconds": _NUM, "epochs_completed": _INT,
                    "stopped_early": _BOOL, "images_per_second": _NUM, "final": _OBJECT,
                    "best": _OBJECT, "dry_run": _BOOL},
}


# The numbers of a metrics.jsonl / steps.jsonl row (null allowed).
_ROW_NUMBERS = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "val_images",
                "lr", "seconds", "train_seconds", "images_per_second", "threads")


def _check_fields(path: Path, obj: dict[str, Any]) -> None:
    for key, (kinds, words) in _FIELDS.get(path.name, {}).items():
        v = obj.get(key)
        ok = _is(kinds, v) and not (key == "resize" and isinstance(v, list) and (
            len(v) != 2 or not all(_is((int,), a) and a is not None for a in v)))
        if not ok:
            raise damaged(path, f"{key} is {json.dumps(v)[:40]}, not {words}")


def _kind(obj: Any) -> str:
    return {list: "a list", str: "a string", bool: "true or false", type(None): "null"}.get(
        type(obj), "a number")


def read_run_json(path: str | Path) -> dict[str, Any]:
    """A JSON file of a run folder (config.json, result.json, ...) as a dict. A missing file is
    a DataError asking whether this is a run folder; bad JSON, a value that is not an object, or
    a field of the wrong type is the `damaged` error naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; is {path.parent} a cnnlab run folder?") from None
    except UnicodeDecodeError:
        raise damaged(path, "not UTF-8 text") from None
    except OSError as e:
        raise damaged(path, e.strerror or str(e)) from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise damaged(path, f"not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise damaged(path, f"{_kind(obj)} where a JSON object belongs")
    _check_fields(path, obj)
    return obj


def read_run_lines(path: str | Path, *, skip_torn: bool = False) -> tuple[list[dict[str, Any]],
                                                                          int]:
    """A JSON-lines file of a run folder (metrics.jsonl, steps.jsonl): (rows, lines skipped);
    ([], 0) when it does not exist. Each line: an object, its metrics numbers (or null). With
    skip_torn, a bad last line (what a crash or a half-finished copy leaves) is skipped and
    counted; any other bad line is the `damaged` error naming the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return [], 0
    except UnicodeDecodeError:
        raise damaged(path, "not UTF-8 text") from None
    except OSError as e:
        raise damaged(path, e.strerror or str(e)) from None
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    rows: list[dict[str, Any]] = []
    for i, line in numbered:
        try:
            row = json.loads(line)
            what = ("" if isinstance(row, dict) and all(_is((int, float), row.get(k))
                                                        for k in _ROW_NUMBERS)
                    else f"line {i} is not an object of numbers")
        except ValueError as e:
            what = f"line {i} is not valid JSON: {e}"
        if what:
            if skip_torn and i == numbered[-1][0]:
                return rows, 1
            raise damaged(path, what)
        rows.append(row)
    return rows, 0
