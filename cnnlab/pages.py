"""HTML building blocks shared by the pages cnnlab writes from runs (report, inspect, compare).

One stylesheet and a few helpers, so every page looks the same and stays self-contained: images are
embedded as base64 `data:` URIs, so a page opens from disk in any browser with no server and no
network.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CSS", "esc", "figure", "fmt", "img_tag", "page", "picture_tag", "png", "table"]

CSS = """
:root { --ink:#1d2430; --muted:#6b7480; --line:#e3e7ee; --accent:#2f6fde; --bad:#d64545;
        --good:#2e9d5b; --card:#fff; --bg:#f4f6fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:linear-gradient(120deg,#1f3b73,#2f6fde); color:#fff;
         padding:28px max(32px, calc((100% - 1180px) / 2 + 32px)) 24px; }  /* aligned with main */
header h1 { margin:0 0 4px; font-size:26px; font-weight:600; }
header p { margin:0; opacity:.85; }
main { max-width:1180px; margin:0 auto; padding:24px 32px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
          padding:18px 22px; margin:0 0 20px; }
h2 { font-size:17px; margin:0 0 12px; font-weight:600; }
.stats { display:flex; flex-wrap:wrap; gap:12px; margin:-44px 0 20px; }
.stats.small { margin:0 0 12px; }
.stat { background:var(--card); border:1px solid var(--line); border-radius:10px;
        padding:12px 18px; min-width:150px; box-shadow:0 1px 3px rgba(0,0,0,.05); }
