"""README.md is true: its commands run, its Python runs, its tables are what the code says.

Shell blocks (```bash and ```console) are read line by line; a line that calls `cnnlab`,
`python -m cnnlab`, `torchrun` or `make` is a command. Every command is either
- run here, in README order, in one temporary working folder (so the `train ... --out runs/fashion`
  of the tour makes the run folder that `report`, `eval` and `predict` then read), in this process
  through `cnnlab.cli.main`, with CNNLAB_DATA set to the real data; `train` gets the CHEAP flags the
  line does not set itself and at most MAX_EPOCHS epochs, so a run takes a second; or
- listed in ELSEWHERE with the test that exercises it (a `torchrun` launch costs more than this
  whole file), and that test must exist.
A new command that is neither fails `test_every_shell_command_is_exercised`. A ```console block
shows `$ command` and its output: the output must match.

```python blocks run in a fresh namespace against small synthetic IDX files laid out like the real
ones, so a snippet that trains takes a second instead of minutes.

`python tests/test_readme.py --write` regenerates the model and recipe tables in README.md.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PLACEHOLDER_DATA = "/path/to/datasets"  # README's example datasets folder: the real one here

# Flags added to a `train` line unless it sets them itself (argparse: a later flag would win).
CHEAP = {"--epochs": "1", "--limit-batches": "2", "--batch-size": "32",
         "--eval-batch-size": "256", "--progress": "none", "--threads": "1"}
# `cnnlab report` is its own README line; it draws curves.png when the run has none.
CHEAP_SWITCHES = ("--no-tensorboard", "--no-report", "--no-plot")
MAX_EPOCHS = 3  # `--epochs 30` runs 3 (each epoch is CHEAP's two batches)

# Commands exercised by another test (or by CI) instead of here: command -> "file::test".
ELSEWHERE = {
    "make test": ".ci/run",  # CI runs exactly this; `make -n test` is checked below
    "torchrun --nproc_per_node 2 -m cnnlab train lenet_modern --out runs/ddp":
        "tests/test_cli.py::test_two_processes_with_torchrun",
    # No CIFAR-10 here (no network): a tarball in the official layout, built by the test.
    "cnnlab data verify cifar10 --root /path/to/cifar":
        "tests/test_cli.py::test_cifar10_from_a_tarball_trains_three_channel_models",
    "cnnlab train resnet18_small --dataset cifar10 --epochs 15 --lr 0.1 --momentum 0.9 "
    "--schedule onecycle --normalize --augment-crop 4 --augment-flip --out runs/cifar":
        "tests/test_cli.py::test_cifar10_from_a_tarball_trains_three_channel_models",
    # a suite trains for 10-30 minutes; the same command on a tiny dataset and budget:
    "cnnlab suite chapter8": "tests/test_suite.py::test_cli_suite_end_to_end_and_bad_input",
    "cnnlab suite chapter8 --models lenet,bn_lenet,resnet18_small --budget 10 --out runs/three":
        "tests/test_suite.py::test_cli_suite_end_to_end_and_bad_input",
    # 20 trials of 5 epochs, and a second worker: the same on tiny data and trials
    "cnnlab sweep lenet --param lr=log:1e-3..0.3 --param momentum=0,0.9 --trials 20 --epochs 5 "
    "--out runs/sweep-lr": "tests/test_sweep.py::test_sigkill_then_the_same_command_continues",
    "cnnlab sweep --join runs/sweep-lr":
        "tests/test_sweep.py::test_two_workers_share_a_sweep_without_running_a_trial_twice",
}

# What a successful command prints, by subcommand: each string must appear in its output.
EXPECT = {"train": ("run folder:",), "report": ("report: ",), "eval": ("accuracy ",),
          "summary": ("Total params", "| Layer (type) |"), "models": ("lenet", "resnet18"),
          "recipes": ("lenet",), "verify": ("OK, 60000 train + 10000 test", "images decode"),
          "export": ("predicted classes agree 100%",), "inspect": ("page: ",),
          "download": (" train + ",), "show": ("with their labels",),
          "compare": ("best val acc",), "sweep": ("sweep: ",)}

# Image files README's `predict` line names: (test image index, make it a light-ground photo).
PREDICT_INPUTS = {"shoe.png": (0, False), "shirt.jpg": (1, True)}
# README's own image folder (`--dataset folder:photos`): class -> images, RGB JPEGs of two sizes.
PHOTOS = {"bag": 8, "shirt": 8, "shoe": 8}


# --- reading README ----------------------------------------------------------------------------

def blocks(lang: str, text: str | None = None) -> list[str]:
    """The bodies of README's fenced ```lang blocks, in order."""
    text = README.read_text() if text is None else text
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def is_command(line: str) -> bool:
    """True for a line that calls cnnlab (console script or module), torchrun or make."""
    return bool(re.match(r"(cnnlab|python3? -m cnnlab|torchrun|make)\b", line))


