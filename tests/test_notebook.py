"""cnnlab in a real Jupyter kernel (nbclient): the engine's live view and the drop-in's board stay
in their cells, drawn again in place, whatever the cell prints after them."""

from __future__ import annotations

from pathlib import Path

import pytest
from _notebook import drawn, execute, nbformat, updates
from _trainkit import write_idx_dataset

from cnnlab.lrfind import LRFind
from cnnlab.notebook import LiveView, in_notebook, live_view
from cnnlab.progress import Progress, resolve_mode, summary_line
from cnnlab.runsview import RunsView
from cnnlab.suite import MemberResult, _table

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

# The engine's steps made as slow as a real network's (the tiny runs below take a few ms a step),
# so the view's once-a-second throttle lets some of the runs' progress through.
SLOW = """
from cnnlab import train as engine
fast_step = engine.Trainer.step
def slow_step(self, X, y):
    time.sleep(0.04)
    return fast_step(self, X, y)
engine.Trainer.step = slow_step
"""
SWEEP = """
from cnnlab.sweep import sweep
t0 = time.perf_counter()
result = sweep("lenet", "lr=0.05,0.01", sampler="grid", prune="off", out_dir="sweep", epochs=2,
               batch_size=16, limit_batches=12, log_every=2, threads=1, device="cpu",
               tensorboard=False, plot=False, val_size=48)
print(f"after the sweep: {time.perf_counter() - t0:.2f} s")
"""
RETRAIN = """
from cnnlab.sweep import retrain_best
print("test accuracy:", retrain_best("sweep").test_acc)
"""
SWEEP_PLAIN = """
_ = sweep("lenet", "lr=0.05", trials=1, out_dir="sweep-plain", progress="plain", epochs=1,
          batch_size=16, limit_batches=4, threads=1, device="cpu", tensorboard=False,
          plot=False, val_size=48)
"""
LR_FIND = """
from cnnlab.lrfind import lr_find
QUICK = TrainConfig(batch_size=32, threads=1, device="cpu", normalize=True)
t0 = time.perf_counter()
found = lr_find("lenet_modern", "fashion-mnist", QUICK, start_lr=1e-4, steps=60)
print(f"after lr_find: {time.perf_counter() - t0:.2f} s", found)
"""
LR_FIND_LAST = """
engine.Trainer.step = fast_step
lr_find("lenet_modern", "fashion-mnist", QUICK, start_lr=1e-4, steps=60)
"""
SUITE = """
from cnnlab.suite import SUITE_RECIPE, run_suite
recipe = TrainConfig(**{**dict(SUITE_RECIPE), "epochs": 1, "batch_size": 32, "val_size": 50,
                        "test_samples": 60, "plot": False, "threads": 1})
engine.Trainer.step = slow_step
t0 = time.perf_counter()
res = run_suite(["lenet", "bn_lenet"], "suite", budget_s=30, config=recipe, seeds=(0, 1))
engine.Trainer.step = fast_step
print(f"after the suite: {time.perf_counter() - t0:.2f} s")
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory):
    """One kernel runs a training, its resume, a forced-plain run, a drop-in fit, a run that
    reports through a Progress by hand, a sweep, two range tests and a suite."""
    tmp = tmp_path_factory.mktemp("nb")
    write_idx_dataset(tmp / "data" / "fashion-mnist", 480, 96)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (TRAIN, RESUME, PLAIN, D2L, DRIVEN,
                                                           SLOW, SWEEP, LR_FIND, LR_FIND_LAST,
                                                           SUITE, SWEEP_PLAIN, RETRAIN)]
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


def _engine_view(cell) -> str:
    """The text of a cell that shows one run's view (status and curves), then prints a line."""
    assert _kinds(cell) == ["html", "png", "stdout"], cell.outputs
    return cell.outputs[0].data["text/plain"]


def test_resume_shows_its_own_view_in_its_cell(ran):
    nb, _ = ran
    cell = nb.cells[1]
    text = _engine_view(cell)
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


def _seconds(cell) -> float:
    """The seconds a cell printed last ("after ...: 1.23 s")."""
    return float(cell.outputs[-1].text.split(": ")[1].split()[0])


