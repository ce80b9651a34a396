"""The d2l drop-in: the book's chapter 7-8 cells run unchanged against `from cnnlab import d2l`.

tests/book_cells/*.py are the book's PyTorch cells with only the import line changed;
tests/book_cells/expected/*.txt is what the book's own d2l 1.0.3 prints for them
(make_expected.py regenerates it in the reference venv). Fits run on small synthetic IDX files
written here (the book's code reads them through $CNNLAB_DATA, unchanged).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import runpy
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab import d2l
from cnnlab.d2l import _base
from cnnlab.errors import ConfigError

CELLS = Path(__file__).parent / "book_cells"
EXPECTED = CELLS / "expected"


# --- fixtures: small learnable data, one thread, pictures in a temporary folder ------------------


def _write_idx(path: Path, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(struct.pack(">I", 0x0800 + arr.ndim))
        f.write(struct.pack(f">{arr.ndim}I", *arr.shape))
        f.write(arr.tobytes())


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c is a bright 10x5 patch at one of 10 places on a noisy background."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 10
    g.shuffle(y)
    x = g.integers(0, 60, (n, 28, 28))
    for i, c in enumerate(y):
        r, col = divmod(int(c), 5)
        x[i, 2 + 12 * r: 12 + 12 * r, 1 + 5 * col: 6 + 5 * col] += 180
    return x.clip(0, 255), y


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$CNNLAB_DATA with 512 train / 256 test synthetic images for fashion-mnist and mnist."""
    root = tmp_path_factory.mktemp("d2l_data")
    for name in ("fashion-mnist", "mnist"):
        folder = root / name
        folder.mkdir()
        for prefix, n, seed in (("train", 512, 0), ("t10k", 256, 1)):
            x, y = _synthetic(n, seed)
            _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
            _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


