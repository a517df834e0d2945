r"""Second-moment accumulators: the denominator of an adaptive step.

Each is a :class:`adaptx.moments.SecondMoment` (the contract is in :mod:`adaptx.moments.base`): it keeps
named per-parameter arrays, computes its per-step scalars once per step, updates elementwise, and says
how its stored value relates to the bias-corrected estimate :math:`\hat v` and to the raw accumulator of
the textbook recurrence.

Why storage units at all: AdaX's textbook accumulator :math:`v_t` grows like :math:`(1+\beta_2)^t` and
overflows float32 at step ~887,000. :class:`LongTermAverage` stores :math:`\tilde v = v / B_t` instead,
which stays of the order of :math:`g^2` forever; every quantity the references need is recovered from it
through scalars that are themselves computed in log space.

Squares are formed as :math:`((1-\beta) g) g` rather than :math:`(1-\beta)(g g)`: the same number of
roundings, and no overflow for gradients up to :math:`\sqrt{\text{max}/(1-\beta)}` (5.8e20 in float32
for β = 0.999) where :math:`g^2` alone overflows at 1.8e19.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from adaptx.core import numerics
from adaptx.moments.base import Decaying, LeafState, SecondMoment

Array = jax.Array


def scaled_square(c: Array | None, g: Array) -> Array:
    r""":math:`c\,|g|^2` as :math:`(c g) g` (per real component for complex ``g``; ``c = None``: 1)."""
    if jnp.iscomplexobj(g):
        re, im = jnp.real(g), jnp.imag(g)
        if c is None:
            return re * re + im * im
        return (c * re) * re + (c * im) * im
    return g * g if c is None else (c * g) * g


class EmaScalars(NamedTuple):
    r"""Per-step scalars of :class:`MovingAverage`: β2, 1 − β2, the correction
    :math:`1-\beta_2^t` and its root (``None`` without debiasing)."""

    decay: Array
    complement: Array
    correction: Array | None
    sqrt_correction: Array | None


@dataclasses.dataclass(frozen=True)
class MovingAverage(Decaying, SecondMoment):
    r"""Exponential moving average of :math:`|g|^2`: Adam's and RMSprop's second moment (field ``nu``).

    .. math::
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2, \qquad
        \hat v_t = v_t / (1 - \beta_2^t) \text{ if debiased, else } v_t.

    Stored raw (:math:`v_t` itself, as PyTorch stores it), so max-tracking over the raw accumulator is an
    exact ``max`` with no rescaling.

    Attributes:
      decay: :math:`\beta_2` in ``[0, 1)``; may be a traced array.
      debias: divide by :math:`1 - \beta_2^t` (Adam) or not (RMSprop, BERT).
    """

    decay: Any = 0.999
    debias: bool = True

    fields = ("nu",)

    def init(self, like: Array, dtype) -> LeafState:
        return {"nu": jnp.zeros_like(like, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> EmaScalars:
        b2 = jnp.asarray(self.decay, dtype)
        if not self.debias:
            return EmaScalars(b2, self.complement(dtype), None, None)
        bc2 = self.one_minus_power(numerics.as_float(t, dtype), dtype)
        return EmaScalars(b2, self.complement(dtype), bc2, jnp.sqrt(bc2))

    def update(self, state: LeafState, g: Array, sc: EmaScalars) -> LeafState:
        return {"nu": sc.decay * state["nu"] + scaled_square(sc.complement, g)}

    def stored(self, state: LeafState) -> Array:
        return state["nu"]

    def correct(self, x: Array, sc: EmaScalars) -> Array:
        return x if sc.correction is None else x / sc.correction

    def sqrt_correct(self, r: Array, sc: EmaScalars) -> Array:
        return r if sc.sqrt_correction is None else r / sc.sqrt_correction

    def raw_ratio(self, sc: EmaScalars) -> Array | None:
        return sc.sqrt_correction


class LongTermScalars(NamedTuple):
    r"""Per-step scalars of :class:`LongTermAverage`: the weight :math:`w_t = \beta_2 / B_t` of the new
    square, :math:`\sqrt{B_t}` (the raw-root ratio) and the carry :math:`B_{t-1} / B_t`."""

    weight: Array
    sqrt_growth: Array
    carry: Array


@dataclasses.dataclass(frozen=True)
class LongTermAverage(SecondMoment):
    r"""AdaX's long-term accumulator (Li et al., 2020), stored without overflow.

    The textbook recurrence and its correction,

    .. math::
        v_t = (1+\beta_2) v_{t-1} + \beta_2 g_t^2, \qquad B_t = (1+\beta_2)^t - 1, \qquad
        \hat v_t = v_t / B_t,

    are stored as the corrected average itself, :math:`\tilde v_t = v_t / B_t`, which obeys

    .. math::
        \tilde v_t = \tilde v_{t-1} + w_t (g_t^2 - \tilde v_{t-1}), \qquad w_t = \beta_2 / B_t
        = \beta_2 / \operatorname{expm1}(t \log(1+\beta_2)),

    a running average whose weights never exceed 1, so nothing grows with t (field ``nu``). Every
    scalar is computed in log space; :math:`B_t` itself overflows past t ≈ 887,000 for β2 = 1e-4, where
    :math:`w_t \to 0` and the average is frozen: exactly what the exact recurrence does.

    *Compensation.* Once :math:`w_t` falls below float32's resolution the increments round away and
    :math:`\tilde v` stops following the gradients. The default ``compensated=True`` keeps what each
    addition lost in a second array (field ``nu_residual``, compensated summation: the lost part is
    exact by Fast2Sum since :math:`|\tilde v| \ge |w (g^2 - \tilde v)|` for :math:`0 \le w \le 1`); the
    average is ``nu + nu_residual``. The residual decays with the average, :math:`r_t = (1-w_t)
    r_{t-1} + \text{lost}_t`, and is not fed back into ``nu`` (Kahan's feedback would make the new
    average wait for the old residual). It keeps AdaX within 1e-8 to 5e-8 of float64 for 1e8 steps,
    instead of ~5e-5, for one more array per parameter.

    Attributes:
      decay: AdaX's :math:`\beta_2 > 0` (default ``1e-4``); may be a traced array.
      compensated: keep the rounding residual (default ``True``).
    """

    decay: Any = 1e-4
    compensated: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        return ("nu", "nu_residual") if self.compensated else ("nu",)

    def init(self, like: Array, dtype) -> LeafState:
        return {name: jnp.zeros_like(like, dtype=dtype) for name in self.fields}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> LongTermScalars:
        b2 = jnp.asarray(self.decay, dtype)
        log_growth = jnp.log1p(b2)  # log(1 + b2)
        tf = numerics.as_float(t, dtype)
        big_b = jnp.expm1(tf * log_growth)  # B_t; +inf past float overflow, which every use tolerates
        # w_1 = b2 / B_1 = 1 up to rounding; make it exactly 1 so the first step stores g^2 itself.
        w = jnp.where(t <= 1, jnp.ones_like(b2), b2 / big_b)
        # B_{t-1} / B_t = e^{-l} (1 - e^{-(t-1) l}) / (1 - e^{-t l}): bounded factors, no overflow;
        # 0 at t = 1.
        carry = jnp.exp(-log_growth) * jnp.expm1(-(tf - 1) * log_growth) / jnp.expm1(-tf * log_growth)
        return LongTermScalars(weight=w, sqrt_growth=jnp.sqrt(big_b), carry=carry)

    def update(self, state: LeafState, g: Array, sc: LongTermScalars) -> LeafState:
        nu = state["nu"]
        increment = scaled_square(sc.weight, g) - sc.weight * nu
        new_nu = nu + increment
        if not self.compensated:
            return {"nu": new_nu}
        # The same increment and sum once more, written in another (bitwise equal) order so that XLA
        # does not share them between the two outputs: each output is then one kernel reading the old
        # state, and the residual's kernel runs first (the new average reads it through `* 0`), so both
        # arrays are updated in place without a copy of the old average.
        increment_r = -(sc.weight * nu) + scaled_square(sc.weight, g)
        lost = increment_r - ((increment_r + nu) - nu)  # exact (Fast2Sum)
        new_residual = (1 - sc.weight) * state["nu_residual"] + lost
        return {"nu": new_nu + new_residual * 0, "nu_residual": new_residual}

    def stored(self, state: LeafState) -> Array:
        return state["nu"] + state["nu_residual"] if self.compensated else state["nu"]

    def correct(self, x: Array, sc: LongTermScalars) -> Array:
        return x  # stored already corrected

    def sqrt_correct(self, r: Array, sc: LongTermScalars) -> Array:
        return r

    def raw_ratio(self, sc: LongTermScalars) -> Array:
        return sc.sqrt_growth

    def carry(self, sc: LongTermScalars) -> Array:
        return sc.carry


@dataclasses.dataclass(frozen=True)
class MaxTracked(SecondMoment):
    r"""AMSGrad's max-tracking, around *any* second-moment accumulator (adds the field ``nu_max``).

    The denominator uses a running maximum of the wrapped accumulator instead of its current value, so
    that the effective step size never grows. Two conventions are in use:

    * ``over="raw"`` (PyTorch, labml): :math:`u_t = \max(u_{t-1}, v_t)` over the raw accumulator, then
      bias-corrected with the *current* step's correction. In storage units this is
      :math:`u_t = \max(u_{t-1} \cdot \text{carry}_t, \text{stored}_t)`; for Adam's EMA the carry is 1
      and this is an exact ``max``.
    * ``over="corrected"`` (the AMSGrad paper, optax): :math:`\hat u_t = \max(\hat u_{t-1}, \hat v_t)`
      over the bias-corrected estimate; ``nu_max`` then holds :math:`\hat u_t`.

    A NaN in the wrapped accumulator stays in the maximum (``jnp.maximum`` propagates it), as in PyTorch.

    Attributes:
      inner: the accumulator to track (:class:`MovingAverage`, :class:`LongTermAverage`, ...).
      over: ``"raw"`` or ``"corrected"``.
    """

    inner: SecondMoment
    over: str = "raw"

    def __post_init__(self):
        if self.over not in ("raw", "corrected"):
            raise ValueError(f"over must be 'raw' or 'corrected', got {self.over!r}")
        if not isinstance(self.inner, SecondMoment):
            raise ValueError(f"MaxTracked wraps a SecondMoment accumulator, got {self.inner!r}")
        if isinstance(self.inner, MaxTracked):
            raise ValueError("MaxTracked cannot wrap another MaxTracked accumulator")
        if "nu_max" in self.inner.fields:
            raise ValueError(f"{self.inner!r} already has a field named nu_max")

    @property
    def is_norm(self) -> bool:  # the maximum of a norm is a norm
        return self.inner.is_norm

    @property
    def elementwise(self) -> bool:
        return self.inner.elementwise

    @property
    def fields(self) -> tuple[str, ...]:
        return (*self.inner.fields, "nu_max")

    @property
    def step_fields(self) -> tuple[str, ...]:
        return self.inner.step_fields

    def init_step(self, dtype) -> LeafState:
        return self.inner.init_step(dtype)

    def advance(self, step_state: LeafState, t: Array, dtype) -> LeafState:
        return self.inner.advance(step_state, t, dtype)

    def init(self, like: Array, dtype) -> LeafState:
        return {**self.inner.init(like, dtype), "nu_max": jnp.zeros_like(like, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> Any:
        return self.inner.scalars(t, dtype, step_state)

    def update(self, state: LeafState, g: Array, sc: Any) -> LeafState:
        inner = self.inner.update({k: state[k] for k in self.inner.fields}, g, sc)
        if self.over == "raw":
            carry = self.inner.carry(sc)
            old = state["nu_max"] if carry is None else state["nu_max"] * carry
            nu_max = jnp.maximum(old, self.inner.stored(inner))
        else:  # the maximum is kept already corrected
            nu_max = jnp.maximum(state["nu_max"], self.inner.estimate(inner, sc))
        return {**inner, "nu_max": nu_max}

    def stored(self, state: LeafState) -> Array:
        return state["nu_max"]

    def correct(self, x: Array, sc: Any) -> Array:
        return self.inner.correct(x, sc) if self.over == "raw" else x

    def sqrt_correct(self, r: Array, sc: Any) -> Array:
        return self.inner.sqrt_correct(r, sc) if self.over == "raw" else r

    def raw_ratio(self, sc: Any) -> Array | None:
        return self.inner.raw_ratio(sc)


@dataclasses.dataclass(frozen=True)
class RunningSum(SecondMoment):
    r"""Adagrad's running sum of squared gradients (field ``sum_of_squares``).

    .. math::
        s_0 = s_{init}, \qquad s_t = s_{t-1} + |g_t|^2, \qquad \hat v_t = s_t \text{ (no correction)}.

    Attributes:
      initial: :math:`s_{init} \ge 0`, PyTorch's ``initial_accumulator_value`` (default 0; optax's
        ``adagrad`` starts at 0.1).
    """

    initial: Any = 0.0

    fields = ("sum_of_squares",)

    def init(self, like: Array, dtype) -> LeafState:
        return {"sum_of_squares": jnp.full_like(like, self.initial, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> None:
        return None

    def update(self, state: LeafState, g: Array, sc: None) -> LeafState:
        return {"sum_of_squares": state["sum_of_squares"] + scaled_square(None, g)}

    def stored(self, state: LeafState) -> Array:
        return state["sum_of_squares"]

    def correct(self, x: Array, sc: None) -> Array:
        return x

    def sqrt_correct(self, r: Array, sc: None) -> Array:
        return r


class CenteredScalars(NamedTuple):
    """Per-step scalars of :class:`CenteredMovingAverage`: α and 1 − α."""

    decay: Array
    complement: Array


@dataclasses.dataclass(frozen=True)
class CenteredMovingAverage(Decaying, SecondMoment):
    r"""Centered RMSprop's variance estimate (Graves, 2013; ``torch.optim.RMSprop(centered=True)``).

    Fields ``nu`` (the average of :math:`|g|^2`) and ``grad_avg`` (the average of :math:`g`):

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) |g_t|^2, \qquad
        \bar g_t = \bar g_{t-1} + (1-\alpha)(g_t - \bar g_{t-1}), \qquad
        \hat v_t = v_t - |\bar g_t|^2 \text{ (no bias correction)}.

    :math:`\hat v_t \ge 0` in exact arithmetic (a weighted variance), but when the gradient barely varies
    it is a difference of two nearly equal numbers and rounding decides its sign: a tiny negative value
    has a NaN root, a tiny positive one a huge step. PyTorch has the same cancellation; its rounding is
    reproduced by :func:`adaptx.torch_compat.rmsprop`.

    Attributes:
      decay: :math:`\alpha` in ``[0, 1)`` (PyTorch's default 0.99).
    """

    decay: Any = 0.99

    fields = ("nu", "grad_avg")

    def init(self, like: Array, dtype) -> LeafState:
        # grad_avg has the gradient's kind (complex for complex parameters), nu is real.
        kind = like.dtype if jnp.iscomplexobj(like) else dtype
        avg_dtype = numerics.complex_of(dtype) if jnp.issubdtype(kind, jnp.complexfloating) else dtype
        return {"nu": jnp.zeros_like(like, dtype=dtype), "grad_avg": jnp.zeros_like(like, dtype=avg_dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> CenteredScalars:
        return CenteredScalars(jnp.asarray(self.decay, dtype), self.complement(dtype))

    def update(self, state: LeafState, g: Array, sc: CenteredScalars) -> LeafState:
        avg = state["grad_avg"]
        return {
            "nu": sc.decay * state["nu"] + scaled_square(sc.complement, g),
            "grad_avg": avg + sc.complement * (g - avg),
        }

    def stored(self, state: LeafState) -> Array:
        return state["nu"] - scaled_square(None, state["grad_avg"])

    def correct(self, x: Array, sc: CenteredScalars) -> Array:
        return x

    def sqrt_correct(self, r: Array, sc: CenteredScalars) -> Array:
        return r


class NormScalars(NamedTuple):
    """Per-step scalars of :class:`InfinityNorm`: β2 and ε."""

    decay: Array
    eps: Array


@dataclasses.dataclass(frozen=True)
class InfinityNorm(SecondMoment):
    r"""Adamax's exponentially weighted infinity norm (Kingma & Ba, 2015, section 7.1; field ``nu``).

    .. math::
        u_t = \max(\beta_2 u_{t-1},\; |g_t| + \epsilon), \qquad \sqrt{\hat v_t} := u_t .

    The accumulator tracks a norm, not a square (``is_norm``), so :func:`adaptx.scale_by_moments` divides
    by :math:`u_t` itself. ε sits *inside* the maximum, as in PyTorch, so the block's own ε should be 0.
    A NaN gradient makes :math:`u_t` NaN (``jnp.maximum`` propagates it).

    Attributes:
      decay: :math:`\beta_2` in ``[0, 1)``.
      eps: :math:`\epsilon \ge 0` added to :math:`|g_t|` (PyTorch's default 1e-8).
    """

    decay: Any = 0.999
    eps: Any = 1e-8
    is_norm = True  # a class constant, not a field

    fields = ("nu",)

    def init(self, like: Array, dtype) -> LeafState:
        return {"nu": jnp.zeros_like(like, dtype=dtype)}

    def scalars(self, t: Array, dtype, step_state: LeafState) -> NormScalars:
        return NormScalars(jnp.asarray(self.decay, dtype), jnp.asarray(self.eps, dtype))

    def update(self, state: LeafState, g: Array, sc: NormScalars) -> LeafState:
        return {"nu": jnp.maximum(sc.decay * state["nu"], jnp.abs(g) + sc.eps)}

    def stored(self, state: LeafState) -> Array:
        return state["nu"]

    def correct(self, x: Array, sc: NormScalars) -> Array:
        return x

    def sqrt_correct(self, r: Array, sc: NormScalars) -> Array:
        return r
