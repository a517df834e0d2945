"""The ``adaptx`` command: ``adaptx reddi`` end to end on tiny runs, and its handling of bad flags."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import jax
import pytest
from harness import run_python

from adaptx.cli import main


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    """In-process runs leave jax's persistent cache off (it is a per-process setting)."""
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


def test_reddi_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main(
        ["reddi", "--optimizers", "adam", "--steps", "3000", "--seeds", "3", "--log-points", "20",
         "--out", str(out_dir), "--quiet"]
    )
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("setting"))
    assert "x_T (mean ± std)" in lines[header] and "R_T/T" in lines[header] and "x_T > 0" in lines[header]
    rows = lines[header + 2 : header + 4]
    assert [r.split()[:2] for r in rows] == [["online", "Adam"], ["stochastic", "Adam"]]
    # the files
    with open(out_dir / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [(r["setting"], r["optimizer"]) for r in summary] == [("online", "Adam"), ("stochastic", "Adam")]
    assert [int(r["seeds"]) for r in summary] == [1, 3]
    assert all(int(r["steps"]) == 3000 for r in summary)
    with open(out_dir / "curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert {c["setting"] for c in curves} == {"online", "stochastic"}
    assert max(int(c["t"]) for c in curves) == 3000
    payload = json.loads((out_dir / "results.json").read_text())
    assert payload["config"]["steps"] == 3000
    run = payload["runs"][1]
    assert run["setting"] == "stochastic" and run["optimizer"] == "Adam"
    assert len(run["x"]) == 1 and len(run["x"][0]) == 3 and len(run["x"][0][0]) == len(run["t"])
    # the table shows the numbers of the files
    x_mean = float(summary[1]["x_T_mean"])
    assert f"{x_mean:+.3f}" in rows[1]
    assert x_mean == pytest.approx(sum(s[-1] for s in run["x"][0]) / 3, abs=1e-6)
    png = (out_dir / "reddi.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert f"results in {out_dir}/: summary.csv, curves.csv, results.json, reddi.png" in out


def test_reddi_theorem1_defaults(tmp_path, capsys):
    """theorem1 runs with its own β1 = 0, β2 = 1/(1+C²) and x_1 = 1 unless told otherwise."""
    code = main(
        ["reddi", "--setting", "theorem1", "--C", "3", "--optimizers", "adam", "--steps", "2000",
         "--schedule", "inv-sqrt", "--lr", "0.5", "--out", str(tmp_path), "--format", "json",
         "--no-plot", "--quiet"]
    )
    assert code == 0
    capsys.readouterr()
    payload = json.loads((tmp_path / "results.json").read_text())
    (row,) = payload["summary"]
    assert (row["b1"], row["b2"]) == (0.0, pytest.approx(0.1))
    assert row["x_T_mean"] > 0.99  # Adam stays at the worst point
    assert not (tmp_path / "summary.csv").exists() and not (tmp_path / "reddi.png").exists()


def test_reddi_without_matplotlib(tmp_path, capsys, monkeypatch):
    """Without matplotlib the results are still written, and the message says how to install it."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code = main(["reddi", "--setting", "online", "--optimizers", "adam", "--steps", "500",
                 "--out", str(tmp_path), "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert "pip install" in err and "matplotlib" in err
    assert (tmp_path / "summary.csv").exists() and not (tmp_path / "reddi.png").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "0"], "positive integer"),
        (["--steps", "ten"], "positive integer"),
        (["--optimizers", "adam,sgdx"], "unknown optimizer sgdx"),
        (["--setting", "offline"], "unknown setting offline"),
        (["--lr", "fast"], "number"),
        (["--schedule", "cosine"], "invalid choice"),
        (["--setting", "theorem1", "--C", "1.5"], "C must be > 2"),
        (["--x0", "3"], "x0 must lie in [-1, 1]"),
        (["--p", "2"], "p must be in (0, 1)"),
    ],
)
def test_bad_flags(flags, message, tmp_path, capsys):
    code = main(["reddi", *flags, "--out", str(tmp_path), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err


def test_parity_subcommand_passes_its_arguments_on(capsys):
    """``adaptx parity --help`` is the help of ``python -m adaptx.parity``, under its own name."""
    assert main(["parity", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: adaptx parity ") and "PyTorch" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "reddi" in capsys.readouterr().out


def test_console_entry_point_runs_as_a_program():
    """``python -m adaptx.cli`` (what the ``adaptx`` console script calls): help and a usage error."""
    ok = subprocess.run([sys.executable, "-m", "adaptx.cli", "reddi", "--help"], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0 and "--steps" in ok.stdout and "--schedule" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "adaptx.cli", "reddi", "--seeds", "-3"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "positive integer" in bad.stderr


def test_reddi_on_two_devices(tmp_path, capsys):
    """--devices 2 in a fresh process splits the CPU into two devices and writes the same curves as one
    device; in a process where jax has started, a CPU cannot be split any more: a clear error, exit 2."""
    args = ["reddi", "--setting", "online", "--optimizers", "adam", "--lr", "1e-2,1e-3", "--steps", "2000",
            "--log-points", "10", "--format", "csv", "--no-plot", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = [*args, "--devices", "2", "--out", str(tmp_path / "two")]
    code = f"from adaptx.cli import main; raise SystemExit(main({two!r}))"
    res = run_python(code, XLA_FLAGS=None, ADAPTX_COMPILE_CACHE="0")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "two" / "curves.csv").read_text() == (tmp_path / "one" / "curves.csv").read_text()
    capsys.readouterr()
    jax.devices()  # started
    assert main([*args, "--devices", "64", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--devices 64" in err and "available" in err