@pytest.fixture(autouse=True)
def env(small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Book code finds the small data; pictures go to tmp_path; the book's patches are undone."""
    monkeypatch.setenv("CNNLAB_DATA", str(small_root))
    monkeypatch.setenv("CNNLAB_D2L_DIR", str(tmp_path))
    # On a shared 2-core machine one intra-op thread is several times faster than two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    saved = dict(vars(d2l.Classifier))  # ch07_6 re-defines layer_summary with add_to_class
    torch.manual_seed(0)
    yield tmp_path
    for k in set(vars(d2l.Classifier)) - set(saved):
        delattr(d2l.Classifier, k)
    for k, v in saved.items():
        if vars(d2l.Classifier).get(k) is not v:
            setattr(d2l.Classifier, k, v)
    torch.set_num_threads(threads)


_RUNS: dict[str, tuple[dict, str]] = {}


def run_cell_once(name: str) -> tuple[dict, str]:
    """run_cell, cached: the ch. 8 cells build big models, and two tests read each one."""
    if name not in _RUNS:
        _RUNS[name] = run_cell(name)
    return _RUNS[name]


def run_cell(name: str, ns: dict | None = None) -> tuple[dict, str]:
    """Run a book cell file (in `ns` when given); return its globals and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(str(CELLS / f"{name}.py"), init_globals=ns, run_name="__book__")
    return ns, out.getvalue()


def expected(name: str) -> str:
    return (EXPECTED / f"{name}.txt").read_text()


def png_ok(path: Path) -> tuple[int, int]:
    """The size of a PNG that exists and decodes completely."""
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


# --- chapter 7 ---------------------------------------------------------------------------------


def test_7_2_conv_layer_prints_what_the_book_prints():
    ns, out = run_cell("ch07_2_conv_layer")
    lines, book = out.splitlines(), expected("ch07_2_conv_layer").splitlines()
    # Everything but the training printout (which depends on the random kernel) is identical.
    random_lines = ("epoch", "tensor([[ 1.0")
    deterministic = [i for i, ln in enumerate(book) if not ln.startswith(random_lines)]
    assert [lines[i] for i in deterministic] == [book[i] for i in deterministic]
    # The drop-in's corr2d is the book's, and the Conv2d learned the edge detector [1, -1].
    X, K = torch.rand(5, 7), torch.rand(2, 3)
    torch.testing.assert_close(d2l.corr2d(X, K), ns["corr2d"](X, K))
    losses = [float(ln.split()[-1]) for ln in lines if ln.startswith("epoch")]
    assert len(losses) == 5 and losses[-1] < losses[0] / 10
    torch.testing.assert_close(ns["conv2d"].weight.data.reshape(2), torch.tensor([1.0, -1.0]),
                               atol=0.1, rtol=0)


def test_7_2_scratch_conv2d_learns_through_d2l_corr2d():
    """corr2d is differentiable in both arguments (the book's Conv2D trains through it)."""
    X, K = torch.rand(6, 8, requires_grad=True), torch.rand(1, 2, requires_grad=True)
    d2l.corr2d(X, K).sum().backward()
    assert X.grad.shape == (6, 8) and K.grad.shape == (1, 2)
    torch.testing.assert_close(K.grad[0, 0], X.detach()[:, :7].sum())


@pytest.mark.parametrize("name", ["ch07_3_padding", "ch07_4_channels", "ch07_5_pooling"])
def test_7_3_to_7_5_print_what_the_book_prints(name: str):
    _, out = run_cell(name)
    assert out == expected(name)


def test_7_6_lenet_summary_and_tiny_fit(env: Path, capsys: pytest.CaptureFixture[str]):
    ns, out = run_cell("ch07_6_lenet")
    assert out == expected("ch07_6_lenet")
    assert "Linear output shape:\t torch.Size([1, 10])" in out
    ns, _ = run_cell("ch07_6_lenet_fit", ns)
    data, model = ns["data"], ns["model"]
    assert len(data.train) == 512 and len(data.val) == 256
    board = model.board.data
    # 4 batches an epoch, 2 train points per epoch, 1 validation point per epoch.
    assert [len(board[k]) for k in ("train_loss", "val_loss", "val_acc")] == [20, 10, 10]
    assert [p.x for p in board["val_acc"]] == list(range(1, 11))
    losses = [p.y for p in board["train_loss"]]
    assert all(math.isfinite(v) for v in losses)
    # The book's sigmoid LeNet sits on a plateau for its first ~500 steps; over 40 steps the
    # loss still falls from its initial value.
    assert losses[-1] < losses[0]
    assert all(0 <= p.y <= 1 for p in board["val_acc"])
    w, h = png_ok(env / "LeNet_progress.png")
    assert w > 100 and h > 100
    # Outside Jupyter: where the picture goes, once, then one plain line per epoch on stderr
    # with the values the board plotted (stdout stays the book's).
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"LeNet: the progress board is drawn to {env / 'LeNet_progress.png'}"
    epochs = [line for line in err if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{e}/10" for e in range(1, 11)]
    for line, point in zip(epochs, board["val_acc"]):
        assert f"val_acc {point.y:.4f}" in line and "train_loss " in line


def _default_bound(w: torch.Tensor) -> float:
    """PyTorch's default weight init, kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), +...)."""
    return 1 / math.sqrt(w[0].numel())


def _xavier_bound(w: torch.Tensor) -> float:
    fan_in = w[0].numel()
    return math.sqrt(6 / (fan_in + w.shape[0] * fan_in // w.shape[1]))


def test_7_6_init_cnn_is_the_books_and_init_cnn_lazy_opts_into_xavier():
    ns, _ = run_cell("ch07_6_lenet")
    for init, xavier in ((ns["init_cnn"], False), (d2l.init_cnn, False),
                         (d2l.init_cnn_lazy, True)):
        net = nn.Sequential(nn.LazyLinear(10))
        net.apply(init)  # before the first forward: the weight has no shape yet
        net(torch.randn(2, 1000))
        w = net[0].weight
        top = w.abs().max().item()
        if xavier:
            assert 0.9 * _xavier_bound(w) < top <= _xavier_bound(w)  # sqrt(6 / 1010)
            assert not net[0]._forward_pre_hooks  # the deferred-init hook removed itself
        else:  # d2l's init_cnn did nothing: torch's default bound 1/sqrt(1000)
            assert 0.9 * _default_bound(w) < top <= _default_bound(w)
    net = nn.Sequential(nn.LazyLinear(10))
    net(torch.randn(2, 1000))
    net.apply(d2l.init_cnn_lazy)  # on a layer that already has weights: plain Xavier
    assert net[0].weight.abs().max().item() <= _xavier_bound(net[0].weight)


# --- chapter 8 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ch08_1_alexnet", "ch08_2_vgg", "ch08_3_nin",
                                  "ch08_4_googlenet", "ch08_6_resnet", "ch08_7_densenet"])
def test_8_models_print_the_books_layer_summaries(name: str):
    ns, out = run_cell_once(name)
    assert out == expected(name)


@pytest.mark.parametrize("make", [
    lambda: run_cell_once("ch08_1_alexnet")[0]["AlexNet"](),
    lambda: run_cell_once("ch08_7_densenet")[0]["DenseNet"](),
    lambda: d2l.AlexNet(), lambda: d2l.DenseNet()], ids=["book-alexnet", "book-densenet",
                                                       "alexnet", "densenet"])
def test_8_lazy_models_keep_torchs_default_init_as_d2l_does(make):
    # The book's AlexNet/DenseNet (and RegNet) call net.apply(d2l.init_cnn) before their Lazy
    # layers have weights; in d2l 1.0.3 that does nothing, so every conv and linear weight is
    # torch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std bound/sqrt(3), not Xavier.
    torch.manual_seed(0)
    model = make()
    model(torch.randn(1, 1, 96, 96))
    layers = [m for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    assert len(layers) >= 8
    for m in layers:
        w, bound = m.weight.detach(), _default_bound(m.weight)
        assert w.abs().max().item() <= bound
        if w.numel() >= 2000:  # enough samples for the std to be within a few percent
            assert abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.1, m
    first = layers[0].weight  # AlexNet 11x11 conv: default bound 0.091, Xavier only 0.023
    assert first.abs().max().item() > 2 * _xavier_bound(first)


# The drop-in's own classes equal the book's cells: same parameters, same init, same outputs.
PAIRS = [
    ("ch07_6_lenet", "LeNet", (), (2, 1, 28, 28)),
    ("ch08_1_alexnet", "AlexNet", (), (2, 1, 96, 96)),
    ("ch08_2_vgg", "VGG", (((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)),), (2, 1, 64, 64)),
    ("ch08_3_nin", "NiN", (), (2, 1, 96, 96)),
    ("ch08_4_googlenet", "GoogleNet", (), (2, 1, 96, 96)),
    ("ch08_5_batch_norm", "BNLeNet", (), (2, 1, 28, 28)),
    ("ch08_6_resnet", "ResNet18", (), (2, 1, 96, 96)),
    ("ch08_6_resnet", "Residual", (6, True, 2), (2, 3, 6, 6)),
    ("ch08_6_resnet", "ResNeXtBlock", (32, 16, 1, True, 2), (2, 32, 12, 12)),
    ("ch08_7_densenet", "DenseNet", (), (2, 1, 96, 96)),
]


@pytest.mark.parametrize(("cell", "cls", "args", "shape"), PAIRS,
                         ids=[p[1] for p in PAIRS])
def test_8_dropin_models_equal_the_books(cell, cls, args, shape):
    book = run_cell_once(cell)[0]
    X = torch.randn(*shape)  # noqa: N806
    outs, states = [], []
    for make in (book[cls], getattr(d2l, cls)):
        torch.manual_seed(1)
        model = make(*args)
        model(X)  # materialize the Lazy layers (and their deferred init)
        model.eval()
        outs.append(model(X))
        states.append(model.state_dict())
    assert list(states[0]) == list(states[1])
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], rtol=0, atol=0, msg=k)
    torch.testing.assert_close(outs[0], outs[1])


def test_8_5_batch_norm_fits_above_chance(env: Path):
    ns, _ = run_cell("ch08_5_batch_norm")
    ns, out = run_cell("ch08_5_batch_norm_fit", ns)
    model = ns["model"]  # the second fit: BNLeNet with nn.LazyBatchNorm
    acc = [p.y for p in model.board.data["val_acc"]]
    assert len(acc) == 10 and acc[-1] > 0.5, acc  # chance is 0.1
    assert "grad_fn" in out  # the cell prints the scratch model's learned gamma and beta
    png_ok(env / "BNLeNet_progress.png")
    png_ok(env / "BNLeNetScratch_progress.png")


def test_fit_trains_on_the_cores_a_busy_neighbour_leaves(env: Path):
    """The engine's load-aware thread policy: with a process spinning on one core, the book's
    fit trains on one thread fewer than torch's setting, which it puts back afterwards."""
    import subprocess
    import sys
    import time

    seen: list[int] = []

    class Probe(d2l.LeNet):
        def training_step(self, batch):
            seen.append(torch.get_num_threads())
            return super().training_step(batch)

    torch.set_num_threads(2)  # (the env fixture restores the test session's setting)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # the neighbour is spinning before the policy's first look
        data = d2l.FashionMNIST(batch_size=128)
        d2l.Trainer(max_epochs=1).fit(Probe(lr=0.1), data)
        assert seen and set(seen) == {1}, seen
        assert torch.get_num_threads() == 2
        seen.clear()  # deterministic algorithms: a fixed thread count, whatever the load
        torch.use_deterministic_algorithms(True)
        try:
            d2l.Trainer(max_epochs=1).fit(Probe(lr=0.1), data)
        finally:
            torch.use_deterministic_algorithms(False)
        assert seen and set(seen) == {2}, seen
    finally:
        busy.kill()
        busy.wait()


# --- the engine underneath: sample-weighted metrics, no wasted syncs, pictures -----------------


class _Fixed(d2l.Classifier):
    """Predicts class 0 for inputs > 0, class 1 otherwise (of 10 classes)."""

    def __init__(self):
        super().__init__()
        self.lr = 0.0
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, X):  # noqa: N803
        s = (X.reshape(len(X), -1)[:, :1] > 0).float()
        return torch.cat([s, 1 - s, torch.zeros(len(X), 8)], dim=1) + 0 * self.w


class _Tensors(d2l.DataModule):
    def __init__(self, X, y, batch_size):  # noqa: N803
        super().__init__()
        self.save_hyperparameters()

    def get_dataloader(self, train):
        return self.get_tensorloader((self.X, self.y), False)


def test_validation_accuracy_is_sample_weighted():
    # Two batches: [right, right] then [wrong]. The book's mean of batch means says 0.5.
    X, y = torch.tensor([[1.0], [1.0], [1.0]]), torch.tensor([0, 0, 1])  # noqa: N806
    model = _Fixed()
    model.board.display = False
    d2l.Trainer(max_epochs=1).fit(model, _Tensors(X, y, batch_size=2))
    assert model.board.data["val_acc"][0].y == pytest.approx(2 / 3)
    losses = model.loss(model(X), y, averaged=False)
    assert model.board.data["val_loss"][0].y == pytest.approx(losses.mean().item())


def test_board_averages_every_n_and_keeps_tensors_until_then(env: Path):
    board = d2l.ProgressBoard("x")
    board.save_every = 0
    for i, x in enumerate(np.arange(0, 2, 0.5)):
        board.draw(x, torch.tensor(float(i)), "t", every_n=2, weight=1 + i % 2)
    assert board.data["t"] == [_base.Point(0.25, 2 / 3), _base.Point(1.25, 8 / 3)]
    board.draw(0, torch.tensor(5.0), "t", every_n=2)
    assert isinstance(board.raw_points["t"][0][1], torch.Tensor)  # no read-back yet
    assert png_ok(env / "progress.png")
    custom = board.save(env / "sub" / "mine.png")
    assert png_ok(custom)


def test_board_throttles_saves_and_flushes(env: Path):
    board = d2l.ProgressBoard(path=env / "b.png")
    board.draw(0, 1.0, "a")
    mtime = (env / "b.png").stat().st_mtime_ns
    board.draw(1, 2.0, "a")  # within save_every: held back
    assert board._pending and (env / "b.png").stat().st_mtime_ns == mtime
    board.draw(2, 3.0, "a")
    _base._flush_at_exit()  # what runs when the script ends
    assert not board._pending and (env / "b.png").stat().st_mtime_ns > mtime
    quiet = d2l.ProgressBoard(display=False, path=env / "never.png")
    quiet.draw(0, 1.0, "a")
    assert quiet.data["a"] == [_base.Point(0, 1.0)] and not (env / "never.png").exists()


# --- data ---------------------------------------------------------------------------------------


def test_fashion_mnist_as_the_book_uses_it(env: Path):
    data = d2l.FashionMNIST(batch_size=64, resize=(32, 32))
    assert (len(data.train), len(data.val)) == (512, 256)
    x0, y0 = data.val[0]
    assert x0.shape == (1, 32, 32) and isinstance(y0, int)
    X, y = next(iter(data.val_dataloader()))  # noqa: N806
    assert X.shape == (64, 1, 32, 32) and X.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(X[0], x0)  # __getitem__ resizes exactly as the loader does
    assert 0 <= X.min() and X.max() <= 1
    assert data.text_labels([0, 9, 5]) == ["t-shirt", "ankle boot", "sandal"]
    assert len(data.train_dataloader()) == 8
    data.visualize((X, y))
    assert png_ok(env / "images.png")[0] > 400  # 8 images * 1.5 in * ~110 dpi


def test_loader_order_follows_torch_seed_and_epoch():
    data = d2l.FashionMNIST(batch_size=128)
    firsts = []
    for _ in range(2):
        torch.manual_seed(3)
        firsts.append(next(iter(data.get_dataloader(True)))[1])
    torch.testing.assert_close(firsts[0], firsts[1])
    loader = data.get_dataloader(True)
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[1], next(loader.batches(0))[1])