def shell_lines() -> list[tuple[str, list[str] | None]]:
    """(command, expected output or None) for every command of every shell block, in order."""
    out: list[tuple[str, list[str] | None]] = []
    for body in blocks("bash"):
        for raw in body.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                assert line.startswith("export CNNLAB_DATA="), f"README sets {line!r}"
                continue
            assert is_command(line), f"README shell line {line!r} is not a command this test knows"
            out.append((line, None))
    for body in blocks("console"):
        lines = body.splitlines()
        for i, raw in enumerate(lines):
            if raw.startswith("$ "):
                shown = []
                for nxt in lines[i + 1:]:
                    if nxt.startswith("$ "):
                        break
                    shown.append(nxt)
                assert is_command(raw[2:]), f"README console line {raw!r} is not a command"
                out.append((raw[2:].strip(), shown))
    return out


def _test_exists(ref: str) -> bool:
    """True when ref ("tests/x.py::name" or a file such as ".ci/run") names something real."""
    path, _, name = ref.partition("::")
    file = REPO / path
    if not file.is_file():
        return False
    if not name:
        return True
    tree = ast.parse(file.read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree))


# --- generated tables --------------------------------------------------------------------------

def model_table() -> str:
    """The README's model table: every zoo model, its book input, parameters and MACs (meta)."""
    import torch

    from cnnlab.cost import format_si, summary
    from cnnlab.models import create_model, default_input_size, list_models
    from cnnlab.models._registry import _lookup

    lines = ["| model | what it is | input (C,H,W) | parameters | MACs / image |",
             "|---|---|---|---:|---:|"]
    for name in list_models():
        c, h, w = default_input_size(name)
        with torch.device("meta"):  # counted, not run: no memory, no time
            model = create_model(name, num_classes=10, in_channels=c)
        s = summary(model, (c, h, w), measure_memory=False)
        doc = (_lookup(name).fn.__doc__ or "").strip().splitlines()[0]
        doc = re.sub(rf",? {h}x{w}\.?$", "", doc).rstrip(".")
        lines.append(f"| `{name}` | {doc} | {c},{h},{w} | {s.total_params:,} | "
                     f"{format_si(s.total_macs, spec='.3g')} |")
    return "\n".join(lines)


def recipe_table() -> str:
    from cnnlab.recipes import recipe_table as table

    return table()


def _section(text: str, key: str) -> str:
    m = re.search(rf"<!-- {key}:begin[^>]*-->\n(.*?)<!-- {key}:end -->", text, flags=re.S)
    assert m, f"README lacks the <!-- {key}:begin --> ... <!-- {key}:end --> markers"
    return m.group(1).strip()


def write_tables() -> None:
    """Regenerate README's model and recipe tables between their markers."""
    text = README.read_text()
    for key, table in (("models", model_table()), ("recipes", recipe_table())):
        text = re.sub(rf"(<!-- {key}:begin[^>]*-->\n).*?(<!-- {key}:end -->)",
                      lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text, flags=re.S)
    README.write_text(text)


