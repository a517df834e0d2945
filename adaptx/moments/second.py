r"""Second-moment accumulators: the denominator of an adaptive step.

Every accumulator of the library answers the same five questions, per leaf, so that the pieces that use
it — the denominator of :func:`adaptx.scale_by_moments` and AMSGrad's max-tracking
(:class:`adaptx.moments.MaxTracked`) — never need to know which one they talk to:

* ``init(like, dtype)``: its state for one parameter;
* ``scalars(t, dtype)``: the per-step scalars (computed once per step, not per element), a
  :class:`Scalars`;
* ``update(state, g, sc)``: the new state from the gradient ``g``;
* ``stored(state)``: the second-moment estimate in the accumulator's *storage units*;
* the fields of :class:`Scalars`, which relate the storage units to the two quantities the references use:
  the bias-corrected estimate :math:`\hat v = \text{stored} / \text{div}` and the *raw* accumulator of
  the textbook recurrence, :math:`v = \text{stored} \cdot \text{eps\_div}^2 / \text{div}`.

Why storage units: AdaX's textbook accumulator :math:`v_t` grows like :math:`(1+\beta_2)^t` and overflows
float32 at step ~887,000. :class:`LongTermAverage` stores :math:`\tilde v = v / B_t` instead, which stays
of the order of :math:`g^2` forever; every quantity the references need is recovered from it through
scalars that are themselves computed in log space.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adaptx.core import numerics
from adaptx.moments import constants

Array = jax.Array


class Scalars(NamedTuple):
    r"""Per-step scalars of an accumulator. ``None`` stands for 1 and skips the operation.

    Attributes:
      coef_old: multiplies the old state in the update (``None``: 1).
      coef_new: multiplies the new term :math:`g^2` (``None``: 1).
      div: :math:`\hat v = \text{stored} / \text{div}` (the bias correction in storage units).
      sqrt_div: :math:`\sqrt{\text{div}}`, given separately so that :math:`\sqrt{\hat v}` is formed as
        :math:`\sqrt{\text{stored}} / \sqrt{\text{div}}` (PyTorch's order of operations).
      eps_div: :math:`\sqrt{v / \hat v}`. Adding ε to the raw :math:`\sqrt v` is the same as adding
        ``ε / eps_div`` to :math:`\sqrt{\hat v}` (then multiplying the step by ``eps_div``, which cancels
        against the numerator's correction); this is how "ε on the raw root" is implemented without ever
        forming the raw accumulator.
      carry: the factor that converts a value in the previous step's storage units into this step's, for
        the *same raw quantity*: :math:`r_{t-1} / r_t` where raw = stored · r. Max-tracking over the raw
        accumulator multiplies its running maximum by it.
    """

    coef_old: Array | None = None
    coef_new: Array | None = None
    div: Array | None = None
    sqrt_div: Array | None = None
    eps_div: Array | None = None
    carry: Array | None = None


def _mul(x: Array, c: Array | None) -> Array:
    return x if c is None else x * c


def _div(x: Array, c: Array | None) -> Array:
    return x if c is None else x / c


class Accumulator:
    """Shared behaviour of the accumulators: reading the corrected estimate out of the state.

    Subclasses define ``init``, ``scalars``, ``update`` and ``stored``.
    """

    def estimate(self, state: Any, sc: Scalars) -> Array:
        r"""The bias-corrected estimate :math:`\hat v = \text{stored} / \text{div}` (squared for a norm)."""
        if self.is_norm:
            return jnp.square(_div(self.stored(state), sc.div))
        return _div(self.stored(state), sc.div)

    #: True when the accumulator already tracks a norm (Adamax's :math:`u \approx \max|g|`), not a square:
    #: its "root" is then the stored value itself and its "estimate" the square of it.
    is_norm: bool = False

    def sqrt_estimate(self, state: Any, sc: Scalars) -> Array:
        r""":math:`\sqrt{\hat v}`, formed as :math:`\sqrt{\text{stored}} / \sqrt{\text{div}}`.

        For a norm accumulator (``is_norm``) the stored value is already the root: :math:`u / \text{div}`.
        """
        if self.is_norm:
            return _div(self.stored(state), sc.div)
        return _div(jnp.sqrt(self.stored(state)), sc.sqrt_div)


@dataclasses.dataclass(frozen=True)
class MovingAverage(Accumulator):
    r"""Exponential moving average of :math:`g^2`: Adam's and RMSprop's second moment.

    .. math::
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \qquad
        \hat v_t = v_t / (1 - \beta_2^t) \text{ if debiased, else } v_t.

    Stored raw (:math:`v_t` itself, as PyTorch stores it), so max-tracking over the raw accumulator is an
    exact ``max`` with no rescaling.

    Attributes:
      decay: :math:`\beta_2` in ``[0, 1)``; may be a traced array.
      debias: divide by :math:`1 - \beta_2^t` (Adam) or not (RMSprop, BERT).
      host_constants: form :math:`1-\beta_2` and :math:`1-\beta_2^t` from the Python float in float64,
        as PyTorch does (:mod:`adaptx.moments.constants`); default: from β2 rounded to the compute dtype.
    """

    decay: Any = 0.999
    debias: bool = True
    host_constants: bool = False

    def init(self, like: Array, dtype) -> Array:
        return jnp.zeros(like.shape, dtype)

    def scalars(self, t: Array, dtype) -> Scalars:
        b2 = jnp.asarray(self.decay, dtype)
        coef_new = constants.complement(self.decay, dtype, self.host_constants)
        if not self.debias:
            return Scalars(coef_old=b2, coef_new=coef_new)
        bc2 = constants.one_minus_power(self.decay, t, dtype, self.host_constants)
        root = jnp.sqrt(bc2)
        return Scalars(coef_old=b2, coef_new=coef_new, div=bc2, sqrt_div=root, eps_div=root)

    def update(self, v: Array, g: Array, sc: Scalars) -> Array:
        return sc.coef_old * v + sc.coef_new * (g * g)

    def stored(self, v: Array) -> Array:
        return v


class LongTermState(NamedTuple):
    r"""Per-leaf state of a compensated :class:`LongTermAverage` stored in bf16 or float16.

    In float32 and float64 the state is one complex array instead (real part ``nu``, imaginary part
    ``residual``; see :class:`LongTermAverage`); these two dtypes have no complex counterpart.

    Attributes:
      nu: :math:`\tilde v = v / B_t`, the corrected long-term average, in the storage dtype.
      residual: what rounding has dropped from ``nu`` so far (compensated summation); the average is
        ``nu + residual``.
    """

    nu: Array
    residual: Array


def _halves(state: Array | LongTermState) -> tuple[Array, Array]:
    """``(nu, residual)`` of a compensated state, packed (complex) or not."""
    if isinstance(state, LongTermState):
        return state
    return jnp.real(state), jnp.imag(state)


@dataclasses.dataclass(frozen=True)
class LongTermAverage(Accumulator):
    r"""AdaX's long-term memory of :math:`g^2`, kept in a form that never overflows.

    The textbook recurrence and its correction are

    .. math::
        v_t = (1 + \beta_2) v_{t-1} + \beta_2 g_t^2, \qquad B_t = (1 + \beta_2)^t - 1, \qquad
        \hat v_t = v_t / B_t .

    Both :math:`v_t` and :math:`B_t` overflow float32 near t = 887,000 for :math:`\beta_2 = 10^{-4}`. We
    store :math:`\tilde v_t = \hat v_t` directly. Dividing the recurrence by :math:`B_t` and using
    :math:`(1 + \beta_2) B_{t-1} = B_t - \beta_2`:

    .. math::
        \tilde v_t = \tilde v_{t-1} + w_t\,(g_t^2 - \tilde v_{t-1}), \qquad w_t = \beta_2 / B_t,

    a running average whose weight starts at :math:`w_1 = 1` and decays to 0. Once :math:`B_t`
    overflows, :math:`w_t = \beta_2/\infty = 0` and the average stops moving, as the exact recurrence
    does: nothing here is ever infinite or NaN.

    *Why compensated.* AdaX weights the *oldest* gradients most, so :math:`\tilde v` is an average over
    ~1e5 steps whose late increments :math:`w_t (g_t^2 - \tilde v)` fall below half an ulp of
    :math:`\tilde v`. Rounding then drops the many small (mostly negative, since :math:`g^2` is skewed)
    increments and keeps the rare large ones: a float32 run drifts ~5e-5 relative from float64 for
    Gaussian gradients, in this form and in the textbook one alike. We keep what each addition loses
    (exact, by Fast2Sum) in ``residual``, which decays with the average: the pair ``nu + residual``
    stays within 1e-8 to 5e-8 of float64 (measured over 3e5 steps; tested over 1e8). The residual is not
    fed back into ``nu`` (Kahan's form): then the new average does not need the old residual, which
    halved the step time on XLA:CPU when the two were separate arrays.
    It costs one more float32 array; ``compensated=False`` drops it (plain running average).

    *Why one complex array.* ``nu`` and ``residual`` are stored as the real and imaginary parts of one
    complex array (float32 → complex64, float64 → complex128; in bf16/float16 as a
    :class:`LongTermState` of two arrays). The residual needs the old and the new average together, so
    with two arrays the kernel writing the residual reads the old average after the kernel writing the
    new one has overwritten it in place, and XLA:CPU copies the whole average every step to keep it
    (XLA:CPU does not fuse the two outputs into one kernel). One complex array is one output: one
    kernel reads each element's old pair and writes its new pair in place, and the average is computed
    once, in that kernel, so the residual is taken against exactly the value stored. The new pair goes
    through ``lax.optimization_barrier``: without it XLA:CPU recomputes it inside the parameter
    update's kernel from the old pair, which it then has to copy again. A float32 step then moves 36
    bytes per parameter (θ, g, m and the pair read; θ, m and the pair written) against Adam's 28, with
    no temporary array. :meth:`stored` reads the average back (``nu + residual``).

    Attributes:
      decay: AdaX's :math:`\beta_2 > 0` (default ``1e-4``); may be a traced array.
      compensated: keep the rounding residual (default ``True``).
    """

    decay: Any = 1e-4
    compensated: bool = True

    def init(self, like: Array, dtype) -> Array | LongTermState:
        if not self.compensated:
            return jnp.zeros(like.shape, dtype)
        packed = numerics.complex_of(dtype)  # None in bf16/float16: no complex type has such parts
        if packed is not None:
            return jnp.zeros(like.shape, packed)
        return LongTermState(nu=jnp.zeros(like.shape, dtype), residual=jnp.zeros(like.shape, dtype))

    def scalars(self, t: Array, dtype) -> Scalars:
        b2 = jnp.asarray(self.decay, dtype)
        log_growth = jnp.log1p(b2)  # log(1 + b2)
        tf = t.astype(dtype)
        big_b = jnp.expm1(tf * log_growth)  # B_t; +inf past float overflow, which every use tolerates
        # w_1 = b2 / B_1 = 1 up to rounding; make it exactly 1 so the first step stores g^2 itself.
        w = jnp.where(t <= 1, jnp.ones_like(b2), b2 / big_b)
        # B_{t-1} / B_t = e^{-l} (1 - e^{-(t-1) l}) / (1 - e^{-t l}): bounded factors, no overflow;
        # 0 at t = 1.
        carry = jnp.exp(-log_growth) * jnp.expm1(-(tf - 1) * log_growth) / jnp.expm1(-tf * log_growth)
        return Scalars(coef_new=w, eps_div=jnp.sqrt(big_b), carry=carry)

    def update(self, state: Array | LongTermState, g: Array, sc: Scalars) -> Array | LongTermState:
        if not self.compensated:
            return state + sc.coef_new * (g * g - state)
        nu, residual = _halves(state)
        increment = sc.coef_new * (g * g - nu)
        new_nu = nu + increment
        # What the addition lost, exactly (Fast2Sum: |nu| >= |increment| since 0 <= w <= 1, nu, g^2 >= 0).
        lost = increment - (new_nu - nu)
        # The residual is part of the average, so it decays like the rest of it: (1 - w) r + lost.
        new_residual = (1 - sc.coef_new) * residual + lost
        if isinstance(state, LongTermState):
            return LongTermState(nu=new_nu, residual=new_residual)
        return jax.lax.optimization_barrier(jax.lax.complex(new_nu, new_residual))

    def stored(self, state: Array | LongTermState) -> Array:
        if not self.compensated:
            return state
        nu, residual = _halves(state)
        return nu + residual


class MaxState(NamedTuple):
    """Per-leaf state of :class:`MaxTracked`: the wrapped accumulator's state and the running maximum."""

    nu: Any
    nu_max: Array


@dataclasses.dataclass(frozen=True)
class MaxTracked(Accumulator):
    r"""AMSGrad's max-tracking, around *any* second-moment accumulator.

    The denominator uses a running maximum of the wrapped accumulator instead of its current value, so
    that the effective step size never grows. Two conventions are in use:

    * ``over="raw"`` (PyTorch, labml): :math:`u_t = \max(u_{t-1}, v_t)` over the raw accumulator, then
      bias-corrected with the *current* step's correction: :math:`\hat v_t = u_t / \text{div}_t`.
      In storage units this is :math:`u_t = \max(u_{t-1} \cdot \text{carry}_t, \text{stored}_t)`; for
      Adam's EMA the carry is 1 and this is an exact ``max``.
    * ``over="corrected"`` (the AMSGrad paper, optax): :math:`\hat u_t = \max(\hat u_{t-1}, \hat v_t)` over
      the bias-corrected estimate.

    Attributes:
      inner: the accumulator to track (:class:`MovingAverage`, :class:`LongTermAverage`, ...).
      over: ``"raw"`` or ``"corrected"``.
    """

    inner: Any
    over: str = "raw"

    def __post_init__(self):
        if self.over not in ("raw", "corrected"):
            raise ValueError(f"over must be 'raw' or 'corrected', got {self.over!r}")
        if isinstance(self.inner, MaxTracked):
            raise ValueError("MaxTracked cannot wrap another MaxTracked accumulator")

    @property
    def is_norm(self) -> bool:  # the maximum of a norm is a norm
        return self.inner.is_norm

    def init(self, like: Array, dtype) -> MaxState:
        return MaxState(nu=self.inner.init(like, dtype), nu_max=jnp.zeros(like.shape, dtype))

    def scalars(self, t: Array, dtype) -> Scalars:
        return self.inner.scalars(t, dtype)

    def update(self, state: MaxState, g: Array, sc: Scalars) -> MaxState:
        nu = self.inner.update(state.nu, g, sc)
        if self.over == "raw":
            nu_max = jnp.maximum(_mul(state.nu_max, sc.carry), self.inner.stored(nu))
        else:  # the maximum is kept already corrected
            nu_max = jnp.maximum(state.nu_max, self.inner.estimate(nu, sc))
        return MaxState(nu=nu, nu_max=nu_max)

    def stored(self, state: MaxState) -> Array:
        return state.nu_max

    def estimate(self, state: MaxState, sc: Scalars) -> Array:
        if self.over == "raw":
            return super().estimate(state, sc)
        return state.nu_max

    def sqrt_estimate(self, state: MaxState, sc: Scalars) -> Array:
        if self.over == "raw":
            return super().sqrt_estimate(state, sc)
        return jnp.sqrt(state.nu_max)


@dataclasses.dataclass(frozen=True)
class RunningSum(Accumulator):
    r"""Adagrad's running sum of squared gradients.

    .. math::
        s_0 = s_{init}, \qquad s_t = s_{t-1} + g_t^2, \qquad \hat v_t = s_t \text{ (no correction)}.

    Attributes:
      initial: :math:`s_{init} \ge 0`, PyTorch's ``initial_accumulator_value`` (default 0; optax's
        ``adagrad`` starts at 0.1).
    """

    initial: Any = 0.0

    def init(self, like: Array, dtype) -> Array:
        return jnp.full(like.shape, self.initial, dtype)

    def scalars(self, t: Array, dtype) -> Scalars:
        return Scalars()

    def update(self, s: Array, g: Array, sc: Scalars) -> Array:
        return s + g * g

    def stored(self, s: Array) -> Array:
        return s


class CenteredState(NamedTuple):
    """Per-leaf state of :class:`CenteredMovingAverage`: the averages of :math:`g^2` and of :math:`g`."""

    nu: Array
    mu: Array


@dataclasses.dataclass(frozen=True)
class CenteredMovingAverage(Accumulator):
    r"""Centered RMSprop's variance estimate (Graves, 2013; ``torch.optim.RMSprop(centered=True)``).

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2, \qquad \bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t,
        \qquad \hat v_t = v_t - \bar g_t^2 \text{ (no bias correction)}.

    :math:`\hat v_t \ge 0` in exact arithmetic (a weighted variance); rounding can make it a tiny
    negative number when the gradient barely varies, and its root is then NaN, exactly as in PyTorch.

    Attributes:
      decay: :math:`\alpha` in ``[0, 1)`` (PyTorch's default 0.99).
      host_constants: :math:`1 - \alpha` from the Python float in float64 (PyTorch).
    """

    decay: Any = 0.99
    host_constants: bool = False

    def init(self, like: Array, dtype) -> CenteredState:
        return CenteredState(nu=jnp.zeros(like.shape, dtype), mu=jnp.zeros(like.shape, dtype))

    def scalars(self, t: Array, dtype) -> Scalars:
        a = jnp.asarray(self.decay, dtype)
        return Scalars(coef_old=a, coef_new=constants.complement(self.decay, dtype, self.host_constants))

    def update(self, state: CenteredState, g: Array, sc: Scalars) -> CenteredState:
        return CenteredState(
            nu=sc.coef_old * state.nu + sc.coef_new * (g * g),
            mu=sc.coef_old * state.mu + sc.coef_new * g,
        )

    def stored(self, state: CenteredState) -> Array:
        return state.nu - state.mu * state.mu


@dataclasses.dataclass(frozen=True)
class InfinityNorm(Accumulator):
    r"""Adamax's exponentially weighted infinity norm (Kingma & Ba, 2015, section 7.1).

    .. math::
        u_t = \max(\beta_2 u_{t-1},\; |g_t| + \epsilon), \qquad \sqrt{\hat v_t} := u_t .

    The accumulator tracks a norm, not a square (``is_norm``), so :func:`adaptx.scale_by_moments` divides
    by :math:`u_t` itself. ε sits *inside* the maximum, as in PyTorch, so the engine's own ε should be 0.

    Attributes:
      decay: :math:`\beta_2` in ``[0, 1)``.
      eps: :math:`\epsilon \ge 0` added to :math:`|g_t|` (PyTorch's default 1e-8).
    """

    decay: Any = 0.999
    eps: Any = 1e-8
    is_norm = True  # a class constant, not a field

    def init(self, like: Array, dtype) -> Array:
        return jnp.zeros(like.shape, dtype)

    def scalars(self, t: Array, dtype) -> Scalars:
        return Scalars(coef_old=jnp.asarray(self.decay, dtype))

    def update(self, u: Array, g: Array, sc: Scalars) -> Array:
        return jnp.maximum(sc.coef_old * u, jnp.abs(g) + jnp.asarray(self.eps, g.dtype))

    def stored(self, u: Array) -> Array:
        return u
