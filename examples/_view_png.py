"""Picture a live view as a notebook shows it: docs/liveview.png from a notebook's outputs.

    python examples/_view_png.py                      # ch07's train() cell -> docs/liveview.png
    python examples/_view_png.py --notebook examples/ch08_modern_cnns.ipynb --match sweep( \\
        --out docs/sweepview.png --width 900

It reads the outputs that a real kernel left in the committed notebook (`_build.py --execute`),
takes the first code cell whose source contains --match and shows a cnnlab live view, lays out
its source and its outputs (the view's HTML, its PNGs, the printed lines) as a Jupyter cell
does, and takes a screenshot of that page with headless Chromium (`chromium` on PATH, or
$CHROMIUM). Nothing is drawn that the kernel did not output.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
STYLE = """
body { font: 14px -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px; color: #212121; }
.cell { border-left: 3px solid #42a5f5; padding: 6px 10px; }
.src { background: #f5f5f5; border: 1px solid #e0e0e0; padding: 8px; white-space: pre-wrap;
       font: 13px Menlo, Consolas, monospace; margin: 0 0 8px; }
.out { margin: 6px 0; } .out pre { margin: 0; font: 13px Menlo, Consolas, monospace; }
.out img { max-width: 100%; }
table { border-collapse: collapse; font: 13px Menlo, Consolas, monospace; }
th, td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
"""


def cell_page(cell: nbformat.NotebookNode) -> str:
    """One code cell with its outputs as an HTML page (the view's own HTML kept as it is)."""
    parts = [f'<pre class="src">{html.escape(cell.source)}</pre>']
    for out in cell.outputs:
        data = out.get("data", {})
        if out.output_type == "stream":
            parts.append(f'<div class="out"><pre>{html.escape(out.text)}</pre></div>')
        elif "text/html" in data:
            parts.append(f'<div class="out">{data["text/html"]}</div>')
        elif "image/png" in data:
            png = data["image/png"].replace("\n", "")
            parts.append(f'<div class="out"><img src="data:image/png;base64,{png}"></div>')
        elif "text/plain" in data:
            parts.append(f'<div class="out"><pre>{html.escape(data["text/plain"])}</pre></div>')
    return (f"<!doctype html><meta charset=utf-8><style>{STYLE}</style>"
            f'<div class="cell">{"".join(parts)}</div>')


def find_cell(nb: nbformat.NotebookNode, match: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code" and match in cell.source and any(
                "cnnlab-live" in o.get("data", {}).get("text/html", "") for o in cell.outputs):
            return cell
    raise SystemExit(f"no cell containing {match!r} shows a cnnlab live view; run "
                     "`python examples/_build.py --execute` first")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--notebook", type=Path, default=ROOT / "examples" / "ch07_convolutions.ipynb")
    p.add_argument("--match", default="train(")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "liveview.png")
    p.add_argument("--width", type=int, default=760)
    p.add_argument("--height", type=int, default=1012)  # the first run's view and curves
    args = p.parse_args()
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not browser:
        raise SystemExit("no chromium on PATH (apt install chromium), or set $CHROMIUM")
    cell = find_cell(nbformat.read(args.notebook, as_version=4), args.match)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "cell.html"
        page.write_text(cell_page(cell), encoding="utf-8")
        shot = Path(tmp) / "shot.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--no-first-run", f"--user-data-dir={tmp}/profile",
                        f"--window-size={args.width},{args.height}", f"--screenshot={shot}",
                        page.as_uri()], check=True, capture_output=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, args.out)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
