"""The progress display: the bar fits the terminal, plain lines stay plain."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnnlab.progress import Progress, bar_line, format_duration, plural

STATS = {"train_loss": 0.51234, "train_acc": 0.8123, "images_per_second": 12345.6,
         "val_loss": 0.55, "val_acc": 0.8012}


@pytest.mark.parametrize("width", [200, 120, 100, 80, 60, 40, 30])
def test_bar_line_fits_and_keeps_eta_and_val_acc(width):
    line = bar_line(3, 10, 211, 469, 5.2, 6.4, STATS, width)
    assert len(line) <= width - 1
    assert "00:06" in line  # the ETA
    assert "0.8012" in line  # the validation accuracy


def test_bar_line_drops_the_least_important_fields_first():
    wide = bar_line(3, 10, 211, 469, 5.2, 6.4, STATS, 120)
    for part in ("epoch  3/10", "45%", "211/469", "00:05<00:06", "loss 0.5123", "acc 0.8123",
                 "val_acc 0.8012", "val_loss 0.5500", "12,346 img/s"):
        assert part in wide, part
    narrow = bar_line(3, 10, 211, 469, 5.2, 6.4, STATS, 80)
    assert "val_loss" not in narrow and "211/469" not in narrow  # dropped first
    assert "eta 00:06" in narrow and "loss 0.5123" in narrow and "|" in narrow  # kept


def test_plural():
    assert [plural(1, "epoch"), plural(3, "epoch"), plural(1, "batch"), plural(2, "batch"),
            plural(60000, "train sample"), plural(0, "step")] == [
        "1 epoch", "3 epochs", "1 batch", "2 batches", "60,000 train samples", "0 steps"]


def test_format_duration():
    assert [format_duration(s) for s in (0, 7.4, 754, 3723, None)] == [
        "00:00", "00:07", "12:34", "1:02:03", "?"]


def test_bar_mode_redraws_one_line_and_ends_it():
    class Tty(io.StringIO):
        encoding = "utf-8"

        def isatty(self):
            return True

    out = Tty()
    p = Progress("auto", 2, out)
    p.start_epoch(1, 10)
    p.update(5, {"train_loss": 1.0, "train_acc": 0.5, "images_per_second": 100.0})
    p.message("a note")
    p.end_epoch({"epoch": 1, "train_loss": 0.9, "train_acc": 0.6, "val_acc": 0.7,
                 "val_loss": 0.8, "images_per_second": 120.0})
    p.start_epoch(2, 10)
    p.close()
    lines = [seg.split("\r")[-1].replace("\x1b[K", "") for seg in out.getvalue().split("\n")]
    assert lines[0] == "a note"
    assert lines[1].startswith("epoch 1/2 100%") and "val_acc 0.7000" in lines[1]
    assert "val_acc 0.7000" in lines[2]  # the last validation stays on the next epoch's bar


def _screen_lines(raw: bytes) -> list[str]:
    """What a terminal shows: each line's text after its last carriage return."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\x1b[K", "")
    return [seg.split("\r")[-1] for seg in text.split("\n")]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_training_bar_in_a_real_terminal():
    """A real (tiny) training under an 80-column pseudo-terminal: every state of the bar fits,
    and each epoch's final line shows the validation accuracy and the ETA."""
    import fcntl
    import pty
    import termios

    script = textwrap.dedent("""
        import torch
        from _trainkit import TinyNet, make_dataset
        from cnnlab.train import TrainConfig, train
        torch.manual_seed(0)
        train(TinyNet(), make_dataset(192, 64), TrainConfig(epochs=2, batch_size=32, log_every=2,
              progress="auto", plot=False, tensorboard=False, threads=1, device="cpu"))
    """)
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")])}
    env.pop("COLUMNS", None)
    columns = 80
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    raw = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, raw.decode("utf-8", "replace")[-2000:]
    lines = _screen_lines(raw)
    bars = [ln for ln in lines if ln.startswith("epoch ")]
    assert [b.split()[1] for b in bars] == ["1/2", "2/2"], lines
    # every state the bar was drawn in, not only the last one, fits the terminal
    drawn = [s.replace("\x1b[K", "") for s in raw.decode("utf-8", "replace").split("\r")]
    assert max(len(s.strip("\n")) for s in drawn if s.startswith("epoch")) < columns
    final = bars[-1]
    assert "100%" in final and "val_acc 0." in final and "00:00" in final.split("val_acc")[0]


class _Clock:
    """A stand-in for time.perf_counter that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_plain_mode_reports_inside_a_long_epoch_and_forecasts_the_run(monkeypatch):
    import cnnlab.progress as progress

    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    out = io.StringIO()  # not a terminal: plain mode
    p = Progress("auto", 10, out)
    p.long_run_hint = "try a GPU"
    p.start_epoch(1, 400)
    stats = {"train_loss": 2.3, "train_acc": 0.1, "images_per_second": 32.0}
    clock.now += 5.0
    p.update(1, stats)  # 5 s of steps: too early to forecast or report
    assert out.getvalue() == ""
    clock.now += 195.0
    p.update(50, stats)  # 4 s a step: 350 + 9 x 400 steps left = 4 h 23 min
    lines = out.getvalue().splitlines()
    assert lines[0] == ("forecast: about 4 h 23 min of training to the end of epoch 10 at 32 "
                        "images/s; validation comes on top. try a GPU")
    assert lines[1] == ("epoch  1/10  step 50/400  12%  train_loss 2.3000  train_acc 0.1000  "
                        "32 img/s  epoch eta 23:20")
    clock.now += 200.0
    p.update(100, stats)  # 200 s after the last line: quiet until 5 minutes have passed
    assert len(out.getvalue().splitlines()) == 2
    clock.now += 100.0
    p.update(125, stats)
    assert out.getvalue().splitlines()[-1].startswith("epoch  1/10  step 125/400  31%")
    assert out.getvalue().count("forecast") == 1  # said once per run


def test_short_runs_get_no_forecast_and_no_mid_epoch_lines(monkeypatch):
    import cnnlab.progress as progress

    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    out = io.StringIO()
    p = Progress("plain", 3, out)
    p.start_epoch(1, 469)
    for done in range(50, 469, 50):
        clock.now += 2.0  # 18 s an epoch, under a minute for the run
        p.update(done, {"train_loss": 1.0})
    p.end_epoch({"epoch": 1, "train_loss": 0.9})
    assert out.getvalue().splitlines() == ["epoch 1/3  train_loss 0.9000"]
    none = io.StringIO()
    q = Progress("none", 3, none)
    q.start_epoch(1, 10)
    q.update(5, {})
    assert none.getvalue() == ""
