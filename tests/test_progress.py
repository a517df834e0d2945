"""Progress output of the commands: a tqdm bar with the rate and the time left on a terminal, naming the
compilation while it runs; one line per finished sweep (or parity row) elsewhere; nothing when quiet."""

from __future__ import annotations

import io
import os
import re
import sys

import pytest

from adaptx.cli import Progress, bar_width, main
from adaptx.parity.table import _RowProgress


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


def drive(progress: Progress, name: str, states: list[str] | None = None) -> None:
    """A sweep's calls: (0, steps) before compiling, then after each piece."""
    report = progress.sweep(name, "4 seeds")
    report(0, 1000)
    if states is not None:
        states.append(progress.stream.getvalue())
    for done in (10, 500, 1000):
        report(done, 1000)


def test_a_terminal_gets_a_bar_that_names_the_compilation():
    stream = Terminal()
    seen: list[str] = []
    drive(Progress(False, 2, stream), "stochastic Adam", seen)
    assert "[1/2] stochastic Adam: compiling" in seen[0]  # shown while the program compiles
    final = stream.getvalue().split("\r")[-1]
    assert "[1/2] stochastic Adam: 100%" in final and "1.00k/1.00k" in final
    assert re.search(r"step/s|steps/s|s/step", final)  # the rate


def test_elsewhere_one_line_per_finished_sweep():
    stream = io.StringIO()
    progress = Progress(False, 2, stream)
    drive(progress, "online Adam")
    drive(progress, "online AdaX")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    pattern = r"\[1/2\] online Adam: 1,000 steps x 4 seeds in \d+\.\ds \(compiling \d+\.\ds\)"
    assert re.fullmatch(pattern, lines[0])
    assert lines[1].startswith("[2/2] online AdaX: ")


@pytest.mark.skipif(not hasattr(os, "openpty") or sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_terminal_of_unknown_size_still_gets_a_bar():
    """A pseudo-terminal that reports 0 x 0 (``script``, some CI runners) made tqdm hide the bar: every
    update drew an empty line."""
    master, replica = os.openpty()
    try:
        with os.fdopen(replica, "w", encoding="utf-8") as stream:
            assert stream.isatty() and bar_width(stream) == {"ncols": 80, "nrows": 24}
            drive(Progress(False, 1, stream), "online Adam")
            stream.flush()
        shown = os.read(master, 1 << 16).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert "[1/1] online Adam: 100%" in shown


def test_without_tqdm_a_terminal_gets_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes `from tqdm.auto import tqdm` fail
    stream = Terminal()
    drive(Progress(False, 1, stream), "online Adam")
    assert stream.getvalue().startswith("[1/1] online Adam: 1,000 steps x 4 seeds in ")
    rows = _RowProgress(1, False, stream)
    rows("adam", "done")
    assert stream.getvalue().splitlines()[-1].startswith("[1/1] adam (")


def test_quiet_is_quiet():
    for stream in (io.StringIO(), Terminal()):
        drive(Progress(True, 1, stream), "online Adam")
        assert stream.getvalue() == ""


def test_parity_rows():
    stream = io.StringIO()
    rows = _RowProgress(2, False, stream)
    for name in ("adam", "nadam"):
        for phase in ("torch", "jax", "done"):
            rows(name, phase)
    rows.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["[1/2] adam", "[2/2] nadam"]
    terminal = Terminal()
    rows = _RowProgress(2, False, terminal)
    rows("adam", "jax")
    assert "adam: JAX (compiling and running)" in terminal.getvalue()
    rows("adam", "done")
    assert "1/2" in terminal.getvalue()
    rows.close()


def test_reddi_on_a_terminal(tmp_path, monkeypatch):
    """The command draws its bars on stderr when stderr is a terminal."""
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    argv = ["reddi", "--setting", "online", "--optimizers", "adam,amsgrad", "--steps", "300", "--log-points",
            "5", "--format", "csv", "--no-plot", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = terminal.getvalue()
    assert "[1/2] online Adam: compiling" in text and "[2/2] online AMSGrad" in text
    assert "300/300" in text
