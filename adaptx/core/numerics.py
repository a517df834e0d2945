"""Scalar numerics shared by every transform: the step counter, bias corrections, dtypes.

Everything here works on scalars that depend only on the step number and the hyperparameters, so it is
computed once per step (not once per parameter) and may be traced under ``jit``/``vmap``.

Bias corrections are where float32 loses accuracy. ``1 - b**t`` in float32 rounds ``b**t`` to 24 bits
before the subtraction; for b = 0.999 and small t the result carries a relative error of ~1e-4. PyTorch
sidesteps this by computing corrections in float64 on the host. We instead rewrite every power through
``log1p``/``expm1``, which are accurate to a few ulp in float32 for all t:

    1 - b**t       = -expm1(t * log(b)),   log(b) = log1p(b - 1) for b >= 1/2 (b - 1 is then exact)
    (1 + b)**t - 1 =  expm1(t * log1p(b))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

# The largest int32: step counters stop here instead of wrapping around to negative numbers.
INT32_MAX = jnp.iinfo(jnp.int32).max


def init_count() -> Array:
    """A fresh step counter: int32 zero (no step taken yet)."""
    return jnp.zeros([], jnp.int32)


def increment(count: Array) -> Array:
    """``count + 1``, saturating at the largest int32 instead of overflowing.

    At the ceiling (2**31 - 1 steps) every bias correction of the library has long reached its limit, so
    freezing the counter changes no result.
    """
    return jnp.where(count < INT32_MAX, count + 1, INT32_MAX).astype(jnp.int32)


def compute_dtype(*dtypes) -> jnp.dtype:
    """The dtype arithmetic is carried out in: at least float32, wider if an input is wider.

    bf16/f16 parameters and moments are upcast so that hyperparameters and corrections keep float32
    precision; float64 inputs (under ``jax_enable_x64``) keep float64 throughout. A complex dtype counts
    as its real part (complex parameters are computed in the complex counterpart, :func:`cast_state`).
    """
    return jnp.result_type(jnp.float32, *[real_dtype(d) for d in dtypes])


def real_dtype(dtype) -> jnp.dtype:
    """The real dtype of ``dtype``'s parts: float32 for complex64, ``dtype`` itself when real."""
    dtype = jnp.dtype(dtype)
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else dtype


def complex_of(dtype) -> jnp.dtype | None:
    """The complex dtype whose real and imaginary parts are ``dtype``: complex64 for float32, complex128
    for float64; ``None`` for a dtype without one (bf16, float16)."""
    return {
        jnp.dtype(jnp.float32): jnp.dtype(jnp.complex64),
        jnp.dtype(jnp.float64): jnp.dtype(jnp.complex128),
    }.get(jnp.dtype(dtype))


def cast_state(x: Array, dtype) -> Array:
    """``x`` in the real compute ``dtype``, or in its complex counterpart if ``x`` is complex.

    Gradients and first moments of complex parameters are complex; casting them to a real dtype would
    drop their imaginary part.
    """
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        return x.astype(complex_of(dtype))
    return x.astype(dtype)


def as_float(x, dtype=jnp.float32) -> Array:
    """A hyperparameter or step number as a floating scalar of ``dtype`` (float32 by default)."""
    return jnp.asarray(x, dtype)


def one_minus_power(b, t) -> Array:
    r"""Accurate :math:`1 - b^t` for ``0 <= b < 1`` (the Adam bias correction).

    Computed as ``-expm1(t * log(b))``. For b near 1 the logarithm is taken as ``log1p(b - 1)``: the
    subtraction is exact there (Sterbenz), so no digit of b is lost. For ``b = 0`` the result is exactly
    1 for every ``t >= 1``.
    """
    b = jnp.asarray(b)
    log_b = jnp.where(b >= 0.5, jnp.log1p(b - 1), jnp.log(b))
    return -jnp.expm1(t * log_b)


def power_minus_one(b, t) -> Array:
    r"""Accurate :math:`(1 + b)^t - 1` for ``b > 0`` (AdaX's correction :math:`B_t`).

    Computed as ``expm1(t * log1p(b))``; it overflows to ``inf`` past t ~ 887,000 for b = 1e-4 in float32,
    so callers that must stay finite use :func:`log_power_minus_one` instead.
    """
    return jnp.expm1(t * jnp.log1p(b))


def log_expm1(x) -> Array:
    r"""Accurate :math:`\log(e^x - 1)` for ``x >= 0``, finite wherever the result is.

    ``log(expm1(x))`` overflows once ``expm1(x)`` does (x > 88 in float32). Writing
    ``e^x - 1 = e^x (1 - e^{-x})`` gives ``x + log(-expm1(-x))``, whose parts never overflow; at x = 0 it
    is ``-inf`` as it should be.
    """
    return x + jnp.log(-jnp.expm1(-x))


def log_power_minus_one(b, t) -> Array:
    r""":math:`\log((1 + b)^t - 1)`, finite for every positive t (see :func:`log_expm1`)."""
    return log_expm1(t * jnp.log1p(b))
