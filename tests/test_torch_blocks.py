"""The blocks added for PyTorch parity, each against a NumPy reference written from its formula.

These are the pieces :mod:`adaptx.torch_compat` is assembled from; the end-to-end comparison with real
PyTorch is ``test_torch_parity.py``. References are float64 NumPy (or exact float32 NumPy sequences
where the point is the rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptx
from adaptx import moments
from adaptx import torch_compat as tc
from adaptx.moments.rectification import RAdamRectification
from adaptx.torch_compat import inplace, pieces
from adaptx.torch_compat.decay import stepped_decay
from adaptx.transforms import classic
from adaptx.transforms.learning_rate import inverse_time_decay


def run(transform, grads, params=None):
    """Apply ``transform`` to a sequence of gradients (list of arrays); the updates, as float64."""
    params = jnp.zeros_like(grads[0]) if params is None else params
    state = transform.init(params)
    out = []
    for g in grads:
        u, state = transform.update(g, state, params)
        out.append(np.asarray(u, np.float64))
    return out


def close(got, want, rtol=2e-5):
    """float32 against float64: relative error, with an absolute floor at the scale of the vector (the
    moving averages cancel, so their small entries carry absolute, not relative, rounding errors)."""
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))


@pytest.fixture
def grads():
    rng = np.random.default_rng(3)
    return [jnp.asarray(rng.standard_normal(5) * np.exp(rng.standard_normal()), jnp.float32)
            for _ in range(40)]


def test_momentum_buffer_torch_semantics(grads):
    """b_1 = g_1 (no dampening), b_t = μ b + (1 − τ) g; Nesterov g + μ b."""
    mu, tau = 0.9, 0.3
    for nesterov, damp in [(False, tau), (True, 0.0)]:
        got = run(classic.scale_by_momentum(mu, damp, nesterov), grads)
        b = None
        for g, u in zip(grads, got, strict=True):
            g = np.asarray(g, np.float64)
            b = g.copy() if b is None else mu * b + (1 - damp) * g
            close(u, g + mu * b if nesterov else b)


def test_rmsprop_centered_and_plain(grads):
    a, eps = 0.95, 1e-3
    for centered in (False, True):
        got = run(classic.scale_by_rmsprop(a, eps, centered=centered), grads)
        v = np.zeros(5)
        gbar = np.zeros(5)
        for g, u in zip(grads, got, strict=True):
            g = np.asarray(g, np.float64)
            v = a * v + (1 - a) * g * g
            gbar = a * gbar + (1 - a) * g
            d = np.sqrt(v - gbar**2 if centered else v) + eps
            close(u, g / d, rtol=5e-5)


def test_adagrad_running_sum(grads):
    got = run(classic.scale_by_adagrad(0.1, 1e-10), grads)
    s = np.full(5, 0.1)
    for g, u in zip(grads, got, strict=True):
        g = np.asarray(g, np.float64)
        s = s + g * g
        close(u, g / (np.sqrt(s) + 1e-10))


def test_adamax_infinity_norm(grads):
    b1, b2, eps = 0.9, 0.99, 1e-2
    got = run(classic.scale_by_adamax(b1, b2, eps), grads)
    m = np.zeros(5)
    un = np.zeros(5)
    for t, (g, u) in enumerate(zip(grads, got, strict=True), start=1):
        g = np.asarray(g, np.float64)
        m = b1 * m + (1 - b1) * g
        un = np.maximum(b2 * un, np.abs(g) + eps)
        close(u, m / (1 - b1**t) / un)


def test_nadam_scaling(grads):
    b1, b2, eps, psi = 0.9, 0.999, 1e-8, 4e-3
    got = run(classic.scale_by_nadam(b1, b2, eps, psi), grads)
    m = np.zeros(5)
    v = np.zeros(5)
    prod = 1.0
    for t, (g, u) in enumerate(zip(grads, got, strict=True), start=1):
        g = np.asarray(g, np.float64)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        prod *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        d = np.sqrt(v / (1 - b2**t)) + eps
        want = ((1 - mu) / (1 - prod) * g + mu_next / (1 - prod * mu_next) * m) / d
        close(u, want, rtol=5e-5)


def test_radam_scaling_switches_at_rho_5(grads):
    b1, b2, eps = 0.9, 0.999, 1e-8
    got = run(classic.scale_by_radam(b1, b2, eps), grads)
    m = np.zeros(5)
    v = np.zeros(5)
    rho_inf = 2 / (1 - b2) - 1
    switched = False
    for t, (g, u) in enumerate(zip(grads, got, strict=True), start=1):
        g = np.asarray(g, np.float64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        rho = rho_inf - 2 * t * b2**t / bc2
        if rho > 5:
            switched = True
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            want = m / bc1 * r * np.sqrt(bc2) / (np.sqrt(v) + eps)
        else:
            want = m / bc1
        close(u, want, rtol=5e-5)
    assert switched


@pytest.mark.parametrize("b2", [0.5, 0.9, 0.99, 0.999, 0.9999])
def test_radam_rho_accurate_in_float32(b2):
    """ρ_t in float32 within 1e-6 relative of float64 for t up to 1e7 (the direct formula: 2.6e-2)."""
    t = np.concatenate([np.arange(1, 3000), np.arange(3000, 10**7, 9973)])
    want = (2 / (1 - b2) - 1) - 2 * t * b2**t / (1 - b2**t)
    got = np.asarray(RAdamRectification(b2).rho(jnp.asarray(t, jnp.int32), jnp.float32), np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_inverse_time_decay_schedule():
    sched = inverse_time_decay(1e-2, 1e-3)
    steps = np.arange(0, 5000, 7)
    np.testing.assert_allclose(np.asarray(sched(jnp.asarray(steps))), 1e-2 / (1 + steps * 1e-3), rtol=1e-6)
    assert inverse_time_decay(0.1, 0) == 0.1


def test_apply_in_sequence_rounds_after_each_part():
    """θ + p1 + p2 rounded after each addition in float32: what two in-place PyTorch ops give."""
    rng = np.random.default_rng(0)
    # |θ| >= 0.5 and parts <= ~5e-3: θ changes by far less than a factor 2, where the returned
    # difference is exact (Sterbenz) and the match is bit for bit.
    theta = (np.sign(rng.standard_normal(10_000)) * (0.5 + np.abs(rng.standard_normal(10_000))))
    theta = theta.astype(np.float32)
    p1 = (rng.standard_normal(10_000) * 1e-3).astype(np.float32)
    p2 = (rng.standard_normal(10_000) * 1e-3).astype(np.float32)
    want = (theta + p1) + p2  # NumPy float32: one rounding per addition
    tx = inplace.apply_in_sequence()
    upd, _ = jax.jit(tx.update)(inplace.Parts((jnp.asarray(p1), jnp.asarray(p2))), tx.init(theta),
                                jnp.asarray(theta))
    got = np.asarray(optax.apply_updates(jnp.asarray(theta), upd))
    np.testing.assert_array_equal(got, want)
    # ... which differs from one rounding of the sum often enough to matter.
    assert np.mean(theta + (p1 + p2) != want) > 0.05


def test_decoupled_decay_inplace_reproduces_torch_rounding():
    """θ·fl(1 − γλ), rounded, then + u, rounded (torch AdamW) — bit for bit in float32, under jit."""
    rng = np.random.default_rng(1)
    theta = (np.sign(rng.standard_normal(10_000)) * (0.5 + np.abs(rng.standard_normal(10_000))))
    theta = theta.astype(np.float32)
    u = (rng.standard_normal(10_000) * 1e-3).astype(np.float32)
    lr, wd = 1e-3, 1e-2
    want = (theta * np.float32(1 - lr * wd)) + u
    block = adaptx.chain(stepped_decay(wd, lr, as_factor=True))
    upd, _ = jax.jit(block.update)(jnp.asarray(u), block.init(theta), jnp.asarray(theta))
    got = np.asarray(optax.apply_updates(jnp.asarray(theta), upd))
    np.testing.assert_array_equal(got, want)
    # HF's order: update first, then decay of the updated θ.
    want_hf = (theta + u) + np.float32(-lr * wd) * (theta + u)
    block = adaptx.chain(stepped_decay(wd, lr, as_factor=False, on="updated"))
    upd, _ = jax.jit(block.update)(jnp.asarray(u), block.init(theta), jnp.asarray(theta))
    got = np.asarray(optax.apply_updates(jnp.asarray(theta), upd), np.float64)
    np.testing.assert_allclose(got, want_hf, rtol=0, atol=np.spacing(np.abs(want_hf)).max())


def test_host_constants_use_float64_complement():
    """PyTorch's pieces: 1 − β from the Python float (fl(0.001)), not 1 − fl(0.999)."""
    sc = pieces.HostSecondAverage(0.999).scalars(jnp.int32(1), jnp.float32, {})
    assert np.float32(sc.complement) == np.float32(0.001)
    generic = moments.MovingAverage(0.999).scalars(jnp.int32(1), jnp.float32, {})
    assert np.float32(generic.complement) == np.float32(1) - np.float32(0.999)
    np.testing.assert_allclose(float(sc.correction), 1 - 0.999, rtol=2e-7)


