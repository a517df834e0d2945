"""First-moment estimators: how the numerator of an adaptive step is formed from the gradients.

An estimator is a small frozen object with three methods, all per leaf:

* ``init(like, dtype)``: its state for one parameter (zeros);
* ``update(m, g, t)``: the new state from the old one and the gradient ``g`` at step ``t``;
* ``correction(t, dtype)``: a scalar divisor ``c_t`` with :math:`\\hat m = m / c_t`, or ``None`` for 1.

The arithmetic is written for a single array so that the engine that applies it (per leaf today) may
change without touching the math.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from adaptx.core import numerics

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class MovingAverage:
    r"""Exponential moving average of the gradient, Adam's and AdaX's first moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        \hat m_t = m_t / (1 - \beta_1^t) \text{ if debiased, else } m_t.

    Attributes:
      decay: :math:`\beta_1` in ``[0, 1)``; may be a traced array.
      debias: divide by :math:`1 - \beta_1^t` (Adam) or not (AdaX, BERT's ``correct_bias=False``).
    """

    decay: Any = 0.9
    debias: bool = True

    def init(self, like: Array, dtype) -> Array:
        return jnp.zeros(like.shape, dtype)

    def update(self, m: Array, g: Array, t: Array) -> Array:
        b1 = jnp.asarray(self.decay, g.dtype)
        return b1 * m + (1 - b1) * g

    def correction(self, t: Array, dtype) -> Array | None:
        if not self.debias:
            return None
        return numerics.one_minus_power(jnp.asarray(self.decay, dtype), t.astype(dtype))
