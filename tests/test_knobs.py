"""Architecture knobs: parsing, validation, per-model defaults, and today's networks unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.models import create_model, list_models, model_knobs, parse_model_args
from cnnlab.models._knobs import Knob, format_value

META = torch.device("meta")
# Every registered model's state dict (keys and shapes) as it was before the knobs existed.
GOLDEN = json.loads((Path(__file__).parent / "data" / "zoo_state_dicts.json").read_text())


def digest(model: nn.Module) -> dict[str, object]:
    sd = model.state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    return {"entries": len(sd), "params": sum(p.numel() for p in model.parameters()),
            "sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with META:
        return create_model(name, **kwargs)


def test_the_golden_record_covers_every_registered_model() -> None:
    assert sorted(GOLDEN) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_defaults_give_todays_model_exactly(name: str) -> None:
    assert digest(meta_model(name)) == GOLDEN[name]
    # every default spelled out as text, parsed back, builds the same network
    text = {k.name: format_value(k.default) for k in model_knobs(name)}
    assert digest(meta_model(name, **parse_model_args(name, text))) == GOLDEN[name]


def test_the_exercise_7_6_2_flags_turn_lenet_into_lenet_wide() -> None:
    args = parse_model_args("lenet", ["channels=32,64,128", "kernel_size=3", "activation=relu",
                                      "pool=max", "dense=256,128"])
    assert args == {"channels": (32, 64, 128), "kernel_size": 3, "activation": "relu",
                    "pool": "max", "dense": (256, 128)}
    built, wide = meta_model("lenet", **args), meta_model("lenet_wide")
    assert repr(built) == repr(wide) and digest(built) == digest(wide)


def test_lenet_with_batch_norm_and_no_padding_is_bn_lenet() -> None:
    built = meta_model("lenet", batch_norm=True, padding=0)
    assert digest(built) == GOLDEN["bn_lenet"]
    assert list(built.state_dict()) == list(meta_model("bn_lenet").state_dict())


def test_values_parse_by_kind() -> None:
    assert parse_model_args("resnet18", {"arch": "1x32, 2X64", "groups": "4", "stem": "small"}) \
        == {"arch": ((1, 32), (2, 64)), "groups": 4, "stem": "small"}
    assert parse_model_args("lenet", ["batch_norm=yes", "dense=none", "padding=auto"]) == {
        "batch_norm": True, "dense": (), "padding": None}
    assert parse_model_args("alexnet", {"dropout": "0.25"}) == {"dropout": 0.25}
    # typed values (a TOML [model] table, Python) are checked, lists become tuples
    assert parse_model_args("vgg", {"arch": [[1, 8], [2, 16]], "dense": 256}) == {
        "arch": ((1, 8), (2, 16)), "dense": 256}
    assert meta_model("lenet", dense=[]).net[-1].in_features == 16 * 5 * 5


def test_knobs_list_each_models_own_defaults() -> None:
    vgg16 = {k.name: k.default for k in model_knobs("vgg16")}
    assert vgg16["arch"] == ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
    assert {k.name: k.default for k in model_knobs("lenet_modern")}["activation"] == "relu"
    knob = {k.name: k for k in model_knobs("lenet")}["activation"]
    assert {"sigmoid", "relu", "tanh", "gelu"} <= set(knob.choices) and knob.help


def test_an_unknown_knob_names_the_closest_and_all_knobs() -> None:
    with pytest.raises(ConfigError, match=r"no knob 'chanels'; did you mean 'channels'\?.*"
                                          r"kernel_size"):
        parse_model_args("lenet", ["chanels=8,16"])
    with pytest.raises(ConfigError, match="no knob 'depth'"):
        create_model("lenet", depth=3)


@pytest.mark.parametrize("args,match", [
    (["activation=relux"], r"activation='relux' is not one of .*did you mean 'relu'"),
    (["kernel_size=0"], r"kernel_size=0 is not allowed; kernel_size takes an integer in"),
    (["kernel_size=three"], r"kernel_size='three' is not an integer in \[1, 15\]"),
    (["channels=32,,64"], r"channels='32,,64' is not a comma list"),
    (["channels=none"], r"channels takes a comma list of 1\+ entries"),
    (["batch_norm=maybe"], r"batch_norm='maybe' is not true or false"),
    (["pool=min"], r"pool='min' is not one of avg, max"),
    (["padding=2,0,0"], r"padding=2,0,0 has 3 entries for 2 conv stages"),
    (["kernel_size"], r"--model-arg 'kernel_size' is not KEY=VALUE"),
    (["kernel_size=3", "kernel-size=5"], r"kernel_size is given twice"),
])
def test_bad_values_say_which_knob_and_what_it_takes(args: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        meta_model("lenet", **parse_model_args("lenet", args))


def test_the_input_size_is_not_a_knob() -> None:
    with pytest.raises(ConfigError, match="--resize"):
        parse_model_args("lenet", ["input_size=32"])


def test_old_names_are_still_accepted() -> None:
    assert meta_model("lenet_wide", hidden=(64,)).net[-1].in_features == 64  # LeNet's old name
    assert parse_model_args("fastnet", {"act": "gelu"}) == {"activation": "gelu"}
    with pytest.raises(ConfigError, match="given twice"):
        create_model("lenet", hidden=(8,), dense=(8,))


def _bad_values(knob: Knob) -> list[object]:
    """Values a user might type that the knob must refuse."""
    bad: list[object] = [object(), "", "x!", [], [[1]]]
    if knob.kind in ("int", "float", "ints", "blocks") and knob.low is not None:
        low = knob.low - 1
        bad += [low, [low], [[low, low]], True]
    if knob.kind == "choice":
        bad += ["no-such-" + knob.name, 3]
    if knob.kind == "bool":
        bad += [2, "maybe"]
    return [v for v in bad if not _accepted(knob, v)]


def _accepted(knob: Knob, value: object) -> bool:
    try:
        knob.check(value)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", list_models())
def test_every_constructor_refuses_bad_kwargs_with_a_cnnlab_error(name: str) -> None:
    """Issue 22.6: nothing a user passes to a zoo constructor escapes as a ValueError,
    KeyError or TypeError."""
    calls: list[dict[str, object]] = [{"no_such_knob": 1}, {"num_classes": 0},
                                      {"in_channels": "3"}]
    for knob in model_knobs(name):
        calls += [{knob.name: v} for v in _bad_values(knob)]
    assert len(calls) >= 3 + 5 * len(model_knobs(name))  # every knob gets bad values
    for kwargs in calls:
        with pytest.raises(CnnlabError):
            meta_model(name, **kwargs)


@pytest.mark.parametrize("name,kwargs", [
    ("resnext_small", {"groups": 5}),  # 64 bottleneck channels in 5 groups
    ("regnetx32", {"group_width": 7}),
    ("regnetx32", {"depths": (1, 1, 1)}),  # three depths, two widths
    ("fastnet", {"depth": (1, 1)}),
    ("lenet", {"channels": (8,) * 6}),  # six halvings of 28x28
    ("lenet", {"kernel_size": 15, "padding": 0}),
    ("vgg", {"arch": ((1, 8),) * 9}),
    ("densenet_small", {"arch": (1,) * 6}),
    ("alexnet_small", {"stem": "imagenet"}),  # an 11x11/4 stem cannot take 28x28
])
def test_combinations_a_layer_cannot_build_are_cnnlab_errors(name: str, kwargs: dict) -> None:
    with pytest.raises(CnnlabError) as err:
        model = meta_model(name, **kwargs)
        model(torch.empty(2, 1, 28, 28, device=META))  # global-pool nets fail at the forward
    assert "\n" not in str(err.value)


def test_the_classes_refuse_bad_arguments_too() -> None:
    from cnnlab.models.fast import FastNet
    from cnnlab.models.lenet import LeNet

    with pytest.raises(ConfigError, match="activation 'swish' is not one of"):
        LeNet(activation="swish")
    with pytest.raises(ConfigError, match="pool 'min'"):
        LeNet(pool="min")
    with pytest.raises(ConfigError, match="one entry"):
        FastNet(widths=(8, 16), depth=(1,))
    with pytest.raises(ConfigError, match="activation 'swish'"):
        FastNet(activation="swish")


# --- end to end: a run trained with knobs is rebuilt with them everywhere ----------------------

KNOB_FLAGS = ["--model-arg", "channels=4,8", "--model-arg", "activation=relu",
              "--model-arg", "dense=32"]
KNOBS = {"channels": [4, 8], "activation": "relu", "pool": "max", "dense": [32]}


def cnnlab(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture(scope="module")
def knob_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`cnnlab train lenet` with --model-arg flags and a [model] table, one tiny epoch."""
    where = tmp_path_factory.mktemp("knobs")
    (where / "knobs.toml").write_text('epochs = 1\n\n[model]\npool = "max"\nchannels = [2, 2]\n')
    os.environ["CNNLAB_DATA"] = str(data_root)
    proc = cnnlab(["train", "lenet", "--config", "knobs.toml", *KNOB_FLAGS,  # flags win
                   "--train-samples", "512", "--val-size", "256", "--batch-size", "64",
                   "--progress", "none", "--no-tensorboard", "--threads", "1",
                   "--out", "run"], where)
    assert proc.returncode == 0, proc.stderr
    return where / "run", proc.stderr


