"""Exact resume: a run killed (SIGKILL) or interrupted (SIGINT) continues bitwise identically."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _trainkit import TinyNet, make_dataset, write_idx_dataset

from cnnlab.checkpoint import load_checkpoint
from cnnlab.errors import ConfigError, RunFinished, TrainingError
from cnnlab.train import TrainConfig, TrainingInterrupted, TrainResult, resume, train

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# Everything that carries state across a step: momentum buffers, a per-step schedule,
# augmentation draws, dropout (TinyNet), mid-epoch checkpoints.
EXACT = dict(epochs=3, batch_size=32, lr=0.1, momentum=0.9, schedule="cosine",
             augment_crop=2, augment_flip=True, deterministic=True, threads=1, device="cpu",
             checkpoint_every=3, log_every=2, progress="none", plot=False, tensorboard=False)


def reference(tmp_path: Path) -> TrainResult:
    torch.manual_seed(0)
    result = train(TinyNet(), make_dataset(), TrainConfig(**EXACT), out_dir=tmp_path / "ref")
    return result


def assert_same_run(a, b) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs"  # bitwise, not approximately
    timing = ("seconds", "train_seconds", "images_per_second")
    strip = lambda h: [{k: v for k, v in r.items() if k not in timing} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)  # metrics too, exactly


CHILD = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from _trainkit import TinyNet, make_dataset
    from cnnlab.train import TrainConfig, train

    class SlowNet(TinyNet):  # same numbers, just slow enough to be killed mid-epoch
        def forward(self, x):
            time.sleep(0.04)
            return super().forward(x)

    torch.manual_seed(0)
    train(SlowNet(), make_dataset(), TrainConfig(**{exact!r}), out_dir={out!r})
""")


def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path):
    out = tmp_path / "killed"
    script = CHILD.format(tests=str(TESTS), exact=EXACT, out=str(out))
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    last = out / "checkpoints" / "last.pt"
    killed_at = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None:
            if last.exists():
                state = torch.load(last, weights_only=True)
                if state["epoch"] >= 1 and state["step"] > 0:  # mid-way through epoch 2
                    child.send_signal(signal.SIGKILL)
                    killed_at = (state["epoch"], state["step"])
                    break
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert killed_at is not None, "the child finished before it could be killed"
    assert child.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists()
    state = load_checkpoint(last)
    assert state["step"] > 0  # the resume really starts mid-epoch
    resumed = resume(out, model=TinyNet(), data=make_dataset())
    assert_same_run(resumed, reference(tmp_path))
    assert (out / "result.json").exists()
    # the training loss within epochs, too: the same points as the uninterrupted run
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "ref" / "steps.jsonl").read_text().splitlines()]
    assert steps == ref and len(steps) == 3 * 7  # 13 steps/epoch, a point every 2 and at the end
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + EXACT["epochs"]


