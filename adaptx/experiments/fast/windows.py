r"""The fast path's big steps: those of a window of steps at a time, as a bit mask.

The reference runner draws a seed's next gap (:func:`adaptx.experiments.sampling.gap`) when it reaches
the seed's current big step. The fast path runs all seeds as one vector, so it draws ahead instead: for a
window of up to ``chunk`` steps, every seed's big steps inside it, from the same gaps with the same
counters, as a bit mask the step loop reads (:func:`is_big`). Drawing a window costs a little more than
the largest number of big steps of a seed in the window, per seed (125 hashes per seed for 8192 steps
and 1024 seeds, 1.5% of one draw per step).
"""

from __future__ import annotations

import functools
import math
import statistics
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adaptx.experiments.sampling import gap, gap_from_words, words

Array = jax.Array


class SamplerState(NamedTuple):
    """Per-seed state of the gap sampler.

    Attributes:
      next: int32 ``[seeds]``, the 1-based step number of the next big step.
      drawn: int32 ``[seeds]``, how many gaps the seed has drawn (the counter of the next draw).
    """

    next: Array
    drawn: Array



@functools.partial(jax.jit, static_argnames="p")
def init(seed_keys: Array, p: float) -> SamplerState:
    """The sampler before step 1: each seed's first big step is its first gap."""
    first = jax.vmap(lambda k: gap(k, jnp.int32(0), p))(seed_keys)
    return SamplerState(next=first, drawn=jnp.ones_like(first))


#: Steps per mask word.
BITS = 32


def _batch(steps: int, p: float, seeds: int) -> int:
    """Gaps drawn per seed in one round for a window of ``steps``: the mean number of big steps plus z
    standard deviations plus z, with z chosen so that about one window in a hundred needs a second
    round for some seed (a per-seed tail of ~0.01 / seeds in the normal approximation; z = 4.3 for 1024
    seeds). Every gap drawn costs the same whether it is used or not, so a tighter batch with a rare
    second round is cheaper than a batch that never needs one (eight standard deviations, before, drew
    1.3x as many gaps for 1024 seeds). The batch size does not change which steps are big."""
    mean = steps * p
    z = statistics.NormalDist().inv_cdf(1 - 0.01 / max(seeds, 1))
    return int(math.ceil(mean + z * math.sqrt(mean) + z))


