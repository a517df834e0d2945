"""The parity harness with NaN and infinities: a non-finite value on one side fails, the same NaN on both
sides is reported as such, and neither passes.

``adaptx parity --scale nan`` used to pass every row: a NaN in PyTorch's final parameters made the
movement NaN, and the deviation was then taken as 0. References: trajectories written by hand, with the
deviation expected from its definition.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptx import parity
from adaptx.cli import main
from adaptx.parity import table

NAN, INF = float("nan"), float("inf")


def problem(n: int = 3):
    params = {"w": np.zeros(n)}
    return parity.Problem(params=params, gradients={"w": np.zeros((2, n))},
                          loss=parity.LeastSquares(np.zeros((1, n)), np.zeros(1), weight=0.0))


def dev(torch_traj, jax_traj, tolerance=1e-5):
    return parity.deviation(np.asarray(torch_traj, float), np.asarray(jax_traj, float), problem(), tolerance)


def test_finite_runs_are_measured_as_before():
    res = dev([[1.0, 2.0, 0.5], [2.0, 4.0, 1.0]], [[1.0, 2.0, 0.5], [2.0, 4.0, 1.0 + 2e-5]])
    assert res.movement == 4.0 and res.max_abs.tolist() == [0.0, pytest.approx(2e-5)]
    assert res.passed and res.verdict == "pass" and res.max_rel_deviation == pytest.approx(5e-6)
    over = dev([[1.0, 2.0, 0.5], [2.0, 4.0, 1.0]], [[1.0, 2.0, 0.5], [2.0, 4.0, 1.0 + 8e-5]])
    assert over.verdict == "FAIL" and over.first_failure == 2


@pytest.mark.parametrize(
    "torch_traj, jax_traj",
    [
        ([[1.0, 2.0, 0.5], [NAN, NAN, NAN]], [[1.0, 2.0, 0.5], [2.0, 4.0, 1.0]]),  # torch NaN, jax finite
        ([[1.0, 2.0, 0.5], [2.0, 4.0, 1.0]], [[1.0, 2.0, 0.5], [2.0, NAN, 1.0]]),  # jax NaN, torch finite
        ([[1.0, 2.0, 0.5], [2.0, 4.0, 1.0]], [[1.0, 2.0, 0.5], [2.0, INF, 1.0]]),  # an infinity
        ([[1.0, 2.0, 0.5], [2.0, INF, 1.0]], [[1.0, 2.0, 0.5], [2.0, -INF, 1.0]]),  # opposite infinities
        ([[1.0, 2.0, 0.5], [NAN, 4.0, 1.0]], [[1.0, 2.0, 0.5], [2.0, NAN, 1.0]]),  # NaN, other elements
    ],
)
def test_a_non_finite_value_on_one_side_fails(torch_traj, jax_traj):
    res = dev(torch_traj, jax_traj)
    assert not res.passed and res.verdict == "FAIL"
    assert res.first_failure == 2 and math.isinf(res.max_abs[1]) and res.max_abs[0] == 0.0
    assert res.max_rel_deviation == INF


def test_nan_on_both_sides_in_the_same_elements_is_reported_not_passed():
    res = dev([[1.0, 2.0, 0.5], [2.0, NAN, 1.0]], [[1.0, 2.0, 0.5], [2.0, NAN, 1.0]])
    assert not res.passed and res.verdict == "NaN on both sides"
    assert res.first_failure is None and res.first_both_nonfinite == 2
    assert res.movement == 2.0  # over the elements that end finite: |2 - 0| and |1 - 0|
    assert math.isnan(res.max_rel_deviation)
    everywhere = dev([[NAN] * 3, [NAN] * 3], [[NAN] * 3, [NAN] * 3])
    assert not everywhere.passed and everywhere.verdict == "NaN on both sides"


def test_compare_fails_a_torch_run_that_went_nan():
    import torch  # the test extra installs it: a missing torch is a broken install, not a skip

    from adaptx import torch_compat

    prob = parity.make_problem(steps=5, shapes={"v": (4,)})
    res = parity.compare(lambda p: torch.optim.SGD(p.values(), lr=NAN), torch_compat.sgd(lr=1.0), prob)
    assert res.verdict == "FAIL" and res.first_failure == 1 and not res.passed


def test_the_table_and_its_exit_status(monkeypatch, capsys):
    """``--scale nan``: the rows whose sides both went NaN say so; none says pass; the status is 1."""
    monkeypatch.setattr(table, "rows", lambda real=table.rows: real()[:2])  # SGD and Adam: quick
    assert main(["parity", "--scale", "nan", "--steps", "3", "--quiet"]) == 1
    out = capsys.readouterr().out
    body = [line for line in out.splitlines() if line.startswith("| `")]
    assert len(body) == 2
    assert all("| pass |" not in line for line in body)
    assert all("| FAIL |" in line or "| NaN on both sides |" in line for line in body)
