r"""Which steps of the stochastic problem are "big": Bernoulli(p) per step, drawn as geometric gaps.

The stochastic problem needs one Bernoulli(p) variable per step and per seed. The straightforward way,
one ``jax.random`` draw per step (a threefry2x32 hash, ~20 rounds of integer arithmetic per 32-bit word),
costs far more than the whole Adam step it feeds, and bounds the simulation by the speed of the random
number generator.

We draw the *gaps* between big steps instead. For independent Bernoulli(p) trials the number of trials up
to and including the next success is geometric,

.. math::
    P(K = k) = (1 - p)^{k-1} p, \quad k = 1, 2, \dots,

the gaps are independent of each other, and a sequence of i.i.d. geometric gaps is *exactly* a
sequence of i.i.d. Bernoulli(p) trials (the success times of a Bernoulli process are the partial sums of
its gaps). With p = 0.01 that is one draw per 100 steps on average instead of one per step.

Exact inversion. A gap is drawn from a 64-bit random word w (two 32-bit threefry words), read as the
uniform :math:`U = (w + \tfrac12) / 2^{64}`. Since :math:`P(K > k) = (1 - p)^k`,

.. math::
    K - 1 = \#\{k \ge 1 : U \le (1 - p)^k\} = \max\{k : w \le T_k\}, \qquad
    T_k = \lfloor (1 - p)^k\, 2^{64} - \tfrac12 \rfloor,

so K is found by comparing *integers* with the decreasing table :math:`T_k` (for p = 0.01 it stops at
:math:`k = 4{,}482`, past which :math:`T_k < 0`), each comparison lexicographic on the (high, low)
32-bit halves: a bisection (13 steps for p = 0.01) or, as the runner does, a float32 guess that leaves
two candidates and one comparison to choose between them (:func:`_gap_from_guess`; the same answer for
every word). No floating-point rounding enters the draw: the law of K
is the geometric law up to the quantisation of U to 2^-64 and the float64 computation of the thresholds
(relative error ~1e-14). For comparison, ``jax.random.bernoulli(key, 0.01)`` compares a float32
uniform on a grid of 2^-23 with p and so draws with probability 0.010000109 (relative error 1.1e-5).
For tiny p, whose table would exceed 2^20 entries (p < 4e-5), the gap falls back to float32 inversion,
:math:`K = 1 + \lfloor -\log U / -\log(1-p) \rfloor`, exact up to float32 rounding of the quotient.

Reproducibility. The i-th gap of a seed is a pure function of the seed and i: the two output words of
one threefry2x32 hash of the counter i under the seed's key (:func:`threefry2x32`, the same bits as
``jax.random.fold_in(key, i)``), a counter-based generator. So the big steps of a seed do not depend on
how the run is cut into windows (chunking invariance), on which other seeds run beside it (a sweep equals
the per-seed runs), or on the hyperparameters (every grid point sees the same gradients for a given
seed: common random numbers).

The reference runner draws each seed's next gap when it reaches its current big step
(:func:`gap`); the CPU fast path draws the big steps of a window of steps at a time as a bit mask
(:mod:`adaptx.experiments.fast.windows`), from the same gaps.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_LN2 = math.log(2.0)
_MAX_GAP = 2**30  # keeps the int32 step arithmetic far from overflow


#: Seeds are integers in ``[0, SEED_LIMIT)``: a threefry key holds two 32-bit words, so every seed there
#: has a key of its own.
SEED_LIMIT = 2**64


def seed_array(seeds) -> np.ndarray:
    """``seeds`` (ints) as a 1-D NumPy array, each checked to lie in ``[0, 2**64)``, where every seed has
    a distinct key (:func:`keys`). Raises ``ValueError`` otherwise: a seed outside that range would have
    to wrap around and share the key, hence the big steps, of another seed.

    int64 when every seed fits, else uint64; the values are the ones given.
    """
    if isinstance(seeds, (np.ndarray, jax.Array)):
        arr = np.asarray(seeds)
        flat = arr.tolist() if arr.ndim == 1 and arr.dtype.kind in "iuO" else None
    else:  # a list or range of Python ints, which may exceed int64
        try:
            flat = list(seeds)
        except TypeError:
            flat = None
    if flat is None or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in flat
    ):
        raise ValueError(f"seeds must be a 1-D sequence of ints, got {seeds!r}")
    flat = [int(s) for s in flat]
    bad = [s for s in flat if not 0 <= s < SEED_LIMIT]
    if bad:
        raise ValueError(
            f"seeds must lie in [0, 2**64) (each seed's key holds its two 32-bit words), got {bad[0]}"
        )
    dtype = np.int64 if all(s < 2**63 for s in flat) else np.uint64
    return np.asarray(flat, dtype=dtype)


def keys(seeds) -> Array:
    """One threefry key per integer seed in ``[0, 2**64)`` (the keys :func:`gap` expects): the key of
    seed s holds the words ``(s >> 32, s & 0xFFFFFFFF)``, as ``jax.random.key(s)`` builds it (for
    s >= 2**32 under ``jax_enable_x64``), so distinct seeds have distinct keys. Threefry whatever jax's
    default generator is: the draws hash the key's two words with :func:`threefry2x32`.

    Raises ``ValueError`` for seeds outside ``[0, 2**64)`` (see :func:`seed_array`).
    """
    s = seed_array(seeds).astype(np.uint64)
    words = np.stack([s >> np.uint64(32), s & np.uint64(0xFFFFFFFF)], axis=-1).astype(np.uint32)
    return jax.random.wrap_key_data(jnp.asarray(words), impl="threefry2x32")


_TABLE_LIMIT = 2**20


@functools.lru_cache(maxsize=16)
def thresholds(p: float) -> tuple[np.ndarray, np.ndarray] | None:
    r"""The table :math:`T_k = \lfloor (1-p)^k 2^{64} - \tfrac12 \rfloor` for k = 0, 1, ... while
    :math:`T_k \ge 0`, as (high, low) uint32 halves; ``None`` if it would have more than 2^20 entries.

    :math:`(1-p)^k` is computed in float64 as ``exp(k * log1p(-p))`` (relative error ~1e-14); the
    products with 2^64 are then rounded to integers exactly by Python.
    """
    log_q = math.log1p(-p)
    if 65 * math.log(2) / -log_q > _TABLE_LIMIT:
        return None
    table = [2**64 - 1]  # T_0: every word is <= it (K >= 1)
    while True:
        value = math.floor(math.ldexp(math.exp(len(table) * log_q), 64) - 0.5)
        if value < 0:
            break
        table.append(min(value, 2**64 - 1))
    hi = np.array([v >> 32 for v in table], dtype=np.uint32)
    lo = np.array([v & 0xFFFFFFFF for v in table], dtype=np.uint32)
    return hi, lo


def _gap_from_table(w1: Array, w2: Array, hi: np.ndarray, lo: np.ndarray) -> Array:
    """``max{k : (w1, w2) <= T_k}`` by bisection over the decreasing table (integer comparisons only)."""
    hi_t, lo_t = jnp.asarray(hi), jnp.asarray(lo)
    below = jnp.zeros(w1.shape, jnp.int32)  # an index where w <= T (k = 0: T_0 = 2^64 - 1)
    above = jnp.full(w1.shape, hi.size, jnp.int32)  # an index where w > T (past the table: T < 0)
    for _ in range(int(hi.size).bit_length()):
        mid = (below + above) // 2
        h, lw = hi_t[mid], lo_t[mid]
        ok = (w1 < h) | ((w1 == h) & (w2 <= lw))
        below, above = jnp.where(ok, mid, below), jnp.where(ok, above, mid)
    return below


def _gap_from_guess(w1: Array, w2: Array, hi: np.ndarray, lo: np.ndarray, p: float) -> Array:
    r"""The same ``max{k : (w1, w2) <= T_k}``, faster: one threshold read per word instead of a bisection.

    The float32 quotient :math:`x' = -\log U / -\log(1-p)` is within 2.4e-4 of its exact value x for
    p = 0.01 and within 0.05 for p = 5e-5, near the smallest p with a table (measured over random and
    deep-tail words; it grows like 1/p); the answer is :math:`\lfloor x \rfloor`
    (up to the integer ties the table settles). With :math:`k = \lfloor x' - \tfrac12 \rfloor`, x lies in
    :math:`(k, k + 2)`, so the answer is k + 1 if :math:`w \le T_{k+1}` and k otherwise: one comparison
    with one threshold. (Guessing :math:`\lfloor x' \rfloor` leaves three candidates and needs two
    thresholds: their table reads were most of the inversion's time.) A threshold is two 32-bit halves;
    the low halves matter only where ``w1`` equals the high half, which a random word does with
    probability 2^-32, so they are read only when some word of the batch does. Equal to
    :func:`_gap_from_table` for every word (tested, ties included).
    """
    zero = np.zeros(1, np.uint32)
    next_hi = jnp.asarray(np.concatenate([hi[1:], zero]))  # T_{k+1}; past the table: guarded below
    next_lo = jnp.asarray(np.concatenate([lo[1:], zero]))
    last = hi.size - 1
    # E = -log U from U = (w1 + (w2 + 1/2) / 2^32) / 2^32: absolute error ~1e-5 at most, a small part of
    # one step of E / λ (λ = 0.01 for p = 0.01), and of the half step the guess may be off by.
    u_hi = w1.astype(jnp.float32) + (w2.astype(jnp.float32) + 0.5) * jnp.float32(2.0**-32)
    e = jnp.float32(32 * _LN2) - jnp.log(u_hi)
    k = jnp.floor(e / jnp.float32(-math.log1p(-p)) - jnp.float32(0.5))
    k = jnp.clip(k, 0, last).astype(jnp.int32)
    h = next_hi[k]
    below, tie = w1 < h, w1 == h
    le = jax.lax.cond(jnp.any(tie), lambda: below | (tie & (w2 <= next_lo[k])), lambda: below)
    return jnp.where(le & (k < last), k + 1, k)


def exponential_from_bits(w1: Array, w2: Array) -> Array:
    r""":math:`E = -\log U` for the 64-bit uniform :math:`U \approx (w_1 2^{32} + w_2) / 2^{64}`, float32.

    U is written as :math:`m \cdot 2^{-z}` with z the number of leading zeros of the 64-bit word and
    :math:`m \in [\tfrac12, 1)` the midpoint of the cell of its next 24 bits, so that
    :math:`E = (z + 1) \log 2 - \log 2m` keeps full relative precision however small U is. (Only the
    fallback of :func:`gap` for tiny p uses it.)
    """
    w1 = w1.astype(jnp.uint32)
    w2 = w2.astype(jnp.uint32)
    z1 = jax.lax.clz(w1)
    z2 = jax.lax.clz(w2)
    hi_zero = w1 == 0
    # The 64-bit word shifted left until its top bit is set; its top 32 bits.
    carry_in = jnp.where(z1 == 0, jnp.uint32(0), w2 >> (32 - z1).astype(jnp.uint32))
    top = jnp.where(hi_zero, w2 << z2.astype(jnp.uint32), (w1 << z1.astype(jnp.uint32)) | carry_in)
    z = jnp.where(hi_zero, 32 + z2, z1).astype(jnp.float32)
    # m in [1/2, 1): the top 24 bits (exact in float32) plus half a unit, the midpoint of its cell.
    m = ((top >> 8).astype(jnp.float32) + 0.5) * jnp.float32(2.0**-24)
    return (z + 1) * jnp.float32(_LN2) - jnp.log(2 * m)


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # of the two words' rounds, in groups of four
_PARITY = 0x1BD11BDA  # the key schedule's constant


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    r"""The Threefry-2x32 hash with 20 rounds (Salmon et al., SC 2011), elementwise on uint32 arrays.

    The key :math:`(k_0, k_1)` is extended by :math:`k_2 = k_0 \oplus k_1 \oplus \text{0x1BD11BDA}`;
    the counter :math:`(x_0, x_1)` starts as :math:`(x_0 + k_0, x_1 + k_1)` and goes through five groups
    of four rounds :math:`x_0 \mathrel{+}= x_1,\ x_1 = \text{rotl}(x_1, r) \oplus x_0` (rotations
    13, 15, 26, 6 and 17, 29, 16, 24 alternately); after group i = 0, ..., 4,
    :math:`k_{(i+1) \bmod 3}` is added to :math:`x_0` and :math:`k_{(i+2) \bmod 3} + i + 1` to
    :math:`x_1`. All arithmetic is modulo 2^32. These are the bits of ``jax.random``'s threefry
    (tested, with Random123's published test vectors too), written out so that :func:`window` can hash
    a whole batch in one kernel per output word: jax's CPU lowering runs the groups as a loop that
    copies its state in every iteration.

    Example:
      >>> import numpy as np
      >>> from adaptx.experiments.sampling import threefry2x32
      >>> [hex(int(w)) for w in threefry2x32(*np.zeros(4, np.uint32))]  # Random123's first test vector
      ['0x6b200159', '0x99ba4efe']
    """
    k0, k1, x0, x1 = (jnp.asarray(a, jnp.uint32) for a in (k0, k1, x0, x1))
    keys = (k0, k1, k0 ^ k1 ^ jnp.uint32(_PARITY))
    x0, x1 = x0 + k0, x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = ((x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))) ^ x0
        x0 = x0 + keys[(i + 1) % 3]
        x1 = x1 + keys[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


def words(key: Array, i: Array) -> tuple[Array, Array]:
    """The 64 random bits of the ``i``-th draw of the seed with ``key``: the hash of the counter
    ``(0, i)`` under the key's two words, the bits of ``jax.random.fold_in(key, i)``."""
    data = jax.random.key_data(key)
    i = jnp.asarray(i).astype(jnp.uint32)
    return threefry2x32(data[..., 0], data[..., 1], jnp.zeros_like(i), i)


def gap(key: Array, i: Array, p: float) -> Array:
    """The ``i``-th gap of the seed with ``key``: a geometric(p) number of steps ``>= 1`` (int32)."""
    return gap_from_words(*words(key, i), p)


def gap_from_words(w1: Array, w2: Array, p: float) -> Array:
    """The geometric(p) gap ``>= 1`` drawn from the 64-bit words ``(w1, w2)`` (any shape)."""
    table = thresholds(float(p))
    if table is not None:
        return _gap_from_guess(w1, w2, *table, p) + 1
    e = exponential_from_bits(w1, w2)
    rate = jnp.float32(-math.log1p(-p))  # λ = -log(1 - p), exact in float64 then rounded once
    k = jnp.floor(jnp.minimum(e / rate, jnp.float32(_MAX_GAP)))
    return k.astype(jnp.int32) + 1


def big_steps(seed: int, steps: int, p: float) -> np.ndarray:
    """The 1-based steps ``<= steps`` at which ``seed`` draws the big gradient (for checks and plots).

    Example:
      >>> from adaptx.experiments.sampling import big_steps
      >>> big_steps(0, 1000, 0.01)  # about 10 big steps in 1,000
      array([ 87, 240, 244, 300, 363, 467, 480, 526, 589, 754, 770])
    """
    key = keys([seed])[0]
    out = []
    t = 0
    i = 0
    while True:
        t += int(_gap_jit(key, jnp.int32(i), float(p)))
        i += 1
        if t > steps:
            return np.asarray(out, dtype=np.int64)
        out.append(t)


_gap_jit = jax.jit(gap, static_argnums=2)
