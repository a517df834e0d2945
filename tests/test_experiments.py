"""adaptx.experiments' sweeps: their numbers on the AMSGrad paper's synthetic problems.

References are independent of adaptx: NumPy float64 loops written from the problem definitions and the
Adam / SGD formulas, and the paper's (and labml's) qualitative outcomes. Step counts are modest so the
file runs in well under a minute. (The sampler: test_sampling.py and test_windows.py; devices:
test_sweep_devices.py; inputs: test_sweep_inputs.py; compilation: test_sweep_compile.py.)
"""

from __future__ import annotations

import math

import jax
import numpy as np
import optax
import pytest

import adaptx
from adaptx.experiments import (
    Online,
    Stochastic,
    optimizers,
    product_grid,
    run,
    sampling,
    sweep,
    theorem1,
    theorem1_betas,
)

B1, B2, LR = 0.9, 0.99, 1e-2
# Shared transformations: the runner caches a compiled program per (problem, transformation, shapes), so
# tests that reuse these objects with the same numbers of seeds compile once (compilation dominates the
# time of this file).
ADAM = adaptx.adam(LR, B1, B2)
AMSGRAD = adaptx.amsgrad(LR, B1, B2)


# ----------------------------------------------------------------------------------- NumPy references


def online_gradients(steps, period=101, big=1010.0, small=10.0):
    t = np.arange(1, steps + 1)
    return np.where(t % period == 1, big, -small)


def stochastic_gradients(big_steps, steps, big=1010.0, small=10.0):
    g = np.full(steps, -small)
    g[np.asarray(big_steps, dtype=np.int64) - 1] = big
    return g


def numpy_adam(grads, lr, b1=B1, b2=B2, eps=1e-8, x0=0.0):
    """Projected Adam in float64, from the formula; returns x after each step and R_t (x* = -1)."""
    x, m, v, regret = x0, 0.0, 0.0, 0.0
    xs, rs = [], []
    for t, g in enumerate(grads, start=1):
        regret += g * (x + 1.0)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        step = lr(t) if callable(lr) else lr
        x = min(1.0, max(-1.0, x - step * m_hat / (math.sqrt(v_hat) + eps)))
        xs.append(x)
        rs.append(regret)
    return np.array(xs), np.array(rs)


def numpy_sgd(grads, lr, x0=0.0):
    x, regret, xs, rs = x0, 0.0, [], []
    for t, g in enumerate(grads, start=1):
        regret += g * (x + 1.0)
        x = min(1.0, max(-1.0, x - lr(t) * g))
        xs.append(x)
        rs.append(regret)
    return np.array(xs), np.array(rs)


# ------------------------------------------------------------------------- the paper's outcomes


@pytest.mark.parametrize(
    "name, sign, bound", [("adam", +1, 0.9), ("amsgrad", -1, 0.9), ("adax", -1, 0.9),
                          ("amsgrad-corrected", -1, 0.1)]
)
def test_online_outcome(name, sign, bound):
    """Online problem, γ = 1e-2, 300k steps: Adam ends near +1 (the worst point), AMSGrad and AdaX near
    the optimum -1 (expected end points: +0.95, -1.00, -1.00). The paper's AMSGrad (maximum of the
    *corrected* v̂) heads for -1 too but slowly: v̂_1 = g_1² = 1010² stays its maximum, so its steps
    are tiny."""
    b2 = optimizers.DEFAULT_B2[name]
    res = sweep(
        optimizers.factory(name), Online(), steps=300_000, log_points=20,
        grid={"learning_rate": [LR], "b1": [B1], "b2": [b2]},
    )
    x_T = float(res.final_x()[0, 0])
    assert sign * x_T > bound, x_T
    if name == "adam":
        assert float(res.final_avg_regret()[0, 0]) > 0.45  # R_T/T does not go to 0


def test_stochastic_outcome():
    """Stochastic problem (p = 0.01), 16 seeds x 60k steps: Adam's x_T is near +1 for every seed, while
    AMSGrad and AdaX are on their (slow, noisy) way to -1: far lower on average. (Their average regret
    falls below Adam's only later, past ~10^5 steps.)"""
    kw = dict(steps=60_000, seeds=16, log_points=10)
    adam = run(ADAM, Stochastic(), **kw)
    assert (adam.final_x() > 0).all() and adam.final_x().mean() > 0.7, adam.final_x()
    for opt in (AMSGRAD, adaptx.adax(LR, B1)):
        other = run(opt, Stochastic(), **kw)
        assert other.final_x().mean() < adam.final_x().mean() - 0.6, other.final_x()


