"""The `cnnlab` command line: every README tour command, TrainConfig flags, errors, exit codes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from cnnlab.cli import COMMANDS, build_parser, main, plan_train
from cnnlab.errors import ConfigError, HardInterrupt
from cnnlab.recipes import RECIPES, recipe_table
from cnnlab.runlog import default_run_dir
from cnnlab.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--train-samples", "2048", "--batch-size", "64", "--lr", "0.1",
        "--momentum", "0.9", "--progress", "none", "--no-tensorboard", "--threads", "1"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) in this process: (exit status, stdout, stderr)."""
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- parser, help, settings --------------------------------------------------------------------

@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere_shows_examples(command: str | None,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"cnnlab {command or 'train'} " in out


def test_every_config_field_is_a_flag() -> None:
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    dests = {a.dest for a in train._actions}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields <= dests
    args = train.parse_args(["lenet", "--resize", "96,64", "--no-augment-flip", "--data-root",
                             "none", "--val-size", "0.1", "--optimizer", "adamw"])
    assert (args.resize, args.augment_flip, args.data_root, args.val_size, args.optimizer) == (
        (96, 64), False, None, 0.1, "adamw")
    assert train.parse_args(["x", "--resize", "32"]).resize == (32, 32)
    assert train.parse_args(["x"]).epochs is None  # an absent flag keeps the recipe's value
    assert "[default 'sgd']" in train.format_help()  # help text comes from the field metadata


def test_every_training_flag_says_a_whole_sentence() -> None:
    """Help comes from each field's metadata (no source scraping), one whole sentence each."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    helps = {a.dest: a.help for a in train._actions}
    for f in dataclasses.fields(TrainConfig):
        text = helps[f.name].rpartition(" [default ")[0]
        assert text == f.metadata["help"].replace("%", "%%"), f.name
        assert text.endswith(".") and len(text.split()) >= 3, f"--{f.name}: {text!r}"
    amp = helps["amp"].rpartition(" [default ")[0]
    assert "also on CPUs with native bf16; off is float32" in amp  # it once stopped at "with"
    for name, sub in build_parser()._subparsers._group_actions[0].choices.items():  # type: ignore
        for action in sub._actions:
            if action.dest != "help" and action.help:
                text = action.help.rpartition(" [default ")[0] or action.help
                assert text.endswith("."), f"cnnlab {name} {action.option_strings}: {text!r}"


@pytest.mark.parametrize("argv,says", [
    (["train", "--help"], "[default 0.1; 0.05 for a model name without a recipe]"),
    (["train", "resnet18", "--help"], "[default 0.01 for resnet18]"),  # the recipe of that name
    (["train", "resnet34", "--help"], "[default 0.05 for resnet34]"),  # a model: book defaults
    (["train", "lenet", "--help"], "[default 0.1 for lenet]"),
])
def test_train_help_shows_the_learning_rate_the_run_uses(argv: list[str], says: str,
                                                         capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(argv)
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    lr = out[out.rindex("--lr LR"):]  # the option, not the usage line
    assert lr[:lr.index("--momentum")].rstrip().endswith(says)
    if argv[1] != "--help":
        from cnnlab.recipes import resolve

        assert resolve(argv[1]).config().lr == float(says.split()[1])  # what it really runs


@pytest.mark.parametrize("argv", [["train", "lenet", "--resize", "big"],
                                  ["train", "lenet", "--optimizer", "adam"],
                                  ["summary", "lenet", "--input", "28,28"], ["frobnicate"]])
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def _args(argv: list[str]):
    return build_parser().parse_args(["train", *argv])


def test_settings_precedence_recipe_then_file_then_flags(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "my.toml"
    toml.write_text('recipe = "vgg_small"\nlr = 0.2\nepochs = 3\nresize = [64, 64]\n'
                    'augment-flip = true\n')
    recipe, cfg, out, kwargs = plan_train(_args(["--config", str(toml), "--lr", "0.3"]))
    assert recipe.name == "vgg_small" and cfg.model == "vgg11_small"
    assert (cfg.lr, cfg.epochs, cfg.resize, cfg.augment_flip, cfg.batch_size) == (
        0.3, 3, (64, 64), True, 128)  # flag > file > recipe
    assert kwargs == {}  # the engine sizes the classifier for cfg.resize itself
    assert re.fullmatch(r"runs/vgg_small-\d{8}-\d{6}(-\d+)?", out.as_posix())
    (tmp_path / "t.toml").write_text("[train]\nepochs = 2\n")
    _, cfg, out, _ = plan_train(_args(["lenet", "--config", "t.toml", "--out", "x"]))
    assert (cfg.epochs, cfg.lr, out) == (2, 0.1, Path("x"))
    (tmp_path / "m.toml").write_text('recipe = "lenet"\n[train]\nepochs = 2\n')
    recipe, cfg, _, _ = plan_train(_args(["--config", "m.toml"]))  # top level and [train]
    assert (recipe.name, cfg.epochs) == ("lenet", 2)
    _, cfg, _, kwargs = plan_train(_args(["resnet18_small"]))  # a model, not a recipe
    assert (cfg.model, cfg.resize, kwargs) == ("resnet18_small", (28, 28), {})


def test_model_flag_names_what_to_train_like_the_positional() -> None:
    recipe, cfg, _, _ = plan_train(_args(["--model", "resnet18_small", "--epochs", "1"]))
    assert (recipe.name, cfg.model, cfg.epochs) == ("resnet18_small", "resnet18_small", 1)
    assert plan_train(_args(["lenet", "--model", "lenet"]))[1].model == "lenet"
    with pytest.raises(ConfigError, match="trains 'lenet', not --model 'alexnet'"):
        plan_train(_args(["lenet", "--model", "alexnet"]))


def test_resume_takes_no_model_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(["train", "--resume", str(tmp_path), "--model", "lenet"], capsys)
    assert rc == 2 and "drop --model" in err


def test_module_train_is_the_cli_train_command() -> None:
    """`python -m cnnlab train` is `cnnlab train` (through __main__.py): one parser, one set of
    flags; the engine no longer forwards to the CLI (that made an import cycle)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--help"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]  # a "30%" in a help string crashed it
    assert proc.stdout.startswith("usage: cnnlab train")
    assert "default 30%)." in " ".join(proc.stdout.split()) and "--no-report" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", "lenet", "--epochs", "0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and _lines(proc.stderr) == [
        "cnnlab: error: epochs=0 must be positive"]


@pytest.mark.parametrize(("toml", "message"), [
    ("lr = 0.1\nepoch = 3\n", "unknown setting 'epoch'; did you mean 'epochs'"),
    ("lr = [\n", "not valid TOML"),
    ("lr = -1.0\n", "lr=-1.0 must be positive"),
    ("epochs = 'ten'\n", "epochs='ten' has the wrong type"),
    ("lr = 0.1\n# d\xe9j\xe0 vu\n".encode("latin-1"), "not UTF-8 text (line 2 holds byte 0xe9)"),
    ("epoch = 3\n[train]\nlr = 0.1\n", "unknown setting 'epoch'; did you mean 'epochs'"),
    ("lr = 0.1\n[train]\nlr = 0.2\n", "'lr' is set both at the top level and in [train]"),
    ("[train]\nlr = 0.1\n[trian]\nepochs = 2\n", "unknown table 'trian'"),
    ("train = 3\n", "'train' must be a [train] table"),
    (None, "c.toml is a folder; name a TOML file"),
])
def test_config_file_errors_are_one_line_exit_2(toml: str | bytes | None, message: str,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if toml is None:
        (tmp_path / "c.toml").mkdir()
    else:
        (tmp_path / "c.toml").write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    rc, out, err = run(["train", "lenet", "--config", str(tmp_path / "c.toml"),
                        "--out", str(tmp_path / "run")], capsys)
    assert rc == 2 and out == "" and len(_lines(err)) == 1
    assert err.startswith("cnnlab: error: ") and message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "lenet_modrn"], "'lenet_modrn' is neither a recipe nor a model; did you mean "
                               "'lenet_modern'"),
    (["train"], "name a recipe or a model"),
    (["train", "--config", "missing.toml"], "config file missing.toml does not exist"),
    (["summary", "resnet81"], "unknown model 'resnet81'; did you mean 'resnet18'"),
    (["models", "zzz*"], "no model matches 'zzz*'"),
    (["data", "show", "mnist", "--count", "100000"], "--count 100000 must be from 1 to 256"),
    (["data", "show", "mnist", "--count", "0"], "--count 0 must be from 1 to 256"),
    (["train", "lenet", "--lr", "nan"], "lr=nan is not a finite number"),
    (["train", "lenet", "--lr", "inf"], "lr=inf is not a finite number"),
    (["train", "lenet", "--patience", "2", "--eval-every", "0"], "eval_every=0 never validates"),
    (["eval", "no/such/run"], "run folder no/such/run does not exist"),
    (["data", "verify", "fashion-mnst"], "fashion-mnist"),
    (["train", "lenet", "--resume", "x"], "--resume DIR takes its recipe and settings from DIR"),
])
def test_user_errors_print_one_line_and_exit_2(argv: list[str], message: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(argv, capsys)
    assert (rc, out) == (2, "") and len(_lines(err)) == 1 and message in err, err


def test_default_run_dir_is_fresh_and_under_cwd(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = default_run_dir("lenet")
    assert re.fullmatch(r"runs/lenet-\d{8}-\d{6}", first.as_posix())
    assert first.is_dir()  # claimed by creating it: no other run can take the name
    # Many in the same second (as two processes would) still get one folder each.
    names = {default_run_dir("lenet") for _ in range(20)} | {first}
    assert len(names) == 21 and all(p.is_dir() for p in names)


def test_interrupted_training_exits_130_with_a_resume_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from cnnlab import train as engine

    def interrupted(*args, **kwargs):
        raise engine.TrainingInterrupted(
            "training interrupted at epoch 1, step 3; checkpoint saved; resume with: "
            f"cnnlab train --resume {tmp_path}", tmp_path)

    monkeypatch.setattr(engine, "train", interrupted)
    rc, out, err = run(["train", "lenet", "--out", str(tmp_path)], capsys)
    assert rc == 130 and err.count(f"cnnlab train --resume {tmp_path}") == 1

    def ctrl_c_twice(*args, **kwargs):
        raise HardInterrupt(signal.SIGTERM, tmp_path)

    monkeypatch.setattr(engine, "train", ctrl_c_twice)
    rc, out, err = run(["train", "lenet", "--out", str(tmp_path)], capsys)
    assert rc == 143 and _lines(err)[-1] == "cnnlab: interrupted"  # no checkpoint: no hint
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    rc, out, err = run(["train", "lenet", "--out", str(tmp_path)], capsys)
    assert rc == 143
    assert _lines(err)[-1] == f"cnnlab: interrupted; resume with: cnnlab train --resume {tmp_path}"


# --- listing commands ------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["bn_lenet"], ["resnet18", "--input", "1,28,28"]])
def test_summary_measures_batch_norm_models_at_the_default_batch(
        argv: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", *argv]) == 0  # BatchNorm refused a training step at batch 1
    out, err = capfd.readouterr()
    assert "Measured peak of one step at batch 1:" in out
    assert err == ""  # no "USDT: ... profiler_start" lines from the profiler
    assert main(["summary", *argv, "--no-measure"]) == 0
    out, err = capfd.readouterr()
    assert "Memory estimate:" in out and "Measured peak" not in out and err == ""


def test_models_lists_the_zoo_with_sizes_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["models", "*net"], capsys)  # a pattern keeps it quick; all: no pattern
    rows = {line.split()[0]: line.split()[1:] for line in _lines(out)[1:]}
    assert rc == 0 and rows["lenet"] == ["1,28,28", "61,706"]  # the book's LeNet-5
    assert rows["alexnet"] == ["1,224,224", "46,764,746"]  # 1 channel in, 10 classes out
    assert "resnet18" not in rows and "bn_lenet" in rows
    rc, out, _ = run(["models", "resnet1*", "--format", "markdown"], capsys)
    assert out.startswith("| model |") and "`resnet18`" in out and "lenet" not in out


def test_recipes_lists_every_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["recipes"], capsys)
    names = [line.split()[0] for line in _lines(out) if not line.startswith(" ")]
    assert rc == 0 and names == list(RECIPES)
    assert "lr=0.1" in out and "D2L 7.6" in out and "not yet measured" in out
    rc, out, _ = run(["recipes", "--format", "markdown"], capsys)
    assert out.strip() == recipe_table()


def test_summary_formats(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["summary", "lenet"], capsys)
    assert rc == 0 and "61,706" in out
    rc, out, _ = run(["summary", "lenet", "--format", "json", "--classes", "5"], capsys)
    data = json.loads(out)
    assert data["total_params"] == 61_706 - 5 * 85  # 84*10+10 -> 84*5+5
    rc, out, _ = run(["summary", "resnet18", "--format", "markdown"], capsys)
    assert rc == 0 and "| Layer (type) |" in out and "11,175,370" in out  # at 1x96x96, 10 classes
    rc, out, _ = run(["summary", "resnet18", "--input", "3,64,64", "--classes", "100"], capsys)
    assert rc == 0 and "11,227,812" in out  # 3 input channels, 100 classes


# --- data -----------------------------------------------------------------------------------

def test_data_verify_and_show(data_root: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["data", "verify", "fashion-mnist", "--root", str(data_root)], capsys)
    assert rc == 0 and "fashion-mnist: OK, 60000 train + 10000 test images, 10 classes" in out
    assert sum("sha256 matches" in line for line in _lines(out)) == 4
    rc, out, _ = run(["data", "verify", "mnist", "--root", str(data_root)], capsys)
    assert rc == 0 and _lines(out)[-1] == (  # told before comparing 95% with the usual 99%
        "mnist: not the official files: 8,004 of the official 60,000 training images and 1,996 "
        "of 10,000 test images, so accuracy does not compare with published figures")
    rc, out, _ = run(["data", "download", "mnist", "--data-root", str(data_root)], capsys)
    assert rc == 0 and out.startswith("mnist: 8004 train + 1996 test images in ")  # found: no fetch
    png = tmp_path / "grid.png"
    rc, out, _ = run(["data", "show", "mnist", "--root", str(data_root), "--count", "12",
                      "--split", "test", "--out", str(png)], capsys)
    assert rc == 0 and f"12 test images of mnist with their labels: {png}" in out
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 100 and img.std() > 0.05


# --- the tour: train, report, eval, predict, resume, two processes ----------------------------

@pytest.fixture(scope="module")
def trained(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`cnnlab train lenet_modern` for one tiny epoch, run as a user runs it: (folder, stdout)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    os.environ["CNNLAB_DATA"] = str(data_root)
    stdout = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "lenet_modern", *TINY, "--out", str(out)],
        capture_output=True, text=True, check=True, cwd=out.parent).stdout
    return out, stdout