# --- the tests ---------------------------------------------------------------------------------

def test_quickstart_is_exactly_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    (body,) = blocks("bash", quick)
    assert [ln.split("#")[0].strip() for ln in body.splitlines()] == ["make quickstart",
                                                                       "make test"]


def test_every_shell_command_is_exercised() -> None:
    commands = [c for c, _ in shell_lines()]
    assert "cnnlab train lenet_modern --out runs/fashion" in commands  # the parser sees blocks
    for cmd in commands:
        if cmd in ELSEWHERE:
            assert _test_exists(ELSEWHERE[cmd]), f"{cmd!r}: {ELSEWHERE[cmd]} does not exist"
        else:
            assert _runner(cmd) is not None, f"README command {cmd!r} is neither run by " \
                "test_readme_commands_run nor listed in ELSEWHERE with the test that runs it"
    stale = set(ELSEWHERE) - set(commands)
    assert not stale, f"ELSEWHERE lists commands README no longer shows: {stale}"
    assert "make test" in (REPO / ".ci/run").read_text()
    src = (REPO / "tests/test_cli.py").read_text()
    assert '"--nproc_per_node", "2", "-m", "cnnlab", "train"' in src  # the launch README shows


def _runner(cmd: str) -> list[str] | None:
    """The argv for cnnlab.cli.main that exercises `cmd` here, or None when this file cannot."""
    argv = shlex.split(cmd.replace(PLACEHOLDER_DATA, "{data}"))
    if argv[0] == "make":
        return ["make", *argv[1:]] if argv[1:] == ["quickstart"] else None
    if argv[0] == "cnnlab":
        return argv[1:]
    if argv[:3] in (["python", "-m", "cnnlab"], ["python3", "-m", "cnnlab"]):
        return argv[3:]
    return None


def _cheap(argv: list[str]) -> list[str]:
    """A train argv with CHEAP settings for the flags it does not set, epochs capped."""
    if argv[0] != "train":
        return argv
    argv = list(argv)
    if "--epochs" in argv:
        i = argv.index("--epochs") + 1
        argv[i] = str(min(int(argv[i]), MAX_EPOCHS))
    extra = [x for flag, value in CHEAP.items() if flag not in argv for x in (flag, value)]
    return argv + extra + [s for s in CHEAP_SWITCHES if s not in argv]


def _make_quickstart() -> list[str]:
    """What `make quickstart` runs, as a cnnlab argv (from `make -n`, which runs nothing)."""
    # CI runs this file under `make test`: a nested make would add "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "quickstart"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert out[-1] == ".venv/bin/cnnlab train lenet", out  # the book's LeNet, all defaults
    return shlex.split(out[-1])[1:]


def _predict_inputs(folder: Path, data_root: Path) -> None:
    from PIL import Image

    from cnnlab.data import load_dataset

    test = load_dataset("fashion-mnist", root=data_root, download=False).test
    for name, (index, photo) in PREDICT_INPUTS.items():
        img = test.images[index].numpy()
        if photo:  # dark on light and larger, as a photo is: predict must invert and shrink it
            Image.fromarray(255 - img, "L").resize((112, 112)).save(folder / name, quality=95)
        else:
            Image.fromarray(img, "L").save(folder / name)