.stat b { display:block; font-size:22px; font-weight:600; }
.stat span { color:var(--muted); font-size:12.5px; text-transform:uppercase; letter-spacing:.04em; }
.stat.hero b { font-size:34px; color:var(--accent); }
.grid2 { display:grid; grid-template-columns: minmax(0,1.15fr) minmax(0,1fr); gap:20px; }
.grid2 > section { margin:0 0 20px; }
img { max-width:100%; height:auto; display:block; margin:0 auto; }
table { border-collapse:collapse; width:100%; font-size:13.5px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12.5px; text-transform:uppercase; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
table.nowrap { font-size:12.5px; }  /* many columns: one line per cell, the table scrolls */
table.nowrap td, table.nowrap th { white-space:nowrap; padding:5px 6px; }
.bar { background:#e9eef8; border-radius:4px; height:10px; width:100%; min-width:80px; }
.bar i { display:block; height:10px; border-radius:4px; background:var(--good); }
.bar i.low { background:var(--bad); }
.muted { color:var(--muted); }
.note { background:#fff7e0; border-left:4px solid #e0a800; padding:8px 12px; border-radius:4px; }
.scroll { overflow-x:auto; }
pre { font-size:12px; overflow-x:auto; background:#f7f8fb; padding:10px; border-radius:6px; }
details summary { cursor:pointer; color:var(--accent); }
footer { color:var(--muted); font-size:12.5px; text-align:center; margin-top:8px; }
h3 { font-size:15px; margin:20px 0 8px; font-weight:600; }
.bad { color:var(--bad); }
figure { margin:0; }
figure img { margin:0; }
figcaption { font-size:13.5px; line-height:1.35; margin-top:5px; overflow-wrap:anywhere; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(230px, 1fr)); gap:16px 14px; }
.cards.small { grid-template-columns:repeat(auto-fill, minmax(104px, 1fr)); gap:12px 10px; }
.cards img { width:100%; }
.tiles { display:flex; flex-wrap:wrap; gap:6px; margin-bottom:6px; }
.tiles img { margin:0; width:auto; height:40px; image-rendering:pixelated;
             outline:1px solid var(--line); }
.fmaps figure { margin:0 0 16px; }
.fmaps img { width:100%; max-width:440px; }
.fmaps figure.thumb img { width:112px; }
.pair { display:grid; grid-template-columns:repeat(auto-fit, minmax(300px, 1fr)); gap:0 28px; }
figure.wide img { max-width:100%; }
img.zoom { max-width:100%; }
@media (max-width: 640px) { img.zoom { max-width:none; width:560px; } }
@media (max-width: 860px) { .grid2 { grid-template-columns: minmax(0, 1fr); } main { padding:16px; }
                             header { padding:20px 16px 56px; } }
/* Columns by priority (pages.table's col_cls): p3 goes first as the screen narrows, then p2, so
   the columns that matter (a run's name and its accuracy) fit a phone without scrolling. */
.narrow-only { display:none; }
@media (max-width: 1000px) { .p3 { display:none; } .narrow-only { display:block; } }
@media (max-width: 560px) { .p2 { display:none; } }
"""


def img_tag(png: Path | bytes, alt: str, cls: str = "") -> str:
    """An <img> with the PNG (a file, or its bytes) embedded as a data: URI."""
    raw = png if isinstance(png, bytes) else Path(png).read_bytes()
    data = base64.b64encode(raw).decode("ascii")
    klass = f' class="{html.escape(cls)}"' if cls else ""
    return f'<img{klass} src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def picture_tag(wide: Path | bytes, narrow: bytes, alt: str) -> str:
    """A picture drawn twice: `narrow` (a stacked layout) on screens up to 640 px, else `wide`."""
    data = base64.b64encode(narrow).decode("ascii")
    return (f'<picture><source media="(max-width: 640px)" srcset="data:image/png;base64,{data}">'
            f"{img_tag(wide, alt)}</picture>")


def png(rgb: np.ndarray, min_width: int = 240, max_scale: int = 8) -> bytes:
    """An (H, W) or (H, W, 3) float image in [0, 1] as PNG bytes, enlarged by whole pixels.

    Enlarging here (nearest neighbour, up to `min_width` px) keeps a 28x28 image crisp in every
    browser and viewer, where CSS scaling would blur it; the PNG stays small.
    """
    from PIL import Image  # matplotlib, a dependency, requires Pillow

    a = np.clip(np.nan_to_num(np.asarray(rgb, dtype=np.float32), nan=1.0), 0, 1)
    k = int(max(1, min(max_scale, math.ceil(min_width / a.shape[1]))))
    a = np.repeat(np.repeat(a, k, axis=0), k, axis=1)
    buf = io.BytesIO()
    Image.fromarray((a * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def figure(png_data: bytes, alt: str, caption: str, cls: str = "") -> str:
    """A <figure> holding an embedded PNG and an (already escaped) HTML caption: the caption
    stays legible at any screen width, unlike text drawn into the picture."""
    klass = f' class="{html.escape(cls)}"' if cls else ""
    return f"<figure{klass}>{img_tag(png_data, alt)}<figcaption>{caption}</figcaption></figure>"


def table(rows: list[tuple[Any, ...]], head: tuple[str, ...] | None = None, cls: str = "",
          col_cls: tuple[str, ...] | None = None) -> str:
    """A <table> of already-escaped cells, with an optional escaped header row.

    col_cls: a class per column, set on its <th> and <td>s (e.g. "p3": hidden on a phone).
    """
    attrs = [f' class="{c}"' if c else "" for c in col_cls] if col_cls else None

    def attr(i: int) -> str:
        return attrs[i] if attrs and i < len(attrs) else ""

    out = [f'<table class="{cls}">' if cls else "<table>"]
    if head:
        out.append("<thead><tr>" + "".join(f"<th{attr(i)}>{html.escape(h)}</th>"
                                           for i, h in enumerate(head)) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td{attr(i)}>{c}</td>" for i, c in enumerate(row))
                   + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def fmt(v: Any) -> str:
    """A config or result value as short text: floats to 4 significant digits, lists joined."""
    if isinstance(v, bool):  # a fact ("stopped early: no"), in words, not Python's False
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return "" if v is None else str(v)


def esc(v: Any) -> str:
    """fmt(v), HTML-escaped."""
    return html.escape(fmt(v))


def page(title: str, body: str) -> str:
    """A whole HTML document: the shared stylesheet, a phone-width viewport, then `body`."""
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style>"
            "</head><body>" + body + "</body></html>\n")