def test_the_knobs_are_recorded_and_shown(knob_run: tuple[Path, str]) -> None:
    run_dir, stderr = knob_run
    assert json.loads((run_dir / "config.json").read_text())["model_kwargs"] == KNOBS
    # the header and the report show the knobs that differ from lenet's defaults, in order
    assert "lenet (channels=4,8 activation=relu pool=max dense=32) on fashion-mnist" in stderr
    assert "channels=4,8 activation=relu pool=max dense=32" in (run_dir / "report.html"
                                                                ).read_text()


def test_every_reader_rebuilds_the_run_with_its_knobs(knob_run: tuple[Path, str]) -> None:
    from cnnlab.run import load_run

    run_dir, _ = knob_run
    model = load_run(run_dir).model
    expected = create_model("lenet", **KNOBS)
    assert repr(model) == repr(expected)
    proc = cnnlab(["eval", str(run_dir), "--format", "json"], run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    proc = cnnlab(["compare", str(run_dir), "--no-page", "--format", "json"], run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert f'"params": {expected.num_params()}' in proc.stdout.replace("'", '"')
    assert '"knobs": "channels=4,8 activation=relu pool=max dense=32"' in proc.stdout
    proc = cnnlab(["compare", str(run_dir), "--no-page"], run_dir.parent)
    assert "lenet (channels=4,8 activation=relu pool=max dense=32)" in proc.stdout, proc.stdout
    proc = cnnlab(["export", str(run_dir), "--out", "m.onnx"], run_dir.parent)
    assert proc.returncode == 0 and (run_dir.parent / "m.onnx").is_file(), proc.stderr


def test_resume_keeps_the_recorded_knobs(knob_run: tuple[Path, str]) -> None:
    run_dir, _ = knob_run
    proc = cnnlab(["train", "--resume", str(run_dir), "--model-arg", "channels=8,8"],
                  run_dir.parent)
    assert proc.returncode == 2 and "drop --model and --model-arg" in proc.stderr
    proc = cnnlab(["train", "--resume", str(run_dir), "--epochs", "2", "--no-report"],
                  run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((run_dir / "config.json").read_text())["model_kwargs"] == KNOBS


@pytest.mark.parametrize("flag,message", [
    ("kernel_size=x", "cnnlab: error: lenet: kernel_size='x' is not an integer in [1, 15]"),
    ("chanels=4", "cnnlab: error: model 'lenet' has no knob 'chanels'; did you mean "
                  "'channels'?"),
    ("activation=softmax", "cnnlab: error: lenet: activation='softmax' is not one of sigmoid"),
])
def test_a_bad_model_arg_is_one_line_and_exit_2(flag: str, message: str, tmp_path: Path) -> None:
    proc = cnnlab(["train", "lenet", "--model-arg", flag, "--dry-run", "--out", "run"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_models_name_lists_the_knobs(tmp_path: Path) -> None:
    proc = cnnlab(["models", "lenet_wide"], tmp_path)
    assert proc.returncode == 0
    assert "knobs of lenet_wide" in proc.stdout
    assert any(line.split()[:2] == ["channels", "32,64,128"] for line in proc.stdout.splitlines())
    assert "takes sigmoid, tanh, relu" in proc.stdout