def _photo_folder(folder: Path) -> None:
    """photos/<class>/*.jpg: small RGB pictures, a few not square (cut by the size rule)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, (name, n) in enumerate(PHOTOS.items()):
        (folder / "photos" / name).mkdir(parents=True)
        for i in range(n):
            size = (40, 48) if i % 2 else (36, 36)
            a = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            a[..., k] = 255  # one colour per class: learnable
            Image.fromarray(a).save(folder / "photos" / name / f"{i:03d}.jpg", quality=90)


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from cnnlab.cli import main

    try:
        rc = main(argv)
    except SystemExit as exit_:  # --help
        rc = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return rc, out + err


def test_readme_commands_run(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_DATA", str(data_root))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for block in blocks("toml"):  # a TOML block whose first line is `# NAME.toml` is that file
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".toml"):
            (tmp_path / first[2:]).write_text(block)
    _predict_inputs(tmp_path, data_root)
    _photo_folder(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the folder cache: here
    ran = 0
    for cmd, shown in shell_lines():
        if cmd in ELSEWHERE:
            continue
        argv = _runner(cmd)
        assert argv is not None, cmd
        if argv[0] == "make":
            argv = _make_quickstart()
        argv = _cheap([a.replace("{data}", str(data_root)) for a in argv])
        rc, out = _run_cli(argv, capsys)
        ran += 1
        if shown is not None:  # a console block: exactly the output README shows
            assert out.splitlines() == shown, f"{cmd!r} printed:\n{out}"
            assert rc == (2 if out.startswith("cnnlab: error:") else 0), (cmd, rc)
            continue
        assert rc == 0, f"{cmd!r} exited {rc}:\n{out}"
        key = argv[1] if argv[0] == "data" else argv[0]
        expected = EXPECT.get(key, ())
        assert not expected or any(e in out for e in expected), f"{cmd!r} printed:\n{out}"
        if argv[0] == "train" and "--dry-run" not in argv:
            assert "test accuracy: " in out, out
        if argv[0] == "predict":
            assert [ln.split(":")[0] for ln in out.splitlines()] == list(PREDICT_INPUTS)
        if argv == ["models"]:  # the whole zoo, one row each
            from cnnlab.models import list_models

            assert [ln.split()[0] for ln in out.splitlines()[1:]] == list_models()
        if argv[0] == "report":
            assert "<h2>Per-class accuracy</h2>" in (Path(argv[1]) / "report.html").read_text()
    assert ran >= 15  # the tour, not a few stray lines
    history = (tmp_path / "runs/long/metrics.jsonl").read_text().splitlines()
    assert len(history) == MAX_EPOCHS  # `--resume runs/long --epochs 30` trained on
    assert (tmp_path / "samples.png").is_file()


@pytest.fixture
def small_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$CNNLAB_DATA with a few hundred synthetic images per dataset; tmp_path as working folder."""
    from _trainkit import write_idx_dataset

    for name in ("fashion-mnist", "mnist"):
        write_idx_dataset(tmp_path / "data" / name, n_train=512, n_test=256)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CNNLAB_D2L_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_python_runs(small_data: Path) -> None:
    import torch

    snippets = blocks("python")
    assert len(snippets) >= 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for code in snippets:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
            assert out.getvalue() or "print(" not in code
    finally:
        torch.set_num_threads(threads)
    assert (small_data / "runs/api/result.json").is_file()  # the Python API's train()
    assert (small_data / "BNLeNet_progress.png").is_file()  # the d2l board, saved outside Jupyter


def test_model_table_is_the_zoo() -> None:
    assert _section(README.read_text(), "models") == model_table(), (
        "README's model table is stale: run `python tests/test_readme.py --write`")


def test_recipe_table_is_the_recipes() -> None:
    assert _section(README.read_text(), "recipes") == recipe_table(), (
        "README's recipe table is stale: run `python tests/test_readme.py --write`")


def test_readme_links_what_it_promises() -> None:
    text = README.read_text()
    assert "[BENCHMARKS.md](BENCHMARKS.md)" in text
    for anchor in re.findall(r"\]\(#([\w-]+)\)", text):
        heads = [re.sub(r"[^\w -]", "", h).strip().lower().replace(" ", "-")
                 for h in re.findall(r"^#+ (.+)$", text, flags=re.M)]
        assert anchor in heads, f"README links #{anchor}, which is no heading"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        os.chdir(REPO)
        write_tables()
        print(f"wrote the model and recipe tables into {README}")
    else:
        sys.exit("usage: python tests/test_readme.py --write")
