"""The training engine in one process: config validation, metrics, run folder, failures."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _trainkit import NaNAfter, TinyNet, make_dataset, make_split

from cnnlab.checkpoint import RunLock, load_checkpoint, save_checkpoint
from cnnlab.data import Loader
from cnnlab.errors import ConfigError, TrainingError
from cnnlab.progress import Progress, format_epoch
from cnnlab.schedule import lr_at
from cnnlab.train import TrainConfig, evaluate, predict, train

FAST = dict(epochs=2, batch_size=32, lr=0.1, momentum=0.9, progress="none", plot=False,
            tensorboard=False, threads=1, device="cpu", amp="off")  # exact float32 math


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**FAST, **kw})


@pytest.fixture(scope="module")
def data():
    return make_dataset()


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """One real run with every output switched on, shared by the run-folder tests."""
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    result = train(TinyNet(), data, cfg(epochs=3, plot=True, tensorboard=True, log_every=4),
                   out_dir=out)
    return result, out


# --- config ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("lr", -0.1), ("lr", 0.0), ("epochs", 0), ("batch_size", -4), ("optimizer", "adam"),
    ("schedule", "step"), ("amp", "fp8"), ("device", "tpu"), ("device", "cpu:1"),
    ("progress", "fancy"), ("momentum", 1.0), ("label_smoothing", 1.0), ("grad_clip", -1.0),
    ("weight_decay", -0.1), ("val_size", 2.5), ("resize", (0, 28)), ("epochs", 2.0),
    ("threads", -1), ("patience", -1), ("monitor", "train_acc"), ("warmup_epochs", 99.0),
    ("log_every", 0), ("dataset", ""), ("normalize", "yes"),
])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_named_as_such(value):
    for field in ("lr", "weight_decay", "momentum"):
        with pytest.raises(ConfigError, match=f"^{field}=.* is not a finite number"):
            TrainConfig(**{field: value}).validate()


def test_patience_needs_validation():
    with pytest.raises(ConfigError, match="patience=3 .*eval_every=0"):
        TrainConfig(patience=3, eval_every=0).validate()
    TrainConfig(patience=3, eval_every=2).validate()
    TrainConfig(patience=0, eval_every=0).validate()


def test_nesterov_needs_sgd_momentum():
    with pytest.raises(ConfigError, match="nesterov"):
        TrainConfig(nesterov=True).validate()
    TrainConfig(nesterov=True, momentum=0.9).validate()


def test_config_round_trips_through_json():
    c = TrainConfig(resize=(96, 64), optimizer="adamw", schedule="onecycle", amp="bf16").validate()
    d = json.loads(json.dumps(c.to_dict()))
    assert d["resize"] == [96, 64]
    assert TrainConfig.from_dict(d) == c
    assert TrainConfig(resize=32).resize == (32, 32)
    assert TrainConfig.from_dict({**d, "environment": {"torch": "x"}}) == c  # config.json shape
    with pytest.raises(ConfigError, match="unknown config field.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_invalid_config_fails_before_any_work(tmp_path, data):
    with pytest.raises(ConfigError, match="lr"):
        train(TinyNet(), data, TrainConfig(lr=-1.0), out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# --- schedules, devices --------------------------------------------------------------------

def test_schedules():
    assert lr_at(0, 100, 0.1) == 0.1
    assert lr_at(0, 100, 0.1, "constant", warmup_steps=10) == pytest.approx(0.01)
    assert lr_at(9, 100, 0.1, "constant", warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(100, 100, 0.1, "cosine") == pytest.approx(0.0, abs=1e-12)
    one = [lr_at(s, 100, 0.1, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(0.004) and max(one) == pytest.approx(0.1)
    assert one.index(max(one)) == 30 and one[-1] < 0.001


# --- training, metrics --------------------------------------------------------------------------

def test_train_learns_and_reports_sample_weighted_metrics(run, data):
    result, _ = run
    h = result.history
    assert [r["epoch"] for r in h] == [1, 2, 3]
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert result.test_acc > 0.5  # chance is 0.1
    # 400 samples in batches of 32: the last batch has 16, so a mean of batch means would differ.
    model = result.model
    manual = evaluate(model, Loader(data.test, 100))
    assert h[-1]["val_acc"] == pytest.approx(manual["acc"])
    assert h[-1]["val_loss"] == pytest.approx(manual["loss"], rel=1e-6)
    assert result.test_acc == h[-1]["val_acc"]  # val_size=0 validates on the test split
    for r in h:
        assert r["images_per_second"] > 0 and r["seconds"] >= r["train_seconds"] > 0
        assert r["lr"] == pytest.approx(0.1)


def test_evaluate_is_sample_weighted_over_uneven_batches(data):
    torch.manual_seed(0)
    model = TinyNet().eval()
    X = data.test.images.float().unsqueeze(1) / 255
    with torch.no_grad():
        out = model(X)
    want_loss = F.cross_entropy(out, data.test.labels).item()
    want_acc = (out.argmax(1) == data.test.labels).float().mean().item()
    got = evaluate(model, Loader(data.test, 7))  # 100 = 14 * 7 + 2
    assert got["n"] == 100
    assert got["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert got["acc"] == pytest.approx(want_acc)
    assert evaluate(model, data.test)["acc"] == pytest.approx(want_acc)  # a Split works too


def test_train_metrics_match_a_manual_epoch(data):
    """Epoch-1 train loss/acc equal the sample-weighted sums of the steps' own outputs."""
    torch.manual_seed(0)
    net = TinyNet(dropout=0.0)
    ref = TinyNet(dropout=0.0)
    ref.load_state_dict(net.state_dict())
    c = cfg(epochs=1, momentum=0.0)
    result = train(net, data, c)
    opt = torch.optim.SGD(ref.parameters(), lr=c.lr)
    loss_sum = correct = 0.0
    for X, y in Loader(data.train, 32, shuffle=True, seed=0).batches(0):
        out = ref(X)
        loss = F.cross_entropy(out, y)
        loss_sum += loss.item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert result.history[0]["train_loss"] == pytest.approx(loss_sum / 400, rel=1e-5)
    assert result.history[0]["train_acc"] == pytest.approx(correct / 400)
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("kw", [
    dict(optimizer="adamw", lr=3e-3, schedule="onecycle", weight_decay=0.05, grad_clip=1.0,
         label_smoothing=0.1),
    dict(schedule="cosine", warmup_epochs=1.0, nesterov=True, augment_crop=2, augment_flip=True,
         normalize=True, val_size=0.25),
    dict(amp="bf16", channels_last=True, deterministic=True, eval_batch_size=33, resize=(20, 20)),
])
def test_option_combinations_train(kw, data):
    torch.manual_seed(0)
    size = kw.get("resize", (28, 28))[0]
    result = train(TinyNet(size), data, cfg(epochs=3, **kw))
    h = result.history
    assert result.test_acc is not None and math.isfinite(h[-1]["train_loss"])
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert torch.are_deterministic_algorithms_enabled() is False  # global settings restored
    if kw.get("schedule") == "cosine":
        assert h[0]["lr"] == pytest.approx(0.1)  # end of the warmup epoch
        # 300 train samples (val_size carved 100 off) -> 10 steps per epoch, 30 in all.
        assert h[1]["lr"] == pytest.approx(lr_at(19, 30, 0.1, "cosine", warmup_steps=10))
        assert h[2]["lr"] < 0.001  # near 0 at the end
    if kw.get("val_size"):
        assert result.config.val_size == 0.25