class InterruptAt(TinyNet):
    """Sends this process SIGINT during its k-th training forward (as Ctrl-C would)."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.calls = k, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.k:
                os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x)


def test_sigint_finishes_the_step_checkpoints_and_resumes_exactly(tmp_path):
    out = tmp_path / "int"
    torch.manual_seed(0)
    net = InterruptAt(k=13 + 7)  # epoch 2, step 7
    with pytest.raises(TrainingInterrupted, match="epoch 2, step 7.*--resume") as err:
        train(net, make_dataset(), TrainConfig(**EXACT), out_dir=out)
    assert err.value.run_dir == out and isinstance(err.value, TrainingError)
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 7)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = resume(out, model=TinyNet(), data=make_dataset())
    assert_same_run(resumed, reference(tmp_path))


def test_resume_needs_the_model_for_custom_modules(tmp_path):
    out = tmp_path / "r"
    train(TinyNet(), make_dataset(), TrainConfig(**{**EXACT, "epochs": 1}), out_dir=out)
    with pytest.raises(TrainingError, match="custom nn.Module; pass it"):
        resume(out, epochs=2)
    with pytest.raises(TrainingError, match="no checkpoint"):
        resume(tmp_path / "nothing-here")
    with pytest.raises(RunFinished, match=r"has finished: it trained 1 of 1 epochs.*--epochs N"):
        resume(out, model=TinyNet(), data=make_dataset())  # nothing left to do: it says so
    more = resume(out, model=TinyNet(), data=make_dataset(), epochs=2)  # train longer
    assert [r["epoch"] for r in more.history] == [1, 2]


def test_module_entry_sigint_exits_130_and_resumes(tmp_path):
    """`python -m cnnlab train` (= `cnnlab train`): Ctrl-C -> checkpoint, resume hint, exit 130."""
    root = write_idx_dataset(tmp_path / "fashion-mnist")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "cnnlab", "train", "--model", "lenet", "--data-root", str(root),
           "--epochs", "1000", "--batch-size", "32", "--checkpoint-every", "2", "--threads", "1",
           "--device", "cpu", "--no-plot", "--no-tensorboard", "--progress", "plain",
           "--no-report", "--out", str(out)]
    child = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert f"resume with: cnnlab train --resume {out}" in err
    state = load_checkpoint(last)
    done = state["epoch"] + 1
    res = subprocess.run(cmd[:4] + ["--resume", str(out), "--epochs", str(done), "--no-report"],
                         env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "resuming lenet on fashion-mnist" in res.stderr
    assert "test accuracy:" in res.stdout
    assert load_checkpoint(last)["epoch"] == done


class _Foreign:
    """A class a foreign pickle refers to: loading it would mean running code from the file."""


@pytest.mark.parametrize(("content", "reason"), [
    ("object", r"a pickled Python object \(.*_Foreign\)"),
    ("truncated", "truncated or damaged"),
    ("text", "not a (file torch.save wrote|checkpoint of tensors and plain data)"),
])
def test_unreadable_checkpoint_is_one_line_without_torchs_unsafe_advice(tmp_path, content,
                                                                        reason):
    path = tmp_path / "last.pt"
    torch.save({"format": 1, "x": _Foreign()}, path)
    if content == "truncated":
        path.write_bytes(path.read_bytes()[:60])
    elif content == "text":
        path.write_text("not a checkpoint")
    with pytest.raises(TrainingError, match=reason) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "weights_only" not in message and "\n" not in message and len(message) < 300


# --- resuming with other settings --------------------------------------------------------------

@pytest.fixture
def stopped(tmp_path):
    """A run stopped by Ctrl-C in the middle of epoch 1 (step 5): (folder, its last.pt)."""
    out = tmp_path / "stopped"
    with pytest.raises(TrainingInterrupted):
        train(InterruptAt(k=5), make_dataset(), TrainConfig(**{**EXACT, "epochs": 2}),
              out_dir=out)
    return out, out / "checkpoints" / "last.pt"


@pytest.mark.parametrize(("change", "message"), [
    ({"optimizer": "adamw"}, "trained with optimizer='sgd'; a resumed run cannot change it to "
                             "'adamw'"),
    ({"dataset": "mnist"}, "trained with dataset='fashion-mnist'; a resumed run cannot change it"),
    ({"batch_size": 16}, r"stopped in the middle of epoch 1 \(step 5, batch size 32\); another "
                         r"batch size would skip or repeat samples of that epoch; finish it "
                         r"first \(cnnlab train --resume .* --epochs 1\)"),
])
def test_resume_refuses_settings_that_would_mix_two_runs(stopped, change, message):
    out, _ = stopped
    with pytest.raises(ConfigError, match=message):
        resume(out, model=TinyNet(), data=make_dataset(), **change)


def test_resume_refuses_other_data_passed_as_a_dataset(stopped):
    from cnnlab.data import Dataset

    ds = make_dataset()
    other = Dataset("mnist", ds.classes, ds.train, ds.test, ds.root)
    with pytest.raises(ConfigError, match="trained on 'fashion-mnist', not on 'mnist'"):
        resume(stopped[0], model=TinyNet(), data=other)


def test_batch_size_changes_at_the_end_of_an_epoch(stopped):
    out, _ = stopped
    resume(out, model=TinyNet(), data=make_dataset(), epochs=1)  # finish epoch 1 as it began
    more = resume(out, model=TinyNet(), data=make_dataset(), epochs=2, batch_size=16)
    assert [r["step"] for r in more.history] == [13, 13 + 25]  # 400 samples: 13, then 25 steps


@pytest.mark.parametrize(("damage", "message"), [
    (lambda s: s["model"].pop("conv.weight"), r"does not fit this model and optimizer: Missing "
                                              r"key\(s\) in state_dict: \"conv.weight\""),
    (lambda s: s["model"].update({"fc.weight": torch.zeros(3, 3)}),
     r"size mismatch for fc.weight: copying a param with shape torch.Size\(\[3, 3\]\)"),
    (lambda s: s.pop("optimizer"), r"lacks 'optimizer'; it is damaged"),
])
def test_a_damaged_checkpoint_is_one_line(stopped, damage, message):
    out, last = stopped
    state = torch.load(last, weights_only=True)
    damage(state)
    torch.save(state, last)
    with pytest.raises(TrainingError, match=message) as err:
        resume(out, model=TinyNet(), data=make_dataset())
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_resume_from_best_drops_the_later_epochs(tmp_path):
    out = tmp_path / "r"
    torch.manual_seed(0)
    train(TinyNet(), make_dataset(), TrainConfig(**{**EXACT, "epochs": 2}), out_dir=out)
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    buf = io.StringIO()
    more = resume(out, model=TinyNet(), data=make_dataset(), checkpoint="best", epochs=3,
                  progress="plain", stream=buf)
    assert f"from the end of epoch {best['epoch']} (best.pt)" in buf.getvalue()
    assert [r["epoch"] for r in more.history] == [1, 2, 3]
    assert more.history[:best["epoch"]] == best["history"]  # up to best: as it was
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


# --- signals, in real processes ----------------------------------------------------------------

CLI_CHILD = textwrap.dedent("""
    import sys, time, torch
    {patch}
    from cnnlab.cli import main
    sys.exit(main({argv!r}))
