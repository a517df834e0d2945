"""adaptx.experiments: the AMSGrad paper's synthetic problems.

References are independent of adaptx: NumPy float64 loops written from the problem definitions and the
Adam / SGD formulas, the geometric law written from its definition, and the paper's (and labml's)
qualitative outcomes. Step counts are modest so the file runs in well under a minute.
"""

from __future__ import annotations

import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from harness import run_python

import adaptx
from adaptx.experiments import (
    Online,
    Stochastic,
    fast,
    log_times,
    optimizers,
    product_grid,
    run,
    run_devices,
    sampling,
    sweep,
    theorem1,
    theorem1_betas,
)
from adaptx.experiments.contract import prepare
from adaptx.experiments.fast import make_plan, run_fast, windows

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


def test_cpu_compile_options_keep_the_numbers():
    """On a CPU the sweep's program is compiled with XLA's region-based copy insertion, an option that
    only drops copies: the same bits as XLA's defaults (``compiler_options={}``) for an online grid (two
    steps per loop iteration) and the stochastic problem. (These programs are compiled for a fast loop,
    as long sweeps are; test_sweep_compile.py compares the fast-start ones.)"""
    make = lambda learning_rate: adaptx.adam(learning_rate, B1, B2)  # noqa: E731
    cases = [
        prepare(make, Online(), grid={"learning_rate": [1e-2, 1e-3]}, steps=1_500, log_points=8),
        prepare(ADAM, Stochastic(), seeds=[0, 1], steps=1_500, log_points=8),
    ]
    for inputs in cases:
        tuned = run_fast(inputs, plan=make_plan(inputs, fast_compile=False))
        plain = run_fast(inputs, plan=make_plan(inputs, fast_compile=False, compiler_options={}))
        if jax.default_backend() == "cpu":
            assert tuned.plan.compiler_options == fast.CPU_OPTIONS
        assert plain.plan.compiler_options is None
        np.testing.assert_array_equal(plain.x, tuned.x)
        np.testing.assert_array_equal(plain.avg_regret, tuned.avg_regret)


def test_reproducible_and_seeds_differ():
    a = run(ADAM, Stochastic(), steps=2_000, seeds=[0, 1], log_points=5)
    b = run(ADAM, Stochastic(), steps=2_000, seeds=[0, 1], log_points=5)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x[0, 0], a.x[0, 1])


# --------------------------------------------------------------------------------- the sampler


def test_gap_inversion_is_exact():
    """K - 1 = floor(log U / log(1 - p)) for U = (w + 1/2) / 2^64, computed in float64, for random
    64-bit words and the extreme ones; the table draws it with integer comparisons only."""
    p = 0.01
    rng = np.random.default_rng(0)
    w1 = np.concatenate([rng.integers(0, 2**32, 20_000), [0, 0, 2**32 - 1, 2**31, 1]]).astype(np.uint32)
    w2 = np.concatenate([rng.integers(0, 2**32, 20_000), [0, 1, 2**32 - 1, 0, 0]]).astype(np.uint32)
    hi, lo = sampling.thresholds(p)
    got = np.asarray(sampling._gap_from_table(jnp.asarray(w1), jnp.asarray(w2), hi, lo))
    fast = np.asarray(sampling._gap_from_guess(jnp.asarray(w1), jnp.asarray(w2), hi, lo, p))
    np.testing.assert_array_equal(fast, got)
    u = (w1.astype(np.float64) * 2.0**32 + w2.astype(np.float64) + 0.5) / 2.0**64
    expected = np.floor(np.log(u) / np.log1p(-p)).astype(np.int64)
    np.testing.assert_array_equal(got, expected)
    # the table itself: T_k = floor((1-p)^k 2^64 - 1/2), decreasing
    t = hi.astype(np.float64) * 2.0**32 + lo.astype(np.float64)
    k = np.arange(1, 4000)
    np.testing.assert_allclose(t[k], np.floor((1 - p) ** k * 2.0**64 - 0.5), rtol=1e-12, atol=2)


