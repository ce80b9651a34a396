"""Data parallel training: `torchrun --nproc_per_node 2` on the CPU (gloo) against one process.

Tolerance: the two runs see the same global batches, but DDP averages two per-rank mean
gradients where one process takes one mean, so float32 sums are added in another order.
After 14 SGD steps the weights agree to 1e-5 (absolute) and the metrics to 1e-5 (relative).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _trainkit import write_idx_dataset

from cnnlab.checkpoint import load_checkpoint
from cnnlab.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
ARGS = dict(model="lenet", batch_size=64, lr=0.5, momentum=0.9, threads=1, device="cpu",
            progress="plain", plot=False, deterministic=True, amp="off")


def flags(d: dict) -> list[str]:
    out = []
    for k, v in d.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + flag[2:])
        else:
            out += [flag, str(v)]
    return out


def torchrun(*args: str) -> subprocess.CompletedProcess:
    launcher = [str(TORCHRUN)] if TORCHRUN.exists() else [sys.executable, "-m",
                                                           "torch.distributed.run"]
    cmd = launcher + ["--standalone", "--nproc_per_node", "2", "-m", "cnnlab", "train", *args,
                      "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_torchrun_two_cpu_processes_match_one_process_and_resume(tmp_path):
    root = write_idx_dataset(tmp_path / "fashion-mnist")  # 400 train, 100 test samples
    out = tmp_path / "ddp"
    # Two processes, one epoch; then the same two resume the run for a second epoch.
    first = torchrun(*flags({**ARGS, "epochs": 1, "data_root": root}), "--out", str(out))
    assert "device cpu x2" in first.stderr
    assert first.stdout.count("test accuracy:") == 1  # only rank 0 reports
    second = torchrun("--resume", str(out), "--epochs", "2", "--progress", "plain")
    assert "resuming lenet" in second.stderr and "from the end of epoch 1" in second.stderr

    config = TrainConfig(**{**ARGS, "epochs": 2, "data_root": str(root), "progress": "none"})
    single = train("lenet", None, config, out_dir=tmp_path / "single")

    ddp_state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ddp_state["world_size"] == 2 and ddp_state["epoch"] == 2
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state["model"][k], v, atol=1e-5, rtol=0, msg=k)
    result = json.loads((out / "result.json").read_text())
    for a, b in zip(ddp_state["history"], single.history):
        assert a["step"] == b["step"]  # 7 global steps of 64 (the last of 16) per epoch
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), key
    assert result["test_acc"] == pytest.approx(single.test_acc, abs=1e-9)
    # Only rank 0 writes: one TensorBoard file per launch, no stray temporaries.
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert not list(out.rglob("*.tmp"))


def test_resume_hint_under_torchrun_repeats_the_torchrun_line(tmp_path, monkeypatch):
    from cnnlab.train import resume_hint

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert resume_hint(tmp_path) == f"cnnlab train --resume {tmp_path}"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resume_hint(tmp_path) == (
        f"torchrun --nproc_per_node 2 -m cnnlab train --resume {tmp_path}")
    monkeypatch.setenv("WORLD_SIZE", "8")  # two machines of four
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resume_hint(tmp_path).startswith("torchrun --nnodes 2 --nproc_per_node 4 -m cnnlab")
    assert resume_hint(tmp_path / "nothing") == ""  # no checkpoint, no hint