def test_mnist_and_explicit_root(small_root: Path):
    data = d2l.MNIST(batch_size=32, resize=14, root=small_root / "mnist")
    X, y = next(iter(data.train_dataloader()))  # noqa: N806
    assert X.shape == (32, 1, 14, 14)
    assert data.text_labels([3, 7]) == ["3", "7"]
    assert data.train.data.dtype == torch.uint8 and data.train.targets.shape == (512,)


def test_bad_resize_is_a_config_error():
    with pytest.raises(ConfigError, match="resize"):
        d2l.FashionMNIST(resize=0).get_dataloader(True)


# --- the rest of the book's API -----------------------------------------------------------------


def test_hyperparameters_and_add_to_class():
    class A(d2l.HyperParameters):
        def __init__(self, a, b=2, _hidden=3, c=4):
            self.save_hyperparameters(ignore=["c"])

    a = A(1)
    assert a.hparams == {"a": 1, "b": 2} and (a.a, a.b) == (1, 2) and not hasattr(a, "c")

    @d2l.add_to_class(A)
    def twice(self):
        return 2 * self.a

    assert a.twice() == 2


def test_apply_init_and_optimizer():
    model = d2l.LeNet(lr=0.05)
    assert model.hparams == {"lr": 0.05, "num_classes": 10}
    model.apply_init([torch.randn(2, 1, 28, 28)], d2l.init_cnn)
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.05
    fc = model.net[-1]
    assert fc.weight.shape == (10, 84)
    assert fc.weight.abs().max() <= math.sqrt(6 / 94)


