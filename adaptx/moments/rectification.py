r"""RAdam's variance rectification (Liu et al., 2020): a per-step switch and factor on the adaptive step.

Early in training Adam's :math:`\hat v_t` averages too few squared gradients for :math:`1/\sqrt{\hat v_t}`
to have a bounded variance. RAdam compares the length of the approximated simple moving average,

.. math::
    \rho_\infty = \frac{2}{1-\beta_2} - 1, \qquad
    \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t},

with a threshold (5 in PyTorch, 4 in the paper's analysis): below it the step is plain momentum
:math:`\hat m_t`; above it the adaptive step is multiplied by

.. math::
    r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}} .

Numerics: :math:`\rho_t` is a small difference of two numbers near :math:`\rho_\infty` (1999 for
β2 = 0.999): in float32 the direct formula loses ~4e-4 absolutely. Writing :math:`x = -t\log\beta_2 > 0`,

.. math::
    \frac{2t\beta_2^t}{1-\beta_2^t} = \frac{2t}{\operatorname{expm1}(x)}
    = \frac{2}{a} - t + 2t\,f(x), \qquad a = -\log\beta_2, \quad
    f(x) = \frac{1}{\operatorname{expm1}(x)} - \frac1x + \frac12 ,

so :math:`\rho_t = c + t - 2t f(x)` with the constant :math:`c = \rho_\infty - 2/a` (computed once, in
float64 on the host when β2 is a Python number) and :math:`f` evaluated by its Taylor series
:math:`x/12 - x^3/720 + x^5/30240 - x^7/1209600 + x^9/47900160` (relative truncation below 1e-8).
This form is used for :math:`x < 1`; from :math:`x = 1` on the subtracted term is at most 0.6
:math:`\rho_\infty` and the direct :math:`\rho_\infty - 2t/\operatorname{expm1}(x)` is accurate (the
series form would instead cancel ``t`` against ``2t f(x)`` for large t). Measured against float64:
relative error of :math:`\rho_t` below 1e-6 in float32 for β2 in [0.5, 0.999] (the direct formula:
2.6e-2 for β2 = 0.999). In float64 the direct formula is used, as PyTorch computes it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adaptx.core import hyperparams

Array = jax.Array


class Rectify(NamedTuple):
    """Per-step result of a rectifier: use the adaptive step (bool scalar) and the factor multiplying it."""

    adaptive: Array
    factor: Array


def _series_f(x: Array) -> Array:
    """``1/expm1(x) - 1/x + 1/2`` by its Taylor series, accurate in float32 for ``0 <= x <= 1``."""
    x2 = x * x
    return x / 12 * (1 - x2 / 60 * (1 - x2 / 42 * (1 - x2 / 40 * (1 - x2 / 39.6))))


def _rho_constants(b2: Any, dtype) -> tuple[Array, Array, Array]:
    r""":math:`\rho_\infty`, :math:`c = \rho_\infty - 2/a` and :math:`a = -\log\beta_2` as ``dtype``."""
    if isinstance(b2, (int, float)):  # concrete: exact enough in float64, then rounded once
        a = -math.log(b2)
        rho_inf = 2 / (1 - b2) - 1
        return (jnp.asarray(rho_inf, dtype), jnp.asarray(rho_inf - 2 / a, dtype), jnp.asarray(a, dtype))
    b2 = jnp.asarray(b2, dtype)
    a = -jnp.log1p(b2 - 1)
    rho_inf = 2 / (1 - b2) - 1
    return rho_inf, rho_inf - 2 / a, a


@dataclasses.dataclass(frozen=True)
class RAdamRectification:
    r"""RAdam's rectification switch and factor (see the module docstring for the formulas).

    Attributes:
      decay: :math:`\beta_2` of the second moment it rectifies, in ``(0, 1)``.
      threshold: use the adaptive step when :math:`\rho_t` exceeds it (PyTorch: 5).
    """

    decay: Any = 0.999
    threshold: float = 5.0

    def __post_init__(self):
        hyperparams.check_range("b2", self.decay, 0.0, 1.0, low_open=True, high_open=True)

    def rho(self, t: Array, dtype) -> Array:
        r""":math:`\rho_t`, the length of the approximated simple moving average at step ``t``."""
        rho_inf, c, a = _rho_constants(self.decay, dtype)
        tf = t.astype(dtype)
        if jnp.finfo(dtype).bits >= 64:
            # float64 resolves the direct formula to ~1e-13 of rho_inf; PyTorch evaluates exactly this
            # expression in float64, so following it keeps float64 runs at 1e-15 of PyTorch's.
            power = jnp.power(jnp.asarray(self.decay, dtype), tf)
            return rho_inf - 2 * tf * power / (1 - power)
        x = tf * a
        small = c + tf - 2 * tf * _series_f(jnp.minimum(x, 1.0))
        large = rho_inf - 2 * tf / jnp.expm1(jnp.maximum(x, 1.0))
        return jnp.where(x < 1.0, small, large)

    def scalars(self, t: Array, dtype) -> Rectify:
        rho_inf, _, _ = _rho_constants(self.decay, dtype)
        rho = self.rho(t, dtype)
        adaptive = rho > self.threshold
        safe = jnp.where(adaptive, rho, 2 * self.threshold)  # keeps the root real on the unused branch
        ratio = (safe - 4) * (safe - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe)
        return Rectify(adaptive=adaptive, factor=jnp.sqrt(ratio))
