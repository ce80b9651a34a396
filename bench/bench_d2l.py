"""The book's training cell, d2l 1.0.3 vs the cnnlab drop-in, side by side in one run.

    .venv/bin/python bench/bench_d2l.py [--data DIR] [--model lenet|vgg|resnet18] [--epochs N]
        [--limit-batches N] [--threads N] [--d2l-python PY]

Both sides run the same code (the book's `Trainer(max_epochs, num_gpus=1).fit(model,
FashionMNIST(batch_size=128, resize))` after `apply_init` with the book's init_cnn), each in a
fresh subprocess with the same torch thread count. The reference is
/work/shared/bench/d2l_reference/run.py in the d2l venv (its progress board switched off: outside
Jupyter it only prints a figure repr); the drop-in keeps its board on (it writes a PNG).
With --limit-batches N each epoch stops after N training batches and validation is skipped on
both sides, so 96/224 px runs fit in a CPU budget. Prints one JSON line per side and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF_RUN = Path("/work/shared/bench/d2l_reference/run.py")
REF_PY = Path("/work/refvenv/.d2l-venv/bin/python")

# The drop-in side: run.py's code with `from cnnlab import d2l` and cnnlab's book models.
OURS = r"""
import json, sys, time
import torch
from torch import nn
from cnnlab import d2l

model_name, epochs, limit, data_dir, out_dir = sys.argv[1:6]
epochs, limit = int(epochs), int(limit)
d2l.set_output_dir(out_dir)

def init_cnn(module):
    if type(module) == nn.Linear or type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)

if limit:
    _prepare = d2l.Trainer.prepare_data
    def prepare_data(self, data):
        _prepare(self, data)
        self.num_train_batches = min(self.num_train_batches, limit)
    d2l.Trainer.prepare_data = prepare_data
    def fit_epoch(self):  # stop each epoch after N train batches; skip validation (as run.py)
        self.model.train()
        for i, batch in enumerate(self.train_dataloader):
            if i == limit:
                break
            batch = self.prepare_batch(batch)
            self.batch_weight = len(batch[-1])
            loss = self.model.training_step(batch)
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
            self.train_batch_idx += 1
    d2l.Trainer.fit_epoch = fit_epoch

torch.manual_seed(0)
make, resize = {"lenet": (lambda: d2l.LeNet(lr=0.1), (28, 28)),
                "vgg": (lambda: d2l.VGG(arch=((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)),
                                        lr=0.01), (224, 224)),
                "resnet18": (lambda: d2l.ResNet18(lr=0.01), (96, 96))}[model_name]
trainer = d2l.Trainer(max_epochs=epochs, num_gpus=1)
data = d2l.FashionMNIST(batch_size=128, resize=resize, root=data_dir)
model = make()
model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)
t0 = time.perf_counter()
trainer.fit(model, data)
seconds = time.perf_counter() - t0
batches = limit or len(data.train_dataloader())
val_acc = None if limit else model.board.data["val_acc"][-1].y
print(json.dumps({"model": model_name, "epochs": epochs, "train_batches_per_epoch": batches,
                  "seconds": round(seconds, 2), "seconds_per_epoch": round(seconds / epochs, 3),
                  "val_acc": val_acc,
                  "images_per_second": round(batches * 128 * epochs / seconds, 1)}))
"""


def run(cmd: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=str(REPO))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:2])} ...\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/fashion-mnist")
    p.add_argument("--model", choices=["lenet", "vgg", "resnet18"], default="lenet")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-batches", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--d2l-python", type=Path, default=REF_PY)
    args = p.parse_args()
    limit = ["--limit-batches", str(args.limit_batches)] if args.limit_batches else []
    ref = run([str(args.d2l_python), str(REF_RUN), str(args.data), "--model", args.model,
               "--epochs", str(args.epochs), *limit], args.threads)
    with tempfile.TemporaryDirectory() as out:
        ours = run([sys.executable, "-c", OURS, args.model, str(args.epochs),
                    str(args.limit_batches), str(args.data), out], args.threads)
    print("d2l 1.0.3  ", json.dumps(ref))
    print("cnnlab.d2l ", json.dumps(ours))
    print(f"speed-up (d2l seconds / cnnlab.d2l seconds): {ref['seconds'] / ours['seconds']:.2f}x"
          f"  [{args.model}, {args.epochs} epoch(s), threads={args.threads}]")


if __name__ == "__main__":
    main()
