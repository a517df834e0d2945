"""First-moment estimators: how the numerator of an adaptive step is formed from the gradients.

An estimator is a small frozen object with three methods, all per leaf:

* ``init(like, dtype)``: its state for one parameter (zeros);
* ``update(m, g, t)``: the new state from the old one and the gradient ``g`` at step ``t``;
* ``correction(t, dtype)``: a scalar divisor ``c_t`` with :math:`\\hat m = m / c_t`, or ``None`` for 1;
* ``numerator(state, g, t, c_t)`` (from :class:`Estimator`): the numerator read out of the updated state,
  :math:`m / c_t` unless the estimator says otherwise (Nesterov momentum and NAdam mix in ``g``).

A state may be an array or a small NamedTuple of arrays (NAdam carries a scalar product of momenta).

The arithmetic is written for a single array so that the engine that applies it (per leaf today) may
change without touching the math.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adaptx.core import numerics
from adaptx.moments import constants

Array = jax.Array


class Estimator:
    """Shared behaviour of the first-moment estimators: how the numerator is read out of the state.

    Subclasses define ``init``, ``update`` and ``correction``; they may override :meth:`numerator` when the
    numerator is not simply the corrected state (Nesterov momentum, NAdam).
    """

    def numerator(self, state: Any, g: Array, t: Array, correction: Array | None) -> Array:
        r"""The numerator :math:`\hat m_t` from the updated state: :math:`m_t / c_t` by default."""
        return state if correction is None else state / correction


@dataclasses.dataclass(frozen=True)
class MovingAverage(Estimator):
    r"""Exponential moving average of the gradient, Adam's and AdaX's first moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        \hat m_t = m_t / (1 - \beta_1^t) \text{ if debiased, else } m_t.

    Attributes:
      decay: :math:`\beta_1` in ``[0, 1)``; may be a traced array.
      debias: divide by :math:`1 - \beta_1^t` (Adam) or not (AdaX, BERT's ``correct_bias=False``).
      host_constants: form :math:`1-\beta_1` and :math:`1-\beta_1^t` from the Python float in float64,
        as PyTorch does (:mod:`adaptx.moments.constants`); default: from β1 rounded to the compute dtype.
    """

    decay: Any = 0.9
    debias: bool = True
    host_constants: bool = False

    def init(self, like: Array, dtype) -> Array:
        return jnp.zeros(like.shape, dtype)

    def update(self, m: Array, g: Array, t: Array) -> Array:
        b1 = jnp.asarray(self.decay, g.dtype)
        return b1 * m + constants.complement(self.decay, g.dtype, self.host_constants) * g

    def correction(self, t: Array, dtype) -> Array | None:
        if not self.debias:
            return None
        return constants.one_minus_power(self.decay, t, dtype, self.host_constants)


@dataclasses.dataclass(frozen=True)
class Momentum(Estimator):
    r"""PyTorch's SGD momentum buffer (heavy ball, optionally dampened or Nesterov).

    .. math::
        b_1 = g_1, \qquad b_t = \mu b_{t-1} + (1 - \tau) g_t \;(t > 1), \qquad
        \hat m_t = b_t \text{ or, with Nesterov, } g_t + \mu b_t .

    The first step copies the gradient *without* dampening (``torch.optim.SGD`` initialises its buffer
    with ``g``); afterwards the buffer is a dampened running sum. With ``dampening=0`` and a buffer
    starting at zero the first step gives the same :math:`b_1 = g_1`, which is why this estimator also
    serves as PyTorch RMSprop's momentum on the preconditioned update (see
    :func:`adaptx.scale_by_momentum`).

    Attributes:
      momentum: :math:`\mu \ge 0`; may be a traced array.
      dampening: :math:`\tau`, usually in ``[0, 1]``; may be a traced array.
      nesterov: use :math:`g_t + \mu b_t` instead of :math:`b_t`.
    """

    momentum: Any = 0.9
    dampening: Any = 0.0
    nesterov: bool = False

    def init(self, like: Array, dtype) -> Array:
        return jnp.zeros(like.shape, dtype)

    def update(self, b: Array, g: Array, t: Array) -> Array:
        mu = jnp.asarray(self.momentum, g.dtype)
        if isinstance(self.dampening, (int, float)) and self.dampening == 0:
            later = mu * b + g  # (1 - 0) * g is g: skip the multiply, as torch's add(alpha=1) does
        else:
            later = mu * b + (1 - jnp.asarray(self.dampening, g.dtype)) * g
        return jnp.where(t <= 1, g, later)

    def correction(self, t: Array, dtype) -> None:
        return None

    def numerator(self, b: Array, g: Array, t: Array, correction: Array | None) -> Array:
        if self.nesterov:
            return g + jnp.asarray(self.momentum, g.dtype) * b
        return b


class NesterovState(NamedTuple):
    """Per-leaf state of :class:`NesterovMovingAverage`: the moving average and the product of μ's."""

    m: Array
    mu_product: Array