def test_clip_gradients_bounds_the_global_norm():
    model = nn.Linear(4, 3)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    d2l.Trainer(max_epochs=1, gradient_clip_val=0.5).clip_gradients(0.5, model)
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert norm.item() == pytest.approx(0.5, rel=1e-4)


def test_trainer_makes_batches_on_its_device_unless_loaders_are_overridden():
    class Own(d2l.FashionMNIST):
        def get_dataloader(self, train):
            return super().get_dataloader(train)

    cpu = torch.device("cpu")  # stands in for an accelerator on this machine
    assert Own(batch_size=256)._loaders_on(cpu) is None  # the user's override is respected
    for data in (d2l.FashionMNIST(batch_size=256), Own(batch_size=256)):
        trainer = d2l.Trainer(max_epochs=1)
        trainer.gpus = [cpu]
        model = _Fixed()
        model.board.display = False
        trainer.fit(model, data)
        assert trainer.train_dataloader.device == cpu and len(trainer.train_dataloader) == 2
        assert len(model.board.data["val_acc"]) == 1


def test_trainer_accepts_num_gpus_without_gpus():
    trainer = d2l.Trainer(max_epochs=1, num_gpus=4)
    assert trainer.gpus == [d2l.gpu(i) for i in range(d2l.num_gpus())][:4]