def test_theorem1():
    """Theorem 1 (C = 3, β1 = 0, β2 = 1/(1+C²), α/√t, x_1 = 1): Adam stays at +1 and its average regret
    stays bounded away from 0; AMSGrad with the same settings moves to the optimum -1."""
    C = 3.0
    b1, b2 = theorem1_betas(C)
    assert (b1, b2) == (0.0, 0.1)
    kw = dict(steps=30_000, log_points=10, x0=1.0)
    sched = optimizers.inverse_sqrt(0.5)
    adam = run(adaptx.adam(sched, b1, b2), theorem1(C), **kw)
    ams = run(adaptx.amsgrad(sched, b1, b2), theorem1(C), **kw)
    assert float(adam.final_x()[0, 0]) > 0.99
    assert float(adam.final_avg_regret()[0, 0]) > 0.5  # (C - 2)/3 * 2 = 2/3 per step at x = +1
    assert float(ams.final_x()[0, 0]) < -0.9


# ---------------------------------------------------------------------------- regret bookkeeping


def test_online_regret_matches_numpy_float64():
    steps = 5_000
    res = run(ADAM, Online(), steps=steps, log_points=40)
    xs, rs = numpy_adam(online_gradients(steps), LR)
    idx = res.t - 1
    np.testing.assert_allclose(res.x[0, 0], xs[idx], atol=2e-4)
    np.testing.assert_allclose(res.avg_regret[0, 0], rs[idx] / res.t, rtol=1e-4, atol=1e-3)


def test_stochastic_regret_matches_numpy_float64():
    """Each seed's trajectory equals the float64 loop fed with that seed's big steps."""
    steps, seeds = 4_000, [3, 11]
    res = run(ADAM, Stochastic(), steps=steps, seeds=seeds, log_points=30)
    idx = res.t - 1
    for j, seed in enumerate(seeds):
        grads = stochastic_gradients(sampling.big_steps(seed, steps, 0.01), steps)
        xs, rs = numpy_adam(grads, LR)
        np.testing.assert_allclose(res.x[0, j], xs[idx], atol=2e-4)
        np.testing.assert_allclose(res.avg_regret[0, j], rs[idx] / res.t, rtol=1e-4, atol=1e-3)


def test_inverse_sqrt_schedule_and_x0():
    """α/√t with t = 1 at the first step, from x_1 = 0.5, with plain SGD (an optax transformation)."""
    steps, alpha = 3_000, 1e-3
    res = run(optax.sgd(optimizers.inverse_sqrt(alpha)), Online(), steps=steps, x0=0.5, log_points=25)
    xs, rs = numpy_sgd(online_gradients(steps), lambda t: alpha / math.sqrt(t), x0=0.5)
    idx = res.t - 1
    np.testing.assert_allclose(res.x[0, 0], xs[idx], atol=1e-5)
    np.testing.assert_allclose(res.avg_regret[0, 0], rs[idx] / res.t, rtol=1e-5, atol=1e-4)


def test_regret_sum_stays_accurate():
    """R_T summed over 2M steps in float32 stays within 1e-6 of the exact sum (a plain float32 running
    sum is off by more: see the check on the reference below). The iterate is frozen (γ = 0) at
    x = 0.3, so R_T = 1.3 * sum of the gradients is known exactly."""
    steps = 2_000_000
    problem = Online(period=101, big=2000.0, small=10.0)
    res = run(optax.sgd(0.0), problem, steps=steps, x0=0.3, log_points=3)
    g = online_gradients(steps, 101, 2000.0, 10.0)
    exact = np.sum(g) * (np.float64(np.float32(0.3)) + 1.0) / steps
    naive = np.cumsum((g * np.float32(1.3)).astype(np.float32), dtype=np.float32)[-1] / steps
    assert abs(naive - exact) / exact > 1e-6  # the test would catch plain summation
    assert abs(float(res.avg_regret[0, 0, -1]) - exact) / exact < 1e-6


