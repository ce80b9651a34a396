"""The learning-rate range test: lr_find, `cnnlab lr-find` and `cnnlab train --lr find`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _trainkit import NaNAfter, TinyNet, make_dataset, write_idx_dataset
from matplotlib.figure import Figure

from cnnlab.cli import main
from cnnlab.errors import ConfigError, TrainingError
from cnnlab.lrfind import MAX_STEPS, _read_end, lr_find, suggest_lr
from cnnlab.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
QUICK = TrainConfig(batch_size=32, threads=1, progress="none", normalize=True)


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic fashion-mnist (400 + 100 images)."""
    return write_idx_dataset(tmp_path_factory.mktemp("idx") / "fashion-mnist").parent


def _counted(net: torch.nn.Module) -> list[int]:
    """Count the training forwards of net (and of any copy: the hook travels with it)."""
    calls = [0]

    def hook(module: torch.nn.Module, inputs: object, output: object) -> None:
        calls[0] += module.training

    net.register_forward_hook(hook)
    return calls


def test_the_range_test_ramps_stops_and_leaves_the_weights_alone() -> None:
    torch.manual_seed(0)
    net = TinyNet(dropout=0.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls = _counted(net)
    found = lr_find(net, make_dataset(), QUICK, steps=100)
    # at most `steps` training steps, one forward each, and nothing else trained
    assert calls[0] == found.steps == len(found.losses) <= 100
    assert found.stopped == "diverged" and found.steps < 100  # TinyNet blows up before lr=10
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    ratios = [b / a for a, b in zip(found.lrs, found.lrs[1:])]
    assert found.lrs[0] == pytest.approx(1e-7)
    assert max(ratios) == pytest.approx(min(ratios)) == pytest.approx((1e8) ** (1 / 99))
    # the suggestion lies on the falling part of the curve, before the smoothed minimum
    finite = [s for s in found.smoothed if s is not None]
    low = found.lrs[finite.index(min(finite))]
    assert found.rule == "steepest" and found.lrs[5] < found.suggestion <= low
    assert found.smoothed[-1] is None or found.smoothed[-1] > 4 * min(finite)
    fig = found.figure
    assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "log"
    marked = [ln for ln in fig.axes[0].lines if list(ln.get_xdata()) == [found.suggestion] * 2]
    assert marked and "steepest descent" in marked[0].get_label()
    record = found.to_dict()
    assert json.loads(json.dumps(record))["suggestion"] == found.suggestion


def test_the_cost_is_bounded_by_the_steps() -> None:
    torch.manual_seed(0)
    net = TinyNet(dropout=0.0)
    calls = _counted(net)
    # a ramp that never diverges runs to its end: exactly `steps` training steps, no more
    with pytest.raises(TrainingError, match=r"never fell over 30 steps from lr=1e-06 to 0.001"):
        lr_find(net, make_dataset(), QUICK, start_lr=1e-6, end_lr=1e-3, steps=30)
    assert calls[0] == 30
    with pytest.raises(ConfigError, match=f"takes 13 to {MAX_STEPS} steps"):
        lr_find(net, make_dataset(), QUICK, steps=MAX_STEPS + 1)
    assert calls[0] == 30  # refused before any step


def test_bad_curves_and_settings_are_one_library_error() -> None:
    threads = torch.get_num_threads()
    assert threads > 1 or os.cpu_count() == 1  # else QUICK's threads=1 would change nothing
    with pytest.raises(TrainingError, match="the loss is nan at the first step"):
        lr_find(NaNAfter(TinyNet(), 1), make_dataset(), QUICK)
    for kw in ({"start_lr": 1.0, "end_lr": 0.1}, {"start_lr": 0.0}, {"diverge": 1.0},
               {"rule": "valley"}):
        with pytest.raises(ConfigError):
            lr_find(TinyNet(), make_dataset(), QUICK, **kw)
    # the engine's process-wide settings are back after a test that failed part-way
    assert torch.get_num_threads() == threads


def test_the_rules_read_the_curve() -> None:
    lrs = [10 ** (-6 + i / 10) for i in range(60)]
    # flat, then falling fastest at index 30, a minimum at index 45, then climbing
    curve = [2.0 - 1.5 / (1 + math.exp(-(i - 30) / 2)) if i <= 45 else 0.5 + 0.2 * (i - 45)
             for i in range(60)]
    lr, rule, text = suggest_lr(lrs, curve, "steepest")
    assert (rule, lr) == ("steepest", pytest.approx(lrs[30])) and "steepest" in text
    lr, rule, _ = suggest_lr(lrs, curve, "min/10")
    assert (rule, lr) == ("min/10", pytest.approx(lrs[45] / 10))
    # a minimum too early for a descent to read: min/10, and the words say why
    lr, rule, text = suggest_lr(lrs, [1.0] * 3 + [0.5] + [5.0] * 56, "steepest")
    assert (rule, lr) == ("min/10", pytest.approx(lrs[3] / 10)) and "too early" in text
    # a ramp that ended without diverging: read when it turned up, refused while still falling
    assert _read_end(lrs, curve, 4.0) == "turned"
    with pytest.raises(TrainingError, match="never diverged .* not rising"):
        _read_end(lrs[:46], curve[:46], 4.0)


def test_lr_find_command_in_a_real_process(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "curve.png"
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "lr-find", "bn_lenet", "--data-root", str(data_root),
         "--train-samples", "3000", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.with_suffix(".json").read_text())
    lines = proc.stdout.splitlines()
    assert lines[0] == f"suggested lr: {record['suggestion']:.3g}"
    assert lines[1] == "rule: steepest descent of the smoothed loss"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["steps"] == len(record["lrs"]) <= 100
    assert record["stopped"] in ("diverged", "turned")
    assert 0.01 < record["suggestion"] < 3  # BN-LeNet with plain SGD: the book trains at 0.1


@pytest.mark.parametrize(("argv", "message"), [
    (["--end-lr", "1e-6", "--start-lr", "1e-7"], "the smoothed loss never fell"),
    (["--steps", "500"], "takes 13 to 200 steps"),
    (["--lr", "find"], "lr-find sweeps the learning rate itself"),
])
def test_lr_find_refusals_are_one_line(argv: list[str], message: str, idx_root: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["lr-find", "lenet_modern", "--data-root", str(idx_root), "--threads", "1",
               "--out", str(tmp_path / "x.png"), *argv])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "") and err.startswith("cnnlab: error: ") and err.count("\n") == 1
    assert message in err and not list(tmp_path.iterdir())


