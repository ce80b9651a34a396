"""cnnlab suite: one recipe, one budget per member sized by a probe, resumable, then compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab import train as engine
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.suite import SUITE_RECIPE, SUITES, Probe, plan_samples, run_suite
from cnnlab.train import TrainingInterrupted
from cnnlab.train_config import TrainConfig
from tests._trainkit import make_dataset, write_idx_dataset

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def tiny_recipe(**changes: object) -> TrainConfig:
    """The suite's recipe at the size of the tiny dataset: 2 epochs, 50 val and 60 test images."""
    return TrainConfig(**{**dict(SUITE_RECIPE), "epochs": 2, "batch_size": 32, "val_size": 50,
                          "test_samples": 60, "plot": False, "progress": "none",
                          **changes}).validate()


# ---------------------------------------------------------------- planning


PROBE = Probe(train_image=0.01, eval_image=0.002, checkpoint=0.5, setup=1.0, wall=3.0)


def test_plan_fills_the_budget_after_evaluation_and_overheads() -> None:
    n = plan_samples(60.0, PROBE, epochs=3, val_images=1000, test_images=2000, n_max=59_000,
                     batch_size=128)
    fixed = 1.0 + 3 * (1000 * 0.002 + 0.5) + 2000 * 0.002
    assert n == int((0.92 * (60.0 - 3.0) - fixed) / (3 * 0.01))
    planned = 3.0 + fixed + 3 * n * 0.01
    assert 0.9 * 60 < planned <= 60.0  # inside the budget, with the safety margin only


def test_plan_is_capped_by_the_data_and_floored_at_one_batch() -> None:
    assert plan_samples(1e6, PROBE, epochs=3, val_images=0, test_images=0, n_max=59_000,
                        batch_size=128) == 59_000
    assert plan_samples(1.0, PROBE, epochs=3, val_images=1000, test_images=2000, n_max=59_000,
                        batch_size=128) == 128


def test_chapter8_covers_every_family_at_28_px() -> None:
    from cnnlab.models import default_input_size

    suite = SUITES["chapter8"]
    assert len(suite.models) == 9 and suite.overrides["resize"] == (28, 28)
    # (test_models builds every registered model at its book input size: 28 for all of these)
    assert all(default_input_size(name) == (1, 28, 28) for name in suite.models)
    families = ("lenet", "alexnet", "vgg", "nin", "googlenet", "bn_lenet", "resnet", "resnext",
                "densenet")
    assert [f for f, m in zip(families, suite.models) if not m.startswith(f)] == []


# ---------------------------------------------------------------- running and resuming


def test_killed_suite_resumes_skipping_finished_members(tmp_path: Path, monkeypatch) -> None:
    ds = make_dataset(400, 100)
    out = tmp_path / "suite"
    original = engine.Trainer._interrupt_requested

    def ctrl_c_in_bn_lenet(self, done: int) -> bool:  # Ctrl-C at bn_lenet's 3rd step
        return (self.out_dir is not None and self.out_dir.name == "bn_lenet" and done == 3
                ) or original(self, done)

    monkeypatch.setattr(engine.Trainer, "_interrupt_requested", ctrl_c_in_bn_lenet)
    with pytest.raises(TrainingInterrupted):
        run_suite(["lenet", "bn_lenet"], out, budget_s=20, config=tiny_recipe(), data=ds,
                  stream=None)
    monkeypatch.setattr(engine.Trainer, "_interrupt_requested", original)
    finished = (out / "lenet" / "result.json").read_text()
    assert not (out / "bn_lenet" / "result.json").exists()
    assert (out / "bn_lenet" / "checkpoints" / "last.pt").exists()
    first = json.loads((out / "suite.json").read_text())
    assert first["members"]["bn_lenet"]["status"] == "running"

    lines: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    res = run_suite(["lenet", "bn_lenet"], out, budget_s=20, config=tiny_recipe(), data=ds,
                    stream=Stream())
    log = "".join(lines)
    assert [m.status for m in res.members] == ["skipped", "done"]
    assert (out / "lenet" / "result.json").read_text() == finished  # not trained again
    assert "resuming bn_lenet" in log and "probe:" not in log  # resumed, not re-planned
    assert len((out / "bn_lenet" / "metrics.jsonl").read_text().splitlines()) == 2
    state = json.loads((out / "suite.json").read_text())
    assert len(state["sessions"]) == 2 and res.total_seconds > res.wall_seconds
    assert "ETA" in log and "[2/2] bn_lenet" in log


def test_member_killed_before_its_first_checkpoint_starts_over(tmp_path: Path) -> None:
    ds = make_dataset(400, 100)
    out = tmp_path / "suite"
    (out / "lenet").mkdir(parents=True)
    (out / "lenet" / "config.json").write_text("{}")  # what a kill during setup leaves
    res = run_suite(["lenet"], out, budget_s=10, config=tiny_recipe(), data=ds, stream=None)
    assert res.members[0].status == "done"
    assert json.loads((out / "lenet" / "config.json").read_text())["model"] == "lenet"


