"""adaptx.experiments.fast.staging: cutting a step into its shared and its per-setting part.

The reference is the function itself: the two parts, run one after the other, must give its outputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adaptx
from adaptx.experiments.fast import staging


def step(lr, t, x, m):
    """A momentum step: m depends on t alone (known), x on lr (varying)."""
    g = jnp.where(t % 3 == 1, 3.0, -1.0)
    m = 0.9 * m + g
    corr = -jnp.expm1(t * jnp.log1p(-0.1))  # a bias correction, a function of t only
    return [t + 1, m, jnp.clip(x - lr * m / corr, -1.0, 1.0)]


ARGS = (jnp.float32(0.1), jnp.int32(1), jnp.float32(0.0), jnp.float32(0.0))


def test_parts_reproduce_the_function():
    known, varying = staging.split(step, ARGS, varying=(True, False, True, False), known_outputs=(0, 1))
    lrs = jnp.asarray([0.1, 0.01, 0.3], jnp.float32)
    t, m, xs = jnp.int32(1), jnp.float32(0.0), jnp.zeros(3)
    ref_t, ref_m, ref_x = t, m, xs
    for _ in range(7):
        (t_next, m_next), res = jax.jit(known)(t, m)
        (xs,) = jax.jit(jax.vmap(varying, in_axes=(0, None)))((lrs, xs), res)
        t, m = t_next, m_next
        outs = [jax.jit(step)(lr, ref_t, x, ref_m) for lr, x in zip(lrs, ref_x, strict=True)]
        ref_t, ref_m, ref_x = outs[0][0], outs[0][1], jnp.stack([o[2] for o in outs])
        assert int(t) == int(ref_t)
        np.testing.assert_array_equal(np.asarray(m), np.asarray(ref_m))
        np.testing.assert_allclose(np.asarray(xs), np.asarray(ref_x), rtol=1e-6, atol=1e-7)


def test_residuals_are_only_what_the_varying_part_reads():
    known, _ = staging.split(step, ARGS, varying=(True, False, True, False), known_outputs=(0, 1))
    _, res = jax.eval_shape(known, ARGS[1], ARGS[3])
    assert all(r.shape == () for r in res)
    assert len(res) <= 3  # m (or m / corr), and the correction: not the whole step's intermediates


def test_constants_are_recomputed_not_stored():
    """A zeros_like of a known value is a constant: the varying part rebuilds it instead of reading a
    stored array per step."""

    def f(lr, t, x):
        floor = jnp.zeros((5,))  # constant, shaped like x
        return [t + 1, jnp.maximum(x * lr + t, floor)]

    args = (jnp.float32(0.5), jnp.int32(2), jnp.ones(5))
    known, varying = staging.split(f, args, varying=(True, False, True), known_outputs=(0,))
    (t,), res = known(jnp.int32(2))
    assert all(jnp.shape(r) == () for r in res)
    np.testing.assert_array_equal(varying((jnp.float32(0.5), -jnp.ones(5) * 10), res)[0], np.zeros(5))


def test_division_by_a_known_scalar_reads_its_reciprocal():
    """An array divided by a known float scalar becomes a product with the reciprocal, computed by the
    known part (as XLA:CPU compiles the division anyway); an integer division is left alone."""

    def f(t, x, n):
        corr = -jnp.expm1(t * jnp.log1p(-0.1))
        return [t + 1, x / corr, n // (t + 2)]

    args = (jnp.int32(3), jnp.ones(4), jnp.arange(4, dtype=jnp.int32) * 7)
    known, varying = staging.split(f, args, varying=(False, True, True), known_outputs=(0,))
    _, res = known(jnp.int32(3))
    corr = -np.expm1(3.0 * np.log1p(-0.1))
    floats = [float(r) for r in res if r.dtype == jnp.float32]
    assert len(floats) == 1 and np.isclose(floats[0], 1 / corr, rtol=1e-6)  # 1 / corr, not corr
    x = jnp.asarray([1.0, -2.0, 3.5, 1e-3], jnp.float32)
    n = jnp.asarray([7, 8, 30, -9], jnp.int32)
    got_x, got_n = varying((x, n), res)
    np.testing.assert_array_equal(np.asarray(got_x), np.asarray(x) * np.float32(floats[0]))
    np.testing.assert_allclose(np.asarray(got_x), np.asarray(x) / corr, rtol=2e-7)
    np.testing.assert_array_equal(np.asarray(got_n), np.asarray(n) // 5)


def test_a_known_output_may_not_depend_on_a_varying_input():
    with pytest.raises(staging.Inseparable) as err:
        staging.split(step, ARGS, varying=(True, False, True, False), known_outputs=(1, 2))
    assert err.value.outputs == (2,)


def test_an_opaque_call_counts_as_varying_in_all_its_outputs():
    jitted = jax.jit(step)
    with pytest.raises(staging.Inseparable):
        staging.split(jitted, ARGS, varying=(True, False, True, False), known_outputs=(1,))


def test_an_optimizer_step_splits_its_moments_from_the_learning_rate():
    """adaptx.adam with a traced learning rate: the count and both moments are known."""

    def adam_step(lr, g, x, count, mu, nu):
        opt = adaptx.adam(lr, 0.9, 0.99)
        state = opt.init(x)
        inner = state.inner[0]._replace(mu=mu, nu=nu)
        state = state._replace(count=count, inner=(inner, *state.inner[1:]))
        u, new = opt.update(g, state, x)
        return [x + u, new.count, new.inner[0].mu, new.inner[0].nu]

    f32 = jax.ShapeDtypeStruct((), jnp.float32)
    args = (f32, f32, f32, jax.ShapeDtypeStruct((), jnp.int32), f32, f32)
    known, varying = staging.split(
        adam_step, args, varying=(True, False, True, False, False, False), known_outputs=(1, 2, 3)
    )
    (count, mu, nu), res = known(jnp.float32(-10.0), jnp.int32(0), jnp.float32(0.0), jnp.float32(0.0))
    (x,) = varying((jnp.float32(0.01), jnp.float32(0.5)), res)
    zero = jnp.float32(0.0)
    ref = adam_step(jnp.float32(0.01), jnp.float32(-10.0), jnp.float32(0.5), jnp.int32(0), zero, zero)
    np.testing.assert_allclose(float(x), float(ref[0]), rtol=1e-6)
    assert int(count) == 1
    assert float(mu) == pytest.approx(float(ref[2])) and float(nu) == pytest.approx(float(ref[3]))


def _known_step(t, m):
    """The shared part of ``step`` above: the recurrence (t, m) and a bias-corrected value off it."""
    t_next, m_next, _ = step(jnp.float32(0.0), t, jnp.float32(0.0), m)
    corr = -jnp.expm1(t * jnp.log1p(-0.1))
    return [t_next, m_next, m_next / corr, jnp.sqrt(jnp.abs(m_next)), jnp.float32(2.0)]


def test_recurrence_then_vectorised_rest_reproduces_the_step():
    """Advance the state step by step, keep each step's links, compute the rest for all steps in one
    vmap: the outputs equal those of the step run in a loop."""
    args = (jnp.int32(1), jnp.float32(0.0))
    advance, rest = staging.recurrence(_known_step, args, carried=2)
    t, m, kept, ref = jnp.int32(1), jnp.float32(0.0), [], []
    ref_t, ref_m = t, m
    for _ in range(9):
        (t, m), links = jax.jit(advance)(t, m)
        kept.append(links)
        out = jax.jit(_known_step)(ref_t, ref_m)
        ref_t, ref_m = out[0], out[1]
        ref.append(out[2:])
        assert int(t) == int(ref_t) and float(m) == float(ref_m)
    stacked = tuple(jnp.stack(col) for col in zip(*kept, strict=True))
    got = jax.jit(jax.vmap(rest))(stacked)
    for j in range(3):
        want = np.asarray([float(r[j]) for r in ref], np.float32)
        np.testing.assert_allclose(np.asarray(got[j]), want, rtol=2e-7)  # vector vs scalar code


def test_recurrence_keeps_only_the_state_chain_sequential():
    """The links are the few values the rest reads (t and the new m here), not the step's
    intermediates; the advance step has no transcendental left in it."""
    args = (jnp.int32(1), jnp.float32(0.0))
    advance, _ = staging.recurrence(_known_step, args, carried=2)
    _, links = jax.eval_shape(advance, *args)
    assert len(links) == 2
    prims = {e.primitive.name for e in jax.make_jaxpr(advance)(*args).jaxpr.eqns}
    assert not prims & {"expm1", "log1p", "sqrt", "div"}, prims


def test_recurrence_with_everything_carried_has_an_empty_rest():
    advance, rest = staging.recurrence(lambda t, m: [t + 1, m * 0.5], (jnp.int32(0), jnp.float32(3.0)), 2)
    (t, m), links = advance(jnp.int32(0), jnp.float32(3.0))
    assert (int(t), float(m), links, rest(links)) == (1, 1.5, (), [])


def test_recurrence_passes_an_input_through_to_the_rest():
    """An output that is an input of the step (no equation computes it) is a link too."""
    advance, rest = staging.recurrence(lambda t, m: [t + 1, m], (jnp.int32(4), jnp.float32(3.0)), 1)
    (t,), links = advance(jnp.int32(4), jnp.float32(3.0))
    assert int(t) == 5 and [float(v) for v in rest(links)] == [3.0]