def test_nesterov_product_dtype_kept_float32_under_x64():
    """torch_compat's NAdam piece keeps Π_t in float32 under x64, with μ_t formed in float64 and rounded
    once (PyTorch's order); the generic piece keeps it in the parameters' dtype."""
    with jax.enable_x64(True):
        est = pieces.SplitNesterov(0.9, 4e-3)
        step_state = est.init_step(jnp.float64)
        step_state = est.advance(step_state, jnp.int32(1), jnp.float64)
        mu1 = 0.9 * (1 - 0.5 * 0.96**4e-3)
        assert step_state["mu_product"].dtype == jnp.float32
        assert float(step_state["mu_product"]) == float(np.float32(mu1))
        generic = moments.first.NesterovMovingAverage(0.9, 4e-3)
        assert generic.advance(generic.init_step(jnp.float64), jnp.int32(1), jnp.float64)[
            "mu_product"].dtype == jnp.float64


def test_rounding_barrier_survives_default_compilation():
    """θ·f rounded before + u, under jit with the options users get: the select stays in the optimised
    program, and the numbers show two roundings (a fused multiply-add would give one)."""
    rng = np.random.default_rng(2)
    theta = rng.standard_normal(100_000).astype(np.float32)
    f = np.float32(1 - 1e-3 * 1e-2)
    u = (rng.standard_normal(100_000) * 1e-3).astype(np.float32)

    def step(theta, u):
        return inplace.opaque_round(theta * f, jnp.float32) + u

    compiled = jax.jit(step).lower(jnp.asarray(theta), jnp.asarray(u)).compile()
    assert "select" in compiled.as_text() or "compare" in compiled.as_text()
    got = np.asarray(compiled(jnp.asarray(theta), jnp.asarray(u)))
    np.testing.assert_array_equal(got, (theta * f) + u)  # NumPy: one rounding per operation
    fused = (theta.astype(np.float64) * np.float64(f) + u).astype(np.float32)
    assert np.mean(fused != got) > 1e-3  # the test can tell the two apart


@pytest.mark.parametrize("make", [
    lambda: tc.sgd(nesterov=True),  # nesterov needs momentum > 0
    lambda: tc.sgd(momentum=0.9, dampening=0.1, nesterov=True),
    lambda: tc.adam(betas=(0.9,)),
    lambda: tc.adam(betas=(0.9, 1.0)),
    lambda: tc.adam(lr=-1.0),
    lambda: tc.rmsprop(alpha=1.5),
    lambda: tc.adagrad(lr_decay=-1.0),
    lambda: tc.adagrad(initial_accumulator_value=-0.1),
    lambda: tc.nadam(momentum_decay=-1.0),
    lambda: stepped_decay(1e-2, 1e-3, as_factor=True, on="later"),
    lambda: tc.adam(betas=(0.9, 1 - 1e-9)),  # rounds to 1 in float32
])
def test_invalid_arguments_raise_value_error(make):
    with pytest.raises(ValueError):
        make()
