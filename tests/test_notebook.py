"""cnnlab in a real Jupyter kernel (nbclient): the engine's live view and the drop-in's board stay
in their cells, drawn again in place, whatever the cell prints after them."""

from __future__ import annotations

from pathlib import Path

import pytest
from _notebook import execute, nbformat, updates
from _trainkit import write_idx_dataset

from cnnlab.notebook import LiveView, in_notebook
from cnnlab.progress import Progress, resolve_mode, summary_line

TRAIN = """
import time
from cnnlab.train import TrainConfig, train
t0 = time.perf_counter()
result = train("lenet", "fashion-mnist", TrainConfig(epochs=3, batch_size=16, limit_batches=12,
               log_every=2, threads=1, device="cpu", tensorboard=False, plot=False), out_dir="run")
print(f"after the run: {time.perf_counter() - t0:.2f} s")
"""
RESUME = """
from cnnlab.train import resume
resume("run", epochs=4)
print("after the resume")
"""
PLAIN = """
_ = train("lenet", "fashion-mnist", TrainConfig(epochs=1, batch_size=16, limit_batches=4,
      threads=1, device="cpu", tensorboard=False, plot=False, progress="plain"))
"""
D2L = """
import torch
from cnnlab import d2l
torch.manual_seed(0)
data = d2l.FashionMNIST(batch_size=64)
model = d2l.LeNet(lr=0.1)
model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
d2l.Trainer(max_epochs=2).fit(model, data)
axes = d2l.show_images(torch.rand(2, 8, 8), 1, 2, titles=["p", "q"])
print("after fit:", round(model.board.data["val_acc"][-1].y, 4))
"""