@pytest.mark.parametrize("p", [0.5, 0.01, 1e-3])
def test_gap_guess_matches_the_table_at_every_threshold(p):
    """The one-threshold inversion equals the bisection for random words and for the words at, just
    below and just above every threshold T_k (the ties of the high halves, read only when some word
    of the batch has one, included), at a large, the usual and a small p."""
    hi, lo = sampling.thresholds(p)
    t = [(int(h) << 32) | int(w) for h, w in zip(hi, lo, strict=True)]
    ks = np.unique(np.linspace(0, len(t) - 1, 3000).astype(int))
    edge = sorted({min(max(t[k] + d, 0), 2**64 - 1) for k in ks for d in (-1, 0, 1)})
    rng = np.random.default_rng(1)
    rand = [int(a) << 32 | int(b) for a, b in rng.integers(0, 2**32, (5000, 2), dtype=np.uint64)]
    words = np.array(edge + rand + [0, 1, 2**64 - 1], dtype=np.uint64)
    w1 = jnp.asarray((words >> np.uint64(32)).astype(np.uint32))
    w2 = jnp.asarray((words & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    table = jax.jit(lambda a, b: sampling._gap_from_table(a, b, hi, lo))
    guess = jax.jit(lambda a, b: sampling._gap_from_guess(a, b, hi, lo, p))
    want = np.asarray(table(w1, w2))
    np.testing.assert_array_equal(np.asarray(guess(w1, w2)), want)
    # the random words alone (no tie among them: the branch without the low halves)
    some = slice(len(edge), len(edge) + len(rand))
    np.testing.assert_array_equal(np.asarray(guess(w1[some], w2[some])), want[some])


def test_threefry_is_jax_threefry():
    """The hash written out is Threefry-2x32-20: Random123's published test vectors, and the words of
    ``jax.random.fold_in(key, i)`` for random keys and counters up to 2^31 - 1."""
    vectors = [  # key, counter, hash
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for key, counter, want in vectors:
        got = sampling.threefry2x32(*np.uint32(key), *np.uint32(counter))
        assert [int(w) for w in got] == list(want)
    keys = sampling.keys(np.arange(0, 2**32 - 1, 2**32 // 40))
    counters = jnp.asarray([0, 1, 2, 1000, 123_456_789, 2**31 - 1], jnp.int32)
    got = jax.jit(jax.vmap(lambda k: sampling.words(k, counters)))(keys)
    fold = jax.vmap(lambda k: jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(k, i)))(counters))
    want = jax.jit(fold)(keys)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[..., 0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[..., 1]))


def test_exponential_fallback_matches_float64():
    """The float32 fallback for tiny p: E = -log U with full relative precision in the tail."""
    rng = np.random.default_rng(0)
    w1 = np.concatenate([rng.integers(1, 2**32, 2000), [1, 2**31, 2**32 - 1, 12345]])
    w2 = np.concatenate([rng.integers(0, 2**32, 2000), [0, 0, 2**32 - 1, 99]])
    u = (w1.astype(np.float64) * 2.0**32 + w2.astype(np.float64) + 0.5) / 2.0**64
    got = sampling.exponential_from_bits(jnp.asarray(w1, jnp.uint32), jnp.asarray(w2, jnp.uint32))
    np.testing.assert_allclose(np.asarray(got), -np.log(u), rtol=1e-6, atol=2.0**-22)
    assert sampling.thresholds(1e-6) is None  # such a p takes the fallback
    assert int(jax.jit(sampling.gap, static_argnums=2)(sampling.keys([0])[0], 0, 1e-6)) >= 1


def test_geometric_gaps_law():
    """Gaps of many seeds: P(K = 1) = p, P(K > k) = (1-p)^k, mean 1/p, within 5 standard errors."""
    p, n_seeds, n_gaps = 0.01, 500, 200
    keys = sampling.keys(np.arange(n_seeds))
    draw = jax.jit(jax.vmap(lambda k: jax.vmap(lambda i: sampling.gap(k, i, p))(jnp.arange(n_gaps))))
    gaps = draw(keys)
    g = np.asarray(gaps).ravel().astype(np.float64)
    n = g.size
    assert g.min() >= 1
    for k in (0, 1, 50, 100, 300):
        q = (1 - p) ** k
        assert abs((g > k).mean() - q) < 5 * math.sqrt(q * (1 - q) / n) + 1e-12, k
    assert abs(g.mean() - 1 / p) < 5 * math.sqrt((1 - p) / p**2 / n)


def draw_masks(keys, p, size, lengths, batch=None):
    """The big steps of windows of the given lengths, one after the other, as the runner draws them:
    bool ``[steps, seeds]``, the sampler state after them and the number of steps. Checks that no bit
    past a window's length is set."""
    window = jax.jit(lambda *a: windows.window(*a, size=size, p=p, batch=batch))
    state, masks, t0 = windows.init(keys, p), [], 0
    for n in lengths:
        bits, state = window(keys, state, jnp.int32(t0), jnp.int32(n))
        mask = windows.unpack(bits, size)
        assert not mask[n:].any()
        masks.append(mask[:n])
        t0 += n
    return np.concatenate(masks), state, t0


def test_window_masks_are_bernoulli_steps():
    """The masks the runner reads, window after window, mark exactly each seed's big steps; their rate
    is p and consecutive steps are independent."""
    p = 0.01
    big, _, t0 = draw_masks(sampling.keys(np.arange(128)), p, 4096, (1, 100, 4096, 3000, 4096))
    for s in (0, 77):
        np.testing.assert_array_equal(np.flatnonzero(big[:, s]) + 1, sampling.big_steps(int(s), t0, p))
    n = big.size
    assert abs(big.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    after_big = big[1:][big[:-1]]  # P(big at t+1 | big at t) = p
    assert abs(after_big.mean() - p) < 5 * math.sqrt(p * (1 - p) / after_big.size)


def test_window_batch_size_does_not_change_the_big_steps():
    """A round draws a fixed batch of gaps per seed and rounds repeat until every seed's window is
    covered: with a batch of 3 gaps (many rounds per window: a 512-step window holds ~26 big steps) the
    masks are the same as with the default batch, and they mark each seed's big steps."""
    p, keys, lengths = 0.05, sampling.keys(np.arange(16)), (7, 512, 300)
    default, state, steps = draw_masks(keys, p, 512, lengths)
    small, small_state, _ = draw_masks(keys, p, 512, lengths, batch=3)
    np.testing.assert_array_equal(small, default)
    np.testing.assert_array_equal(np.asarray(small_state.drawn), np.asarray(state.drawn))
    for s in (0, 9):
        np.testing.assert_array_equal(np.flatnonzero(small[:, s]) + 1, sampling.big_steps(s, steps, p))


# ------------------------------------------------------------------------------------ devices

SPLIT = textwrap.dedent(
    """
    import numpy as np, jax, adaptx
    from adaptx.experiments import Online, Stochastic, run_devices, sweep
    four = run_devices(4)  # jax has not started: splits the CPU into 4 devices
    assert [d.platform for d in four] == ["cpu"] * 4 and jax.device_count() == 4
    try:
        run_devices(5)  # jax has started with 4 devices now
    except ValueError as err:
        assert "4 available" in str(err) and "already started" in str(err), err
    else:
        raise AssertionError("no error")
    lr_b2 = {"learning_rate": [1e-2, 1e-3], "b2": [0.99, 0.999]}
    one = jax.devices()[2:3]  # one device, not the default one
    cases = [  # (optimizer or factory, problem, keyword arguments, device sets)
        # per-seed moments shared by the settings (AdaX's complex state); 70 seeds pad to 64 a device
        (lambda learning_rate: adaptx.adax(learning_rate), Stochastic(),
         dict(seeds=70, grid={"learning_rate": [1e-2, 3e-3]}), [four]),
        # per-seed moments per setting
        (lambda learning_rate, b2: adaptx.adam(learning_rate, b2=b2), Stochastic(),
         dict(seeds=9, grid=lr_b2), [2]),
        # online: the settings are split; AMSGrad's moments are per setting in a grid over b2
        (lambda learning_rate, b2: adaptx.amsgrad(learning_rate, b2=b2), Online(),
         dict(grid={"learning_rate": np.geomspace(1e-3, 1e-1, 35).repeat(2), "b2": [0.99, 0.9] * 35}),
         [4, one]),
    ]
    for opt, problem, kw, device_sets in cases:
        ref = sweep(opt, problem, steps=2000, log_points=20, chunk=700, **kw)
        for devices in device_sets:
            got = sweep(opt, problem, steps=2000, log_points=20, chunk=700, devices=devices, **kw)
            assert np.array_equal(ref.x, got.x), (problem, devices)
            assert np.array_equal(ref.avg_regret, got.avg_regret), (problem, devices)
    print("OK")
    """
)


def test_runs_split_over_devices_give_the_same_bits():
    """In a fresh process, run_devices(4) splits the CPU into 4 devices (and says why it cannot once jax
    has started). A sweep split over 2 or 4 of them, or run on another device than the default one,
    gives the numbers of the one-device sweep to the bit: seeds sharing their moments across settings,
    seeds with moments per setting, and online settings with moments per setting."""
    res = run_python(SPLIT, XLA_FLAGS=None)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("OK")


def test_invalid_devices():
    jax.devices()  # jax has started: run_devices can no longer split the CPU
    opt = adaptx.adam(LR)
    for bad in (0, -1, len(jax.devices()) + 1):
        with pytest.raises(ValueError, match="devices must be between 1"):
            sweep(opt, Online(), steps=10, devices=bad)
    for bad in ("cpu", [jax.devices()[0], jax.devices()[0]], [], [1, 2]):
        with pytest.raises(ValueError, match="devices must be"):
            sweep(opt, Online(), steps=10, devices=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n must be a positive int"):
            run_devices(bad)
    with pytest.raises(ValueError, match="available"):
        run_devices(len(jax.devices()) + 1)


# ------------------------------------------------------------------------------------- errors


def test_invalid_arguments():
    with pytest.raises(ValueError, match="C"):
        theorem1(2.0)
    with pytest.raises(ValueError, match="big"):
        Online(period=101, big=900.0, small=10.0)
    with pytest.raises(ValueError, match="p"):
        Stochastic(p=1.5)
    opt = adaptx.adam(LR)
    with pytest.raises(ValueError, match="x0"):
        run(opt, Online(), steps=10, x0=2.0)
    with pytest.raises(ValueError, match="steps"):
        run(opt, Online(), steps=0)
    with pytest.raises(ValueError, match="same length"):
        sweep(lambda learning_rate, b2: adaptx.adam(learning_rate, b2=b2), Online(), steps=10,
              grid={"learning_rate": [1e-2, 1e-3], "b2": [0.9]})
    with pytest.raises(ValueError, match="spacing"):
        log_times(100, 10, "cubic")


def test_log_times():
    ts = log_times(10_000_000, 200)
    assert ts[0] == 1 and ts[-1] == 10_000_000 and np.all(np.diff(ts) > 0)
    assert log_times(1000, 10, "linear").tolist() == list(range(100, 1001, 100))