@dataclasses.dataclass(frozen=True)
class NesterovMovingAverage(Estimator):
    r"""NAdam's first moment (Dozat, 2016, with PyTorch's momentum schedule).

    .. math::
        \mu_t = \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \quad \Pi_t = \Pi_{t-1}\mu_t \;(\Pi_0 = 1),
        \quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \\
        \hat m_t = \frac{1 - \mu_t}{1 - \Pi_t}\, g_t + \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}}\, m_t .

    :math:`\Pi_t` has no closed form, so it is carried in the state (a scalar per parameter, kept in at
    least float32: PyTorch also accumulates it in a float32 tensor).

    Attributes:
      decay: :math:`\beta_1` in ``[0, 1)``.
      momentum_decay: :math:`\psi \ge 0` (PyTorch's default 4e-3).
      product_dtype: dtype :math:`\Pi_t` is accumulated in (default: at least float32, float64 for
        float64 parameters). PyTorch keeps it in its default scalar dtype, float32, even for float64
        parameters: pass ``jnp.float32`` to reproduce it.
      host_constants: :math:`1 - \beta_1` from the Python float in float64 (PyTorch).
    """

    decay: Any = 0.9
    momentum_decay: Any = 4e-3
    product_dtype: Any = None
    host_constants: bool = False

    def init(self, like: Array, dtype) -> NesterovState:
        prod_dtype = self.product_dtype or numerics.compute_dtype(dtype)
        return NesterovState(m=jnp.zeros(like.shape, dtype), mu_product=jnp.ones([], prod_dtype))

    def mu(self, t: Array, dtype) -> Array:
        r""":math:`\mu_t = \beta_1 (1 - 0.96^{t\psi} / 2)`, with the power taken as an exponential."""
        b1 = jnp.asarray(self.decay, dtype)
        psi = jnp.asarray(self.momentum_decay, dtype)
        return b1 * (1 - 0.5 * jnp.exp(t.astype(dtype) * psi * jnp.log(jnp.asarray(0.96, dtype))))

    def update(self, state: NesterovState, g: Array, t: Array) -> NesterovState:
        b1 = jnp.asarray(self.decay, g.dtype)
        # The engine hands states over upcast to the compute dtype; the product is accumulated (and
        # rounded) in product_dtype regardless, as PyTorch accumulates it in its own dtype.
        prod_dtype = self.product_dtype or state.mu_product.dtype
        mu = self.mu(t, numerics.compute_dtype(g.dtype, prod_dtype)).astype(prod_dtype)
        prod = state.mu_product.astype(prod_dtype) * mu
        m = b1 * state.m + constants.complement(self.decay, g.dtype, self.host_constants) * g
        return NesterovState(m=m, mu_product=prod.astype(state.mu_product.dtype))

    def correction(self, t: Array, dtype) -> None:
        return None

    def parts(self, state: NesterovState, g: Array, t: Array, correction: Array | None) -> tuple:
        r"""The two terms of the numerator: :math:`(c_g g_t,\; c_m m_t)`, in PyTorch's order."""
        dtype = numerics.compute_dtype(g.dtype, state.mu_product.dtype)
        mu, mu_next = self.mu(t, dtype), self.mu(t + 1, dtype)
        prod = state.mu_product.astype(dtype)
        c_g = ((1 - mu) / (1 - prod)).astype(g.dtype)
        c_m = (mu_next / (1 - prod * mu_next)).astype(g.dtype)
        return c_g * g, c_m * state.m

    def numerator(self, state: NesterovState, g: Array, t: Array, correction: Array | None) -> Array:
        term_g, term_m = self.parts(state, g, t, correction)
        return term_g + term_m
