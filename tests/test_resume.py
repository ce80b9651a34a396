"""Exact resume: a run killed (SIGKILL) or interrupted (SIGINT) continues bitwise identically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _trainkit import TinyNet, make_dataset, write_idx_dataset

from cnnlab.checkpoint import load_checkpoint
from cnnlab.errors import TrainingError
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
        resume(out)
    with pytest.raises(TrainingError, match="no checkpoint"):
        resume(tmp_path / "nothing-here")
    more = resume(out, model=TinyNet(), data=make_dataset(), epochs=2)  # train longer
    assert [r["epoch"] for r in more.history] == [1, 2]


def test_module_entry_sigint_exits_130_and_resumes(tmp_path):
    """`python -m cnnlab.train` (= `cnnlab train`): Ctrl-C -> checkpoint, resume hint, exit 130."""
    root = write_idx_dataset(tmp_path / "fashion-mnist")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "cnnlab.train", "--model", "lenet", "--data-root", str(root),
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
    res = subprocess.run(cmd[:3] + ["--resume", str(out), "--epochs", str(done), "--no-report"],
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
