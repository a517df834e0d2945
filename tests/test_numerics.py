"""``adaptx.core.numerics``: the step counter and the scalar corrections, against float64 NumPy.

Accuracy is measured in float32 ulps of the exact result, for the float32 *input* the function
receives: β = 0.999 is stored as 0.99900001287..., and 1 − β^t is judged for that β (what the function
can know), not for the decimal 0.999.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

import adaptx
from adaptx.core import numerics

INT32_MAX = 2**31 - 1
BETAS = np.array([0.0, 0.5, 0.9, 0.99, 0.999, 0.9999], np.float32)
# every t up to 1000, then 400 log-spaced values up to 1e7 (exact in float32: < 2**24)
STEPS = np.unique(np.concatenate([np.arange(1, 1001), np.round(np.logspace(3, 7, 400))])).astype(np.float32)


POWER_MINUS_ONE = jax.jit(numerics.power_minus_one)
LOG_POWER_MINUS_ONE = jax.jit(numerics.log_power_minus_one)


def ulps(got, exact) -> np.ndarray:
    """|got − exact| in units of the float32 spacing at ``exact``."""
    exact = np.asarray(exact, np.float64)
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(np.asarray(got, np.float64) - exact) / spacing


# --- the counter -------------------------------------------------------------------------------------


def test_increment_saturates_at_int32_max():
    counts = jnp.array([0, 1, INT32_MAX - 2, INT32_MAX - 1, INT32_MAX], jnp.int32)
    got = jax.jit(numerics.increment)(counts)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, [1, 2, INT32_MAX - 1, INT32_MAX, INT32_MAX])
    assert numerics.init_count().dtype == jnp.int32 and int(numerics.init_count()) == 0


def test_optimizer_counter_saturates_and_steps_stay_finite():
    """An alias whose shared counter and a block whose own counter reach int32 max stay there (no
    wrap to negative step numbers) and keep producing the limit step: bias corrections equal to 1."""
    params = {"w": jnp.ones(3), "b": jnp.ones(())}
    grads = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(3.0)}
    adam, adax = adaptx.adam(1e-2, b2=0.99), adaptx.scale_by_adax(b2=0.01)

    step = jax.jit(lambda a, b: (adam.update(grads, a, params), adax.update(grads, b)))
    adam_state = adam.init(params)._replace(count=jnp.asarray(INT32_MAX - 1, jnp.int32))
    adax_state = adax.init(params)._replace(count=jnp.asarray(INT32_MAX - 1, jnp.int32))
    outs = []
    for _ in range(3):
        (u, adam_state), (v, adax_state) = step(adam_state, adax_state)
        outs.append((u, v))
    assert int(adam_state.count) == INT32_MAX and int(adax_state.count) == INT32_MAX
    # The reference at those step numbers: 1 − β^t is exactly 1 in float64 too.
    r = ref.Adam(0.9, 0.99, 1e-8)
    state = r.init(jax.tree.leaves(params))
    for u, v in outs:  # every one of the three updates is update number INT32_MAX
        expected = [-1e-2 * d for d in r.direction(jax.tree.leaves(grads), state, INT32_MAX)]
        for got, want in zip(jax.tree.leaves(u), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
        assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(v))


# --- 1 - b**t ----------------------------------------------------------------------------------------


def exact_one_minus_power(b32, t):
    """1 − b^t in float64 for the float32 β (expm1/log: accurate to ~1e-16 relative)."""
    b, t = np.asarray(b32, np.float64), np.asarray(t, np.float64)
    with np.errstate(divide="ignore"):
        return -np.expm1(t * np.log(b))


def test_one_minus_power_is_accurate_to_a_few_ulp():
    b, t = np.meshgrid(BETAS, STEPS, indexing="ij")
    got = jax.jit(numerics.one_minus_power)(jnp.asarray(b), jnp.asarray(t))
    assert got.dtype == jnp.float32
    err = ulps(got, exact_one_minus_power(b, t))
    # Observed worst case 4.8 ulp (β = 0.9999, t ~ 300): log1p, a product and expm1, each within ~1-2 ulp.
    assert err.max() <= 8, {float(beta): float(e) for beta, e in zip(BETAS, err.max(axis=1), strict=True)}
    np.testing.assert_array_equal(got[0], 1.0)  # β = 0: exactly 1 from the first step


def test_naive_one_minus_power_is_not():
    """The contrast: ``1 - b**t`` in float32 rounds b^t near 1 before the subtraction, ~1e-4 relative
    error for β = 0.9999 in the first 100 steps (~7e-6 for β = 0.999); the rewrite stays below 1e-6."""
    t = STEPS[:100]
    for beta, naive_floor in ((0.9999, 3e-5), (0.999, 2e-6)):
        b = jnp.float32(beta)
        exact = exact_one_minus_power(np.float32(beta), t)
        naive = np.asarray(1 - b ** jnp.asarray(t), np.float64)
        good = np.asarray(numerics.one_minus_power(b, jnp.asarray(t)), np.float64)
        assert np.max(np.abs(naive - exact) / exact) > naive_floor
        assert np.max(np.abs(good - exact) / exact) < 1e-6


def test_one_minus_power_float64():
    with jax.enable_x64(True):
        b, t = np.meshgrid(BETAS.astype(np.float64), STEPS.astype(np.float64), indexing="ij")
        got = np.asarray(numerics.one_minus_power(jnp.asarray(b), jnp.asarray(t)))
        assert got.dtype == np.float64
    exact = exact_one_minus_power(b, t)
    np.testing.assert_allclose(got, exact, rtol=1e-14)


# --- (1 + b)**t - 1 and the logs -------------------------------------------------------------------


@pytest.mark.parametrize("beta", [1e-4, 1e-2, 0.5])
def test_power_minus_one_is_accurate(beta):
    """(1 + β)^t − 1 = expm1(t·log1p(β)). exp amplifies the rounding of its argument y = t·log1p(β)
    by |y|, so the bound is (4 + |y|) ulp: a few ulp for the early steps where AdaX's B_t is small,
    and the conditioning of the function itself for large t."""
    t = np.unique(np.round(np.logspace(0, 7, 500))).astype(np.float32)
    b = jnp.asarray(beta, jnp.float32)
    got = np.asarray(POWER_MINUS_ONE(b, jnp.asarray(t)), np.float64)
    log = np.asarray(LOG_POWER_MINUS_ONE(b, jnp.asarray(t)), np.float64)
    y = t.astype(np.float64) * np.log1p(np.float64(np.float32(beta)))
    finite = y < 88.5  # float32 overflows at e^88.72
    assert np.all(ulps(got[finite], np.expm1(y[finite])) <= 4 + y[finite])
    # past the overflow point the plain form is inf (documented); its log stays finite and accurate
    over = y > 89
    assert np.all(np.isinf(got[over]))
    exact_log = y + np.log(-np.expm1(-y))
    assert np.all(np.abs(log - exact_log) <= 4e-7 * np.maximum(np.abs(exact_log), 1.0))  # rel., abs. near 0


def test_log_expm1_finite_and_accurate():
    x = np.array([1e-30, 1e-6, 1e-3, 0.5, 1.0, 20.0, 88.0, 89.0, 100.0, 1e4, 1e7, 1e30], np.float32)
    got = np.asarray(jax.jit(numerics.log_expm1)(jnp.asarray(x)))
    x64 = x.astype(np.float64)
    exact = x64 + np.log(-np.expm1(-x64))  # log(e^x − 1), never overflowing
    assert np.all(np.isfinite(got))
    naive = np.asarray(jnp.log(jnp.expm1(jnp.asarray(x))))
    assert np.isinf(naive[x > 89]).all()  # what the rewrite avoids
    assert np.all(ulps(got, exact) <= 4)
    assert float(numerics.log_expm1(jnp.float32(0.0))) == -np.inf


def test_log_power_minus_one_for_every_int32_step():
    """AdaX's log B_t is finite up to the counter's ceiling, for β2 = 1e-4 (the default)."""
    t = np.array([1, 1000, 887_000, 10**7, INT32_MAX], np.float64)
    got = np.asarray(numerics.log_power_minus_one(jnp.float32(1e-4), jnp.asarray(t, jnp.float32)), np.float64)
    y = np.asarray(t, np.float32).astype(np.float64) * np.log1p(np.float64(np.float32(1e-4)))
    exact = y + np.log(-np.expm1(-y))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, exact, rtol=1e-6)


# --- dtypes ------------------------------------------------------------------------------------------


def test_compute_dtype_is_at_least_float32():
    assert numerics.compute_dtype(jnp.bfloat16) == jnp.float32
    assert numerics.compute_dtype(jnp.float16, jnp.bfloat16) == jnp.float32
    assert numerics.compute_dtype(jnp.float32) == jnp.float32
    with jax.enable_x64(True):
        assert numerics.compute_dtype(jnp.float64, jnp.bfloat16) == jnp.float64
