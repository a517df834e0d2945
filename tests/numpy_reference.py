r"""Independent float64 NumPy references: the specification adaptx is tested against.

Written from the rules in ``docs/references.md`` (PyTorch, the AdaX paper and the authors' code,
HuggingFace, labml) and from the math in adaptx's docstrings, in the most literal form we could: one
parameter at a time, the textbook recurrences, no storage tricks, no log-space rewrites. Nothing here
imports adaptx, optax or jax.

Conventions:

* A "tree" here is a plain Python list of float64 arrays (the leaves of a jax tree, in
  ``jax.tree.leaves`` order); the test harness flattens and unflattens.
* ``t`` is the number of the current update, 1 for the first one.
* A *direction* is the output of a scaling block before the learning rate (``scale_by_adam`` etc.).
* Hyperparameters that may be scheduled (learning rate, weight decay) are either numbers or Python
  callables ``step -> value`` evaluated at ``step = t - 1`` (the number of updates already taken).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Leaves = list  # list[np.ndarray], float64


def value_at(hyper: float | Callable[[int], float], t: int) -> float:
    """A constant, or a schedule evaluated at the number of updates already taken (``t - 1``)."""
    return float(hyper(t - 1)) if callable(hyper) else float(hyper)


def zeros_like(leaves: Sequence[np.ndarray]) -> Leaves:
    return [np.zeros(np.shape(x), np.float64) for x in leaves]


# --------------------------------------------------------------------------------------------------
# Adam, its bias-correction switches, the two ε placements and the two AMSGrad rules
# --------------------------------------------------------------------------------------------------


class Adam:
    r"""Adam's direction, written as PyTorch/HuggingFace/labml write it.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
        \qquad c_1 = 1-\beta_1^t, \quad c_2 = 1-\beta_2^t

    (``c1 = 1`` without ``debias_mu``, ``c2 = 1`` without ``debias_nu``). The denominator uses

    * ``amsgrad=False``: the current raw :math:`v`;
    * ``amsgrad="raw"`` (PyTorch, labml): :math:`u \leftarrow \max(u, v)` over the *raw* :math:`v`,
      divided later by the current :math:`c_2`;
    * ``amsgrad="corrected"`` (paper, optax): :math:`\hat u \leftarrow \max(\hat u, v / c_2)`; its raw
      equivalent is :math:`\hat u\, c_2`.

    and the direction is

    * ``eps_on="corrected"`` (PyTorch): :math:`(m/c_1) / (\sqrt{v_{raw}/c_2 + \epsilon_{root}} + \epsilon)`;
    * ``eps_on="raw"`` (HuggingFace's AdamW, labml's optimized update):
      :math:`(\sqrt{c_2}/c_1)\, m / (\sqrt{v_{raw} + c_2\epsilon_{root}} + \epsilon)`, ε on the root of
      the uncorrected accumulator (with :math:`\epsilon_{root}` it is the same ε-outside form, with the
      root scaled by :math:`\sqrt{c_2}`).

    Bias corrections as plain ``1 - b**t``: in float64 this is accurate to ~1e-13 relative for the β
    and t used in the tests (an absolute error of a few 1e-17 on a value ≥ 1e-4), far below the 1e-12
    the float64 comparisons demand.
    """

    def __init__(
        self,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        eps_root: float = 0.0,
        *,
        debias_mu: bool = True,
        debias_nu: bool = True,
        eps_on: str = "corrected",
        amsgrad: bool | str = False,
    ):
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.debias_mu, self.debias_nu, self.eps_on = debias_mu, debias_nu, eps_on
        self.amsgrad = "raw" if amsgrad is True else amsgrad

    def init(self, params: Sequence[np.ndarray]) -> dict:
        return {"m": zeros_like(params), "v": zeros_like(params), "vmax": zeros_like(params)}

    def direction(self, grads: Sequence[np.ndarray], state: dict, t: int) -> Leaves:
        b1, b2, eps, eps_root = self.b1, self.b2, self.eps, self.eps_root
        c1 = 1.0 - b1**t if self.debias_mu else 1.0
        c2 = 1.0 - b2**t if self.debias_nu else 1.0
        out = []
        for i, g in enumerate(grads):
            m = b1 * state["m"][i] + (1 - b1) * g
            v = b2 * state["v"][i] + (1 - b2) * g * g
            state["m"][i], state["v"][i] = m, v
            if self.amsgrad == "raw":
                state["vmax"][i] = np.maximum(state["vmax"][i], v)
                v_raw = state["vmax"][i]
            elif self.amsgrad == "corrected":
                state["vmax"][i] = np.maximum(state["vmax"][i], v / c2)
                v_raw = state["vmax"][i] * c2
            else:
                v_raw = v
            if self.eps_on == "corrected":
                out.append((m / c1) / (np.sqrt(v_raw / c2 + eps_root) + eps))
            else:
                out.append((np.sqrt(c2) / c1) * m / (np.sqrt(v_raw + c2 * eps_root) + eps))
        return out


# --------------------------------------------------------------------------------------------------
# AdaX: the paper's textbook recurrence (it would overflow float32 in ~887k steps, not in the tests)
# --------------------------------------------------------------------------------------------------


class AdaX:
    r"""AdaX's direction (Li et al. 2020; the authors' PyTorch code for ``eps_on="raw"``).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g \ (\text{no correction}), \qquad
        v \leftarrow (1+\beta_2) v + \beta_2 g^2, \qquad B_t = (1+\beta_2)^t - 1,

    with the same two AMSGrad rules as :class:`Adam` (``"raw"``: :math:`u \leftarrow \max(u, v)`, then
    :math:`/B_t`; ``"corrected"``: :math:`\hat u \leftarrow \max(\hat u, v/B_t)`) and

    * ``eps_on="raw"`` (authors): :math:`\sqrt{B_t}\, m / (\sqrt{v_{raw}} + \epsilon)`;
    * ``eps_on="corrected"`` (a Keras port): :math:`m / (\sqrt{v_{raw}/B_t} + \epsilon)`.

    :math:`B_t` is evaluated as ``expm1(t * log1p(b2))`` rather than ``(1 + b2)**t - 1``: in float64 the
    sum ``1 + 1e-4`` already loses ~1e-12 of β2's relative precision, which the subtraction of 1 would
    expose in full, and the float64 comparisons are made at 1e-12. The recurrence keeps the textbook
    ``(1 + b2) * v`` (there the rounding of ``1 + b2`` is relative to 1 and harmless).
    """

    def __init__(
        self,
        b1: float = 0.9,
        b2: float = 1e-4,
        eps: float = 1e-12,
        *,
        eps_on: str = "raw",
        amsgrad: bool | str = False,
    ):
        self.b1, self.b2, self.eps, self.eps_on = b1, b2, eps, eps_on
        self.amsgrad = "raw" if amsgrad is True else amsgrad

    def init(self, params: Sequence[np.ndarray]) -> dict:
        return {"m": zeros_like(params), "v": zeros_like(params), "vmax": zeros_like(params)}

    def direction(self, grads: Sequence[np.ndarray], state: dict, t: int) -> Leaves:
        b1, b2, eps = self.b1, self.b2, self.eps
        big_b = np.expm1(t * np.log1p(b2))  # B_t = (1 + b2)**t - 1
        out = []
        for i, g in enumerate(grads):
            m = b1 * state["m"][i] + (1 - b1) * g
            v = (1 + b2) * state["v"][i] + b2 * g * g
            state["m"][i], state["v"][i] = m, v
            if self.amsgrad == "raw":
                state["vmax"][i] = np.maximum(state["vmax"][i], v)
                v_raw = state["vmax"][i]
            elif self.amsgrad == "corrected":
                state["vmax"][i] = np.maximum(state["vmax"][i], v / big_b)
                v_raw = state["vmax"][i] * big_b
            else:
                v_raw = v
            if self.eps_on == "raw":
                out.append(np.sqrt(big_b) * m / (np.sqrt(v_raw) + eps))
            else:
                out.append(m / (np.sqrt(v_raw / big_b) + eps))
        return out


class SGD:
    """The identity direction :math:`d = g`, for testing the blocks around a direction."""

    def init(self, params: Sequence[np.ndarray]) -> dict:
        return {}

    def direction(self, grads: Sequence[np.ndarray], state: dict, t: int) -> Leaves:
        return [np.array(g, np.float64) for g in grads]


class RMSprop:
    r"""RMSprop without momentum, PyTorch's form: :math:`v \leftarrow \alpha v + (1-\alpha) g^2`,
    direction :math:`g / (\sqrt{v} + \epsilon)` (no bias correction, no first moment)."""

    def __init__(self, alpha: float = 0.99, eps: float = 1e-8):
        self.alpha, self.eps = alpha, eps

    def init(self, params: Sequence[np.ndarray]) -> dict:
        return {"v": zeros_like(params)}

    def direction(self, grads: Sequence[np.ndarray], state: dict, t: int) -> Leaves:
        out = []
        for i, g in enumerate(grads):
            state["v"][i] = self.alpha * state["v"][i] + (1 - self.alpha) * g * g
            out.append(g / (np.sqrt(state["v"][i]) + self.eps))
        return out


# --------------------------------------------------------------------------------------------------
# The pieces around the direction, and whole optimizers
# --------------------------------------------------------------------------------------------------


def directions(ref, grads_seq: Sequence[Leaves]) -> list[Leaves]:
    """The directions of ``ref`` (an :class:`Adam`, :class:`AdaX`, ...) for a sequence of gradients."""
    state = ref.init(grads_seq[0])
    return [ref.direction(g, state, t) for t, g in enumerate(grads_seq, start=1)]


def add_l2(grads: Leaves, params: Leaves, weight_decay: float, mask: Sequence[bool]) -> Leaves:
    r"""Coupled L2: :math:`g + \lambda\theta` on the masked leaves."""
    return [g + weight_decay * p if on else g for g, p, on in zip(grads, params, mask, strict=True)]


def decoupled_decay(
    updates: Leaves, params: Leaves, weight_decay: float, learning_rate: float | None, mask: Sequence[bool]
) -> Leaves:
    r"""Decoupled decay: :math:`u - \gamma\lambda\theta` (or :math:`u - \lambda\theta` when γ is None)."""
    scale = weight_decay if learning_rate is None else learning_rate * weight_decay
    return [u - scale * p if on else u for u, p, on in zip(updates, params, mask, strict=True)]


def optimize(
    ref,
    params: Leaves,
    grads_seq: Sequence[Leaves],
    learning_rate,
    *,
    l2=0.0,
    decoupled=0.0,
    mask: Sequence[bool] | None = None,
    decay_learning_rate="same",
) -> list[Leaves]:
    r"""Run a whole optimizer, in PyTorch's order of operations.

    For t = 1, 2, ...:

    .. math::
        g \leftarrow g + \lambda^{L2}_t\theta_{t-1}, \qquad d = \text{direction}(g), \qquad
        \theta_t = \theta_{t-1} - \gamma_t d - \gamma_t \lambda^{dec}_t \theta_{t-1}

    (the last two terms are PyTorch AdamW's :math:`\theta(1-\gamma\lambda) - \gamma d`). γ and λ are
    numbers or schedules of the number of updates already taken; ``mask`` selects the leaves that
    decay (all when ``None``). ``decay_learning_rate`` is the γ that scales the decoupled decay:
    ``"same"`` (γ_t, PyTorch), another number or schedule, or ``None`` (labml's "absolute" decay,
    :math:`\theta_t = \theta_{t-1} - \gamma_t d - \lambda_t\theta_{t-1}`). Gradients do not depend on
    the parameters (a fixed sequence), so errors never feed back into the gradients.

    Returns the applied updates :math:`\theta_t - \theta_{t-1}`, one leaf list per step.
    """
    mask = [True] * len(params) if mask is None else list(mask)
    theta = [np.array(p, np.float64) for p in params]
    state = ref.init(theta)
    updates_seq = []
    for t, grads in enumerate(grads_seq, start=1):
        lr = value_at(learning_rate, t)
        g = add_l2(list(grads), theta, value_at(l2, t), mask)
        d = ref.direction(g, state, t)
        u = [-lr * x for x in d]
        if decay_learning_rate == "same":
            decay_lr = lr
        elif decay_learning_rate is None:
            decay_lr = None
        else:
            decay_lr = value_at(decay_learning_rate, t)
        u = decoupled_decay(u, theta, value_at(decoupled, t), decay_lr, mask)
        theta = [p + x for p, x in zip(theta, u, strict=True)]
        updates_seq.append(u)
    return updates_seq