def test_lr_foo_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "lenet", "--lr", "foo"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.splitlines()[-1] == ("cnnlab train: error: argument --lr: 'foo' is not a learning "
                                    "rate (a number such as 0.05) or 'find'")


def test_train_lr_find_records_the_value_and_starts_fresh(
        data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quick = ["--data-root", str(data_root), "--epochs", "1", "--train-samples", "3000",
             "--test-samples", "300", "--threads", "1", "--progress", "none",
             "--no-tensorboard", "--limit-batches", "4"]
    found = tmp_path / "found"
    assert main(["train", "bn_lenet", *quick, "--lr", "find", "--out", str(found)]) == 0
    err = capsys.readouterr().err
    config = json.loads((found / "config.json").read_text())
    curve = json.loads((found / "lr-find.json").read_text())
    assert config["lr"] == curve["suggestion"] == config["lr_find"]["lr"]
    assert config["lr_find"]["rule"] == "steepest descent of the smoothed loss"
    assert f"cnnlab: lr-find: lr {config['lr']:.3g} (steepest descent" in err
    assert (found / "lr-find.png").read_bytes()[:4] == b"\x89PNG"
    page = (found / "report.html").read_text()
    assert "<h2>Learning rate</h2>" in page and "range test" in page
    # the real run is the run one gets by giving that lr: a fresh init from its seed
    given = tmp_path / "given"
    assert main(["train", "bn_lenet", *quick, "--lr", repr(config["lr"]), "--out",
                 str(given), "--no-report"]) == 0
    rows = [json.loads((d / "metrics.jsonl").read_text().splitlines()[0]) for d in (found, given)]
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    assert [rows[0][k] for k in keys] == [rows[1][k] for k in keys]
    assert "lr_find" not in json.loads((given / "config.json").read_text())
    # a resumed run keeps the record
    capsys.readouterr()
    assert main(["train", "--resume", str(found), "--epochs", "2", "--no-report"]) == 0
    assert json.loads((found / "config.json").read_text())["lr_find"] == config["lr_find"]


def test_the_test_split_is_never_used() -> None:
    """Selection never sees the test split: labels no loss could take stay unread."""
    ds = make_dataset()
    ds.test.labels[:] = 57  # out of range for 10 classes: any use would raise
    torch.manual_seed(0)
    assert lr_find(TinyNet(dropout=0.0), ds, QUICK).stopped in ("diverged", "turned")
    with pytest.raises(Exception, match="57|out of bounds|Target"):  # that label really breaks
        torch.nn.functional.cross_entropy(torch.zeros(1, 10), ds.test.labels[:1])