def test_devices_cuda_mps_and_cpu(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_base, "_mps", lambda: False)
    assert d2l.cpu() == torch.device("cpu") and d2l.num_gpus() == 0
    assert d2l.try_gpu() == d2l.cpu() and d2l.try_all_gpus() == [d2l.cpu()]
    monkeypatch.setattr(_base, "_mps", lambda: True)
    assert d2l.num_gpus() == 1 and d2l.gpu() == torch.device("mps")
    assert d2l.try_gpu() == torch.device("mps") and d2l.try_gpu(1) == d2l.cpu()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert d2l.try_all_gpus() == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert d2l.gpu(1) == torch.device("cuda:1")


def test_book_tensor_aliases_and_plt():
    assert d2l.reshape(d2l.arange(6), (2, 3)).shape == (2, 3)
    assert d2l.reduce_sum(d2l.ones(3)).item() == 3
    assert d2l.numpy(d2l.tensor([1.0])).tolist() == [1.0]
    assert d2l.nn_Module is nn.Module
    assert hasattr(d2l.plt, "figure")
    with pytest.raises(AttributeError):
        d2l.no_such_thing  # noqa: B018


# --- the book's numbers on the real data (slow: full epochs) -------------------------------------


@pytest.mark.slow
def test_book_lenet_and_bn_lenet_on_real_fashion_mnist(data_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    """The book's 7.6 and 8.5 training cells, unchanged, on all of Fashion-MNIST (10 epochs)."""
    monkeypatch.setenv("CNNLAB_DATA", str(data_root))
    ns, _ = run_cell("ch07_6_lenet")
    ns, _ = run_cell("ch07_6_lenet_fit", ns)
    lenet_acc = ns["model"].board.data["val_acc"][-1].y
    assert len(ns["data"].train) == 60000 and len(ns["data"].val) == 10000
    ns, _ = run_cell("ch08_5_batch_norm")
    ns, _ = run_cell("ch08_5_batch_norm_fit", ns)
    bn_acc = ns["model"].board.data["val_acc"][-1].y
    # The book reports about 0.8 for LeNet and about 0.85-0.9 for BN-LeNet after 10 epochs.
    assert lenet_acc > 0.7 and bn_acc > 0.8, (lenet_acc, bn_acc)