""")
SLOW_SAVE = """
real_save = torch.save
def slow_save(obj, f, *a, **k):  # a checkpoint write that takes a while: Ctrl-C lands in it
    real_save(obj, f, *a, **k)
    print("SAVING", file=sys.stderr, flush=True)
    time.sleep(1.0)
torch.save = slow_save
"""


def _cli_child(tmp_path: Path, out: Path, patch: str = "") -> subprocess.Popen:
    root = write_idx_dataset(tmp_path / "fashion-mnist")
    argv = ["train", "lenet", "--data-root", str(root), "--epochs", "1000", "--batch-size", "32",
            "--threads", "1", "--device", "cpu", "--no-plot", "--no-tensorboard",
            "--progress", "plain", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CLI_CHILD.format(patch=patch, argv=argv)],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _signal_on(child: subprocess.Popen, marks: list[tuple[str, int]]) -> str:
    """Send each signal when its stderr mark appears, in order; return the rest of stderr."""
    seen = []
    assert child.stderr is not None
    for line in child.stderr:
        seen.append(line)
        if marks and marks[0][0] in line:
            child.send_signal(marks.pop(0)[1])
            if not marks:
                break
    rest = child.stderr.read()
    child.wait(timeout=120)
    return "".join(seen) + rest


def test_sigterm_is_ctrl_c_checkpoint_hint_and_exit_143(tmp_path):
    out = tmp_path / "run"
    child = _cli_child(tmp_path, out)
    err = _signal_on(child, [("training lenet", signal.SIGTERM)])
    assert child.returncode == 143, err
    line = err.strip().splitlines()[-1]
    assert re.fullmatch(rf"cnnlab: training stopped by SIGTERM at epoch 1, step \d+; checkpoint "
                        rf"saved; resume with: cnnlab train --resume {re.escape(str(out))}", line)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] > 0
    assert not list(out.rglob("*.tmp")) and "Traceback" not in err


def test_second_ctrl_c_during_the_save_neither_corrupts_nor_tracebacks(tmp_path):
    out = tmp_path / "run"
    child = _cli_child(tmp_path, out, SLOW_SAVE)
    err = _signal_on(child, [("training lenet", signal.SIGINT), ("SAVING", signal.SIGINT)])
    assert child.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved; resume with" in err
    state = load_checkpoint(out / "checkpoints" / "last.pt")  # whole and readable
    where = (f"epoch {state['epoch'] + 1}, step {state['step']}" if state["step"]
             else f"the end of epoch {state['epoch']}")
    assert f"training stopped by Ctrl-C at {where}; checkpoint saved" in err  # the one it saved
    assert not list(out.rglob("*.tmp"))


def test_ctrl_c_before_training_stops_at_once_without_a_resume_hint(tmp_path, monkeypatch,
                                                                    capsys):
    import cnnlab.data
    from cnnlab.cli import main

    root = write_idx_dataset(tmp_path / "fashion-mnist")
    real_load = cnnlab.data.load_dataset

    def ctrl_c_while_loading(*a, **k):  # the data takes a while, the user presses Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
        return real_load(*a, **k)

    monkeypatch.setattr(cnnlab.data, "load_dataset", ctrl_c_while_loading)
    out = tmp_path / "run"
    rc = main(["train", "lenet", "--data-root", str(root), "--epochs", "1", "--threads", "1",
               "--progress", "none", "--no-tensorboard", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 130 and err.strip().splitlines()[-1] == "cnnlab: interrupted"
    assert not (out / "checkpoints" / "last.pt").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


STUCK_SAVE = """
def stuck_save(obj, f, *a, **k):  # killed in the middle of its first checkpoint write
    f.write(b"PK" * 4096)
    f.flush()
    print("SAVING", file=sys.stderr, flush=True)
    time.sleep(600)