def _in_place(cell) -> None:
    """Drawn again in place, at most about once a second (plus the final draws)."""
    assert 1 <= updates(cell) <= 2 * (_seconds(cell) + 2), (updates(cell), _seconds(cell))


def test_sweep_shows_one_view_with_its_trials_and_the_best_that_stays(ran):
    nb, _ = ran
    cell = nb.cells[6]
    assert _kinds(cell) == ["html", "stdout"], cell.outputs  # one view: no trial drew its own
    assert cell.outputs[1].text.startswith("after the sweep:")
    _in_place(cell)
    text = cell.outputs[0].data["text/plain"]
    lines = text.splitlines()
    assert lines[0] == "sweep of lenet over lr -> sweep"
    assert lines[1].split() == ["trial", "params", "val", "acc", "status", "seconds"]
    assert [ln.split()[0] for ln in lines[2:4]] == ["0", "1"]  # in the order they ran
    assert sorted(ln.split()[1] for ln in lines[2:4]) == ["lr=0.01", "lr=0.05"]
    assert all(" done " in ln for ln in lines[2:4])
    assert lines[4].startswith("best of 2 trials: trial ") and "val_acc 0." in lines[4]
    assert lines[5].startswith("train it: cnnlab train lenet") and "--lr 0.0" in lines[5]
    assert "<b>train it: cnnlab train lenet" in cell.outputs[0].data["text/html"]
    # while the second trial ran, the view said which, and where its epoch was (the trial's
    # own progress, reported into the sweep's view)
    during = [t for t in drawn(cell) if "trial 1 (2 of 2) [lr=0.0" in t]
    assert any("epoch " in t and " step " in t for t in during), drawn(cell)
    assert any("best so far: trial " in t for t in during)


def test_retrain_best_shows_the_engines_view(ran):
    nb, _ = ran
    cell = nb.cells[11]
    text = _engine_view(cell)
    assert text.startswith("training lenet") and "finished: 2 epochs in" in text
    assert cell.outputs[2].text.startswith("test accuracy: 0.")


def test_a_sweep_forced_plain_prints_its_lines_in_a_notebook(ran):
    nb, _ = ran
    cell = nb.cells[10]
    assert set(_kinds(cell)) == {"stderr"}, cell.outputs
    assert "".join(o.text for o in cell.outputs).startswith("trial 0 (1/1) done in ")


def test_lr_find_shows_its_steps_then_the_figure_once(ran):
    nb, _ = ran
    cell = nb.cells[7]
    assert _kinds(cell) == ["html", "png", "stdout"], cell.outputs
    _in_place(cell)
    assert any(t.splitlines()[-1].startswith("step ") and " of 60  lr " in t
               and "smoothed loss" in t for t in drawn(cell)), drawn(cell)
    text = cell.outputs[0].data["text/plain"]
    assert text.startswith("lr-find for lenet_modern: at most 60 steps, lr from 0.0001 to 10")
    assert text.splitlines()[-1].startswith("suggested lr ")
    assert cell.outputs[1].data["text/plain"] == "<lr-find>"
    assert "after lr_find:" in cell.outputs[2].text and "LRFind(suggestion=" in cell.outputs[2].text
    # as a cell's last expression the result is one line of text, and the figure is not shown
    # a second time
    last = nb.cells[8]
    assert _kinds(last) == ["html", "png", "execute_result"], last.outputs
    assert last.outputs[2].data["text/plain"].startswith("LRFind(suggestion=")
    assert "image/png" not in last.outputs[2].data


def test_suite_shows_one_view_with_its_members(ran):
    nb, _ = ran
    cell = nb.cells[9]
    assert _kinds(cell) == ["html", "stdout"], cell.outputs  # no stderr lines, no run's view
    _in_place(cell)
    lines = cell.outputs[0].data["text/plain"].splitlines()
    assert lines[0].startswith("suite custom: 2 models, 1 epochs each, seeds 0, 1")
    assert lines[1].split() == ["member", "test", "acc", "time", "status"]
    assert [ln.split()[0] for ln in lines[2:4]] == ["lenet", "bn_lenet"]
    assert all("% ± " in ln and ln.endswith("done") for ln in lines[2:4])
    assert lines[4].startswith("suite custom: 2 models in ")
    during = [t for t in drawn(cell) if "[2/2] bn_lenet: budget" in t]
    assert during, drawn(cell)

