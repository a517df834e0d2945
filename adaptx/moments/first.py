r"""First-moment estimators: how the numerator of an adaptive step is formed from the gradients.

Each is a :class:`adaptx.moments.FirstMoment` (see :mod:`adaptx.moments.base` for the contract): a small
frozen dataclass of hyperparameters whose methods work on one parameter's arrays.

* :class:`MovingAverage`: Adam's and AdaX's exponential moving average (state field ``mu``), optionally
  with optax's Nesterov read-out.
* :class:`Momentum`: PyTorch's SGD momentum buffer (field ``trace``).
* :class:`NesterovMovingAverage`: NAdam's average with PyTorch's momentum schedule (field ``mu`` and the
  per-optimizer scalar ``mu_product``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adaptx.core import hyperparams, numerics
from adaptx.moments.base import Decaying, FirstMoment, LeafState

Array = jax.Array


class EmaScalars(NamedTuple):
    """Per-step scalars of :class:`MovingAverage`: β, 1 − β, and the corrections of steps t and t + 1."""

    decay: Array
    complement: Array
    correction: Array | None
    next_correction: Array | None


@dataclasses.dataclass(frozen=True)
class MovingAverage(Decaying, FirstMoment):
    r"""Exponential moving average of the gradient, Adam's and AdaX's first moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        \hat m_t = \frac{m_t}{1 - \beta_1^t} \text{ (debiased) or } m_t,

    or, with ``nesterov`` (optax's Nesterov Adam),
    :math:`\hat m_t = \beta_1 \frac{m_t}{1-\beta_1^{t+1}} + (1-\beta_1)\frac{g_t}{1-\beta_1^t}`.

    The corrections are :math:`-\operatorname{expm1}(t \log\beta_1)`, accurate in float32 for every t.

    Attributes:
      decay: :math:`\beta_1` in ``[0, 1)``; may be a traced array.
      debias: divide by :math:`1 - \beta_1^t` (Adam) or not (AdaX, BERT's ``correct_bias=False``).
      nesterov: the Nesterov read-out above (needs ``debias``).
    """

    decay: Any = 0.9
    debias: bool = True
    nesterov: bool = False

    fields = ("mu",)

    def init(self, like: Array, dtype) -> LeafState:
        return {"mu": jnp.zeros_like(like, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> EmaScalars:
        tf = numerics.as_float(t, dtype)
        c = self.one_minus_power(tf, dtype) if self.debias else None
        c_next = self.one_minus_power(tf + 1, dtype) if (self.debias and self.nesterov) else None
        return EmaScalars(jnp.asarray(self.decay, dtype), self.complement(dtype), c, c_next)

    def update(self, state: LeafState, g: Array, sc: EmaScalars) -> LeafState:
        return {"mu": sc.decay * state["mu"] + sc.complement * g}

    def numerator(self, state: LeafState, g: Array, sc: EmaScalars) -> Array:
        m = state["mu"]
        if self.nesterov:
            return sc.decay * (m / sc.next_correction) + sc.complement * (g / sc.correction)
        return m if sc.correction is None else m / sc.correction


class MomentumScalars(NamedTuple):
    """Per-step scalars of :class:`Momentum`: μ, 1 − τ, and whether this is the first step."""

    momentum: Array
    undampened: Array | None
    first: Array


@dataclasses.dataclass(frozen=True)
class Momentum(FirstMoment):
    r"""PyTorch's SGD momentum buffer (heavy ball, optionally dampened or Nesterov).

    .. math::
        b_1 = g_1, \qquad b_t = \mu b_{t-1} + (1 - \tau) g_t \;(t > 1), \qquad
        \hat m_t = b_t \text{ or, with Nesterov, } g_t + \mu b_t .

    The first step copies the gradient *without* dampening (``torch.optim.SGD`` initialises its buffer
    with ``g``). With ``dampening=0`` and a buffer starting at zero the first step gives the same
    :math:`b_1 = g_1`, which is why this estimator also serves as PyTorch RMSprop's momentum on the
    preconditioned update (see :func:`adaptx.scale_by_momentum`).

    Attributes:
      momentum: :math:`\mu \ge 0`; may be a traced array.
      dampening: :math:`\tau`, usually in ``[0, 1]``; may be a traced array.
      nesterov: use :math:`g_t + \mu b_t` instead of :math:`b_t`.
    """

    momentum: Any = 0.9
    dampening: Any = 0.0
    nesterov: bool = False

    fields = ("trace",)

    def init(self, like: Array, dtype) -> LeafState:
        return {"trace": jnp.zeros_like(like, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> MomentumScalars:
        # (1 - 0) g is g: skip the multiply for a Python 0, as torch's add(alpha=1) does.
        off = isinstance(self.dampening, (int, float)) and self.dampening == 0
        undampened = None if off else 1 - jnp.asarray(self.dampening, dtype)
        return MomentumScalars(jnp.asarray(self.momentum, dtype), undampened, t <= 1)

    def update(self, state: LeafState, g: Array, sc: MomentumScalars) -> LeafState:
        if hyperparams.is_python_zero(self.momentum) and sc.undampened is None:
            # No momentum: the buffer is the gradient (PyTorch keeps none), so a NaN or inf of an earlier
            # step is not carried on as 0 * NaN.
            return {"trace": g}
        later = sc.momentum * state["trace"] + (g if sc.undampened is None else sc.undampened * g)
        return {"trace": jnp.where(sc.first, g, later)}

    def numerator(self, state: LeafState, g: Array, sc: MomentumScalars) -> Array:
        if self.nesterov:
            return g + sc.momentum * state["trace"]
        return state["trace"]


class NesterovScalars(NamedTuple):
    """Per-step scalars of :class:`NesterovMovingAverage`: β1, 1 − β1 and the two numerator weights."""

    decay: Array
    complement: Array
    grad_weight: Array
    mu_weight: Array


@dataclasses.dataclass(frozen=True)
class NesterovMovingAverage(Decaying, FirstMoment):
    r"""NAdam's first moment (Dozat, 2016, with PyTorch's momentum schedule).

    .. math::
        \mu_t = \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \quad \Pi_t = \Pi_{t-1}\mu_t \;(\Pi_0 = 1),
        \quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \\
        \hat m_t = \frac{1 - \mu_t}{1 - \Pi_t}\, g_t + \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}}\, m_t .

    :math:`\Pi_t` has no closed form, so it is carried in the state as one scalar per optimizer
    (``mu_product``), advanced once per step. The step number enters :math:`\mu_t` as a float, so the
    saturated int32 counter never wraps in :math:`\mu_{t+1}`.

    Attributes:
      decay: :math:`\beta_1` in ``[0, 1)``.
      momentum_decay: :math:`\psi \ge 0` (PyTorch's default 4e-3).

    :math:`\Pi_t` is accumulated in the widest compute dtype of the parameters (float32, or float64 for
    float64 parameters); a subclass may store it otherwise through :meth:`init_step`.
    """

    decay: Any = 0.9
    momentum_decay: Any = 4e-3

    fields = ("mu",)
    step_fields = ("mu_product",)

    def mu(self, t: Array, dtype) -> Array:
        r""":math:`\mu_t = \beta_1 (1 - 0.96^{t\psi} / 2)` for a float ``t``, the power as an exponential."""
        b1 = jnp.asarray(self.decay, dtype)
        psi = jnp.asarray(self.momentum_decay, dtype)
        return b1 * (1 - 0.5 * jnp.exp(t * psi * jnp.log(jnp.asarray(0.96, dtype))))

    def init_step(self, dtype) -> LeafState:
        return {"mu_product": jnp.ones([], dtype)}

    def advance(self, step_state: LeafState, t: Array, dtype) -> LeafState:
        prod = step_state["mu_product"]
        wide = numerics.compute_dtype(dtype, prod.dtype)
        # μ_t in the widest dtype, rounded once to the product's (PyTorch: a float64 μ times a float32 Π).
        mu = self.mu(numerics.as_float(t, wide), wide).astype(prod.dtype)
        return {"mu_product": prod * mu}

    def init(self, like: Array, dtype) -> LeafState:
        return {"mu": jnp.zeros_like(like, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> NesterovScalars:
        # step_state is the product *after* this step's advance (Π_t).
        wide = numerics.compute_dtype(dtype, step_state["mu_product"].dtype)
        tf = numerics.as_float(t, wide)
        mu, mu_next = self.mu(tf, wide), self.mu(tf + 1, wide)
        prod = step_state["mu_product"].astype(wide)
        grad_weight = ((1 - mu) / (1 - prod)).astype(dtype)
        mu_weight = (mu_next / (1 - prod * mu_next)).astype(dtype)
        return NesterovScalars(jnp.asarray(self.decay, dtype), self.complement(dtype), grad_weight, mu_weight)

    def update(self, state: LeafState, g: Array, sc: NesterovScalars) -> LeafState:
        return {"mu": sc.decay * state["mu"] + sc.complement * g}

    def terms(self, state: LeafState, g: Array, sc: NesterovScalars) -> tuple[Array, Array]:
        r"""The two terms of the numerator, :math:`(c_g g_t,\; c_m m_t)`, in PyTorch's order."""
        return sc.grad_weight * g, sc.mu_weight * state["mu"]

    def numerator(self, state: LeafState, g: Array, sc: NesterovScalars) -> Array:
        term_g, term_m = self.terms(state, g, sc)
        return term_g + term_m