DRIVEN = """
import time
from cnnlab.progress import Progress
p = Progress("auto", epochs=2)
p.message("a run that reports through a Progress")
t0 = time.perf_counter()
for epoch in (1, 2):
    p.start_epoch(epoch, 20)
    for step in range(1, 21):
        time.sleep(0.05)
        p.update(step, {"train_loss": 1.0 / step})
    p.end_epoch({"epoch": epoch, "train_loss": 0.5, "val_acc": 0.5 + epoch / 10, "seconds": 1.0})
p.close()
print(f"{time.perf_counter() - t0:.2f} s, {p.view.status.updates + p.view.curves.updates} updates")
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory):
    """One kernel runs a training, its resume, a forced-plain run, a drop-in fit and a run that
    reports through a Progress by hand."""
    tmp = tmp_path_factory.mktemp("nb")
    write_idx_dataset(tmp / "data" / "fashion-mnist", 480, 96)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (TRAIN, RESUME, PLAIN, D2L, DRIVEN)]
    execute(nb, tmp, timeout=600, env={"CNNLAB_DATA": str(tmp / "data"),
                                       "CNNLAB_D2L_DIR": str(tmp / "pictures")})
    return nb, tmp


def _kinds(cell) -> list[str]:
    """Each output of a cell as 'html', 'png', 'stdout', 'stderr' or its type."""
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(o.name)
        else:
            data = o.get("data", {})
            out.append("png" if "image/png" in data else "html" if "text/html" in data
                       else o.output_type)
    return out


def test_train_shows_one_live_view_that_stays_after_a_print(ran):
    nb, _ = ran
    cell = nb.cells[0]
    # the status and the curves, each one output drawn again in place, then the printed line
    assert _kinds(cell) == ["html", "png", "stdout"], cell.outputs
    status = cell.outputs[0].data
    assert "cnnlab-live" in status["text/html"] and "<table>" in status["text/html"]
    text = status["text/plain"]
    assert text.startswith("training lenet on fashion-mnist")
    assert [ln.split()[0] for ln in text.splitlines() if ln.lstrip()[:1].isdigit()] == \
        ["1", "2", "3"]  # the table of finished epochs
    assert "finished: 3 epochs in" in text and "val_acc 0." in text
    assert cell.outputs[1].data["image/png"]  # base64 of the curves
    assert cell.outputs[2].text.startswith("after the run:")
    # updated in place, at most once a second (plus the final draw)
    seconds = float(cell.outputs[2].text.split()[3])
    assert 1 <= updates(cell) <= 2 * (seconds + 2), (updates(cell), seconds)


def test_resume_shows_its_own_view_in_its_cell(ran):
    nb, _ = ran
    cell = nb.cells[1]
    assert _kinds(cell) == ["html", "png", "stdout"], cell.outputs
    text = cell.outputs[0].data["text/plain"]
    assert text.startswith("resuming lenet") and "finished: 4 epochs" in text
    table = [ln.split()[0] for ln in text.splitlines() if ln.lstrip()[:1].isdigit()]
    assert table == ["1", "2", "3", "4"]  # the epochs before the resume, then the new one
    assert "after the resume" in cell.outputs[2].text
    assert "finished: 3 epochs" in nb.cells[0].outputs[0].data["text/plain"]  # left as it was


def test_progress_plain_is_plain_lines_in_a_notebook(ran):
    nb, _ = ran
    cell = nb.cells[2]
    assert set(_kinds(cell)) == {"stderr"}, cell.outputs
    assert "epoch 1/1" in "".join(o.text for o in cell.outputs)


def test_d2l_board_is_drawn_in_place_and_stays_after_a_print(ran):
    nb, tmp = ran
    cell = nb.cells[3]
    assert _kinds(cell) == ["png", "png", "stdout"], cell.outputs  # the board, show_images
    assert cell.outputs[0].data["text/plain"] == "<ProgressBoard: train_loss, val_loss, val_acc>"
    assert updates(cell) >= 1  # drawn while training, then again at the end, in place
    assert cell.outputs[2].text.startswith("after fit: 0.")
    assert not (tmp / "pictures").exists()  # in a notebook nothing is written to disk



def test_progress_updates_the_view_in_place_at_most_once_a_second(ran):
    """40 progress updates in about 2 s: a few in-place draws, the last one the summary."""
    nb, _ = ran
    cell = nb.cells[4]
    assert _kinds(cell) == ["html", "png", "stdout"], cell.outputs
    seconds, drawn = cell.outputs[2].text.split()[0::2][:2]
    assert int(drawn) == updates(cell)  # what the kernel drew again is what the client received
    assert 2 <= updates(cell) <= 2 * (float(seconds) + 1), (updates(cell), seconds)
    text = cell.outputs[0].data["text/plain"]
    assert text.splitlines()[0] == "a run that reports through a Progress"
    assert text.endswith("finished: 2 epochs in 00:02; val_acc 0.7000")

# --- outside a kernel ---------------------------------------------------------------------------


def test_outside_a_kernel_auto_is_never_the_view_and_a_forced_view_is_plain(tmp_path: Path):
    with open(tmp_path / "log", "w") as log:
        assert not in_notebook()
        assert resolve_mode("auto", log) == "plain"
        assert resolve_mode("notebook", log) == "plain"
        assert Progress("notebook", 3, log).view is None


def test_live_view_draws_at_most_once_a_second_and_always_at_the_end():
    now = [0.0]
    view = LiveView(clock=lambda: now[0])
    drawn = []
    view.status.show = lambda make, force=False: drawn.append(make()["text/plain"])
    view.curves.show = lambda make, force=False: drawn.append("curves")
    view.message("training")
    view.refresh()
    for step in range(1, 20):  # 19 updates within 0.95 s: none drawn
        now[0] = step * 0.05
        view.set_progress(f"step {step}", step / 20)
        view.refresh()
    assert drawn == ["training"]
    now[0] = 1.0
    view.refresh()
    assert drawn[-1] == "training\nstep 19"
    view.add_row({"epoch": 1, "train_loss": 0.5, "val_acc": 0.8, "seconds": 1.0})
    view.refresh()  # within the second: held
    view.finish(summary_line(view.rows, 1))
    view.refresh(force=True)
    assert drawn[-2].endswith("finished: 1 epoch in 00:01; val_acc 0.8000") and \
        drawn[-1] == "curves"
    assert len(drawn) == 4


def test_summary_says_how_a_run_ended():
    rows = [{"epoch": 1, "val_acc": 0.7, "seconds": 2.0}, {"epoch": 2, "val_acc": 0.6,
                                                            "seconds": 2.6}]
    assert summary_line(rows, 2) == "finished: 2 epochs in 00:05; val_acc 0.6000 (best 0.7000, " \
        "epoch 1)"
    assert summary_line(rows[:1], 5).startswith("stopped after epoch 1 of 5")
    assert summary_line([], 5) == "stopped before its first epoch ended"



def test_live_view_of_other_rows_shows_their_columns():
    """A sweep's view: its own columns, no curves."""
    view = LiveView(columns=("trial", "lr", "val_acc"), picture=None)
    drawn = []
    view.status.show = lambda make, force=False: drawn.append(make())
    view.curves.show = lambda make, force=False: drawn.append("curves")
    view.add_row({"trial": 0, "lr": 0.1, "val_acc": 0.5, "seconds": 3.0})
    view.add_row({"trial": 1, "lr": 0.05, "val_acc": 0.625})
    view.refresh(force=True)
    assert len(drawn) == 1
    assert drawn[0]["text/plain"].splitlines() == ["trial    lr  val acc", "    0   0.1   0.5000",
                                                  "    1  0.05   0.6250"]
    assert "<th>trial</th><th>lr</th><th>val acc</th></tr>" in drawn[0]["text/html"]
