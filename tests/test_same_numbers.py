"""Restructuring changes no number: a small seeded run trained by the code before the refactor
of issue 22 (commit BEFORE, from git history) and by the code here gives bitwise the same
metrics, and writes the same files in its run folder.

Both runs are subprocesses with their own PYTHONPATH, so each imports its own cnnlab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from _trainkit import write_idx_dataset

REPO = Path(__file__).resolve().parents[1]
BEFORE = "9058158"  # main before "one owner for a run's inputs" (issue 22)

# float32, one thread, a few batches: resize, normalization, a validation split carved from
# train, subsets of train and test, flips and crops, momentum and a cosine schedule.
SCRIPT = r"""
import json, sys, torch
from cnnlab.train import TrainConfig, train
root, out = sys.argv[1], sys.argv[2]
cfg = TrainConfig(dataset="fashion-mnist", data_root=root, epochs=2, batch_size=32, lr=0.05,
                  momentum=0.9, schedule="cosine", resize=(32, 32), normalize=True,
                  augment_crop=2, augment_flip=True, val_size=0.2, train_samples=200,
                  test_samples=60, limit_batches=4, threads=1, amp="off", seed=3,
                  progress="none", tensorboard=False, plot=True, device="cpu")
r = train("lenet_modern", None, cfg, out_dir=out)
timing = ("seconds", "train_seconds", "images_per_second", "threads")
rows = [{k: v for k, v in row.items() if k not in timing} for row in r.history]
weights = torch.cat([p.detach().flatten() for p in r.model.state_dict().values()
                     if p.is_floating_point()])
print(json.dumps({"history": rows, "test_acc": r.test_acc, "test_loss": r.test_loss,
                  "best_epoch": (r.best or {}).get("epoch"), "config": r.config.to_dict(),
                  "weights": weights.double().sum().item(), "first": weights[:8].tolist()}))
"""


def _run(pythonpath: Path, root: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{pythonpath}{os.pathsep}{REPO / 'tests'}",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(root), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                  if p.is_file() and p.name != ".lock")


def test_a_seeded_run_gives_the_same_numbers_and_files_as_before(tmp_path: Path) -> None:
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE, "cnnlab"],
                                 capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"git is not available to fetch the code before the refactor: {err}")
    if archive.returncode != 0:
        pytest.skip(f"git history lacks commit {BEFORE} (a shallow clone or an exported tree): "
                     f"{archive.stderr.decode(errors='replace').strip()[:200]}")
    old = tmp_path / "before"
    old.mkdir()
    archive_path = tmp_path / "before.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        tar.extractall(old, filter="data")
    root = write_idx_dataset(tmp_path / "data", n_train=300, n_test=100)
    before = _run(old, root, tmp_path / "run-before")
    after = _run(REPO, root, tmp_path / "run-after")
    for name in ("data_root",):  # the same value, spelled by each process
        before["config"].pop(name), after["config"].pop(name)
    assert after == before  # bitwise: json writes floats with every digit (repr)
    assert len(before["history"]) == 2 and before["history"][-1]["val_images"] == 60
    assert _files(tmp_path / "run-after") == _files(tmp_path / "run-before")
