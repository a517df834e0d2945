r"""The synthetic problems of the AMSGrad paper (Reddi, Kale & Kumar, ICLR 2018), Section 3.

Every problem is a sequence of *linear* losses :math:`f_t(x) = c_t\,x` on the feasible set
:math:`F = [-1, 1]`, so the gradient at step t is the number :math:`c_t` whatever the iterate, and
:math:`c_t` takes one of two values:

.. math::
    c_t = \begin{cases} +\text{big}  & \text{on a "big" step} \\ -\text{small} & \text{otherwise.} \end{cases}

* :class:`Online`: the big step is every ``period``-th step, ``t mod period = 1``. The paper's Figure 1
  uses ``period = 101, big = 1010, small = 10``; Theorem 1 uses ``period = 3, big = C, small = 1``
  (:func:`theorem1`).
* :class:`Stochastic`: each step is big with probability ``p``, independently (the paper's
  ``p = 0.01``, big 1010, small 10, so :math:`E[c_t] = 0.2`).
* :class:`StochasticTheorem`: the paper's stochastic counterexample (Theorem 3, the stochastic variant
  of Theorem 1): big = C with probability :math:`p = (1 + \delta) / (C + 1)`, else -1, so
  :math:`E[c_t] = \delta`.

Every problem satisfies :class:`Problem`, the interface the runners
(:func:`adaptx.experiments.sweep`, :func:`adaptx.experiments.reference.reference_sweep`) read: the
optimum ``x_star``, the feasible interval ``domain``, whether it is ``stochastic`` (and then its
big-step probability ``p``, drawn by :mod:`adaptx.experiments.sampling`), and ``gradient(t, big)``.
A new problem is a class with these members; no runner or CLI code changes.

In all of them the average gradient is positive, so the best fixed point in hindsight is
:math:`x^* = -1` and the regret after T steps is

.. math::
    R_T = \sum_{t=1}^T f_t(x_t) - f_t(x^*) = \sum_{t=1}^T c_t\,(x_t + 1).

Adam with β1 = 0.9, β2 = 0.99 drifts to the *worst* point :math:`x = +1`: the rare large gradient is
forgotten by the second moment before it comes again, so the many small steps towards +1 win.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp

Array = jax.Array

#: The optimum of every problem here: the average gradient is positive on [-1, 1].
X_STAR = -1.0


#: The feasible interval of every problem here.
DOMAIN = (-1.0, 1.0)


@runtime_checkable
class Problem(Protocol):
    r"""What a runner needs of a problem: a sequence of linear losses :math:`f_t(x) = c_t x` on the
    interval ``domain`` :math:`= [a, b]`, whose best fixed point in hindsight is ``x_star``.

    A run steps :math:`x_{t+1} = \Pi_{[a, b]}(x_t + \text{update}(c_t))` and accumulates the regret
    :math:`R_T = \sum_{t \le T} c_t (x_t - x^*)`.

    Attributes:
      x_star: the optimum :math:`x^*` used in the regret.
      domain: ``(low, high)``, the interval the iterates are projected onto.
      stochastic: ``False``: :math:`c_t` is a function of t alone (a runner may run one copy for all
        seeds). ``True``: each step is "big" independently with probability ``p`` (an attribute the
        problem must then have), drawn per seed by :mod:`adaptx.experiments.sampling`'s exact gap
        sampler, and :math:`c_t` is a function of that flag.

    Example:
      >>> from adaptx.experiments.problems import Online, Problem
      >>> isinstance(Online(), Problem), Online().x_star, Online().domain
      (True, -1.0, (-1.0, 1.0))
    """

    x_star: float
    domain: tuple[float, float]
    stochastic: bool

    def gradient(self, t: Array, big: Array | None, dtype=jnp.float32) -> Array:
        """:math:`c_t` at the 1-based int32 step ``t``; ``big`` is the seed's big-step flag (bool
        array) for a stochastic problem, ``None`` for a deterministic one."""
        ...

    def describe(self) -> str:
        """One line for tables and logs."""
        ...


def _check(name: str, value, ok: bool, need: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {need}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Online:
    r"""The deterministic online problem: :math:`c_t = \text{big}` if :math:`t \bmod \text{period} = 1`,
    else :math:`-\text{small}`.

    Attributes:
      period: distance between big steps (the paper's 101; Theorem 1's 3).
      big: the rare large gradient (1010; Theorem 1's C).
      small: magnitude of the frequent gradient (10; Theorem 1's 1).

    The average gradient, ``(big - (period - 1) * small) / period``, must be positive so that
    :math:`x^* = -1`; construction raises ``ValueError`` otherwise.

    Example:
      >>> from adaptx.experiments import Online
      >>> Online().mean_gradient
      0.0990...
    """

    period: int = 101
    big: float = 1010.0
    small: float = 10.0

    stochastic = False
    x_star = X_STAR
    domain = DOMAIN

    def __post_init__(self):
        _check("period", self.period, isinstance(self.period, int) and self.period >= 2, "an int >= 2")
        _check("small", self.small, self.small > 0, "> 0")
        _check(
            "big",
            self.big,
            self.big > (self.period - 1) * self.small,
            f"> (period - 1) * small = {(self.period - 1) * self.small} (so that x* = -1)",
        )

    @property
    def mean_gradient(self) -> float:
        """The average of :math:`c_t` over one period."""
        return (self.big - (self.period - 1) * self.small) / self.period

    def gradient(self, t: Array, big: Array | None = None, dtype=jnp.float32) -> Array:
        """:math:`c_t` at the 1-based int32 step ``t`` (``big`` is ignored: the schedule is fixed)."""
        del big
        return jnp.where(t % self.period == 1, self.big, -self.small).astype(dtype)

    def describe(self) -> str:
        return f"online: c_t = {self.big:g} if t mod {self.period} = 1 else -{self.small:g}"


def theorem1(C: float = 3.0) -> Online:
    r"""Theorem 1's problem: :math:`f_t(x) = C x` if :math:`t \bmod 3 = 1`, else :math:`-x`, with C > 2.

    The theorem runs Adam with β1 = 0, β2 = 1/(1 + C²) and α_t = α/√t (α < √(1 − β2)), and shows that it
    ends at +1 with average regret bounded away from 0. (:func:`theorem1_betas` gives those β's.)

    Example:
      >>> from adaptx.experiments import theorem1
      >>> theorem1(3.0)
      Online(period=3, big=3.0, small=1.0)
    """
    _check("C", C, C > 2, "> 2 (Theorem 1)")
    return Online(period=3, big=float(C), small=1.0)


def theorem1_betas(C: float) -> tuple[float, float]:
    """Theorem 1's Adam setting for constant ``C``: ``(b1, b2) = (0, 1 / (1 + C**2))``."""
    return 0.0, 1.0 / (1.0 + C * C)


@dataclasses.dataclass(frozen=True)
class Stochastic:
    r"""The stochastic problem: independently at each step, :math:`c_t = \text{big}` with probability
    ``p``, else :math:`-\text{small}`.

    Attributes:
      p: probability of the big gradient (the paper's 0.01).
      big: the rare large gradient (1010).
      small: magnitude of the frequent gradient (10).

    The expected gradient ``p * big - (1 - p) * small`` must be positive so that :math:`x^* = -1`.

    Example:
      >>> from adaptx.experiments import Stochastic
      >>> round(Stochastic().mean_gradient, 6)
      0.2
    """

    p: float = 0.01
    big: float = 1010.0
    small: float = 10.0

    stochastic = True
    x_star = X_STAR
    domain = DOMAIN

    def __post_init__(self):
        _check("p", self.p, 0 < self.p < 1, "in (0, 1)")
        _check("small", self.small, self.small > 0, "> 0")
        _check(
            "big",
            self.big,
            self.p * self.big > (1 - self.p) * self.small,
            "such that p * big > (1 - p) * small (so that x* = -1)",
        )

    @property
    def mean_gradient(self) -> float:
        """The expected gradient :math:`E[c_t]`."""
        return self.p * self.big - (1 - self.p) * self.small

    def gradient(self, t: Array, big: Array, dtype=jnp.float32) -> Array:
        """:math:`c_t` given the boolean ``big`` (drawn by :mod:`adaptx.experiments.sampling`)."""
        del t
        return jnp.where(big, self.big, -self.small).astype(dtype)

    def describe(self) -> str:
        return f"stochastic: c_t = {self.big:g} with probability {self.p:g}, else -{self.small:g}"


@dataclasses.dataclass(frozen=True)
class StochasticTheorem:
    r"""The paper's stochastic counterexample (Reddi et al. 2018, Theorem 3, the stochastic variant of
    Theorem 1): on :math:`[-1, 1]`, independently at each step,

    .. math::
        f_t(x) = \begin{cases} C x & \text{with probability } p = \frac{1 + \delta}{C + 1} \\
        -x & \text{with probability } 1 - p, \end{cases}

    so :math:`E[c_t] = pC - (1 - p) = \delta > 0` and :math:`x^* = -1`. For large C (the theorem takes
    :math:`C` large against :math:`\delta`), Adam with :math:`\beta_1 = 0`, :math:`\beta_2 = 1/(1 + C^2)`
    (:func:`theorem1_betas`) moves towards +1 in expectation, while :math:`x^* = -1`.

    It is :class:`Stochastic` with ``big = C, small = 1`` written in the theorem's parameters, as its
    own class: it shows what a new problem needs (the :class:`Problem` members) and nothing else.

    Attributes:
      C: the large gradient (> 1).
      delta: the expected gradient :math:`\delta`, in ``(0, C - 1)`` (so that ``p < 1``).

    Example:
      >>> from adaptx.experiments.problems import StochasticTheorem
      >>> prob = StochasticTheorem(C=20.0, delta=0.1)
      >>> round(prob.p, 6), round(prob.mean_gradient, 6)
      (0.052381, 0.1)
    """

    C: float = 20.0
    delta: float = 0.1

    stochastic = True
    x_star = X_STAR
    domain = DOMAIN

    def __post_init__(self):
        _check("C", self.C, self.C > 1, "> 1")
        _check("delta", self.delta, 0 < self.delta < self.C - 1, f"in (0, C - 1) = (0, {self.C - 1:g})")

    @property
    def p(self) -> float:
        r"""The probability :math:`(1 + \delta) / (C + 1)` of the big gradient C."""
        return (1.0 + self.delta) / (self.C + 1.0)

    @property
    def mean_gradient(self) -> float:
        r""":math:`E[c_t] = pC - (1 - p) = \delta`."""
        return self.p * self.C - (1.0 - self.p)

    def gradient(self, t: Array, big: Array, dtype=jnp.float32) -> Array:
        """:math:`c_t = C` where ``big`` else -1."""
        del t
        return jnp.where(big, self.C, -1.0).astype(dtype)

    def describe(self) -> str:
        return f"theorem 3: c_t = {self.C:g} with probability {self.p:.4g} (E[c_t] = {self.delta:g}), else -1"