def test_eval_every_and_limit_batches(data):
    torch.manual_seed(0)
    result = train(TinyNet(), data, cfg(epochs=3, eval_every=2, limit_batches=3))
    h = result.history
    assert [r["step"] for r in h] == [3, 6, 9]
    assert "val_acc" not in h[0] and "val_acc" in h[1] and "val_acc" in h[2]  # last always


def test_dry_run_stops_after_one_batch(tmp_path, data):
    result = train(TinyNet(), data, cfg(epochs=5, dry_run=True), out_dir=tmp_path)
    assert len(result.history) == 1 and result.history[0]["step"] == 1
    assert json.loads((tmp_path / "result.json").read_text())["dry_run"] is True


def test_early_stopping(data):
    torch.manual_seed(0)
    result = train(TinyNet(), data, cfg(epochs=10, lr=1e-9, momentum=0.0, patience=2))
    assert result.stopped_early and len(result.history) == 3  # best at 1, then 2 without gain
    assert result.best["epoch"] == 1


def test_predict_returns_probabilities(run, data):
    model = run[0].model
    probs = predict(model, data.test.images[:17], batch_size=5)
    assert probs.shape == (17, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(17))
    acc = (probs.argmax(1) == data.test.labels[:17]).float().mean()
    assert acc > 0.5
    assert predict(model, data.test.images[:3].unsqueeze(1).float() / 255).shape == (3, 10)


