"""The run folder's files read back: every reader treats a damaged or ill-typed file as one line
naming it, exit 2; the report renders past a torn last line and says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _trainkit import write_idx_dataset

from cnnlab.cli import main
from cnnlab.errors import DataError
from cnnlab.runfiles import read_run_json, read_run_lines

DAMAGED = "cnnlab: error: this run folder is damaged: "


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch LeNet run on a small synthetic fashion-mnist."""
    tmp = tmp_path_factory.mktemp("runlog")
    root = write_idx_dataset(tmp / "data" / "fashion-mnist", n_train=128, n_test=64).parent
    out = tmp / "run"
    assert main(["train", "lenet", "--data-root", str(root), "--epochs", "2", "--batch-size",
                 "32", "--threads", "1", "--progress", "none", "--no-tensorboard", "--no-plot",
                 "--no-report", "--out", str(out)]) == 0
    return out


def _copy(done: Path, tmp_path: Path, name: str, text: str, append: bool = False) -> Path:
    run = tmp_path / "run"
    shutil.copytree(done, run)
    path = run / name
    path.write_text((path.read_text() if append else "") + text)
    return run


def _config_with(done: Path, **changes: object) -> str:
    return json.dumps({**json.loads((done / "config.json").read_text()), **changes})


CASES = {  # file -> (its new text or an appended line, what the error says)
    "config list": ("config.json", "[1, 2]", "a list where a JSON object belongs"),
    "config not json": ("config.json", '{"model": ', "not valid JSON"),
    "config ill-typed": ("config.json", "RESIZE", 'resize is "abc", not [height, width]'),
    "result list": ("result.json", "[1, 2]", "a list where a JSON object belongs"),
    "result ill-typed": ("result.json", '{"test_acc": "high"}', 'test_acc is "high", not a'),
    "metrics mid-line": ("metrics.jsonl", "MIDDLE", "line 1 is not valid JSON"),
}
READERS = {  # the command; which of the files it reads
    "eval": (["eval", "RUN"], {"config.json"}),
    "report": (["report", "RUN"], {"config.json", "result.json", "metrics.jsonl"}),
    "inspect": (["inspect", "RUN", "--out", "OUT"], {"config.json"}),
    "compare": (["compare", "RUN", "--no-page"], {"config.json", "result.json",
                                                  "metrics.jsonl"}),
    "export": (["export", "RUN", "--format", "torchscript", "--out", "OUT/m.pt"],
               {"config.json"}),
    "predict": (["predict", "RUN", "IMAGE"], {"config.json"}),
}


@pytest.mark.parametrize(("case", "reader"), [(c, r) for c in CASES for r in READERS
                                               if CASES[c][0] in READERS[r][1]])
def test_every_reader_names_the_damaged_file(done: Path, tmp_path: Path, case: str, reader: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    name, text, says = CASES[case]
    argv = READERS[reader][0]
    if text == "RESIZE":
        text = _config_with(done, resize="abc")
    elif text == "MIDDLE":
        text = "{torn\n" + (done / name).read_text()
    run = _copy(done, tmp_path, name, text)
    image = tmp_path / "x.png"  # not read: the run folder is read first
    argv = [{"RUN": str(run), "OUT": str(tmp_path / "o"), "OUT/m.pt": str(tmp_path / "m.pt"),
             "IMAGE": str(image)}.get(a, a) for a in argv]
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln != "writing report…"]
    assert len(err) == 1 and err[0].startswith(f"{DAMAGED}{run / name} ("), err
    assert says in err[0]
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "o").exists()


def test_load_run_and_the_readers_raise_data_error(done: Path, tmp_path: Path) -> None:
    from cnnlab.run import load_run

    run = _copy(done, tmp_path, "config.json", "[1, 2]")
    with pytest.raises(DataError, match=r"this run folder is damaged: .*config\.json \(a list"):
        load_run(run)
    (run / "result.json").write_text("null")
    with pytest.raises(DataError, match=r"result\.json \(null where a JSON object belongs\)"):
        read_run_json(run / "result.json")
    (run / "steps.jsonl").write_text('{"epoch": 1}\n[3]\n{"epoch": 2}\n')
    with pytest.raises(DataError, match=r"steps\.jsonl \(line 2 is not an object of numbers\)"):
        read_run_lines(run / "steps.jsonl", skip_torn=True)  # not the last line: not torn
    assert read_run_lines(run / "nothing.jsonl") == ([], 0)


@pytest.mark.parametrize("name", ["metrics.jsonl", "steps.jsonl"])
def test_report_renders_past_a_torn_last_line_and_says_so(done: Path, tmp_path: Path, name: str,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """What a crash (or a copy cut short) leaves: half a line at the end."""
    run = _copy(done, tmp_path, name, '{"epoch": 3, "step": 12, "train_lo', append=True)
    rows, skipped = read_run_lines(run / name, skip_torn=True)
    assert skipped == 1 and len(rows) == len((done / name).read_text().splitlines())
    assert main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"cnnlab: note: the last line of {run / name} is torn; the report skipped it" in err
    page = (run / "report.html").read_text()
    assert f"<b>{name}:</b> its last line is torn" in page
    if name == "metrics.jsonl":  # the two intact epochs
        assert '<b>2</b><span>epochs run</span>' in page
    # The other readers still name it: only the report renders around it.
    assert main(["compare", str(run), "--no-page"]) == (2 if name == "metrics.jsonl" else 0)
    if name == "metrics.jsonl":
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"{DAMAGED}{run / name} (line 3 is not valid JSON: Unterminated string "
                       "starting at: line 1 column 26 (char 25)); restore the file from a copy "
                       "or train the run again"]
