"""``python -m training.study``: the grid of methods x source sets, its CSV and plot, resuming, bad input."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_error

import training.study
from training.study import CSV_COLUMNS, main

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.usefixtures("one_thread")]

PROG = "python -m training.study"

_TINY = ["--num_imgs", "32", "--val_imgs", "8", "--batch_size", "16", "--epochs", "1", "--workers", "0",
         "--width", "0.125", "--probe_epochs", "1"]


@pytest.fixture
def ten(tmp_path: Path, coffee_path: Path, hubble_path: Path) -> Path:
    """A directory of two images (the paper's "ten images" in small)."""
    folder = tmp_path / "ten"
    folder.mkdir()
    shutil.copy(coffee_path, folder / "coffee.png")
    shutil.copy(hubble_path, folder / "hubble.jpg")
    return folder


def _argv(tmp_path: Path, coffee_path: Path, ten: Path, probe_set: Path) -> list[str]:
    return ["--methods", "rotnet", "deepcluster", "--sources", f"one={coffee_path}", f"ten={ten}",
            "--probe", str(probe_set), "--out", str(tmp_path / "study"), *_TINY, "--k", "4", "--pca_dim", "8"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_grid_writes_its_csv_and_plot_and_resumes(tmp_path: Path, coffee_path: Path, ten: Path, probe_set: Path,
                                                    capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    argv = _argv(tmp_path, coffee_path, ten, probe_set)
    calls: list[str] = []
    real = training.study.run_training

    def interrupted_at_the_third(config, **kwargs):
        calls.append(config.out)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(config, **kwargs)

    monkeypatch.setattr(training.study, "run_training", interrupted_at_the_third)
    assert main(argv) == 130
    out = tmp_path / "study"
    captured = capsys.readouterr()
    assert "interrupted; run the same command again to go on" in captured.err
    assert len(_rows(out / "study.csv")) == 2 * 5 + 5  # two cells so far, and the random-init baseline
    finished = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/checkpoint.pt")}
    assert len(finished) == 2

    calls.clear()

    def counted(config, **kwargs):
        calls.append(config.out)
        return real(config, **kwargs)

    monkeypatch.setattr(training.study, "run_training", counted)
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    # A progress line per cell: the first two finished before, the other two trained now.
    progress = [line for line in lines if re.match(r"\[\d/4\] ", line)]
    assert [line.split(":")[0] for line in progress if "skipped" in line] == [
        "[1/4] rotnet on one (seed 0)", "[2/4] deepcluster on one (seed 0)"]
    assert sum(bool(re.search(r": conv1 \d+\.\d conv2 .* in \d+s \(random init conv1", line)) for line in progress) == 2
    assert len(calls) == 2 and all("_ten_" in c for c in calls)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not retrained

    rows = _rows(out / "study.csv")
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 4 * 5 + 5
    cells = {(r["method"], r["sources"], r["seed"]) for r in rows}
    assert cells == {("rotnet", "one", "0"), ("deepcluster", "one", "0"), ("rotnet", "ten", "0"),
                     ("deepcluster", "ten", "0"), ("random", "", "")}
    assert all(0 <= float(r["top1"]) <= 1 and r["probe_seed"] == "0" for r in rows)
    assert [r["layer"] for r in rows[:5]] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out / 'study.csv'} and {out / 'study.png'}" in lines[-1]


@pytest.mark.parametrize(
    ("sources", "pattern"),
    [
        (["one"], r"--sources 'one' should be NAME=PATH\[,PATH\.\.\.\], NAME made of letters, digits"),
        (["=x.png"], r"--sources '=x\.png' should be NAME=PATH"),
        (["a b=x.png"], r"--sources 'a b=x\.png' should be NAME=PATH"),
        (["one={coffee},"], r"--sources 'one=.*coffee\.png,' should be NAME=PATH"),
        (["one={coffee}", "one={coffee}"], r"--sources names 'one' twice; give each source set its own name$"),
        (["one=/nonexistent.png"], r"--sources one: imgpath /nonexistent\.png is not a file$"),
        (["ten={coffee},/nonexistent.png"], r"--sources ten: imgpath /nonexistent\.png is not a file$"),
        (["bad={text}"], r"--sources bad: .*notes\.png"),
    ],
)
def test_a_bad_sources_entry_is_one_line_before_any_training(tmp_path: Path, coffee_path: Path, probe_set: Path,
                                                             sources: list[str], pattern: str,
                                                             capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    monkeypatch.setattr(training.study, "run_training", lambda *a, **k: pytest.fail("trained"))
    entries = [s.format(coffee=coffee_path, text=text) for s in sources]
    argv = ["--methods", "rotnet", "--sources", *entries, "--probe", str(probe_set), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, pattern, prog=PROG)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--seed", "3"], r"--seed is set by the study for each cell; use --seeds$"),
        (["--method", "bigan"], r"--method is set by the study for each cell; use --methods$"),
        (["--imgpath", "x.png"], r"--imgpath is set by the study for each cell; use --sources$"),
        (["--resume"], r"--resume is set by the study for each cell; use \(always on\)$"),
        (["--colour", "red"], r"unrecognized arguments: --colour red"),
        (["--epochs", "0"], r"rotnet on one: epochs should be at least 1, got 0$"),
        (["--per_source_classes", "--methods", "bigan"], r"bigan on one: per_source_classes has no use in bigan"),
    ],
)
def test_training_flags_go_to_every_cell_or_are_refused(tmp_path: Path, coffee_path: Path, probe_set: Path,
                                                        extra: list[str], pattern: str,
                                                        capsys: pytest.CaptureFixture) -> None:
    argv = ["--methods", "rotnet", "--sources", f"one={coffee_path}", "--probe", str(probe_set),
            "--out", str(tmp_path / "o"), *extra]
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, pattern, prog=PROG)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_finished_cell_with_other_settings_is_refused(tmp_path: Path, coffee_path: Path, probe_set: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    argv = ["--methods", "rotnet", "--sources", f"one={coffee_path}", "--probe", str(probe_set),
            "--out", str(tmp_path / "o"), *_TINY]
    assert main(argv) == 0
    assert main([*argv, "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, r"rotnet_one_seed0/cell\.json was trained with lr=None, not 0\.5; give the study the "
                               r"settings it ran with, or another --out$", prog=PROG)
    # A record written before a setting existed (SimCLR's temperature) was trained with its default.
    record = tmp_path / "o" / "cells" / "rotnet_one_seed0" / "cell.json"
    cell = json.loads(record.read_text())
    del cell["config"]["temperature"]
    record.write_text(json.dumps(cell))
    assert main(argv) == 0 and "temperature" not in capsys.readouterr().err


def test_a_damaged_cell_record_is_one_line(tmp_path: Path, coffee_path: Path, probe_set: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    record = tmp_path / "o" / "cells" / "rotnet_one_seed0" / "cell.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"config": {}}')
    argv = ["--methods", "rotnet", "--sources", f"one={coffee_path}", "--probe", str(probe_set),
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, r"cell\.json is not a cell record this study wrote; remove it to train the cell again$",
                          prog=PROG)


def test_matplotlib_missing_is_one_line_before_any_training(tmp_path: Path, coffee_path: Path, probe_set: Path,
                                                            capsys: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["--methods", "rotnet", "--sources", f"one={coffee_path}", "--probe", str(probe_set),
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "python -m training.study: error: the study's plot needs matplotlib: pip install matplotlib (the " \
                  "training extra)\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_as_a_module_in_a_real_process(tmp_path: Path, coffee_path: Path, probe_set: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "-m", "training.study", "--methods", "rotnet", "--sources", f"one={coffee_path}",
            "--probe", str(probe_set), "--out", str(tmp_path / "o"), *_TINY]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=repo)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1] == f"wrote {tmp_path / 'o' / 'study.csv'} and {tmp_path / 'o' / 'study.png'}"
    bad = subprocess.run([*argv[:6], "one=/nonexistent.png", *argv[7:]], capture_output=True, text=True, timeout=300,
                         cwd=repo)
    assert bad.returncode == 2
    assert bad.stderr == "python -m training.study: error: --sources one: imgpath /nonexistent.png is not a file\n"
