"""The companion notebooks in examples/: current with their sources, and run in a real kernel.

Each notebook runs in quick mode (CNNLAB_QUICK=1: small subsets, few batches) in a Jupyter
kernel of this interpreter (tests/_notebook.py), in a scratch folder, and its outputs are read
back: every exercise prints a result the test checks, and the figures are there.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import time
from pathlib import Path

import pytest

from tests import _notebook

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _builder():
    spec = importlib.util.spec_from_file_location("examples_build", EXAMPLES / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_build = _builder()


def _run(name: str, tmp_path: Path):
    """Build examples/NAME.py and run it quickly in a kernel started in tmp_path."""
    nb = _build.build(EXAMPLES / f"{name}.py")
    t0 = time.perf_counter()
    _notebook.execute(nb, tmp_path, timeout=240, env={"CNNLAB_QUICK": "1"})
    return nb, _notebook.text(nb), time.perf_counter() - t0


def test_every_notebook_is_built_from_its_source():
    names = [s.stem for s in _build.sources()]
    assert {"ch07_convolutions", "ch08_modern_cnns"} <= set(names)
    for src in _build.sources():
        committed = _build.notebook_path(src)
        assert committed.exists(), f"{committed.name} missing: run python examples/_build.py"
        nb = _build.build(src)
        old = _notebook.nbformat.read(committed, as_version=4)
        assert [(c.cell_type, c.source) for c in old.cells] == \
            [(c.cell_type, c.source) for c in nb.cells], f"{committed.name} is stale"
        # The repository carries the outputs of a run: no code cell left unexecuted.
        code = [c for c in old.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{committed.name} carries no outputs"
        assert not any(o.output_type == "error" for c in code for o in c.outputs)


def test_build_splits_cells_and_keeps_outputs_of_unchanged_cells(tmp_path):
    src = tmp_path / "nb.py"
    src.write_text("# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n# %%\nprint(x)\n")
    nb = _build.build(src)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("markdown", "# Title\n\ntext"), ("code", "x = 1"), ("code", "print(x)")]
    nb.cells[2].outputs = [_notebook.nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[2].execution_count = 2
    src.write_text("# %% [markdown]\n# # Title\n\n# %%\nx = 2\n\n# %%\nprint(x)\n")
    again = _build.build(src, nb)
    assert again.cells[2].outputs[0].text == "1\n"  # unchanged source: output kept
    src.write_text("# %%\nprint(3)\n")
    assert not _build.build(src, nb).cells[0].outputs


@pytest.fixture(scope="module")
def data_present():
    from cnnlab.data import load_dataset

    try:
        load_dataset("fashion-mnist")
        load_dataset("mnist")
    except Exception as exc:  # noqa: BLE001 (any reason: the notebooks need both)
        pytest.skip(f"the notebooks train on Fashion-MNIST and MNIST, not found here: {exc}")


def test_chapter7_notebook_runs_and_answers_its_exercises(tmp_path, data_present):
    nb, out, seconds = _run("ch07_convolutions", tmp_path)
    assert "quick mode" in out
    # 7.2: the edge detector and the learned kernel (both the book's loop and cnnlab's demo)
    assert "tensor([[ 0.,  1.,  0.,  0.,  0., -1.,  0.]," in out
    k = re.search(r"learned kernel: \[\[\s*(\S+)\s+(\S+)\]\]", out)
    assert k and abs(float(k[1]) - 1) < 0.1 and abs(float(k[2]) + 1) < 0.1
    # 7.3: the book's four shapes, the exercise by hand and by rule, 500 random checks
    for shape in ("torch.Size([8, 8])", "torch.Size([4, 4])", "torch.Size([2, 2])"):
        assert shape in out
    assert "by hand: (2, 2)" in out and "cnnlab.shapes: (2, 2)" in out
    m = re.search(r"shape rule == torch on (\d+) of (\d+) random convolutions", out)
    assert m and m[1] == m[2] and int(m[2]) > 300
    assert "stride 2: output (4, 4)" in out
    # 7.4 and 7.5: from-scratch operations against torch
    assert "1x1 conv == matrix product: True" in out
    for ex in ("7.5.1", "7.5.3", "7.5.6"):
        assert re.search(ex + r" .*: True", out), ex
    # 7.6: the book's LeNet summary and fit, the modern LeNet on two datasets
    assert "Linear output shape:\t torch.Size([1, 10])" in out
    assert re.search(r"book LeNet: validation accuracy on one batch \d\.\d{3}", out)
    for recipe in ("lenet_modern", "lenet_modern_mnist"):
        acc = re.search(recipe + r": test accuracy (\d\.\d+)", out)
        assert acc and 0.2 < float(acc[1]) <= 1.0, out  # above chance (0.1) after 47 steps
    # 7.6.4: activations for a pullover, a coat and noise, with a similarity per stage
    for name in ("pullover", "coat", "noise"):
        assert f"{name}: " in out
    assert re.search(r"stage 1: correlation of the activations pullover~coat -?\d\.\d\d", out)
    # figures: the edge demo, the d2l board, three feature-map pictures
    assert _notebook.images(nb) >= 5
    assert seconds < 150, f"quick mode took {seconds:.0f} s"


def test_chapter8_notebook_runs_and_answers_its_exercises(tmp_path, data_present):
    nb, out, seconds = _run("ch08_modern_cnns", tmp_path)
    # 8.1: the dense layers hold most of AlexNet's parameters, the convolutions most of its work
    lin = re.search(r"Linear\s+(\d+\.\d)% of the parameters,\s+(\d+\.\d)% of the MACs", out)
    assert lin and float(lin[1]) > 90 and float(lin[2]) < 10
    assert "AlexNet at 224x224: 46,764,746 parameters" in out
    # 8.2: VGG against AlexNet, and VGG-16/19 from their configurations
    assert re.search(r"VGG-11 does 8\.0x the work of AlexNet", out)
    assert "vgg16: arch ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)), 16 weight layers" in out
    assert "vgg19: arch ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)), 19 weight layers" in out
    assert "134.3 M parameters" in out and "139.6 M parameters" in out
    # 8.6: ResNet variants, counted at their book sizes
    assert re.search(r"resnet18\s+\(1, 96, 96\)\s+11,175,370", out)
    assert re.search(r"resnet50\s+\(1, 96, 96\)\s+23,522,250", out)
    assert "ResNeXt-50 against ResNet-50:" in out
    # the comparison: three trained networks in compare's table, a page and the picture
    for name in ("lenet", "bn_lenet", "nin_small"):
        assert re.search(rf"{name}\s+test accuracy \d\.\d{{3}}", out)
    assert (tmp_path / "runs" / "chapter8" / "compare.html").exists()
    assert "test acc" in out.lower()
    # the range test suggests a rate, and exercise 7.6.2's sweep ranks three LeNets on validation
    assert re.search(r"suggested lr \d\S* \(.+\); \d+ steps", out)
    assert re.search(r"LRFind\(suggestion=\d", out)  # the result's repr: one line
    assert re.search(r"trial +\d+ +(done|pruned) +val acc 0\.\d{4}", out)
    assert re.search(r"3 trials, \d pruned; the best: model\.activation=", out)
    assert (tmp_path / "runs" / "sweep-7.6.2" / "sweep.html").exists()
    assert _notebook.images(nb) >= 2  # the trade-offs and the range test
    assert seconds < 120, f"quick mode took {seconds:.0f} s"


def test_a_failing_cell_fails_the_run(tmp_path):
    """The runner really executes: an exception in a cell is an error, not a passing notebook."""
    src = tmp_path / "bad.py"
    src.write_text("# %%\nprint('before')\n\n# %%\nraise ValueError('boom')\n")
    nb = _build.build(src)
    with pytest.raises(_notebook.nbclient.exceptions.CellExecutionError, match="boom"):
        _notebook.execute(nb, tmp_path, timeout=60)
    assert nb.cells[0].outputs[0].text == "before\n"
    shutil.rmtree(tmp_path, ignore_errors=True)