torch.save = stuck_save
"""


def test_a_run_killed_in_its_first_checkpoint_write_is_no_dead_end(tmp_path):
    """While it lives, --resume says "in use"; once killed, --resume and --out both say to start
    over with --overwrite (there is nothing to resume), the orphan temporary file goes, and
    --overwrite then trains in the same folder."""
    out = tmp_path / "run"
    child = _cli_child(tmp_path, out, STUCK_SAVE)
    try:
        assert child.stderr is not None
        for line in child.stderr:
            if "SAVING" in line:
                break
        orphan = out / "checkpoints" / f".last.pt.cnnlab-{child.pid}.tmp"
        assert orphan.is_file() and not (out / "checkpoints" / "last.pt").exists()
        rc, err = _cli(["train", "--resume", str(out)])
        assert rc == 2 and err == [f"cnnlab: error: run folder {out} is in use by process "
                                   f"{child.pid} {socket.gethostname()}; wait for that run to "
                                   "finish, stop it, or choose another output folder"]
    finally:
        child.kill()
        child.wait(timeout=60)
    assert orphan.is_file()  # what SIGKILL leaves
    rc, err = _cli(["train", "--resume", str(out)])
    assert rc == 2 and err == [
        f"cnnlab: error: {out} holds a run that stopped before its first checkpoint, so there "
        f"is nothing to resume; start it over in the same folder: cnnlab train lenet --out "
        f"{out} --overwrite (with the flags it had)"]
    assert not orphan.exists()
    flags = ["--data-root", str(tmp_path / "fashion-mnist"), "--epochs", "1", "--threads", "1",
             "--limit-batches", "2", "--progress", "none", "--no-plot", "--no-tensorboard",
             "--no-report", "--out", str(out)]
    rc, err = _cli(["train", "lenet", *flags])
    assert rc == 2 and err == [f"cnnlab: error: {out} already holds the start of a run that "
                               "saved no checkpoint; start it over with --overwrite, or choose "
                               "another folder (--out)"]
    assert _cli(["train", "lenet", *flags, "--overwrite"])[0] == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1


def _cli(argv: list[str]) -> tuple[int, list[str]]:
    """cnnlab in a real process: (exit status, its stderr lines)."""
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *argv], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.returncode, proc.stderr.strip().splitlines()


@pytest.mark.parametrize("gap", [0.0, 0.02])
def test_two_ctrl_c_20_ms_apart_exit_130_without_an_atexit_traceback(tmp_path, gap):
    """The second Ctrl-C lands while the process exits: it used to interrupt an atexit callback
    ("Exception ignored in atexit callback ... KeyboardInterrupt")."""
    root = write_idx_dataset(tmp_path / "fashion-mnist")
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "train", "lenet", "--data-root", str(root), "--epochs",
         "1000", "--batch-size", "32", "--threads", "1", "--no-plot", "--no-tensorboard",
         "--progress", "plain", "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    seen = []
    for line in child.stderr:
        seen.append(line)
        if "training lenet" in line:
            child.send_signal(signal.SIGINT)
        if "training stopped by Ctrl-C" in line:
            time.sleep(gap)
            child.send_signal(signal.SIGINT)
            break
    err = "".join(seen) + child.stderr.read()
    assert child.wait(timeout=120) == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1].startswith("cnnlab: training stopped by Ctrl-C at ")


def _metrics(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["train_loss"], r["train_acc"], r["val_loss"], r["val_acc"])
            for r in rows]


def test_the_numbers_do_not_depend_on_a_busy_neighbour(tmp_path):
    """Float results depend on the thread count, and the default picks it from the load: once,
    at the start, so a run resumed while two busy-looping processes hold both cores continues
    bitwise with the count it recorded; --deterministic fixes the count, so it gives the same
    numbers quiet or busy."""
    root = write_idx_dataset(tmp_path / "fashion-mnist")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def train_(out: Path, *more: str) -> None:
        new = [] if "--resume" in more else [
            "--data-root", str(root), "--batch-size", "32", "--limit-batches", "6", "--seed",
            "3", "--progress", "none", "--no-plot", "--no-tensorboard", "--no-report", "--out",
            str(out)]
        subprocess.run([sys.executable, "-m", "cnnlab", "train", *more, *new], env=env,
                       check=True, timeout=600, capture_output=True)

    train_(tmp_path / "whole", "lenet_modern", "--epochs", "2")
    train_(tmp_path / "cut", "lenet_modern", "--epochs", "1")
    train_(tmp_path / "det-quiet", "lenet_modern", "--epochs", "2", "--deterministic")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(1.5)  # the neighbours show in /proc/stat before the next run looks
        train_(tmp_path / "cut", "--resume", str(tmp_path / "cut"), "--epochs", "2")
        train_(tmp_path / "det-busy", "lenet_modern", "--epochs", "2", "--deterministic")
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "whole")
    recorded = [json.loads((tmp_path / d / "config.json").read_text())["environment"]
                for d in ("whole", "cut")]
    assert recorded[1]["cpu_threads"] == recorded[0]["cpu_threads"]
    assert recorded[1]["cpu_thread_policy"] == "kept from the run's start (resumed)"
    assert _metrics(tmp_path / "det-busy") == _metrics(tmp_path / "det-quiet")