def test_stochastic_regret_sum_stays_accurate():
    """The same over 2M stochastic steps (block sums, then Kahan), against the exact sum for the seed's
    own big steps; here too a plain float32 running sum is measurably off."""
    steps, seed = 2_000_000, 5
    problem = Stochastic(p=0.01, big=2000.0, small=10.0)
    res = run(optax.sgd(0.0), problem, steps=steps, seeds=[seed], x0=0.3, log_points=3)
    g = stochastic_gradients(sampling.big_steps(seed, steps, 0.01), steps, 2000.0, 10.0)
    exact = np.sum(g) * (np.float64(np.float32(0.3)) + 1.0) / steps
    naive = np.cumsum((g * np.float32(1.3)).astype(np.float32), dtype=np.float32)[-1] / steps
    assert abs(naive - exact) / exact > 1e-6
    assert abs(float(res.avg_regret[0, 0, -1]) - exact) / exact < 1e-6


# ------------------------------------------------------------- sweeps, chunks, reproducibility


def test_seed_sweep_equals_single_seed_runs():
    kw = dict(steps=3_000, log_points=15)
    both = run(ADAM, Stochastic(), seeds=[5, 9], **kw)
    for j, seed in enumerate([5, 9]):
        one = run(ADAM, Stochastic(), seeds=[seed], **kw)  # computed as two copies: the same program
        np.testing.assert_array_equal(both.x[:, j], one.x[:, 0])
        np.testing.assert_array_equal(both.avg_regret[:, j], one.avg_regret[:, 0])


@pytest.mark.parametrize("opt", [ADAM, AMSGRAD], ids=["adam", "amsgrad"])
def test_a_seed_gives_the_same_numbers_anywhere_in_a_sweep(opt):
    """Alone, first or last in a sweep whose size is no multiple of the vector width: the same bits.
    (XLA:CPU's vector loops and scalar remainders round fused multiply-adds differently; before the
    batch was padded, a lone run and the last seed of a 70-seed sweep differed in the last bit.)"""
    kw = dict(steps=1_500, log_points=10)
    alone = run(opt, Stochastic(), seeds=[7], **kw)
    others = list(range(100, 169))
    for seeds in ([7, *others], [*others, 7]):
        res = run(opt, Stochastic(), seeds=seeds, **kw)
        j = seeds.index(7)
        np.testing.assert_array_equal(res.x[0, j], alone.x[0, 0])
        np.testing.assert_array_equal(res.avg_regret[0, j], alone.avg_regret[0, 0])


def test_a_setting_gives_the_same_numbers_anywhere_in_a_grid():
    make = lambda learning_rate: adaptx.adam(learning_rate, B1, B2)  # noqa: E731
    lrs = np.geomspace(1e-4, 1e-1, 70)
    kw = dict(steps=1_500, log_points=10)
    res = sweep(make, Online(), grid={"learning_rate": lrs}, **kw)
    for i in (0, 33, 69):
        alone = sweep(make, Online(), grid={"learning_rate": lrs[i : i + 1]}, **kw)
        np.testing.assert_array_equal(res.x[i], alone.x[0])
        np.testing.assert_array_equal(res.avg_regret[i], alone.avg_regret[0])


def test_online_grid_over_learning_rate_and_b2_matches_numpy_float64():
    """A b2 grid makes Adam's moments per setting: the staged runner then shares only c_t and the count."""
    make = lambda learning_rate, b2: adaptx.adam(learning_rate, B1, b2)  # noqa: E731
    grid = product_grid(learning_rate=[1e-2, 1e-3], b2=[0.99, 0.999])
    res = sweep(make, Online(), grid=grid, steps=1_000, log_points=6)
    for i in range(4):
        xs, rs = numpy_adam(online_gradients(1_000), grid["learning_rate"][i], b2=grid["b2"][i])
        np.testing.assert_allclose(res.x[i, 0], xs[res.t - 1], atol=2e-4)
        np.testing.assert_allclose(res.avg_regret[i, 0], rs[res.t - 1] / res.t, rtol=1e-4, atol=1e-3)


def test_online_seeds_share_the_run():
    res = run(ADAM, Online(), steps=500, seeds=3, log_points=5)
    assert res.x.shape == (1, 3, 5)
    np.testing.assert_array_equal(res.x[0, 1:], np.broadcast_to(res.x[0, :1], (2, 5)))


