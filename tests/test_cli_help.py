"""The command line's help and names: defaults shown once as one types them, every option explained, the
program named as it was started, ``--version``, ``python -m adaptx``, and a run's announcement."""

from __future__ import annotations

import re

import pytest
from harness import run_python

import adaptx
from adaptx.cli import build_parser, main


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


def help_text(argv, capsys) -> str:
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def option_help(text: str) -> dict[str, str]:
    """``--option`` -> its help (lines joined) from argparse's options section."""
    options = text.split("options:", 1)[1].split("\n\n", 1)[0]
    found: dict[str, str] = {}
    current = None
    for line in options.splitlines():
        m = re.match(r"  (-{1,2}[\w-]+)(?:,? [^ ]+)*(?:\s{2,}(.*))?$", line)
        if m and line.startswith("  -"):
            current = m.group(1)
            found[current] = (m.group(2) or "").strip()
        elif current:
            found[current] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in found.items()}


@pytest.mark.parametrize("argv", [["reddi"], ["parity"]])
def test_every_option_is_explained_and_its_default_shown_once(argv, capsys):
    """``--steps``, ``--dtype``, ``--seed`` had no help; ``--devices`` said ``(default 1) (default: 1)``;
    ``--lr`` showed a Python list."""
    helps = option_help(help_text(argv, capsys))
    assert len(helps) > 5
    for option, text in helps.items():
        assert len(text) > 10, (option, text)  # a sentence, not nothing
        assert text.count("default") <= 1, (option, text)
        assert "[" not in text.split("default", 1)[-1], (option, text)  # no Python list
    if argv == ["reddi"]:
        assert "(default: 1e-2; with --schedule inv-sqrt: 0.5" in helps["--lr"]
        assert helps["--setting"].endswith("(default: online,stochastic)")
        assert helps["--devices"].count("(default") == 1
        for option in ("--steps", "--seeds", "--out", "--force", "--no-compile-cache"):
            assert option in helps
    else:
        for option in ("--steps", "--dtype", "--seed", "--scale", "--json", "--quiet"):
            assert option in helps


def test_program_names(capsys):
    assert help_text(["parity"], capsys).startswith("usage: adaptx parity ")
    assert help_text(["reddi"], capsys).startswith("usage: adaptx reddi ")
    assert build_parser("python -m adaptx").format_usage().startswith("usage: python -m adaptx ")
    from adaptx.parity.table import main as parity_main

    with pytest.raises(SystemExit):
        parity_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m adaptx.parity ")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adaptx {adaptx.__version__}"


def test_python_dash_m_adaptx_runs_the_command():
    res = run_python("import runpy, sys; sys.argv = ['adaptx', 'reddi', '--help']; "
                     "runpy.run_module('adaptx', run_name='__main__')")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("usage: python -m adaptx reddi ")
    res = run_python("import runpy, sys; sys.argv = ['adaptx', '--version']; "
                     "runpy.run_module('adaptx', run_name='__main__')")
    assert res.returncode == 0 and res.stdout.strip() == f"adaptx {adaptx.__version__}"


def test_theorem1_does_not_announce_seeds(tmp_path, capsys):
    """``--setting theorem1`` used to announce "64 seeds (stochastic)" for a deterministic problem."""
    argv = ["reddi", "--setting", "theorem1", "--optimizers", "adam", "--steps", "200", "--log-points", "4",
            "--format", "csv", "--no-plot", "--out", str(tmp_path)]
    assert main(argv) == 0
    header = capsys.readouterr().err.splitlines()[0]
    assert "seed" not in header and "one run for theorem1 (deterministic)" in header
    assert main([*argv[:2], "online,stochastic", *argv[3:], "--seeds", "5", "--force"]) == 0
    header = capsys.readouterr().err.splitlines()[0]
    assert "5 seeds for stochastic; one run for online (deterministic)" in header
