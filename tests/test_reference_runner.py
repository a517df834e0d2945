"""adaptx.experiments.reference: the plain reference sweep runner, against the fast CPU sweep and NumPy.

* Against ``sweep(runner="fast")`` (the CPU fast path), same problems, optimizers, grid and
  seeds. The online problem gives the same bits. On the stochastic problem the two programs run the same
  float32 formulas, but XLA:CPU may contract a multiply and an add into a fused multiply-add in one
  program and not in the other (the fast path runs the seeds as a vector, the reference ``vmap``-s a
  scalar step), so a run may differ by a rounding or so per step (measured: at most 6e-8 in x, 2e-6
  relative in R_T/T over 3,000 steps). Tolerances: 1e-6 absolute in x (about 8 float32 ulps at 1) and
  1e-5 relative in R_T/T: well above these roundings, far below any difference of the algorithm (a
  missed or extra big step moves R_T/T by ~1e-1 here, a changed block flush by ~1e-3).
* The new problem (:class:`~adaptx.experiments.problems.StochasticTheorem`, the paper's Theorem 3)
  against a NumPy float64 loop written from its definition, on the big steps of
  :func:`adaptx.experiments.sampling.big_steps`.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptx
from adaptx.experiments import Online, Stochastic, optimizers, sweep
from adaptx.experiments.problems import Problem, StochasticTheorem
from adaptx.experiments.reference import reference_sweep
from adaptx.experiments.sampling import big_steps

SEEDS = [0, 5, 7]


@pytest.mark.parametrize("problem", [Online(), Stochastic()], ids=["online", "stochastic"])
@pytest.mark.parametrize("name", ["adam", "amsgrad", "adax"])
def test_reference_matches_fast_sweep(problem, name):
    make = optimizers.factory(name)
    b2 = optimizers.DEFAULT_B2[name]
    grid = {"learning_rate": [1e-2, 1e-3], "b1": [0.9, 0.0], "b2": [b2, b2]}
    kw = dict(steps=2000, seeds=SEEDS, grid=grid, log_points=12)
    fast, ref = sweep(make, problem, runner="fast", **kw), reference_sweep(make, problem, **kw)
    assert (fast.runner, ref.runner) == ("fast", "reference")
    np.testing.assert_array_equal(ref.t, fast.t)
    np.testing.assert_array_equal(ref.seeds, fast.seeds)
    assert ref.x.shape == fast.x.shape == (2, len(SEEDS), fast.t.size)
    np.testing.assert_allclose(ref.x, fast.x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ref.avg_regret, fast.avg_regret, rtol=1e-5, atol=1e-7)
    if not problem.stochastic:
        np.testing.assert_array_equal(ref.x, fast.x)
        np.testing.assert_array_equal(ref.avg_regret, fast.avg_regret)
    # not vacuous: the settings and (stochastic) the seeds run differently
    assert np.abs(ref.x[0] - ref.x[1]).max() > 1e-3
    if problem.stochastic:
        assert np.abs(ref.avg_regret[:, 0] - ref.avg_regret[:, 1]).max() > 1e-3


def numpy_run(grads, update, x0=0.0):
    """Projected run in float64 on [-1, 1]: x after each step and R_t (x* = -1)."""
    x, regret, xs, rs, state = x0, 0.0, [], [], None
    for t, g in enumerate(grads, start=1):
        regret += g * (x + 1.0)
        step, state = update(t, g, state)
        x = min(1.0, max(-1.0, x + step))
        xs.append(x)
        rs.append(regret)
    return np.array(xs), np.array(rs)


def test_new_problem_against_numpy_float64():
    prob = StochasticTheorem(C=20.0, delta=0.1)
    assert isinstance(prob, Problem) and prob.x_star == -1.0 and prob.domain == (-1.0, 1.0)
    assert math.isclose(prob.mean_gradient, 0.1)
    steps, seeds, alpha = 2000, [1, 2], 0.5
    b1, b2 = 0.0, 1.0 / (1.0 + prob.C**2)  # Theorem 3's Adam setting

    def sgd(t, g, state):
        return -alpha / math.sqrt(t) * g, state

    def adam(t, g, state):  # adaptx.adam, eps = 1e-8 on the corrected root, step alpha / sqrt(t)
        m, v = state or (0.0, 0.0)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        return -alpha / math.sqrt(t) * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + 1e-8), (m, v)

    runs = {
        name: reference_sweep(opt, prob, steps=steps, seeds=seeds, log_points=15)
        for name, opt in [
            ("sgd", optax.sgd(optimizers.inverse_sqrt(alpha))),
            ("adam", adaptx.adam(optimizers.inverse_sqrt(alpha), b1, b2)),
        ]
    }
    formulas = {"sgd": sgd, "adam": adam}
    for name, res in runs.items():
        for j, seed in enumerate(seeds):
            g = np.full(steps, -1.0)
            big = big_steps(seed, steps, prob.p)
            assert 0.5 * prob.p * steps < big.size < 2 * prob.p * steps
            g[big - 1] = prob.C
            xs, rs = numpy_run(g, formulas[name])
            t = res.t
            np.testing.assert_allclose(res.x[0, j], xs[t - 1], rtol=0, atol=1e-5, err_msg=name)
            np.testing.assert_allclose(
                res.avg_regret[0, j], rs[t - 1] / t, rtol=1e-5, atol=1e-6, err_msg=name
            )


class ShiftedOnline:
    """A problem written here, outside adaptx: the online problem moved to the domain [0, 2] (x* = 0).

    Only the :class:`Problem` members; the reference runner needs nothing else."""

    x_star = 0.0
    domain = (0.0, 2.0)
    stochastic = False

    def gradient(self, t, big=None, dtype=np.float32):
        del big
        return jnp.where(t % 5 == 1, 8.0, -1.0).astype(dtype)

    def describe(self):
        return "online on [0, 2]: c_t = 8 if t mod 5 = 1 else -1"


def test_user_problem_with_its_own_domain():
    prob = ShiftedOnline()
    assert isinstance(prob, Problem)
    steps, lr = 700, 0.05
    res = reference_sweep(optax.sgd(lr), prob, steps=steps, seeds=2, x0=1.5, log_points=10)
    t = np.arange(1, steps + 1)
    g = np.where(t % 5 == 1, 8.0, -1.0)
    x, regret, xs, rs = 1.5, 0.0, [], []
    for gt in g:  # float64, from the definition: projection onto [0, 2], regret against x* = 0
        regret += gt * (x - 0.0)
        x = min(2.0, max(0.0, x - lr * gt))
        xs.append(x)
        rs.append(regret)
    xs, rs = np.array(xs), np.array(rs)
    assert xs.min() == 0.0 and xs.max() < 2.0  # the projection onto the new domain is exercised
    for j in range(2):
        np.testing.assert_allclose(res.x[0, j], xs[res.t - 1], rtol=0, atol=1e-5)
        np.testing.assert_allclose(res.avg_regret[0, j], rs[res.t - 1] / res.t, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="x0 must lie in"):
        reference_sweep(optax.sgd(lr), prob, steps=10, x0=-0.5)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"seeds": []}, "seeds must be"), ({"chunk": 0}, "chunk must be"), ({"x0": 1.5}, r"x0 must lie in")],
)
def test_reference_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        reference_sweep(optax.sgd(0.1), Stochastic(), steps=10, **kw)


# ------------------------------------------------------------------------- sweep's choice of runner


def test_sweep_runs_the_reference_when_asked():
    grid = {"learning_rate": [1e-2, 1e-3], "b1": [0.9, 0.9], "b2": [0.99, 0.99]}
    kw = dict(steps=600, seeds=[3, 4], grid=grid, log_points=6)
    make = optimizers.factory("amsgrad")
    via_sweep = sweep(make, Stochastic(), runner="reference", **kw)
    direct = reference_sweep(make, Stochastic(), **kw)
    np.testing.assert_array_equal(via_sweep.x, direct.x)
    np.testing.assert_array_equal(via_sweep.avg_regret, direct.avg_regret)
    with pytest.raises(ValueError, match="runner must be"):
        sweep(make, Stochastic(), runner="staged", **kw)
    with pytest.raises(ValueError, match="only the fast runner"):
        sweep(make, Stochastic(), runner="reference", devices=1, **kw)


@pytest.mark.parametrize(
    ("backend", "expected"), [("cpu", "fast"), ("gpu", "reference"), ("tpu", "reference")]
)
def test_sweep_chooses_the_runner_by_platform(monkeypatch, backend, expected):
    """The result names its runner; only the fast path's result carries a plan. (The reference runs on
    this CPU when jax says it is a GPU or TPU: it asks nothing of the platform.)"""
    import jax

    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    out = sweep(optax.sgd(0.1), Online(), steps=10, log_points=2)
    assert out.runner == expected
    assert (out.plan is None) == (expected == "reference")
    assert sweep(optax.sgd(0.1), Online(), steps=10, log_points=2, devices=1).runner == "fast"


def test_fast_path_honours_the_problem_domain():
    prob, kw = ShiftedOnline(), dict(steps=700, seeds=1, x0=1.5, log_points=10)
    fast = sweep(optax.sgd(0.05), prob, runner="fast", **kw)
    ref = reference_sweep(optax.sgd(0.05), prob, **kw)
    np.testing.assert_allclose(fast.x, ref.x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.avg_regret, ref.avg_regret, rtol=1e-5, atol=1e-7)
    assert fast.x.max() > 1.0  # outside [-1, 1]: the old fixed projection would have cut it