@pytest.mark.parametrize("problem", [Online(), Stochastic()], ids=["online", "stochastic"])
def test_sweep_of_an_opaque_optimizer_matches(problem):
    """An optimizer whose whole update is one jitted call cannot be split into shared and per-setting
    parts (the call mixes them); the sweep then keeps its whole state per setting and seed, with the same
    numbers up to rounding."""
    staged = lambda learning_rate: adaptx.adam(learning_rate, B1, B2)  # noqa: E731

    def opaque(learning_rate):
        opt = adaptx.adam(learning_rate, B1, B2)
        return optax.GradientTransformation(opt.init, jax.jit(opt.update))

    grid = {"learning_rate": [1e-2, 1e-3, 1e-4]}
    kw = dict(steps=2_000, log_points=8, grid=grid, seeds=[0, 5])
    a, b = sweep(staged, problem, **kw), sweep(opaque, problem, **kw)
    np.testing.assert_allclose(b.x, a.x, atol=1e-5)
    np.testing.assert_allclose(b.avg_regret, a.avg_regret, rtol=1e-5, atol=1e-5)


def test_grid_sweep_equals_single_setting_runs():
    make = lambda learning_rate, b2: adaptx.adam(learning_rate, B1, b2)  # noqa: E731
    grid = product_grid(learning_rate=[1e-2, 3e-3], b2=[0.99, 0.999])
    kw = dict(steps=2_000, seeds=[0, 1], log_points=10)
    res = sweep(make, Stochastic(), grid=grid, **kw)
    assert res.x.shape[:2] == (4, 2)
    for i in range(4):
        lr, b2 = float(grid["learning_rate"][i]), float(grid["b2"][i])
        single = sweep(make, Stochastic(), grid={"learning_rate": [lr], "b2": [b2]}, **kw)
        np.testing.assert_array_equal(res.x[i], single.x[0])
        np.testing.assert_array_equal(res.avg_regret[i], single.avg_regret[0])
    # the optimizer built from Python constants rather than traced values: equal up to rounding
    plain = run(adaptx.adam(float(grid["learning_rate"][3]), B1, float(grid["b2"][3])), Stochastic(), **kw)
    np.testing.assert_allclose(res.x[3], plain.x[0], atol=1e-5)
    np.testing.assert_allclose(res.avg_regret[3], plain.avg_regret[0], rtol=1e-5, atol=1e-5)


def test_learning_rate_grid_shares_moments():
    """A grid over γ alone keeps Adam's moments once for all settings, and still gives each setting's
    own trajectory (online, deterministic)."""
    make = lambda learning_rate: adaptx.adam(learning_rate, B1, B2)  # noqa: E731
    lrs = [1e-2, 1e-3, 1e-4]
    res = sweep(make, Online(), grid={"learning_rate": lrs}, steps=3_000, log_points=10)
    for i, lr in enumerate(lrs):
        xs, _ = numpy_adam(online_gradients(3_000), lr)
        np.testing.assert_allclose(res.x[i, 0], xs[res.t - 1], atol=2e-4)


@pytest.mark.parametrize("problem", [Online(), Stochastic()], ids=["online", "stochastic"])
def test_chunking_invariance(problem):
    kw = dict(steps=1_000, seeds=[0, 1], log_points=12)
    ref = run(ADAM, problem, chunk=8192, **kw)
    for chunk in (3, 97):
        other = run(ADAM, problem, chunk=chunk, **kw)
        np.testing.assert_array_equal(other.x, ref.x)
        np.testing.assert_array_equal(other.avg_regret, ref.avg_regret)
    # logging more points cuts the run differently but gives the same numbers at the common points
    dense = run(ADAM, problem, chunk=97, **{**kw, "log_points": 100, "spacing": "linear"})
    common = np.isin(dense.t, ref.t)
    np.testing.assert_array_equal(dense.x[..., common], ref.x[..., np.isin(ref.t, dense.t)])


def test_reproducible_and_seeds_differ():
    a = run(ADAM, Stochastic(), steps=2_000, seeds=[0, 1], log_points=5)
    b = run(ADAM, Stochastic(), steps=2_000, seeds=[0, 1], log_points=5)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x[0, 0], a.x[0, 1])
