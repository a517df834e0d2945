"""AdaX over 10^8 float32 steps: finite, and within 1e-5 relative of a float64 reference.

The textbook recurrence v <- (1 + b2) v + b2 g^2 overflows float32 near step 887,000 (b2 = 1e-4); adaptx
stores v / B_t instead (adaptx.moments.LongTermAverage). This test runs the real jitted transformation for
10^8 steps and compares, at checkpoints on both sides of the overflow point, with a float64 reference
computed in closed form from the same gradients.

Gradients come from an integer hash of (step, element) evaluated identically by NumPy and by jax
(uint32 arithmetic), so both sides see bit-identical float32 gradients without storing 4e8 of them.
"""

import jax
import jax.numpy as jnp
import numpy as np

import adaptx

B1, B2 = 0.9, 1e-4
SCALES = np.array([1e-6, 1e-3, 1.0, 1e3], np.float32)  # one parameter per gradient scale
CHECKPOINTS = [1, 10, 1_000, 100_000, 887_200, 2_000_000, 30_000_000, 100_000_000]  # HORIZON included
HORIZON = 2_000_000  # beyond it AdaX's weights b2 (1+b2)^-s are < e^-199: nothing more enters v
M_WINDOW = 2_000  # b1^2000 = 1e-92: older gradients no longer enter m


def _hash_np(k: np.ndarray) -> np.ndarray:
    x = (k.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x = (x.astype(np.uint64) * np.uint64(0x45D9F3B) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    return x


def _hash_jax(k: jax.Array) -> jax.Array:
    x = k * jnp.uint32(2654435761)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x45D9F3B)
    return x ^ (x >> 16)


def grads_np(steps: np.ndarray) -> np.ndarray:
    """float32 gradients of steps (1-based) for the 4 parameters, shape [len(steps), 4]."""
    k = steps[:, None].astype(np.uint64) * 4 + np.arange(4, dtype=np.uint64)
    u = (_hash_np(k) >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    return (u - np.float32(0.5)) * SCALES


def grads_jax(step: jax.Array) -> jax.Array:
    k = step.astype(jnp.uint32) * jnp.uint32(4) + jnp.arange(4, dtype=jnp.uint32)
    u = (_hash_jax(k) >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
    return (u - jnp.float32(0.5)) * jnp.asarray(SCALES)


def reference() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """float64 AdaX (v_T / B_T, update sqrt(B_T) m_T / (sqrt(v_T) + eps)) at each checkpoint, in closed form.

    v_T / B_T = sum_s b2 (1+b2)^(T-s) g_s^2 / ((1+b2)^T - 1) = C_T / (1 - (1+b2)^-T) with
    C_T = sum_{s<=T} b2 (1+b2)^-s g_s^2; m_T = sum_s (1-b1) b1^(T-s) g_s.
    The update is m_T / (sqrt(v_T/B_T) + eps/sqrt(B_T)).
    """
    log_growth = np.log1p(B2)
    s = np.arange(1, HORIZON + 1)
    g = grads_np(s).astype(np.float64)
    c = np.cumsum(B2 * np.exp(-s * log_growth)[:, None] * g**2, axis=0)
    out = {}
    for t in CHECKPOINTS:
        v_hat = c[min(t, HORIZON) - 1] / -np.expm1(-t * log_growth)
        window = np.arange(max(1, t - M_WINDOW + 1), t + 1)
        m = ((1 - B1) * B1 ** (t - window)[:, None] * grads_np(window).astype(np.float64)).sum(0)
        eps_eff = 1e-12 * np.exp(-0.5 * (t * log_growth + np.log(-np.expm1(-t * log_growth))))
        out[t] = v_hat, m / (np.sqrt(v_hat) + eps_eff)
    return out


def test_grads_identical_in_numpy_and_jax():
    steps = np.array([1, 2, 887_128, 99_999_999, 100_000_000])
    np.testing.assert_array_equal(
        np.asarray(jax.vmap(grads_jax)(jnp.asarray(steps, jnp.uint32))), grads_np(steps)
    )


def test_adax_finite_and_accurate_for_1e8_steps():
    opt = adaptx.scale_by_adax(B1, B2)  # eps = 1e-12 on the raw root, the authors' convention
    params = jnp.zeros(4, jnp.float32)

    def run(state, start, length):
        def body(state, step):
            update, state = opt.update(grads_jax(step), state)
            return state, None

        steps = start + jnp.arange(length, dtype=jnp.uint32)
        state, _ = jax.lax.scan(body, state, steps)
        return state

    run = jax.jit(run, static_argnums=2)
    last = jax.jit(lambda state, step: opt.update(grads_jax(step), state))
    expected = reference()

    state, done = opt.init(params), 0
    for t in CHECKPOINTS:
        if t - 1 > done:
            state = run(state, jnp.uint32(done + 1), t - 1 - done)
        update, state = last(state, jnp.uint32(t))
        done = t
        v_hat, want = expected[t]
        update = np.asarray(update, np.float64)
        assert np.all(np.isfinite(update)), (t, update)
        # The accumulator, the quantity that overflows in the textbook form: 1e-5 relative, per element.
        # (the average in nu, its rounding residual in nu_residual)
        assert state.nu.dtype == state.nu_residual.dtype == jnp.float32
        v_ours = np.asarray(state.nu, np.float64) + np.asarray(state.nu_residual, np.float64)
        np.testing.assert_allclose(v_ours, v_hat, rtol=1e-5, err_msg=f"v, step {t}")
        # The update m / sqrt(v): every entry is O(1) by construction, but m itself is a sum of terms of
        # both signs whose float32 rounding is relative to |g|, not to |m|; so the tolerance is 1e-5
        # relative to the largest entry of the update vector.
        tol = 1e-5 * np.abs(want).max()
        np.testing.assert_allclose(update, want, rtol=0, atol=tol, err_msg=f"u, step {t}")
    assert int(state.count) == CHECKPOINTS[-1]


def test_textbook_recurrence_overflows_where_adaptx_does_not():
    """The float32 textbook form (written here, as the public implementations do) is NaN by step 887,200."""
    b2 = jnp.float32(B2)

    def body(carry, step):
        v, t = carry
        t = t + 1
        v = (1 + b2) * v + b2 * grads_jax(step) ** 2
        bias = (1 + b2) ** t.astype(jnp.float32) - 1
        return (v, t), v / bias

    (_, _), v_hat = jax.jit(lambda: jax.lax.scan(
        body, (jnp.zeros(4), jnp.int32(0)), jnp.arange(1, 887_201, dtype=jnp.uint32)))()
    v_hat = np.asarray(v_hat)
    assert np.all(np.isfinite(v_hat[:700_000]))  # the 1e3-scale gradient overflows first
    assert not np.all(np.isfinite(v_hat[-1]))


def test_without_compensation_float32_rounding_drifts_past_the_bound():
    """Why the residual exists, and proof that the accuracy test above can fail: the plain running average
    (compensated=False) drifts more than 1e-5 from float64 on the same gradients by step 2e6."""
    opt = adaptx.scale_by_adax(B1, B2, compensated=False)

    def body(state, step):
        _, state = opt.update(grads_jax(step), state)
        return state, None

    steps = jnp.arange(1, HORIZON + 1, dtype=jnp.uint32)
    state, _ = jax.jit(lambda s: jax.lax.scan(body, s, steps))(opt.init(jnp.zeros(4, jnp.float32)))
    v_hat, _ = reference()[HORIZON]
    drift = np.abs(np.asarray(state.nu, np.float64) / v_hat - 1).max()
    assert drift > 1e-5, drift
