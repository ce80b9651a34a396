"""cnnlab compare: runs read back as the engine wrote them, one table, one self-contained page."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import matplotlib.image
import pytest

from cnnlab.cli import main
from cnnlab.compare import collect_runs, format_table, read_run, write_compare
from cnnlab.errors import DataError
from cnnlab.train import TrainConfig, train
from tests._trainkit import make_dataset, write_image_folder
from tests.test_report import Page

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of runs: lenet (2 epochs), bn_lenet (1 epoch), an unfinished copy, a non-run."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    ds = make_dataset(320, 100)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, progress="none", tensorboard=False,
                      plot=False, threads=1, test_samples=50, resize=(28, 28), amp="off")
    train("lenet", ds, cfg, out_dir=root / "lenet")
    train("bn_lenet", ds, cfg.replace(epochs=1), out_dir=root / "bn_lenet")
    # A run still going (or killed): no result.json, one epoch of its two recorded.
    shutil.copytree(root / "lenet", root / "lenet_running")
    (root / "lenet_running" / "result.json").unlink()
    lines = (root / "lenet_running" / "metrics.jsonl").read_text().splitlines()
    (root / "lenet_running" / "metrics.jsonl").write_text(lines[0] + "\n")
    # The same run as if trained on another machine: only config.json's environment differs.
    shutil.copytree(root / "bn_lenet", root / "bn_lenet_gpu")
    cfg_path = root / "bn_lenet_gpu" / "config.json"
    cfg_json = json.loads(cfg_path.read_text())
    cfg_json["environment"].update(device="cuda", device_name="NVIDIA H100 80GB HBM3")
    cfg_path.write_text(json.dumps(cfg_json))
    (root / "notes").mkdir()  # a folder that is not a run
    return root


def test_folder_of_runs_is_read_and_non_runs_are_named(runs: Path) -> None:
    found, skipped = collect_runs([runs, runs / "missing"])
    assert [r.label for r in found] == ["bn_lenet", "bn_lenet_gpu", "lenet", "lenet_running"]
    assert {p.name: why for p, why in skipped} == {
        "notes": "is not a run folder", "missing": "does not exist"}


def test_row_values_come_from_the_run_and_cost(runs: Path) -> None:
    run = read_run(runs / "lenet")
    result = json.loads((runs / "lenet" / "result.json").read_text())
    row = run.row()
    assert row["model"] == "lenet" and row["dataset"] == "fashion-mnist"
    assert row["params"] == 61_706  # cnnlab.cost, as `cnnlab models` lists it
    assert 400_000 < row["macs"] < 430_000  # LeNet at 28x28: 0.42 MMACs
    assert row["precision"] == "float32"
    assert row["epochs"] == "2" and row["finished"]
    assert row["test_acc"] == pytest.approx(result["test_acc"])
    history = [json.loads(x) for x in (runs / "lenet" / "metrics.jsonl").read_text().splitlines()]
    assert row["best_val_acc"] == max(h["val_acc"] for h in history)
    assert row["train_seconds"] == pytest.approx(result["seconds"])
    assert row["test_images"] == 50
    assert round(row["test_acc"] * 50, 9) == round(row["test_acc"] * 50)  # 50 images counted
    assert ", 1 thread @ " in row["machine"]


def test_unfinished_run_is_marked_and_shows_its_epochs_so_far(runs: Path) -> None:
    run = read_run(runs / "lenet_running")
    assert not run.finished and run.test_acc is None
    assert run.epochs == "1 of 2"
    assert run.train_seconds == pytest.approx(run.history[0]["seconds"])
    text = format_table([run], "text")
    assert "lenet_running (unfinished)" in text and "unfinished: no result.json" in text


def test_machine_column_tells_machines_apart(runs: Path) -> None:
    cpu, gpu = read_run(runs / "bn_lenet"), read_run(runs / "bn_lenet_gpu")
    assert gpu.machine.startswith("NVIDIA H100 80GB HBM3 (cuda) @ ")
    assert "H100" not in cpu.machine and "thread" in cpu.machine


def test_machine_column_says_up_to_for_the_load_aware_threads(runs: Path) -> None:
    run = read_run(runs / "bn_lenet")
    env = {**run.config["environment"], "cpu_model": "Intel(R) Xeon(R) Processor"}
    # threads=0 runs record the most threads and the policy in config.json's environment
    run.config = {**run.config, "threads": 0, "environment": {
        **env, "cpu_threads": 2, "cpu_thread_policy": "load-aware"}}
    assert run.machine.startswith("Intel Xeon, up to 2 threads")
    # run folders written before that recorded the console's words instead
    run.config = {**run.config, "environment": {
        **env, "cpu_threads": "2 threads (fewer while other programs load the CPU)"}}
    assert run.machine.startswith("Intel Xeon, up to 2 threads")
    assert "threads threads" not in run.machine and "fewer" not in run.machine


def test_table_formats(runs: Path) -> None:
    found, _ = collect_runs([runs])
    rows = json.loads(format_table(found, "json"))
    assert [r["run"] for r in rows] == [r.label for r in found]
    assert rows[0]["params"] == 44_878 and rows[3]["finished"] is False
    md = format_table(found, "markdown").splitlines()
    assert md[0].startswith("| run | model | dataset | params | MACs/image | precision")
    assert md[1].count("|") == md[0].count("|")
    assert sum(line.startswith("| ") for line in md) == 1 + len(found)
    text = format_table(found, "text").splitlines()
    assert text[0].split()[:3] == ["run", "model", "dataset"]
    assert "2,000" not in text[-3] and "50 images" in "\n".join(text)


def test_page_is_self_contained_with_table_curves_and_scatter(runs: Path, tmp_path: Path) -> None:
    found, _ = collect_runs([runs])
    out = write_compare(found, tmp_path / "sub" / "compare.html", title="tiny")
    page_text = out.read_text()
    page = Page()
    page.feed(page_text)
    assert page.external == []  # no network: every picture is embedded
    assert len(page.images) == 2  # curves, accuracy vs time/MACs (each with a phone variant)
    assert page_text.count('<source media="(max-width: 640px)"') == 2
    for img in page.images:
        raw = base64.b64decode(img["src"].split(",", 1)[1])
        assert matplotlib.image.imread(io.BytesIO(raw), format="png").shape[0] > 200
    for r in found:
        assert r.label in page_text
    assert "unfinished" in page_text and "H100" in page_text
    # one dataset for all: said in the header, not repeated as a column
    assert "fashion-mnist" in page_text and ">dataset<" not in page_text


def test_write_compare_refuses_no_runs(runs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no run folder"):
        write_compare([runs / "notes"], tmp_path / "none.html")


def test_cli_compare_prints_table_and_warns(runs: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "c.html"
    assert main(["compare", str(runs / "lenet"), str(runs / "notes"), str(runs / "bn_lenet"),
                 "--out", str(out), "--format", "markdown", "--no-page"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("| run | model |") and "| lenet |" in cap.out
    assert f"warning: skipping {runs / 'notes'}: is not a run folder" in cap.err
    assert not out.exists()  # --no-page: the table only


def test_cli_compare_without_any_run_is_one_line_exit_2(runs: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(runs / "notes"), str(tmp_path / "nope"),
                 "--out", str(tmp_path / "c.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cnnlab: error: no run folder") and len(err) == 3
    assert not (tmp_path / "c.html").exists()


def test_damaged_run_is_skipped_with_its_reason(runs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(runs / "bn_lenet", bad)
    (bad / "config.json").write_text("{not json")
    found, skipped = collect_runs([bad, runs / "bn_lenet"])
    assert [r.label for r in found] == ["bn_lenet"]
    assert skipped[0][0] == bad and "not valid JSON" in skipped[0][1]


def test_runs_that_are_not_whole_are_marked(runs: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A --dry-run is left out with a note; a --limit-batches run is flagged wherever it shows
    (its row, a footnote, the page, the curves' legend), never unmarked beside whole runs."""
    ds = make_dataset(320, 100)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, progress="none", tensorboard=False,
                      plot=False, threads=1, resize=(28, 28), amp="off")
    train("lenet", ds, cfg.replace(limit_batches=3), out_dir=tmp_path / "partial")
    train("lenet", ds, cfg.replace(dry_run=True), out_dir=tmp_path / "dry")
    found, skipped = collect_runs([runs / "lenet", tmp_path / "partial", tmp_path / "dry"])
    assert [r.label for r in found] == ["lenet", "partial"]
    assert [(p.name, why) for p, why in skipped] == [
        ("dry", "is a --dry-run (one training batch), left out of the comparison")]
    text = format_table(found)
    row = next(line for line in text.splitlines() if line.startswith("partial"))
    assert row.startswith("partial (3 batches/epoch)")
    assert "(--limit-batches), not comparable with whole runs: partial 3" in text
    assert json.loads(format_table(found, "json"))[1]["limit_batches"] == 3
    assert "lenet (" not in text  # the whole run carries no flag
    page = write_compare(found, tmp_path / "c.html").read_text()
    assert '<span class="muted">3 batches/epoch</span>' in page
    assert main(["compare", str(tmp_path / "partial"), str(tmp_path / "dry"), "--no-page"]) == 0
    err = capsys.readouterr().err
    assert "dry: is a --dry-run (one training batch), left out of the comparison" in err


