"""adaptx reddi's settings (:mod:`adaptx.experiments.settings`): each names a problem and the paper's
optimizer defaults for it, and a new problem reaches the command line through the registry alone.

References: Theorem 3's stated setup (β1 = 0, β2 = 1/(1 + C²), x_1 = 1, Adam staying near +1), and a
problem written here that adaptx has never seen.
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from adaptx.cli import main
from adaptx.experiments.settings import SETTINGS, Setting


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


QUICK = ["--optimizers", "adam", "--steps", "2000", "--seeds", "4", "--log-points", "8",
         "--format", "json", "--no-plot", "--quiet"]  # fmt: skip


def test_cli_runs_theorem3(tmp_path, capsys):
    """``adaptx reddi --setting theorem3``: Theorem 3's Adam (β1 = 0, β2 = 1/(1 + C²), x_1 = 1 by
    default) stays near the worst point +1 although E[c_t] = δ > 0 puts the optimum at -1."""
    argv = ["reddi", "--setting", "theorem3", "--C", "20", "--delta", "0.1", "--schedule", "inv-sqrt",
            "--lr", "0.5", *QUICK, "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    (row,) = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert (row["b1"], row["b2"]) == (0.0, pytest.approx(1 / 401))
    assert row["x_T_mean"] > 0.9


class Drift:
    """A problem written outside adaptx: c_t = 1 at every step on [0, 3], so the optimum is x* = 0 and
    plain gradient descent reaches it."""

    x_star = 0.0
    domain = (0.0, 3.0)
    stochastic = False

    def gradient(self, t, big=None, dtype=jnp.float32):
        del big
        return jnp.ones_like(t, dtype)

    def describe(self):
        return "drift: c_t = 1 on [0, 3]"


def test_a_new_problem_needs_only_a_registry_entry(tmp_path, capsys, monkeypatch):
    """One entry in SETTINGS: the command line offers it, checks --x0 against its domain, runs it and
    titles it, with no change to the CLI or the runners."""
    monkeypatch.setitem(SETTINGS, "drift", Setting("drift", "1 at every step on [0, 3]", lambda c: Drift()))
    assert main(["reddi", "--setting", "drift", "--x0", "5", *QUICK, "--out", str(tmp_path)]) == 2
    assert "--x0 5: x0 must lie in [0, 3]" in capsys.readouterr().err
    argv = ["reddi", "--setting", "drift", "--x0", "2", "--lr", "0.01", *QUICK, "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    payload = json.loads((tmp_path / "results.json").read_text())
    (run,) = payload["runs"]
    assert run["problem"] == "drift: c_t = 1 on [0, 3]"
    x = np.asarray(run["x"])[0, 0]
    # Adam's steps are ~lr each (|m̂/√v̂| = 1 for a constant gradient): from 2 to 0 in ~200 steps
    assert x[-1] == 0.0 and x[0] == pytest.approx(2 - 0.01, abs=1e-6)