def window(
    seed_keys: Array, state: SamplerState, t0: Array, n: Array, size: int, p: float,
    batch: int | None = None,
) -> tuple[Array, SamplerState]:
    """The big steps among steps ``t0 + 1 .. t0 + n`` (``n <= size``) as a bit mask: uint32
    ``[mask_rows(size), seeds]`` whose bit ``i % BITS`` of row ``i // BITS`` is step ``t0 + 1 + i``
    (``BITS = 32``; bits at and past ``n`` are 0; :func:`unpack` gives the bool mask). Bits rather than
    bools: the mask is 32x smaller, which makes building it (a scatter) about five times faster.

    Each round draws the next M gaps of every seed at once (one ``[M, seeds]`` batch of hashes), turns
    them into the positions of the next M big steps, marks those inside the window and advances each
    seed past them; rounds repeat while some seed's next big step is still inside (about one window in
    a hundred: see ``_batch``). Gaps drawn beyond the window are not consumed: the next window draws
    them again from the same counters. Short windows (the first logged steps) use a small M.
    ``batch`` sets M for every window (``None``: chosen from ``size``, ``p`` and the number of seeds);
    it changes the number of rounds, never which steps are big.

    The batch is laid out ``[M, seeds]``, seeds along the vector lanes, as the mask is. A window of
    8192 steps for 1024 seeds takes 2.7 ms against 4.1 ms with the hashing and inversion of
    :func:`gap` vmapped over a ``[seeds, M]`` batch (medians, interleaved, the same masks); where the
    time went is said at each step below.
    """
    num = seed_keys.shape[0]
    cols = jnp.arange(num)[None, :]
    end = t0 + n
    row_of_keys = seed_keys[None, :]  # [1, seeds], against the [batch, seeds] counters

    def rounds(batch):
        def more(carry):
            _, st = carry
            return jnp.any(st.next <= end)

        def mark(carry):
            mask, st = carry
            counters = st.drawn[None, :] + jnp.arange(batch)[:, None]

            # The words go through a conditional that skips the hash when no seed needs gaps (any
            # words then leave everything unchanged: every position is past the window). What it is
            # for: XLA:CPU fuses an elementwise producer into each kernel that reads it, and the
            # inversion reads the words in four kernels, so the hash was computed four times (most
            # of the window's time). A conditional's results are buffers: the hash is computed twice,
            # once per output word, and stored (jax's own threefry, a loop over the five groups of
            # rounds, is computed once but copies its state in every iteration: hashing a batch of
            # 125 x 1024 counters alone took 0.7-1.0 ms with it, 0.45-0.65 ms written out).
            def hashed():
                return words(row_of_keys, counters)

            none = lambda: (jnp.zeros(counters.shape, jnp.uint32),) * 2  # noqa: E731
            w1, w2 = jax.lax.cond(more((mask, st)), hashed, none)
            gaps = gap_from_words(w1, w2, p)  # [batch, seeds]
            # positions of the next batch + 1 big steps: next, next + g_0, next + g_0 + g_1, ...
            # (integer sums: exact in any order; an associative scan over the batch axis was faster
            # here than jnp.cumsum on XLA:CPU, which took as long as the hashing over [seeds, batch])
            pos = st.next[None, :] + jnp.concatenate(
                [jnp.zeros((1, num), jnp.int32), jax.lax.associative_scan(jnp.add, gaps, axis=0)]
            )
            inside = pos[:batch] <= end  # a prefix of each column: positions increase
            step = pos[:batch] - t0 - 1  # the step's place in the window
            rows = jnp.where(inside, step // BITS, num_rows)  # out-of-range rows are dropped
            bits = jnp.left_shift(jnp.uint32(1), (step % BITS).astype(jnp.uint32))
            # distinct steps set distinct bits, so adding them is OR-ing them. The scatter is now the
            # largest part of a window (~0.6 ms of 2.7 ms for 8192 steps and 1024 seeds, profiled).
            mask = mask.at[rows, jnp.broadcast_to(cols, rows.shape)].add(bits, mode="drop")
            used = jnp.sum(inside, axis=0, dtype=jnp.int32)
            st = SamplerState(next=jnp.take_along_axis(pos, used[None, :], 0)[0], drawn=st.drawn + used)
            return mask, st

        return lambda carry: jax.lax.while_loop(more, mark, carry)

    num_rows = mask_rows(size)
    mask = jnp.zeros((num_rows, num), jnp.uint32)
    small = max(1, size // 32)  # short windows: at most 1/32 of the full size
    if batch is not None:
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        return rounds(batch)((mask, state))
    if small >= size:
        return rounds(_batch(size, p, num))((mask, state))
    return jax.lax.cond(
        n <= small, rounds(_batch(small, p, num)), rounds(_batch(size, p, num)), (mask, state)
    )


def mask_rows(size: int) -> int:
    """Rows of the bit mask of a window of ``size`` steps: ``ceil(size / BITS)``, and at least 2 (a
    one-row mask lets XLA simplify the row lookup away and compile the step differently, which changes
    the last bit of some results: the numbers must not depend on the window size)."""
    return max(2, -(-size // BITS))


def is_big(mask: Array, i: Array) -> Array:
    """Whether step ``t0 + 1 + i`` of the window is big, for every seed: bit ``i % BITS`` of row
    ``i // BITS`` of a :func:`window` mask."""
    word = jax.lax.dynamic_index_in_dim(mask, i // BITS, keepdims=False)
    return (jnp.right_shift(word, (i % BITS).astype(jnp.uint32)) & 1).astype(jnp.bool_)


def unpack(mask: Array, n: int) -> np.ndarray:
    """A :func:`window` bit mask as a NumPy bool array ``[n, seeds]`` (for checks and plots)."""
    m = np.asarray(mask)
    i = np.arange(n)
    return ((m[i // BITS] >> (i % BITS)[:, None].astype(np.uint32)) & 1).astype(bool)
