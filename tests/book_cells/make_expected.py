"""Regenerate expected/*.txt: what the book's own d2l 1.0.3 prints for each summary cell file.

Run with the reference venv's Python (never cnnlab's), from anywhere:
    /work/refvenv/.d2l-venv/bin/python tests/book_cells/make_expected.py
Each cell file is run with its `from cnnlab import d2l` line swapped back to the book's
`from d2l import torch as d2l`; tests/test_d2l.py checks the drop-in prints the same lines.
"""
import contextlib
import io
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CELLS = ["ch07_2_conv_layer", "ch07_3_padding", "ch07_4_channels", "ch07_5_pooling",
         "ch07_6_lenet", "ch08_1_alexnet", "ch08_2_vgg", "ch08_3_nin", "ch08_4_googlenet",
         "ch08_6_resnet", "ch08_7_densenet"]

for name in sys.argv[1:] or CELLS:
    src = (HERE / f"{name}.py").read_text()
    src = src.replace("from cnnlab import d2l", "from d2l import torch as d2l")
    torch.manual_seed(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(src, f"{name}.py", "exec"), {"__name__": "__book__"})
    (HERE / "expected" / f"{name}.txt").write_text(out.getvalue())
    print(name, len(out.getvalue().splitlines()), "lines")