# --- the run folder ----------------------------------------------------------------------------

def test_run_folder_contents(run):
    result, out = run
    res = json.loads((out / "result.json").read_text())
    assert res["test_acc"] == pytest.approx(result.test_acc)
    assert res["seconds"] > 0 and res["epochs_completed"] == 3
    assert res["final"]["epoch"] == 3 and res["best"]["val_acc"] == max(
        r["val_acc"] for r in result.history)
    conf = json.loads((out / "config.json").read_text())
    assert conf["epochs"] == 3 and conf["batch_size"] == 32
    assert conf["environment"]["torch"] == torch.__version__
    assert {"cnnlab", "python", "device", "device_name"} <= set(conf["environment"])
    assert TrainConfig.from_dict(conf).epochs == 3
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc,lr")
    assert len(csv_lines) == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == json.loads(json.dumps(result.history))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp"))
    # Every file the run wrote, pictures included, has the mode open() gives (0644 at umask 022).
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert "curves.png" in modes and "checkpoints/last.pt" in modes
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


def test_checkpoints_are_plain_data(run):
    _, out = run
    for name in ("last", "best"):
        state = torch.load(out / "checkpoints" / f"{name}.pt", weights_only=True)
        assert {"model", "optimizer", "scheduler", "scaler", "rng", "epoch", "step", "config",
                "history"} <= set(state)
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["epoch"] == 3 and last["step"] == 0 and len(last["history"]) == 3
    assert set(last["rng"]) >= {"torch", "numpy", "python"}


def test_tensorboard_events_load_with_tensorboards_reader(run):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    result, out = run
    acc = ea_mod.EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"epoch/train_loss", "epoch/val_acc", "step/train_loss"} <= set(tags)
    vals = [e.value for e in acc.Scalars("epoch/val_acc")]
    assert vals == pytest.approx([r["val_acc"] for r in result.history])


