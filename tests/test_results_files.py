"""Where ``adaptx reddi`` puts its results, and that they are replaced whole or not at all.

The output folder is printed at the start and at the end; a folder holding an earlier run's results is
replaced only with ``--force``; the files of a run are renamed into place together, so an interrupted or
failed write (Ctrl-C while writing, a failing figure) leaves the earlier complete run as it was.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from adaptx.cli import main
from adaptx.experiments import report
from adaptx.experiments.report import RESULT_FILES, StagedFiles

RUN = ["reddi", "--setting", "online", "--optimizers", "adam", "--steps", "300", "--log-points", "5",
       "--quiet"]


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


def snapshot(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture
def earlier(tmp_path, capsys):
    """A folder holding a complete earlier run (steps 300), and its files' bytes."""
    out = tmp_path / "results"
    assert main([*RUN, "--out", str(out)]) == 0
    capsys.readouterr()
    files = snapshot(out)
    assert sorted(files) == sorted(RESULT_FILES)
    return out, files


def test_the_folder_is_printed_at_the_start_and_at_the_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a for a in RUN if a != "--quiet"]
    assert main([*argv, "--no-plot"]) == 0  # the default folder, in the working directory
    captured = capsys.readouterr()
    folder = str(tmp_path / "reddi-results")
    assert f"results will go to {folder}{os.sep}" in captured.err.splitlines()[1]
    assert captured.out.strip().splitlines()[-1] == (
        f"results in {folder}{os.sep}: summary.csv, curves.csv, results.json"
    )


def test_earlier_results_are_replaced_only_with_force(earlier, capsys):
    """The default folder used to be overwritten silently by the next run."""
    out, files = earlier
    assert main([*RUN, "--steps", "400", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds the results of an earlier run" in err and "--force" in err
    assert snapshot(out) == files
    assert main([*RUN, "--steps", "400", "--out", str(out), "--force", "--no-plot"]) == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["steps"] == 400
    # the earlier figure is gone with the rest of the earlier run: no mix of two runs
    assert sorted(os.listdir(out)) == ["curves.csv", "results.json", "summary.csv"]


def test_a_folder_with_other_files_is_used_without_force(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main([*RUN, "--out", str(out), "--no-plot"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "summary.csv").exists()


def test_an_interrupted_write_leaves_the_earlier_run_whole(earlier, monkeypatch, capsys):
    """Ctrl-C while the results were written used to leave a truncated results.json beside the new CSVs,
    in place of a complete earlier run."""
    out, files = earlier

    def interrupted_dump(payload, f, **kw):
        f.write('{"config": {"steps": 4')  # half written
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupted_dump)
    assert main([*RUN, "--steps", "400", "--out", str(out), "--force"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert snapshot(out) == files  # no new CSV beside the old JSON, no temporary file left


def test_a_failing_figure_leaves_the_earlier_run_whole(earlier, monkeypatch, capsys):
    out, files = earlier

    def broken_plot(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "figure", broken_plot)  # the figure plot() saves
    assert main([*RUN, "--steps", "400", "--out", str(out), "--force"]) == 1
    assert "could not write the results" in capsys.readouterr().err
    assert snapshot(out) == files


def test_ctrl_c_during_the_renames_waits_for_them(tmp_path, monkeypatch):
    """A SIGINT arriving between two renames is delivered after the last one: the folder then holds the
    new set complete, never half of each."""
    folder = tmp_path
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text("old")
    renames = []
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        renames.append(dst)
        if len(renames) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt), StagedFiles(str(folder)) as files:
        for name in ("a.txt", "b.txt"):
            with open(files.path(name), "w") as f:
                f.write("new")
        files.commit()
    assert len(renames) == 2
    contents = {n: (folder / n).read_text() for n in sorted(os.listdir(folder))}
    assert contents == {"a.txt": "new", "b.txt": "new"}


def test_staged_files_remove_the_stale_files_of_their_set(tmp_path):
    (tmp_path / "x.csv").write_text("old")
    (tmp_path / "y.png").write_text("old")
    (tmp_path / "other").write_text("not ours")
    with StagedFiles(str(tmp_path), owned=("x.csv", "y.png")) as files:
        with open(files.path("x.csv"), "w") as f:
            f.write("new")
        written = files.commit()
    assert written == [str(tmp_path / "x.csv")]
    assert sorted(os.listdir(tmp_path)) == ["other", "x.csv"]
    assert (tmp_path / "x.csv").read_text() == "new"
    assert os.path.splitext(StagedFiles(str(tmp_path)).path("y.png"))[1] == ".png"  # matplotlib reads it