# --- outside a kernel ---------------------------------------------------------------------------


def test_outside_a_kernel_auto_is_never_the_view_and_a_forced_view_is_plain(tmp_path: Path):
    with open(tmp_path / "log", "w") as log:
        assert not in_notebook()
        assert resolve_mode("auto", log) == "plain"
        assert resolve_mode("notebook", log) == "plain"
        assert Progress("notebook", 3, log).view is None


def test_sweeps_and_suites_outside_a_kernel_say_plain_lines_as_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cols = ("trial",)
    with open(tmp_path / "log", "w") as log:
        for progress in ("auto", "notebook", "plain", "bar"):
            show = RunsView(progress, log, cols)
            assert (show.mode, show.view, show.inner) == ("plain", None, None)
            with show:
                show.note("a view's title: no line")
                show.say(f"{progress}: a line", at="now")
                show.rows([{"trial": 1}])
                show.end("the end", say=progress != "bar")
        show = RunsView("none", log, cols)
        assert (show.mode, show.inner) == ("none", "none")
        show.say("never")
        show.end("never")
    assert (tmp_path / "log").read_text().splitlines() == [
        "auto: a line", "the end", "notebook: a line", "the end", "plain: a line", "the end",
        "bar: a line"]
    RunsView("auto", None, cols).say("nowhere: the Python API's default")
    RunsView("plain", None, cols).say("to stderr: plain asked for")
    assert capsys.readouterr() == ("", "to stderr: plain asked for\n")


def test_a_run_inside_a_larger_view_reports_its_progress_to_it():
    outer = LiveView(columns=("trial",), picture=None)
    drawn = []
    outer.status.show = lambda make, force=False: drawn.append(make()["text/plain"])
    assert isinstance(live_view(), LiveView)  # no larger view open: a view of its own
    with outer:
        part = live_view()
        assert not isinstance(part, LiveView)
        outer.set_now("trial 1 of 2 [lr=0.1]")
        part.message("training lenet: not shown")
        part.set_progress("epoch 1/2  step 3/6", 0.5)
        part.add_row({"epoch": 1, "val_acc": 0.5})
        part.finish("finished: 1 epoch: not shown")
        part.show_figure(object())  # nothing drawn: the figure is the run's business
        part.refresh(force=True)
        assert drawn == ["trial 1 of 2 [lr=0.1]\nepoch 1/2  step 3/6"]
        assert part.rows == [{"epoch": 1, "val_acc": 0.5}]
        outer.set_rows([{"trial": 1}])
        outer.finish("best: trial 1\ntrain it: cnnlab train lenet --lr 0.1")
    assert isinstance(live_view(), LiveView)
    assert drawn[-1].splitlines() == ["trial", "    1", "best: trial 1",
                                      "train it: cnnlab train lenet --lr 0.1"]
    assert "<div><b>best: trial 1</b></div><div><b>train it:" in outer.html()


def test_suite_table_shows_mean_and_std_over_seeds():
    out = Path("s")
    rows = _table([MemberResult("lenet", out / "a", "done", 0.8, 65.0, seed=0),
                   MemberResult("lenet", out / "b", "done", 0.9, 65.0, seed=1),
                   MemberResult("bn_lenet", out / "c", "failed", None, 3.0, error="x"),
                   MemberResult("vgg", out / "d", "skipped", 0.5, 200.0)])
    assert rows == [{"member": "lenet", "test acc": "85.00% ± 7.07%", "time": "65 s",
                     "status": "done"},
                    {"member": "bn_lenet", "test acc": "n/a", "time": "3 s", "status": "failed"},
                    {"member": "vgg", "test acc": "50.00%", "time": "3.3 min",
                     "status": "skipped"}]


def test_lr_find_result_is_one_line_in_a_notebook():
    found = LRFind([1e-3, 1e-2], [2.0, 1.0], [2.0, 1.5], 0.005, "min/10", "a tenth", "turned")
    assert repr(found) == "LRFind(suggestion=0.005, rule='min/10', steps=2, stopped='turned')"


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
