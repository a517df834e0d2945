"""adaptx.experiments.sampling: the big steps of the stochastic problem as exact geometric gaps.

References: the geometric law and its thresholds written from their definition in float64 and exact
integers, jax's own threefry (``jax.random``), and float64 inversion for the fallback.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptx.experiments import (
    sampling,
)


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


