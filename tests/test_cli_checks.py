"""The command line refuses bad input at once: one line on stderr, exit status 2, nothing computed and
no folder created. Hyperparameters, counts and sizes, the output folder, and the parity table's options.

References: the bounds of :mod:`adaptx.core.hyperparams` written out as numbers, and the expected
integers of each spelling.
"""

from __future__ import annotations

import argparse
import os
import sys

import pytest
from harness import run_python

import adaptx.experiments
from adaptx.argtypes import integer
from adaptx.cli import build_parser, main
from adaptx.experiments.contract import MAX_STEPS

QUICK = ["--setting", "online", "--optimizers", "adam", "--steps", "300", "--log-points", "5",
         "--format", "csv", "--no-plot", "--quiet"]


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


@pytest.fixture
def no_sweep(monkeypatch):
    """Fail the test if a sweep starts."""
    monkeypatch.setattr(adaptx.experiments, "sweep", lambda *a, **k: pytest.fail("a sweep ran"))


def refused(argv, capsys) -> str:
    """Run ``adaptx argv``; check it exits 2 with one line on stderr; return that line."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# ---------------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--b2", "1.5"], "--b2 1.5: b2 must lie in [0.0, 1.0)"),
        (["--b2", "0.99,1"], "--b2 1: b2 must lie in [0.0, 1.0)"),
        (["--lr", "-0.01"], "--lr -0.01: learning_rate must lie in [0.0, inf]"),
        (["--lr", "-0.01", "--schedule", "inv-sqrt"], "--lr -0.01: learning_rate must lie in"),
        (["--b1", "-0.5"], "--b1 -0.5: b1 must lie in [0.0, 1.0)"),
        (["--optimizers", "adax", "--adax-b2", "0"], "--adax-b2 0: b2 must lie in (0.0, inf]"),
        (["--setting", "theorem1", "--b1", "1"], "--b1 1: b1 must lie in [0.0, 1.0)"),
        (["--x0", "1.5"], "x0 must lie in [-1, 1]"),
        (["--setting", "stochastic", "--p", "0"], "p must be in (0, 1)"),
    ],
)
def test_invalid_hyperparameters_are_refused_before_computing(flags, message, tmp_path, capsys, no_sweep):
    """``--b2 1.5`` used to run and report x_T = 0.000, ``--lr -0.01`` ran gradient ascent, ``--b1 -0.5``
    failed in the plot after the whole job."""
    out = tmp_path / "out"
    line = refused(["reddi", *flags, "--out", str(out), "--quiet"], capsys)
    assert line.startswith("adaptx reddi: error: ") and message in line
    assert not out.exists()


def test_the_error_comes_as_one_line_from_a_fresh_process(tmp_path):
    res = run_python(
        f"from adaptx.cli import main; raise SystemExit(main(['reddi', '--b2', '1.5', '--out', "
        f"{str(tmp_path / 'x')!r}]))",
        ADAPTX_COMPILE_CACHE="0",
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "adaptx reddi: error: --b2 1.5: b2 must lie in [0.0, 1.0), got 1.5"
    ]
    assert res.stdout == ""


# ----------------------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    "text, value",
    [("1000", 1000), ("1e6", 10**6), ("1E6", 10**6), ("1_000_000", 10**6), ("2.0e3", 2000), (" 7 ", 7)],
)
def test_integers_as_users_write_them(text, value):
    assert integer(1, 10**9)(text) == value


@pytest.mark.parametrize("text", ["2.5", "1.5", "2.5e0", "1e-3", "ten", "nan", "inf", "0x10", ""])
def test_non_integers_are_refused_alike(text):
    """``--steps 2.5e0`` used to run 2 steps while ``--steps 1.5`` was refused."""
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer"):
        integer(1, 10**9)(text)


@pytest.mark.parametrize("text", ["0", "-3"])
def test_integers_below_the_range_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer, got"):
        integer(1, 10)(text)


def test_parity_run_reads_numbers_as_reddi_does(capsys):
    """``adaptx parity-run`` used its own int() and float() parsers: ``--steps 1e3`` was refused, and
    ``--seed -1`` was accepted and failed later in NumPy with a traceback."""
    parser = build_parser()
    args = parser.parse_args(["parity-run", "--steps", "1e3", "--batch-size", "1_024", "--seed", "2",
                              "--tolerance", "1e-5"])
    assert (args.steps, args.batch_size, args.seed, args.tolerance) == (1000, 1024, 2, 1e-5)
    for flags, message in [
        (["--seed", "-1"], "argument --seed: expected an integer from 0"),
        (["--steps", "2.5"], "argument --steps: expected a positive integer"),
        (["--tolerance", "nan"], "argument --tolerance: expected a positive number"),
        (["--tolerance", "0"], "argument --tolerance: expected a positive number"),
        (["--model", "resnet"], "unknown model resnet"),
    ]:
        with pytest.raises(SystemExit) as info:
            parser.parse_args(["parity-run", *flags])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "1e400"], f"argument --steps: expected a positive integer of at most {MAX_STEPS:,}"),
        (["--steps", "2.5e0"], "argument --steps: expected a positive integer"),
        (["--steps", f"{MAX_STEPS + 1}"], "of at most"),
        (["--seeds", "1e9"], "argument --seeds: expected a positive integer of at most 1,048,576"),
        (["--log-points", "1e9"], "argument --log-points: expected a positive integer of at most"),
        (["--devices", "1e6"], "argument --devices: expected a positive integer of at most 1,024"),
        (["--seed-start", "-1"], "argument --seed-start: expected an integer from 0"),
        (["--seed-start", f"{2**64 - 2}", "--seeds", "3"], "seeds must stay below 2**64"),
        (["--setting", "stochastic", "--seeds", "1e6"], "lower --log-points, --seeds or the grid"),
        (["--lr", ",".join(["1e-3"] * 300), "--b1", ",".join(["0.9"] * 300)], "a grid of 90,000 settings"),
    ],
)
def test_absurd_sizes_are_refused(flags, message, tmp_path, capsys, no_sweep):
    """``--steps 1e400`` ended in an OverflowError traceback, ``--seeds 1e9`` and ``--log-points 1e9`` in
    tens of GB of allocation."""
    line = refused(["reddi", *flags, "--out", str(tmp_path / "out")], capsys)
    assert message in line
    assert not (tmp_path / "out").exists()


def test_sizes_past_what_the_run_needs_are_clipped(tmp_path, capsys, monkeypatch):
    """``--chunk 1e9`` and ``--log-points 1e5`` on a 300-step run: the sweep gets a chunk it can hold
    and logs each step once; ``--devices 1000`` uses as many devices as the most runs of any sweep."""
    results, real_sweep = [], adaptx.experiments.sweep

    def recorded(*args, **kwargs):
        results.append(real_sweep(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(adaptx.experiments, "sweep", recorded)
    devices = []
    monkeypatch.setattr(adaptx.experiments, "run_devices", lambda n: devices.append(n) or None)
    argv = ["reddi", *QUICK, "--chunk", "1e9", "--log-points", "1e5", "--spacing", "linear",
            "--devices", "1000", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "--devices 1000: using 1, the most runs of any sweep" in capsys.readouterr().err
    assert [res.plan.chunk for res in results] == [8192]  # not a 10**9-step window
    assert devices == []  # one run: nothing to split
    with open(tmp_path / "curves.csv") as f:
        assert len(f.readlines()) == 1 + 300  # the header and every step once


# ------------------------------------------------------------------------------------ output folder


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys, no_sweep):
    path = tmp_path / "file"
    path.write_text("not a folder")
    assert "exists and is not a folder" in refused(["reddi", *QUICK, "--out", str(path)], capsys)
    assert "is not a folder" in refused(["reddi", *QUICK, "--out", str(path / "sub")], capsys)
    assert path.read_text() == "not a folder"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_an_unwritable_output_folder_is_refused(capsys, no_sweep):
    line = refused(["reddi", *QUICK, "--out", "/proc/self/adaptx-results"], capsys)
    assert "--out /proc/self/adaptx-results: cannot write there" in line


def test_created_folders_are_removed_when_the_run_fails(tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(adaptx.experiments, "sweep", interrupted)
    out = tmp_path / "a" / "b"
    assert main(["reddi", *QUICK, "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
        (["--steps", "2.5e0"], "argument --steps: expected a positive integer"),
        (["--steps", "1e9"], "of at most 100,000"),
        (["--seed", "-1"], "argument --seed: expected an integer from 0"),
    ],
)
def test_parity_refuses_bad_options_at_once(flags, message, capsys):
    """``adaptx parity --steps 0`` used to raise IndexError after running every row."""
    line = refused(["parity", *flags], capsys)
    assert line.startswith("adaptx parity: error: ") and message in line


def test_parity_checks_its_json_path_before_running(tmp_path, capsys, monkeypatch):
    from adaptx.parity import table

    monkeypatch.setattr(table, "measure", lambda *a, **k: pytest.fail("the table ran"))
    assert "is a folder" in refused(["parity", "--json", str(tmp_path)], capsys)
    missing = tmp_path / "no" / "x.json"
    assert "does not exist" in refused(["parity", "--json", str(missing)], capsys)


def test_parity_without_torch_names_the_extra(capsys, monkeypatch):
    """Without PyTorch the parity table stops at once with one line naming the extra to install."""
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    assert main(["parity", "--steps", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'adaptx[parity]'" in err[0]
