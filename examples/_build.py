"""Build the companion notebooks (.ipynb) from their readable sources (.py with `# %%` cells).

    python examples/_build.py              # regenerate every .ipynb; unchanged cells keep outputs
    python examples/_build.py --execute    # and run them fully in a Jupyter kernel (the outputs
                                           # the repository carries); CNNLAB_QUICK=1 for a quick run
    python examples/_build.py --check      # exit 1 when an .ipynb does not match its source

A source is a Python file split into cells by `# %%` lines; `# %% [markdown]` starts a markdown
cell whose lines are comments (`# ` is stripped). The notebooks run with `examples/` as their
working folder, so their run folders land in `examples/runs/` (ignored by git).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def sources() -> list[Path]:
    """Every notebook source in examples/, in name order."""
    return sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))


def cells(source: str) -> list[tuple[str, str]]:
    """(kind, text) of each cell of a `# %%` source; kind is "code" or "markdown"."""
    out: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            out.append(("markdown" if "[markdown]" in line else "code", []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise ValueError("a notebook source starts with a '# %%' line")
    result = []
    for kind, lines in out:
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        result.append((kind, "\n".join(lines).strip("\n")))
    return result


def build(path: Path, old: nbformat.NotebookNode | None = None) -> nbformat.NotebookNode:
    """The notebook of source `path`; a code cell whose text is unchanged from `old`'s cell at the
    same place keeps its outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    previous = old.cells if old is not None else []
    for i, (kind, text) in enumerate(cells(path.read_text(encoding="utf-8"))):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
            if i < len(previous) and previous[i].cell_type == "code" and previous[i].source == text:
                cell.outputs = previous[i].outputs
                cell.execution_count = previous[i].execution_count
        cell.id = f"{path.stem[:4]}-{i:02d}"  # stable ids: rebuilding changes nothing
        nb.cells.append(cell)
    return nb


def notebook_path(source: Path) -> Path:
    """examples/NAME.py -> examples/NAME.ipynb."""
    return source.with_suffix(".ipynb")


def _read(path: Path) -> nbformat.NotebookNode | None:
    return nbformat.read(path, as_version=4) if path.exists() else None


def _same_sources(a: nbformat.NotebookNode, b: nbformat.NotebookNode) -> bool:
    return [(c.cell_type, c.source) for c in a.cells] == [(c.cell_type, c.source) for c in b.cells]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--execute", action="store_true", help="run each notebook in a kernel")
    p.add_argument("--check", action="store_true", help="only check the .ipynb files are current")
    p.add_argument("names", nargs="*", help="sources to build (default: all)")
    args = p.parse_args(argv)
    todo = [s for s in sources() if not args.names or s.stem in args.names or s.name in args.names]
    stale = []
    for src in todo:
        target = notebook_path(src)
        old = _read(target)
        nb = build(src, old)
        if args.check:
            if old is None or not _same_sources(old, nb):
                stale.append(target.name)
            continue
        if args.execute:
            sys.path.insert(0, str(HERE.parent))
            from tests._notebook import execute  # the tests' kernel: this interpreter

            execute(nb, HERE, timeout=3600)
        nbformat.write(nb, target)
        print(f"wrote {target.relative_to(HERE.parent)}")
    if stale:
        print("out of date (run python examples/_build.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