def test_atomic_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": 1, "w": torch.ones(3)}, path)

    def crash(obj, f, *a, **k):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint({"format": 1, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_corrupt_checkpoint_is_a_training_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")


# --- the lock --------------------------------------------------------------------------------

def test_second_live_run_on_a_folder_is_refused(tmp_path, data):
    with RunLock(tmp_path):
        with pytest.raises(TrainingError, match="in use by process"):
            train(TinyNet(), data, cfg(epochs=1), out_dir=tmp_path)
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from cnnlab.checkpoint import RunLock; "
        f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(TrainingError, match=f"in use by process {child.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    # The holder died without releasing: its stale lock is taken over.
    train(TinyNet(), data, cfg(epochs=1), out_dir=tmp_path)
    assert (tmp_path / "result.json").exists()


# --- failures ------------------------------------------------------------------------------

def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path, data):
    torch.manual_seed(0)
    net = NaNAfter(TinyNet(), k=13 + 5)  # 13 steps per epoch: NaN at epoch 2, step 5
    with pytest.raises(TrainingError, match=r"epoch 2, step 5.*lower the learning rate"):
        train(net, data, cfg(epochs=3, checkpoint_every=2, log_every=100), out_dir=tmp_path)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    # Every 2 global steps: 16 (epoch 2 step 3) was the last; at 18 the NaN of step 5 was seen.
    assert (last["epoch"], last["step"], last["global_step"]) == (1, 3, 16)
    assert all(torch.isfinite(v).all() for v in last["model"].values())


# --- progress ---------------------------------------------------------------------------------

def test_plain_progress_has_one_clean_line_per_epoch(data):
    buf = io.StringIO()
    train(TinyNet(), data, cfg(epochs=2, progress="auto"), stream=buf)  # not a tty -> plain
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("training TinyNet on fashion-mnist")
    assert [ln.split()[:2] for ln in lines[1:]] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert all(ch.isprintable() for ch in buf.getvalue().replace("\n", ""))
    assert "val_acc" in lines[-1] and "img/s" in lines[-1]


def test_header_says_when_the_data_are_not_the_official_files(data):
    import dataclasses

    subset = dataclasses.replace(data, note="not the official files: 400 of the official 60,000")
    buf = io.StringIO()
    train(TinyNet(), subset, cfg(epochs=1, limit_batches=1, progress="plain"), stream=buf)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("training TinyNet on fashion-mnist")
    assert lines[1] == "fashion-mnist: not the official files: 400 of the official 60,000"


def test_quiet_and_bar_progress(data):
    quiet = io.StringIO()
    train(TinyNet(), data, cfg(epochs=1, progress="none"), stream=quiet)
    assert quiet.getvalue() == ""
    bar = io.StringIO()
    train(TinyNet(), data, cfg(epochs=1, progress="bar", log_every=2), stream=bar)
    out = bar.getvalue()
    assert "epoch 1/1" in out and "100%" in out and "\r" in out and "img/s" in out
    assert "13 steps/epoch, 1 epoch," in out  # counts pluralised


def test_format_epoch_and_progress_modes():
    line = format_epoch({"epoch": 3, "train_loss": 0.5, "train_acc": 0.8, "val_acc": 0.75,
                         "lr": 0.1, "seconds": 2.5, "images_per_second": 1234.4}, 10)
    assert line == ("epoch  3/10  train_loss 0.5000  train_acc 0.8000  val_acc 0.7500  "
                    "lr 1.00e-01  2.50s  1234 img/s")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert Progress("auto", 1, Tty()).mode == "bar"
    assert Progress("auto", 1, io.StringIO()).mode == "plain"


def test_data_by_name_and_zoo_model(tmp_path, data_root):
    """The real path: a zoo name and a dataset name, a small subset of Fashion-MNIST."""
    c = TrainConfig(**{**FAST, "epochs": 1, "train_samples": 512, "limit_batches": 8,
                       "data_root": str(data_root / "fashion-mnist")})
    result = train("lenet", None, c, out_dir=tmp_path)
    assert result.config.model == "lenet" and result.config.dataset == "fashion-mnist"
    assert result.history[0]["step"] == 8
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["config"]["model"] == "lenet"


def test_make_split_is_learnable_and_deterministic():
    a, b = make_split(50, 3), make_split(50, 3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.bincount(a.labels).tolist() == [5] * 10


def test_compile_without_a_cxx_compiler_trains_eagerly_and_says_so(data, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(m) or m)
    buf = io.StringIO()
    result = train(TinyNet(), data, cfg(epochs=1, compile=True, progress="plain"), stream=buf)
    assert not compiled and "no" in buf.getvalue() and "C++ compiler" in buf.getvalue()
    assert result.final["val_acc"] > 0


# --- a run folder is never lost or mixed ------------------------------------------------------

def test_a_folder_holding_a_run_is_refused_and_overwrite_replaces_it_all(tmp_path, data):
    out = tmp_path / "r"
    train(TinyNet(), data, cfg(epochs=1, tensorboard=True), out_dir=out)
    (out / "notes.txt").write_text("mine")  # not the run's: survives --overwrite
    (out / "inspect").mkdir()  # what `cnnlab inspect` wrote about the old run goes with it
    (out / "inspect" / "inspect.html").write_text("old")
    before = {p.relative_to(out) for p in out.rglob("*")}
    with pytest.raises(TrainingError, match=rf"{out} already holds a run; continue it with "
                                            rf"--resume {out}, replace it with --overwrite"):
        train(TinyNet(), data, cfg(epochs=1), out_dir=out)
    assert {p.relative_to(out) for p in out.rglob("*")} == before  # untouched
    old_events = set((out / "tensorboard").iterdir())
    result = train(TinyNet(), data, cfg(epochs=2, tensorboard=False), out_dir=out,
                   overwrite=True)
    assert not (out / "tensorboard").exists() and old_events  # no old events mixed in
    assert not (out / "inspect").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert len(load_checkpoint(out / "checkpoints" / "last.pt")["history"]) == 2
    assert json.loads((out / "result.json").read_text())["epochs_completed"] == 2
    assert len(result.history) == 2


def test_dry_run_leaves_no_checkpoint_and_does_not_block_the_real_run(tmp_path, data):
    train(TinyNet(), data, cfg(dry_run=True), out_dir=tmp_path)
    assert not list((tmp_path / "checkpoints").iterdir())
    train(TinyNet(), data, cfg(epochs=1), out_dir=tmp_path)  # a dry run's files are scratch
    assert json.loads((tmp_path / "result.json").read_text())["dry_run"] is False


@pytest.mark.parametrize("bad", ["", "file", "file/run"])
def test_output_folder_that_is_empty_a_file_or_under_a_file(tmp_path, data, bad):
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / bad) if bad else ""
    with pytest.raises(ConfigError, match="empty|is a file|is under the file"):
        train(TinyNet(), data, cfg(epochs=1), out_dir=out)
    assert (tmp_path / "file").read_text() == "x"


def test_the_lock_is_taken_before_the_data_loads(tmp_path):
    with RunLock(tmp_path):  # had the data loaded first, this would be "unknown dataset"
        with pytest.raises(TrainingError, match="in use by process"):
            train("lenet", "no-such-dataset", cfg(epochs=1), out_dir=tmp_path)


def test_orphaned_temporary_files_are_removed_when_the_folder_is_used(tmp_path, data):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "checkpoints").mkdir()
    orphans = [tmp_path / "checkpoints" / f".last.pt.cnnlab-{dead}.tmp",
               tmp_path / f".metrics.csv.cnnlab-{dead}.tmp"]
    users = tmp_path / f".my-notes.{dead}.tmp"  # a user's dotfile: resume used to delete it
    for p in (*orphans, users):
        p.write_bytes(b"x" * 1000)
    train(TinyNet(), data, cfg(epochs=1), out_dir=tmp_path)
    assert not any(p.exists() for p in orphans) and list(tmp_path.rglob("*.tmp")) == [users]


class InfAfter(TinyNet):
    """A spare weight, unused by forward, turns infinite at the k-th training forward: the loss
    stays finite, so only a look at the weights can tell the checkpoint would be useless."""

    def __init__(self, k: int):
        super().__init__()
        self.spare = torch.nn.Parameter(torch.zeros(1))
        self.k, self.calls = k, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.k:
                with torch.no_grad():
                    self.spare.fill_(float("inf"))
        return super().forward(x)


def test_a_checkpoint_is_written_only_from_finite_weights(tmp_path, data):
    torch.manual_seed(0)
    with pytest.raises(TrainingError, match=r"weights became NaN or infinite by epoch 1; .*"
                       r"checkpoints/last\.pt, from epoch 1, step 4, is the last one with "
                       r"finite weights"):
        train(InfAfter(k=5), data, cfg(epochs=1, checkpoint_every=2), out_dir=tmp_path)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step"]) == (0, 4)
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_nan_before_any_checkpoint_says_none_was_kept(tmp_path, data):
    with pytest.raises(TrainingError, match="epoch 1, step 2.*no checkpoint was written before"):
        train(NaNAfter(TinyNet(), k=2), data, cfg(epochs=1, log_every=1), out_dir=tmp_path)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_full_disk_mid_run_is_one_line_with_the_resume_command(tmp_path, data, monkeypatch):
    from cnnlab import atomic
    from cnnlab.errors import OutputError

    real_replace = os.replace

    def disk_full_for_best(src, dst):  # last.pt of epoch 1 fits; best.pt after it does not
        if Path(dst).name == "best.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", disk_full_for_best)
    with pytest.raises(OutputError) as err:
        train(TinyNet(), data, cfg(epochs=2), out_dir=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"cannot write {tmp_path / 'checkpoints' / 'best.pt'}: No space left")
    assert msg.endswith(f"once that is fixed, resume with: cnnlab train --resume {tmp_path}")
    assert err.value.run_dir == tmp_path and not list(tmp_path.rglob("*.tmp"))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1


def test_on_epoch_hears_each_row_and_can_end_the_run(data, tmp_path) -> None:
    """train(on_epoch=...) is told every epoch's metrics; True ends the run there (sweeps prune
    this way), recorded as an early stop; on_start hears the resolved config first."""
    rows, started = [], []

    def on_epoch(row):
        rows.append(row)
        return row["epoch"] == 2

    result = train(TinyNet(), data, cfg(epochs=5), out_dir=tmp_path / "r", on_epoch=on_epoch,
                   on_start=started.append)
    assert [r["epoch"] for r in rows] == [1, 2] and len(result.history) == 2
    assert result.stopped_early and rows[-1]["val_acc"] == result.history[-1]["val_acc"]
    assert len(started) == 1 and started[0].dataset == "fashion-mnist"
    assert json.loads((tmp_path / "r" / "result.json").read_text())["stopped_early"]
