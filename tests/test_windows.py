"""adaptx.experiments.fast.windows: a window's big steps, drawn ahead for all seeds as a bit mask, are
exactly each seed's big steps.

References: :func:`adaptx.experiments.sampling.big_steps` (one gap after another, per seed) and the
Bernoulli law's rate and independence.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from adaptx.experiments import (
    sampling,
)
from adaptx.experiments.fast import windows


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


