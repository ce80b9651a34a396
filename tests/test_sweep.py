"""Sweeps: the search-space grammar, selection on validation only, pruning, seeds, the summary
files, bad input (one line, exit 2, nothing lost), resume after SIGKILL, two workers, PostgreSQL.

Trials are tiny (a few hundred 28x28 images, 1-3 epochs, one thread) so the file stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _trainkit import make_dataset, write_idx_dataset

from cnnlab.cli import main
from cnnlab.errors import ConfigError, RunFinished
from cnnlab.sweep import SweepSpec, run_sweep
from cnnlab.sweep_space import apply_params, grid_size, parse_param, train_command
from cnnlab.train import resume, train
from cnnlab.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
BASE = TrainConfig(epochs=2, batch_size=32, optimizer="adamw", lr=0.01, threads=1, val_size=100,
                   tensorboard=False, plot=False, progress="none")
LRS = "lr=0.01,0.005,0.0001,0.00003"  # two that learn, two that barely move


@pytest.fixture(scope="module")
def data():
    return make_dataset(500, 100)


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root / "fashion-mnist", 500, 100)
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "CNNLAB_PROGRESS": "none"}


def _cli(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", "sweep", "lenet_modern", "--data-root", str(root),
            "--out", str(out), "--batch-size", "32", "--optimizer", "adamw", "--threads", "1",
            "--val-size", "100", "--no-tensorboard", "--no-plot", *extra]


# --- the grammar -------------------------------------------------------------------------------

def test_budgets_read_as_people_write_them() -> None:
    from cnnlab.sweep import parse_budget

    assert [parse_budget(t) for t in ("30m", "2h", "90s", "1.5", None)] == [
        1800, 7200, 90, 90, None]
    for bad in ("soon", "0m", "-1h"):
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)


def test_param_specs_parse_to_typed_dimensions() -> None:
    lr = parse_param("lr=log:1e-3..0.3")
    assert (lr.kind, lr.low, lr.high, lr.integer) == ("log", 1e-3, 0.3, False)
    bs = parse_param("batch_size=16..64")
    assert (bs.kind, bs.integer) == ("int", True)
    assert parse_param("momentum=0,0.9").choices == (0.0, 0.9)
    assert parse_param("nesterov=on,off").choices == (True, False)
    assert parse_param("model.activation=relu,sigmoid").knob == "activation"
    assert parse_param("model.channels=6-16,32-64").choices == ("6,16", "32,64")
    assert parse_param("resize=28,32x32").choices == ("28", "32x32")
    assert grid_size([parse_param("momentum=0,0.9"), parse_param("batch_size=16..18")]) == 6
    cfg, kw = apply_params(BASE, {"pool": "max"}, {"resize": "32x32", "momentum": 0.9,
                                                   "model.channels": "6,16"}, "lenet")
    assert (cfg.resize, cfg.momentum, kw) == ((32, 32), 0.9, {"pool": "max",
                                                              "channels": (6, 16)})
    assert train_command("cnnlab train lenet", {"lr": 0.05, "nesterov": False,
                                                 "model.pool": "max"}, seed=2) == (
        "cnnlab train lenet --lr 0.05 --no-nesterov --model-arg pool=max --seed 2")


@pytest.mark.parametrize("spec, words", [
    ("lrr=0.1,0.2", ["unknown parameter 'lrr'", "lr"]),
    ("lr=0.1..0.1", ["empty range"]),
    ("lr=0.3..0.001", ["reversed", "lr=0.001..0.3"]),
    ("lr=log:0..0.3", ["log range needs bounds > 0"]),
    ("weight_decay=log:-1..1", ["log range needs bounds > 0"]),
    ("batch_size=a,b", ["is not a whole number"]),
    ("seed=0,1", ["--seeds"]),
    ("lr", ["NAME=VALUES"]),
    ("model.=relu", ["names no model knob"]),
    ("optimizer=0..1", ["not a number"]),
])
def test_bad_param_specs_name_the_problem(spec: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_param(spec)
    for w in words:
        assert w in str(err.value)


# --- the engine hook ---------------------------------------------------------------------------

def test_on_epoch_ends_a_run_like_early_stopping(data, tmp_path: Path) -> None:
    seen = []
    result = train("lenet_modern", data, BASE.replace(epochs=3), out_dir=tmp_path / "r",
                   on_epoch=lambda row: seen.append(row["epoch"]) or row["epoch"] == 1)
    assert seen == [1] and len(result.history) == 1 and result.stopped_early
    with pytest.raises(RunFinished):  # an ordinary finished run: nothing to resume
        resume(tmp_path / "r", data=data)


def test_a_validation_only_run_never_scores_the_test_split(data, tmp_path: Path) -> None:
    result = train("lenet_modern", data, BASE.replace(epochs=1, score_test=False),
                   out_dir=tmp_path / "r")
    assert result.test_acc is None and result.final["val_images"] == 100
    assert json.loads((tmp_path / "r" / "result.json").read_text())["test_acc"] is None
    with pytest.raises(ConfigError, match="val_size"):
        TrainConfig(score_test=False).validate()


# --- a sweep -----------------------------------------------------------------------------------

def test_grid_sweep_with_seeds_writes_run_folders_and_summaries(data, tmp_path: Path) -> None:
    out = tmp_path / "s"
    spec = SweepSpec("lenet_modern", [parse_param("lr=0.01,0.0001")], BASE, sampler="grid",
                     prune="off", seeds=(0, 1))
    lines = []

    class Stream:
        def write(self, text: str) -> None:
            lines.extend(t for t in text.splitlines() if t)

        def flush(self) -> None:
            pass

    result = run_sweep(spec, out, data=data, stream=Stream())
    assert [r["status"] for r in result.trials] == ["done", "done"]
    best, worst = result.trials
    assert best["params"] == {"lr": 0.01} and best["value"] > worst["value"]
    assert len(best["values"]) == 2 and best["std"] is not None
    assert abs(best["value"] - sum(best["values"]) / 2) < 1e-12
    # one line per finished trial, naming the best so far
    assert len(lines) == 2 and all("best: trial" in line for line in lines)
    for run in best["runs"] + worst["runs"]:  # ordinary run folders, validation only
        cfg = json.loads((out / run / "config.json").read_text())
        res = json.loads((out / run / "result.json").read_text())
        assert cfg["val_size"] == 100 and cfg["score_test"] is False and res["test_acc"] is None
        assert len(res["final"]) and res["final"]["val_images"] == 100
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["best"]["number"] == best["number"]
    assert doc["best_command"].startswith("cnnlab train lenet_modern") and "--lr 0.01" in \
        doc["best_command"]
    assert [t["number"] for t in doc["trials_table"]] == [best["number"], worst["number"]]
    csv = (out / "sweep.csv").read_text().splitlines()
    assert csv[0].startswith("trial,status,lr,val_acc,std") and len(csv) == 3
    page = (out / "sweep.html").read_text()
    for part in ("Trials, best first", "against each parameter", "All parameters at once",
                 "Curves of the best trials", "cnnlab train lenet_modern", "data:image/png"):
        assert part in page
    # the trials are run folders the other commands read: compare and report
    from cnnlab.compare import collect_runs
    from cnnlab.report import write_report

    runs, skipped = collect_runs([out / "trials"])
    assert len(runs) == 4 and not skipped
    assert write_report(out / best["runs"][0]).name == "report.html"
    # the test split is seen once, by retrain_best, on the whole training split
    from cnnlab.sweep import retrain_best

    res = retrain_best(out, data=data)
    assert res.test_acc is not None and res.config.val_size == 0 and res.config.lr == 0.01
    assert json.loads((out / "best" / "result.json").read_text())["test_images"] == 100


def test_sweep_in_one_call_and_its_best_command_trains_the_same_settings(
        data, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """cnnlab.sweep.sweep: --param specs as strings, TrainConfig fields as keywords; the best
    trial's `cnnlab train` line parses back to the settings every trial trained with."""
    import shlex

    from cnnlab.cli.parser import build_parser
    from cnnlab.cli.training import plan_train
    from cnnlab.sweep import sweep

    result = sweep("lenet_modern", "lr=0.01,0.0001", sampler="grid", prune="off", data=data,
                   out_dir=tmp_path / "s", epochs=1, batch_size=32, optimizer="adamw",
                   threads=1, val_size=100, resize=(28, 28), tensorboard=False, plot=False,
                   progress="none", model_kwargs={"channels": (4, 8)})
    assert [r["status"] for r in result.trials] == ["done", "done"] and result.ran == 2
    assert capsys.readouterr() == ("", "")  # progress="none"
    command = json.loads((tmp_path / "s" / "sweep.json").read_text())["best_command"]
    assert "--resize 28,28" in command and "--model-arg channels=4,8" in command
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args([*argv, "--out", str(tmp_path / "again")])
    _, config, _, kwargs = plan_train(args)
    trial = json.loads((tmp_path / "s" / result.best["runs"][0] / "config.json").read_text())
    for key in ("epochs", "batch_size", "optimizer", "lr", "threads", "tensorboard", "plot"):
        assert getattr(config, key) == trial[key], key
    assert config.resize == (28, 28) and kwargs["channels"] == (4, 8)
    with pytest.raises(ConfigError, match="unknown config field"):
        sweep("lenet_modern", "lr=0.01,0.0001", trials=2, out_dir=tmp_path / "t", epoch=1)
    assert not (tmp_path / "t").exists()


