"""Running notebooks in a real Jupyter kernel for the tests (nbclient), shared by every test file.

`kernel_name()` installs, once per test session, a kernelspec whose kernel is this very
interpreter (`sys.executable`), in a temporary folder put first on JUPYTER_PATH: a notebook then
runs against the cnnlab the tests import (PYTHONPATH and CNNLAB_DATA are inherited), whatever
kernels the machine has. `execute(nb)` runs a notebook in such a kernel and returns it with its
outputs; `outputs(nb)` and `text(nb)` read them back, `updates(cell)` says how many times a cell's
displays were drawn again in place and `drawn(cell)` what each of those draws said.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is a dev extra (pip install -e .[dev])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a dev extra (pip install -e .[dev])")
pytest.importorskip("ipykernel", reason="ipykernel is a dev extra (pip install -e .[dev])")

KERNEL = "cnnlab-tests"
_installed: Path | None = None


def kernel_name() -> str:
    """The name of a kernelspec that runs sys.executable (installed on first use)."""
    global _installed
    if _installed is None:
        from ipykernel.kernelspec import write_kernel_spec

        root = Path(tempfile.mkdtemp(prefix="cnnlab-jupyter-"))
        atexit.register(shutil.rmtree, root, True)
        spec = Path(write_kernel_spec(overrides={"display_name": "cnnlab tests"}))
        shutil.move(str(spec), root / "kernels" / KERNEL)  # argv[0] is sys.executable
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("JUPYTER_PATH")])])
        _installed = root
    return KERNEL


class _Client(nbclient.NotebookClient):
    """nbclient's client that also counts, per cell, the outputs drawn again in place
    (update_display_data messages) and keeps their text/plain: read them back with
    `updates(cell)` and `drawn(cell)`."""

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        if msg.get("msg_type") == "update_display_data":
            cell.metadata["display_updates"] = cell.metadata.get("display_updates", 0) + 1
            cell.metadata.setdefault("display_texts", []).append(
                msg["content"]["data"].get("text/plain", ""))
        return super().process_message(msg, cell, cell_index)


def updates(cell: Any) -> int:
    """How many times the cell's displays were drawn again in place while it ran."""
    return cell.metadata.get("display_updates", 0)


def drawn(cell: Any) -> list[str]:
    """The text/plain of each in-place draw of the cell's displays, in order."""
    return cell.metadata.get("display_texts", [])


def execute(nb: Any, cwd: str | Path, timeout: int = 300, env: dict[str, str] | None = None) -> Any:
    """Run every cell of `nb` in a fresh kernel started in `cwd`; return nb with its outputs.

    `env` adds variables for the kernel (e.g. CNNLAB_QUICK=1). A cell that raises fails the
    call with nbclient's CellExecutionError, which shows the cell and its traceback.
    """
    name = kernel_name()
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})  # the kernel is a child process: it inherits os.environ
    try:
        client = _Client(nb, timeout=timeout, kernel_name=name,
                         resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def outputs(nb: Any, output_type: str | None = None) -> list[dict]:
    """Every output of every code cell, in order (only those of `output_type` when given)."""
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if output_type is None or o.output_type == output_type]


def text(nb: Any) -> str:
    """All printed text of a notebook: streams and text/plain results, in order.

    Stream pieces are joined as they are: the kernel flushes stdout on a timer, so one printed
    line can arrive as two outputs (a busy machine splits "...: True" into "...:" and " True").
    """
    parts = []
    for o in outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"] + "\n")
    return "".join(parts)


def images(nb: Any) -> int:
    """How many PNG images a notebook's outputs hold."""
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))