def test_bad_suites_are_config_errors(tmp_path: Path) -> None:
    ds = make_dataset(400, 100)
    with pytest.raises(ConfigError, match="unknown model.*lenett"):
        run_suite(["lenett"], tmp_path / "a", config=tiny_recipe(), data=ds, stream=None)
    with pytest.raises(ConfigError, match="cannot train at 28x28: alexnet .*_small"):
        run_suite(["lenet", "alexnet"], tmp_path / "b", config=tiny_recipe(), data=ds,
                  stream=None)
    with pytest.raises(ConfigError, match="twice"):
        run_suite(["lenet", "lenet"], tmp_path / "c", config=tiny_recipe(), data=ds,
                  stream=None)
    run_suite(["lenet"], tmp_path / "d", budget_s=5, config=tiny_recipe(epochs=1), data=ds,
              stream=None)
    with pytest.raises(ConfigError, match="other settings \\(epochs\\)"):
        run_suite(["lenet"], tmp_path / "d", budget_s=5, config=tiny_recipe(), data=ds,
                  stream=None)


def test_cli_suite_end_to_end_and_bad_input(tmp_path: Path, capsys) -> None:
    root = write_idx_dataset(tmp_path / "data" / "fashion-mnist", n_train=1200, n_test=100)
    out = tmp_path / "suite"
    argv = ["suite", "--models", "lenet,bn_lenet", "--epochs", "1", "--budget", "0.4",
            "--data-root", str(root.parent), "--out", str(out), "--test-samples", "100"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "[1/2] lenet" in cap.err and "[2/2] bn_lenet" in cap.err and "ETA" in cap.err
    table = cap.out.splitlines()
    assert table[0].split()[:2] == ["run", "model"]
    assert [ln.split()[0] for ln in table[2:4]] == ["lenet", "bn_lenet"]
    assert (out / "compare.html").exists()
    state = json.loads((out / "suite.json").read_text())
    assert state["models"] == ["lenet", "bn_lenet"] and state["budget_seconds"] == 24
    for model in ("lenet", "bn_lenet"):
        cfg = json.loads((out / model / "config.json").read_text())
        assert len((out / model / "metrics.jsonl").read_text().splitlines()) == 1
        # one recipe: every member's settings equal the suite's, bar the sized training subset
        # (and the device, which a run records as resolved: 'auto' -> 'cpu')
        skip = ("model", "model_kwargs", "environment", "train_samples", "progress", "device")
        assert {k: v for k, v in cfg.items() if k not in skip} \
            == {k: v for k, v in state["recipe"].items() if k not in skip}
        assert cfg["test_samples"] == 100 and cfg["epochs"] == 1 and cfg["threads"] == 0
        member = state["members"][model]
        assert 0 < member["budget_seconds"] <= 12.0  # half of 24 s, less what came before
        assert member["probe"]["train_image"] > 0 and member["status"] == "done"
    assert main(argv) == 0  # again: both finished, nothing trained
    assert capsys.readouterr().err.count("finished before, skipped") == 2
    assert main(["suite", "chapter9"]) == 2
    assert "no suite named 'chapter9'; did you mean 'chapter8'" in capsys.readouterr().err
    assert main(["suite"]) == 2
    assert "--models" in capsys.readouterr().err
    assert main(["suite", "--models", "lenet,nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model(s) nope" in capsys.readouterr().err


def test_a_killed_session_still_counts_its_time(tmp_path: Path, monkeypatch) -> None:
    import cnnlab.suite as suite

    monkeypatch.setattr(suite, "HEARTBEAT", 0.05)
    ds = make_dataset(400, 100)
    original = engine.Trainer._interrupt_requested

    def slow_then_ctrl_c(self, done: int) -> bool:  # a member that runs a while, then is stopped
        if self.out_dir is not None and self.out_dir.name == "lenet":
            import time

            state = json.loads((tmp_path / "s" / "suite.json").read_text())
            seen.append(state["sessions"][-1]["seconds"])  # as written while the member trains
            time.sleep(0.3)
            return len(seen) == 2  # Ctrl-C at its second step (its epochs may be one step)
        return original(self, done)

    seen: list[float] = []
    monkeypatch.setattr(engine.Trainer, "_interrupt_requested", slow_then_ctrl_c)
    with pytest.raises(TrainingInterrupted):
        run_suite(["lenet"], tmp_path / "s", budget_s=20, config=tiny_recipe(), data=ds,
                  stream=None)
    assert len(seen) == 2 and seen[1] > seen[0]  # the clock ticked during the member's training