def test_pruned_trials_are_marked_and_stop_early(data, tmp_path: Path) -> None:
    spec = SweepSpec("lenet_modern", [parse_param(LRS)], BASE.replace(epochs=3),
                     sampler="grid", prune="halving")
    result = run_sweep(spec, tmp_path / "s", data=data)
    pruned = [r for r in result.trials if r["status"] == "pruned"]
    assert pruned and result.best is not None and result.best["epochs"] == 3
    for r in pruned:
        assert r["epochs"] < 3
        assert json.loads((tmp_path / "s" / r["runs"][0] / "result.json").read_text())[
            "stopped_early"]
    assert sum(r["trial_epochs"] for r in result.trials) < 3 * 4


# --- bad input: one line, exit 2, nothing lost -------------------------------------------------

def test_bad_sweeps_are_one_line_and_lose_nothing(idx_root: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    args = ["sweep", "lenet_modern", "--data-root", str(idx_root), "--out", str(out),
            "--epochs", "1", "--batch-size", "32", "--threads", "1", "--no-tensorboard",
            "--no-plot", "--val-size", "100"]
    assert main(args + ["--param", "lr=0.01,0.001", "--sampler", "grid"]) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    run = tmp_path / "run"
    train("lenet_modern", make_dataset(100, 20), BASE.replace(epochs=1, val_size=20),
          out_dir=run)
    capsys.readouterr()
    cases = [
        (["--param", "lrr=0.1,0.2"], "unknown parameter 'lrr'"),
        (["--param", "lr=0.1..0.1"], "empty range"),
        (["--param", "lr=0.3..0.1"], "reversed"),
        (["--param", "lr=log:0..0.3"], "bounds > 0"),
        (["--param", "momentum=0,1.5"], "momentum=1.5 must be in [0, 1)"),
        (["--param", "model.activaton=relu"], "has no knob 'activaton'; did you mean"),
        (["--param", "model.activation=relu,sigmod"], "did you mean 'sigmoid'"),
        (["--param", "lr=0.1,0.2,0.3", "--sampler", "grid", "--trials", "2"], "grid has 3"),
        (["--param", "lr=0.1,0.2"], "holds a sweep with other settings"),
        (["--param", "lr=0.1,0.2", "--trials", "2", "--storage", "postgresql://u@127.0.0.1:1/x"],
         "cannot be reached"),
    ]
    new = tmp_path / "new"
    for extra, words in cases:
        where = [] if "other settings" in words else ["--out", str(new)]  # the last --out wins
        assert main(args + extra + where) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, (extra, err)
    assert main(["sweep", "--join", str(tmp_path / "nothing")]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    assert main(["sweep", "--join", str(run)]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    other = args[:-2] + ["--out", str(run), "--param", "lr=0.1,0.2"]
    assert main(other) == 2
    assert "holds files no sweep wrote (checkpoints, config.json" in capsys.readouterr().err
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before and not new.exists()  # nothing finished was touched


# --- processes: SIGKILL and resume, two workers, PostgreSQL ------------------------------------

def _wait_for(pred, timeout: float, proc: subprocess.Popen | None = None) -> None:
    t0 = time.time()
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_sigkill_then_the_same_command_continues(idx_root: Path, tmp_path: Path,
                                                 sig: signal.Signals) -> None:
    out = tmp_path / "s"
    argv = _cli(idx_root, out, "--param", "lr=log:1e-4..1e-2", "--trials", "3",
                "--epochs", "3", "--sampler", "random", "--prune", "off")
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = out / "trials" / "0001-seed0" / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and metrics.read_text().strip(), 240, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:  # the engine checkpoints; the sweep says how to go on
        assert proc.returncode == 143
        assert err.decode().strip().splitlines()[-1] == (
            f"cnnlab: sweep interrupted; finished trials are kept; continue with: "
            f"cnnlab sweep --resume {out}")
    first = json.loads((out / "trials" / "0001-seed0" / "metrics.jsonl").read_text()
                       .splitlines()[0])
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "sweep.json").read_text())
    rows = doc["trials_table"]
    assert sorted(r["status"] for r in rows) == ["done", "done", "done", "interrupted"]
    again = next(r for r in rows if r["continues"] == 1)
    assert again["runs"] == ["trials/0001-seed0"] and again["epochs"] == 3
    history = [json.loads(line) for line in
               (out / "trials" / "0001-seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[0] == first  # continued
    # three trials, three run folders: the continuation (trial 2) ran in trial 1's folder
    assert sorted(f"trials/{p.name}" for p in (out / "trials").iterdir()) == sorted(
        r["runs"][0] for r in rows if r["status"] == "done")


def test_two_workers_share_a_sweep_without_running_a_trial_twice(idx_root: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "s"
    argv = _cli(idx_root, out, "--param", "lr=log:1e-4..1e-2", "--trials", "6",
                "--epochs", "2", "--sampler", "random", "--prune", "off")
    first = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for((out / "sweep.json").exists, 120, first)
    second = subprocess.run([sys.executable, "-m", "cnnlab", "sweep", "--join", str(out)],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert first.wait(timeout=300) == 0 and second.returncode == 0, second.stderr
    doc = json.loads((out / "sweep.json").read_text())
    rows = doc["trials_table"]
    assert len(rows) == 6 and {r["status"] for r in rows} == {"done"}
    folders = [r["runs"][0] for r in rows]
    assert len(set(folders)) == 6
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(
        f.split("/")[1] for f in folders)
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from cnnlab.sweep import JOURNAL, STUDY

    # which worker ran each trial is the study's record
    study = optuna.load_study(study_name=STUDY, storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(out / JOURNAL))))
    pids = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert len(pids) == 2, "both workers ran trials"


def _journal_study(out: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from cnnlab.sweep import JOURNAL, STUDY

    return optuna.load_study(study_name=STUDY, storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(out / JOURNAL))))


def _left_running(study, spec: SweepSpec, folder: str, beat: float | None = None,
                  **worker) -> int:
    """A trial another worker took and never finished, as the study records it."""
    from cnnlab.sweep_space import suggest_params

    trial = study.ask()
    suggest_params(trial, spec.params)
    trial.set_user_attr("folder", folder)
    trial.set_user_attr("worker", {"host": "elsewhere", "pid": 1, "started": None, **worker})
    if beat is not None:
        trial.set_user_attr("beat", beat)
    return trial.number


def test_a_trial_from_another_machine_is_taken_over_once_its_heartbeat_stops(
        data, tmp_path: Path) -> None:
    from cnnlab import sweep as sw

    out = tmp_path / "s"
    spec = SweepSpec("lenet_modern", [parse_param("lr=0.01,0.0001")], BASE.replace(epochs=1),
                     sampler="random", prune="off")
    assert [r["status"] for r in run_sweep(spec, out, trials=1, data=data).trials] == ["done"]
    study = _journal_study(out)
    lost = _left_running(study, spec, "0001", beat=time.time() - 3600)  # machine gone an hour
    busy = _left_running(study, spec, "0002", beat=time.time())  # still beating over there
    quiet = _left_running(study, spec, "0003")  # an older cnnlab's worker: no beat at all
    result = run_sweep(None, out, trials=5, data=data)
    rows = {r["number"]: r for r in result.trials}
    assert rows[lost]["status"] == "interrupted"
    again = next(r for r in result.trials if r["continues"] == lost)
    assert again["status"] == "done" and again["runs"] == ["trials/0001-seed0"]
    assert rows[busy]["status"] == rows[quiet]["status"] == "running"  # left to their workers
    assert result.ran == 2  # the continuation, then one more: 0, busy, quiet, 2 of its own
    # this worker beat while its trials ran, and no beat landed after a trial had ended
    for t in _journal_study(out).trials:
        if t.state.name == "COMPLETE":
            beat = t.user_attrs["beat"]
            assert t.datetime_start.timestamp() - 1 <= beat <= t.datetime_complete.timestamp()
    assert sw.HEARTBEAT_S == 60 and sw.STALE_S == 600


def test_the_heartbeat_writes_until_its_block_ends(monkeypatch, data, tmp_path: Path) -> None:
    from cnnlab import sweep as sw

    monkeypatch.setattr(sw, "HEARTBEAT_S", 0.002)
    spec = SweepSpec("lenet_modern", [parse_param("lr=0.01")], BASE.replace(epochs=2),
                     sampler="grid", prune="off")
    run_sweep(spec, tmp_path / "s", data=data)
    # every beat is one record in the journal: they kept coming while the trial ran
    beats = (tmp_path / "s" / sw.JOURNAL).read_text().count('"beat"')
    assert beats >= 3
    assert not [t for t in __import__("threading").enumerate()
                if t.name == "cnnlab-sweep-heartbeat"]  # and stopped with the trial


def test_a_dead_local_workers_trial_is_run_even_when_it_completes_the_count(
        data, tmp_path: Path) -> None:
    out = tmp_path / "s"
    spec = SweepSpec("lenet_modern", [parse_param("lr=0.01,0.0001")], BASE.replace(epochs=1),
                     sampler="random", prune="off")
    run_sweep(spec, out, trials=1, data=data)
    study = _journal_study(out)
    from cnnlab.sweep import HOST

    dead = _left_running(study, spec, "0001", host=HOST, pid=2 ** 22 + 12345)
    result = run_sweep(None, out, trials=2, data=data)  # 2 = trial 0 + the dead one's rerun
    assert result.ran == 1
    assert sorted(r["status"] for r in result.trials) == ["done", "done", "interrupted"]
    assert next(r for r in result.trials if r["continues"] == dead)["status"] == "done"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path: Path):
    """A real PostgreSQL server on a free port (Debian's postgresql package), stopped after."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    bin_dir = bins[-1].parent
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="cnnlab-pg-"))  # pytest's tmp is private to its user
    pgdata = home / "pg"
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running PostgreSQL as root needs runuser and a postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(home, "postgres")
    port = _free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(pgdata), "-A", "trust",
                    "-U", "cnnlab"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-l",
                    str(pgdata / "log"), "-o", f"-p {port} -k {pgdata} -h 127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://cnnlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_a_postgresql_server_holds_the_study(postgres: str, data, tmp_path: Path,
                                             monkeypatch) -> None:
    import optuna

    from cnnlab import sweep as sw
    from cnnlab.sweep import STUDY

    monkeypatch.setattr(sw, "HEARTBEAT_S", 0.005)  # beats race the trial's own writes

    spec = SweepSpec("lenet_modern", [parse_param("lr=0.01,0.0001")], BASE.replace(epochs=1),
                     sampler="grid", prune="off")
    result = run_sweep(spec, tmp_path / "s", storage=postgres, data=data)
    assert [r["status"] for r in result.trials] == ["done", "done"]
    assert not (tmp_path / "s" / "study.journal").exists()
    driver = postgres.replace("postgresql://", "postgresql+psycopg2://")  # SQLAlchemy 2.1
    study = optuna.load_study(study_name=STUDY, storage=driver)
    assert sorted(t.params["lr"] for t in study.trials) == [0.0001, 0.01]
    assert all(t.datetime_start.timestamp() - 1 <= t.user_attrs["beat"] for t in study.trials)
    joined = run_sweep(None, tmp_path / "s", data=data)  # the folder remembers the server
    assert len(joined.trials) == 2 and joined.ran == 0


@pytest.mark.filterwarnings("error")
def test_page_pictures_of_a_one_value_sweep_draw_without_warnings():
    """One parameter with one value (a probe of one configuration): the parallel-coordinates
    picture used to make matplotlib warn on stderr that its tight layout could not be applied."""
    from cnnlab.plots import figure_png
    from cnnlab.sweep_page import _curves, _parallel, _scatter

    spec = SweepSpec("lenet", [parse_param("augment_crop=2")], TrainConfig())
    rows = [{"number": 0, "params": {"augment_crop": 2}, "value": 0.9458, "status": "done",
             "curves": [[0.87, 0.9, 0.9458]]}]
    for draw in (_scatter, _parallel, _curves):
        assert figure_png(draw(rows, spec)).startswith(b"\x89PNG")