def test_narrow_screens_keep_the_run_and_its_test_accuracy(runs: Path, tmp_path: Path) -> None:
    """Columns carry a priority class; pages.py hides p3 then p2 as the screen narrows, never the
    run, the model or the test accuracy (checked at 420 px in Chromium by hand, see README)."""
    import re

    found, _ = collect_runs([runs])
    html = write_compare(found, tmp_path / "c.html").read_text()
    head = re.search(r'<table class="runs nowrap"><thead><tr>(.*?)</tr>', html)[1]
    classes = dict((name, cls) for cls, name in re.findall(r"<th(?: class=\"(p\d)\")?>([^<]+)<",
                                                           head))
    assert classes["run"] == classes["model"] == classes["test acc"] == ""
    assert classes["best val acc"] == classes["epochs"] == "p2"
    assert classes["params"] == classes["machine"] == classes["images/s"] == "p3"
    assert "@media (max-width: 560px) { .p2 { display:none; } }" in html
    assert "On this narrow screen some columns are hidden" in html


def test_an_rgb_run_costs_what_its_report_and_summary_say(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]):
    """A 3-channel folder run: compare builds the network the run trained (3 input channels,
    its size, its classes), not a 1-channel one: the same figures as report.html and as
    `cnnlab summary MODEL --input 3,H,W`."""
    from cnnlab.report import write_report

    folder = tmp_path / "photos"
    write_image_folder(folder, {"cat": 10, "dog": 10, "fox": 10}, size=(16, 16), mode="RGB")
    cfg = TrainConfig(dataset=f"folder:{folder}", epochs=1, batch_size=8, lr=0.05,
                      progress="none", tensorboard=False, plot=False, threads=1, amp="off")
    train("lenet", None, cfg, out_dir=tmp_path / "rgb")
    row = read_run(tmp_path / "rgb").row()
    assert main(["summary", "lenet", "--input", "3,16,16", "--classes", "3", "--format", "json",
                 "--no-measure"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (row["params"], row["macs"]) == (summary["total_params"], summary["total_macs"])
    assert summary["total_params"] != 61_706  # not the 1-channel, 10-class LeNet
    page = write_report(tmp_path / "rgb").read_text()
    assert f"<b>{summary['total_params']:,}</b><span>parameters</span>" in page
    assert "(input 3&times;16&times;16)" in page