def test_train_prints_accuracy_folder_and_writes_the_report(trained: tuple[Path, str]) -> None:
    run_dir, stdout = trained
    result = json.loads((run_dir / "result.json").read_text())
    assert f"test accuracy: {result['test_acc']:.4f}" in stdout
    assert f"run folder: {run_dir}" in stdout and f"report: {run_dir / 'report.html'}" in stdout
    for name in ("report.html", "confusion.png", "errors.png", "curves.png", "config.json"):
        assert (run_dir / name).is_file()
    assert json.loads((run_dir / "config.json").read_text())["resize"] == [28, 28]


def test_eval_matches_the_trained_accuracy(trained: tuple[Path, str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, _ = trained
    result = json.loads((run_dir / "result.json").read_text())
    rc, out, _ = run(["eval", str(run_dir), "--format", "json"], capsys)
    got = json.loads(out)
    assert rc == 0 and got["n"] == 10_000 and got["checkpoint"] == "last"
    assert got["acc"] == pytest.approx(result["test_acc"], abs=1e-6)
    rc, out, _ = run(["eval", str(run_dir), "--checkpoint", "best"], capsys)
    assert rc == 0 and "[best.pt] on the fashion-mnist test split: accuracy" in out
    # --split: the 2,048 images the run trained on (its train_samples), or what it validated on
    rc, out, _ = run(["eval", str(run_dir), "--split", "train", "--format", "json"], capsys)
    got = json.loads(out)
    assert rc == 0 and got["split"] == "train" and got["n"] == 2048
    assert got["acc"] != pytest.approx(result["test_acc"], abs=1e-6)
    rc, out, _ = run(["eval", str(run_dir), "--split", "val"], capsys)
    assert rc == 0 and "val split (= test: the run validated on it)" in out
    assert f"accuracy {result['test_acc']:.4f}" in out and "10,000 images" in out


def test_predict_image_files(trained: tuple[Path, str], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from cnnlab.data import load_dataset

    run_dir, _ = trained
    ds = load_dataset("fashion-mnist", download=False)
    paths = []
    for i in range(3):  # the dataset's own test images as PNG files, and one as a light JPEG
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(ds.test.images[i].numpy(), "L").save(paths[-1])
    Image.fromarray(255 - ds.test.images[0].numpy(), "L").resize((120, 120)).save(
        tmp_path / "photo.jpg", quality=95)
    paths.append(tmp_path / "photo.jpg")
    rc, out, _ = run(["predict", str(run_dir), *map(str, paths), "--format", "json"], capsys)
    preds = json.loads(out)
    assert rc == 0 and [p["image"] for p in preds] == list(map(str, paths))
    for p in preds:
        probs = [t["prob"] for t in p["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert all(t["class"] in ds.classes for t in p["top"])
    assert preds[3]["top"][0]["class"] == preds[0]["top"][0]["class"]  # inverted + resized back
    rc, out, _ = run(["predict", str(run_dir), str(paths[0]), "--top", "2"], capsys)
    assert re.fullmatch(rf"{re.escape(str(paths[0]))}: [\w -]+ \(\d+\.\d%\)   then [\w -]+ "
                        r"\d+\.\d%\n", out)
    rc, out, err = run(["predict", str(run_dir), str(tmp_path / "none.png")], capsys)
    assert rc == 2 and "does not exist" in err
    rc, out, err = run(["predict", str(run_dir), str(tmp_path)], capsys)  # not "does not exist"
    assert rc == 2 and _lines(err) == [f"cnnlab: error: {tmp_path} is a folder, not an image; "
                                       "give an image file (PNG, JPEG, ...)"]
    from _trainkit import bomb_png

    bomb = bomb_png(tmp_path / "bomb.png", 100_000, 100_000)
    rc, out, err = run(["predict", str(run_dir), str(bomb)], capsys)
    assert rc == 2 and out == "" and len(_lines(err)) == 1 and "decompression bomb" in err


def test_report_command_rewrites_the_report(trained: tuple[Path, str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, _ = trained
    (run_dir / "report.html").unlink()
    rc, out, err = run(["report", str(run_dir)], capsys)
    assert rc == 0 and out.strip() == f"report: {run_dir / 'report.html'}"
    assert err.strip() == "writing report…"  # said before the seconds it takes
    assert "<h2>Per-class accuracy</h2>" in (run_dir / "report.html").read_text()


def test_resume_trains_on_from_the_checkpoint(trained: tuple[Path, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    rc, out, _ = run(["train", "--resume", str(run_dir), "--epochs", "2", "--no-report"], capsys)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rc == 0 and [h["epoch"] for h in history] == [1, 2]
    assert f"run folder: {run_dir}" in out


def test_ctrl_c_checkpoints_then_resume_finishes(data_root: Path, tmp_path: Path) -> None:
    """The tour's "resume a run": Ctrl-C, exit 130 with the hint, then --resume completes it."""
    import signal

    out = tmp_path / "run"
    env = {**os.environ, "CNNLAB_DATA": str(data_root)}
    argv = [sys.executable, "-m", "cnnlab", "train", "lenet_modern", "--epochs", "2",
            "--train-samples", "3200", "--batch-size", "64", "--progress", "plain",
            "--no-tensorboard", "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    assert proc.stderr is not None
    for line in proc.stderr:  # the engine has installed its handler once it says "training"
        if line.startswith("training lenet_modern"):
            proc.send_signal(signal.SIGINT)
            break
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 130, stderr
    assert f"cnnlab train --resume {out}" in stderr and "checkpoint saved" in stderr
    state = json.loads((out / "config.json").read_text())
    assert state["model"] == "lenet_modern" and (out / "checkpoints" / "last.pt").is_file()
    done = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--resume", str(out),
                           "--epochs", "1", "--no-report"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming lenet_modern" in done.stderr and f"run folder: {out}" in done.stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_dry_run_stops_after_one_batch(data_root: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["train", "lenet", "--dry-run", "--progress", "none", "--no-tensorboard",
                      "--data-root", str(data_root), "--out", str(tmp_path / "dry")], capsys)
    result = json.loads((tmp_path / "dry" / "result.json").read_text())
    assert rc == 0 and result["dry_run"] is True and result["final"]["step"] == 1
    assert "dry run OK: one training and one evaluation batch of lenet at 28x28" in out
    assert "test accuracy" not in out
    assert not (tmp_path / "dry" / "report.html").exists()  # nothing worth reporting


def test_two_processes_with_torchrun(data_root: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this python")
    env = {**os.environ, "CNNLAB_DATA": str(data_root)}
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "cnnlab", "train", "lenet_modern",
         "--dry-run", "--progress", "plain", "--no-tensorboard", "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    # On a failure show what the ranks said, not only torchrun's summary at the end (a rare
    # SIGABRT of rank 1 has been seen twice and never reproduced: its own lines name the cause).
    said = [line for line in proc.stderr.splitlines() if "torch/distributed/" not in line]
    assert proc.returncode == 0, "\n".join(said[:60])
    assert "device cpu x2" in proc.stderr  # both processes joined one run
    assert proc.stdout.count("run folder:") == 1  # rank 0 speaks for the run
    assert json.loads((tmp_path / "ddp" / "result.json").read_text())["dry_run"] is True


def test_console_script_and_module_exit_codes(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "summary", "lenett"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert _lines(proc.stderr) == [
        "cnnlab: error: unknown model 'lenett'; did you mean 'lenet', 'alexnet' or 'bn_lenet'?"]
    script = Path(sys.executable).with_name("cnnlab")
    if script.exists():  # the console script pyproject declares
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.startswith("cnnlab ")


def test_cifar10_from_a_tarball_trains_three_channel_models(tmp_path, monkeypatch, capsys):
    """CIFAR-format data: verified, loaded and trained on by the 3-channel zoo models."""
    import hashlib

    from _trainkit import make_cifar_tar

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "cifar10"
    folder.mkdir()
    make_cifar_tar(folder / "cifar-10-python.tar.gz", per_batch=8)
    digest = hashlib.sha256((folder / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text(f"{digest}  cifar-10-python.tar.gz\n")
    rc, out, _ = run(["data", "verify", "cifar10", "--root", str(tmp_path)], capsys)
    assert rc == 0 and "cifar-10-python.tar.gz: sha256 matches SHA256SUMS" in out
    assert "cifar10: OK, 40 train + 8 test images, 10 classes" in out
    common = ["--dataset", "cifar10", "--data-root", str(tmp_path), "--batch-size", "8",
              "--epochs", "1", "--threads", "1", "--progress", "none", "--no-tensorboard",
              "--no-plot", "--no-report"]
    rc, out, _ = run(["train", "fastnet", *common, "--out", str(tmp_path / "fast")], capsys)
    assert rc == 0 and "test accuracy" in out
    config = json.loads((tmp_path / "fast" / "config.json").read_text())
    assert config["dataset"] == "cifar10" and config["resize"] is None  # trained at 32x32
    for model in ("resnet18_small", "resnet18"):
        rc, out, _ = run(["train", model, *common, "--dry-run", "--out", str(tmp_path / model)],
                         capsys)
        assert rc == 0 and "dry run OK" in out and "native size" in out


def test_a_run_that_cannot_fit_in_memory_is_refused_at_once(data_root: Path,
                                                            tmp_path: Path) -> None:
    # Before the guard, this grew to 22.5 GB and was killed by the kernel after a minute.
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO), "CNNLAB_DATA": str(data_root),
           "CNNLAB_AVAILABLE_MEMORY": "64G"}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "lenet_modern", "--resize", "3000,3000",
         "--dry-run", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    seconds = time.monotonic() - start
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    (error,) = _lines(proc.stderr)  # one line: the run header comes only once it fits
    assert re.fullmatch(r"cnnlab: error: lenet_modern at 3000x3000 needs about \d+\.\d GB of "
                        r"memory \(.*training batch of 128 .*\) but 64\.0 GB is available on "
                        r"cpu; lower resize, batch_size or eval_batch_size .*", error), error
    assert not (tmp_path / "run").exists()
    assert seconds < 60  # the process start and the data load; the estimate itself is instant


def test_the_books_lenet_warns_about_its_plateau_and_labels_a_partial_test(
        data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cnnlab train lenet` (the quickstart) says up front that 10% for two epochs is expected;
    under --limit-batches the printed test accuracy says how many images it covers."""
    os.environ["CNNLAB_DATA"] = str(data_root)
    rc, out, err = run(["train", "lenet", "--epochs", "1", "--limit-batches", "1",
                        "--eval-batch-size", "64", "--no-report", "--progress", "plain",
                        "--no-tensorboard", "--no-plot", "--threads", "1",
                        "--out", str(tmp_path / "r")], capsys)
    assert rc == 0
    assert "cnnlab: note: the book's sigmoid LeNet stays at about 10% accuracy for its first " \
           "two epochs" in err
    assert "1 step/epoch, 1 epoch," in err  # counts in words a person writes
    assert re.search(r"test accuracy: 0\.\d{4} \(on 64 of 10,000 test images: "
                     r"--limit-batches\)", out)


# --- run folders: never lost or mixed; output faults are one line ------------------------------

@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic fashion-mnist (400 + 100 images): a run on it takes a second."""
    from _trainkit import write_idx_dataset

    return write_idx_dataset(tmp_path_factory.mktemp("idx") / "fashion-mnist").parent


def _error(stderr: str) -> str:
    """The one error line of a failed command: its last line, no traceback before it."""
    lines = _lines(stderr)
    errors = [ln for ln in lines if ln.startswith("cnnlab: error: ")]
    assert errors == lines[-1:] and "Traceback" not in stderr, stderr
    return errors[0]


def quick(root: Path, *more: str) -> list[str]:
    return ["--data-root", str(root), "--epochs", "1", "--batch-size", "32", "--threads", "1",
            "--progress", "none", "--no-tensorboard", "--no-plot", "--no-report", *more]


def test_run_folder_rules(idx_root: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r")
    assert run(["train", "lenet", *quick(idx_root, "--out", out)], capsys)[0] == 0
    rc, _, err = run(["train", "lenet", *quick(idx_root, "--out", out)], capsys)
    assert rc == 2 and _error(err) == (
        f"cnnlab: error: {out} already holds a run; continue it with --resume {out}, replace it "
        "with --overwrite, or choose another folder (--out)")
    rc, stdout, err = run(["train", "--resume", out], capsys)  # finished: say so, and how to go on
    assert rc == 0 and "test accuracy: " in stdout and f"run folder: {out}" in stdout
    assert "has finished: it trained 1 of 1 epochs" in err
    assert f"cnnlab train --resume {out} --epochs N (N above 1)" in err
    rc, _, err = run(["train", "--resume", out, "--epochs", "2", "--optimizer", "adamw"], capsys)
    assert rc == 2 and "optimizer='sgd'" in _error(err)
    rc, stdout, err = run(["train", "--resume", out, "--from", "best", "--epochs", "2",
                           "--progress", "plain"], capsys)
    assert rc == 0 and "(best.pt)" in err
    assert len((Path(out) / "metrics.jsonl").read_text().splitlines()) == 2
    rc, _, _ = run(["train", "lenet", *quick(idx_root, "--out", out, "--overwrite")], capsys)
    assert rc == 0 and len((Path(out) / "metrics.jsonl").read_text().splitlines()) == 1


def test_no_report_is_remembered_on_resume(idx_root: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    flags = [a for a in quick(idx_root, "--out", str(out), "--limit-batches", "2")
             if a != "--no-report"]
    assert run(["train", "lenet", *flags, "--no-report"], capsys)[0] == 0
    assert json.loads((out / "config.json").read_text())["report"] is False
    rc, stdout, _ = run(["train", "--resume", str(out), "--epochs", "2"], capsys)
    assert rc == 0 and "report:" not in stdout and not (out / "report.html").exists()
    rc, stdout, _ = run(["train", "--resume", str(out), "--epochs", "3", "--report"], capsys)
    assert rc == 0 and f"report: {out / 'report.html'}" in stdout  # a flag still changes it


def test_overwrite_removes_exactly_what_a_run_wrote(idx_root: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """By name: the run's files, its events, its inspection, an export beside its sidecar; the
    user's files in every subfolder, and a `lenet.onnx` cnnlab did not write, survive."""
    out = tmp_path / "r"
    flags = quick(idx_root, "--out", str(out), "--limit-batches", "2")
    with_events = [a for a in flags if a != "--no-tensorboard"]
    assert run(["train", "lenet", *with_events], capsys)[0] == 0
    assert run(["export", str(out), "--format", "torchscript"], capsys)[0] == 0
    (out / "inspect").mkdir()
    for name in ("inspect.html", "filters.png", "filters-conv2.png"):  # what inspect writes
        (out / "inspect" / name).write_text("old")
    mine = {"notes.txt": "a", "lenet.onnx": "mine, no sidecar",
            "checkpoints/epoch5_backup.pt": "b", "checkpoints/my_notes.txt": "c",
            "tensorboard/my_run.txt": "d", "inspect/my.png": "e", "my_folder/x.txt": "f"}
    for name, text in mine.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(text)
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and (out / "lenet.torchscript.pt.json").is_file()
    assert run(["train", "lenet", *flags, "--overwrite"], capsys)[0] == 0
    left = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert left == {*mine, "config.json", "metrics.jsonl", "metrics.csv", "steps.jsonl",
                    "result.json", "checkpoints/last.pt", "checkpoints/best.pt", ".lock"}
    assert all((out / name).read_text() == text for name, text in mine.items())
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--out", ""], '--out "" names no folder'),
    (["--out", "file"], "output folder file is a file; choose a folder"),
    (["--out", "file/run"], "output folder file/run is under the file file"),
    (["--from", "best"], "--from picks the checkpoint of --resume DIR"),
])
def test_bad_output_folders_are_one_line(argv: list[str], message: str, idx_root: Path,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("file").write_text("x")
    rc, out, err = run(["train", "lenet", *quick(idx_root, *argv)], capsys)
    assert (rc, out) == (2, "") and message in _error(err)


def test_read_only_folders_are_one_line(idx_root: Path, tmp_path: Path, read_only,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    done = tmp_path / "done"
    assert run(["train", "lenet", *quick(idx_root, "--out", str(done))], capsys)[0] == 0
    ro = read_only(lambda folder: shutil.copytree(done, folder / "done"))
    rc, out, err = run(["train", "lenet", *quick(idx_root, "--out", str(ro / "new"))], capsys)
    assert rc == 2 and _error(err).startswith(f"cnnlab: error: cannot write {ro / 'new'}: ")
    rc, out, err = run(["report", str(ro / "done")], capsys)
    assert rc == 2 and _error(err).startswith(f"cnnlab: error: cannot write {ro / 'done'}: ")
    assert err.count("\n") == 1  # refused before any evaluation ("writing report...")
    assert not list(ro.rglob("*.tmp"))


def test_a_full_disk_mid_run_in_a_real_process(idx_root: Path, tmpfs) -> None:
    """last.pt (267 kB) fits on a 400 kB disk; best.pt beside it does not."""
    disk = tmpfs("400k")
    out = disk / "run"
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", "lenet",
                           *quick(idx_root, "--out", str(out))], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert _error(proc.stderr) == (
        f"cnnlab: error: cannot write {out}/checkpoints/best.pt: No space left on device; free "
        f"some space or choose another folder; once that is fixed, resume with: cnnlab train "
        f"--resume {out}")
    assert not list(out.rglob("*.tmp")) and (out / "checkpoints" / "last.pt").is_file()


def test_a_run_resumed_after_a_full_disk_ends_as_one_that_never_failed(
        idx_root: Path, tmp_path: Path, tmpfs, capsys: pytest.CaptureFixture[str]) -> None:
    """best.pt fails on a full disk; a resume on the still-full disk fails again with the resume
    hint; after the disk grows, the resume ends with best.pt, result.json, report.html and
    errors.png, as a run that never failed; `eval --checkpoint best` never answers with last.pt."""
    flags = [a for a in quick(idx_root, "--limit-batches", "4") if a != "--no-report"]
    whole = tmp_path / "whole"
    assert run(["train", "lenet", *flags, "--out", str(whole)], capsys)[0] == 0
    disk = tmpfs("400k")
    out = disk / "run"
    rc, _, err = run(["train", "lenet", *flags, "--out", str(out)], capsys)
    assert rc == 2 and "best.pt: No space left" in _error(err)
    assert not (out / "checkpoints" / "best.pt").exists()
    rc, _, err = run(["eval", str(out), "--checkpoint", "best"], capsys)
    assert rc == 2 and _error(err) == (
        f"cnnlab: error: {out}/checkpoints/best.pt is missing although the run validated (a "
        "fault such as a full disk stopped it before it was written); resume the run to write "
        f"it (cnnlab train --resume {out}) or use last.pt")
    rc, _, err = run(["train", "--resume", str(out)], capsys)  # the disk is still full
    assert rc == 2 and _error(err).endswith(f"; once that is fixed, resume with: cnnlab train "
                                            f"--resume {out}")
    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
    rc, stdout, err = run(["train", "--resume", str(out)], capsys)
    assert rc == 0 and f"report: {out / 'report.html'}" in stdout, err
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {str(p.relative_to(whole)) for p in whole.rglob("*") if p.is_file()}
    assert {"checkpoints/best.pt", "result.json", "report.html", "errors.png"} <= files
    ran, never_failed = (json.loads((d / "result.json").read_text()) for d in (out, whole))
    assert ran["test_acc"] == never_failed["test_acc"] and ran["best"]["val_acc"] == \
        never_failed["best"]["val_acc"]
    assert run(["eval", str(out), "--checkpoint", "best"], capsys)[0] == 0
    # A run whose result.json was written but whose report was not is finished; its resume
    # writes the missing report instead of only saying so.
    (out / "report.html").unlink()
    rc, stdout, err = run(["train", "--resume", str(out)], capsys)
    assert rc == 0 and "has finished" in err and (out / "report.html").is_file()
