r"""The two interfaces every moment estimate implements, and the dtype rules they share.

An adaptive step is :math:`u_t = \hat m_t / d_t`: a *numerator* formed from the gradients by a
:class:`FirstMoment` and a *denominator* formed by a :class:`SecondMoment`. :func:`adaptx.scale_by_moments`
pairs any first moment with any second moment; each piece only says how its own state evolves.

The contract a piece fulfils:

* **Named state.** ``fields`` names the arrays it keeps *per parameter*; each is an array of the
  parameter's shape (``init`` returns a ``dict`` from field name to array). ``step_fields`` names the
  scalars it keeps *per optimizer* (NAdam's product of momenta), made by ``init_step`` and advanced once
  per step by ``advance``. The block state stores every field as one tree shaped like the parameters
  (or one scalar), under that name: ``state.mu``, ``state.nu``, ``state.nu_max``... Field names are
  unique within one block.
* **Per-step scalars.** ``scalars(t, dtype, step_state)`` computes everything that depends only on the
  step number and the hyperparameters (bias corrections, decay constants) once per step and compute
  dtype, never once per element. Each piece returns its own NamedTuple of them.
* **Elementwise arithmetic.** ``update`` and the read-outs work elementwise on one parameter's arrays.
  ``elementwise = True`` declares it: :mod:`adaptx.engine` stacks parameters of the same shape into one
  array and runs the same arithmetic on it, which is only correct for elementwise pieces, and refuses
  the others. A factored accumulator (Adafactor's row and column statistics) sets it to ``False``.

Dtypes: a piece receives its state and the gradient already cast to the *compute dtype* (at least
float32; the gradient's complex counterpart for complex parameters) and returns arrays in it; the block
casts the result back to the storage dtype. Second moments of complex gradients are real:
:math:`|g|^2 = g \bar g` (:func:`adaptx.moments.second.scaled_square`), as in optax.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from adaptx.core import numerics

Array = jax.Array
LeafState = dict[str, Array]


class Decaying:
    r"""Mixin for pieces with an exponential decay β (attribute ``decay``): its constants, formed once.

    :math:`1 - \beta` and :math:`1 - \beta^t` are formed from β rounded to the compute dtype, which keeps
    them consistent (the weights of an average then sum to exactly :math:`1 - \mathrm{fl}(\beta)^t`);
    :math:`1 - \beta^t` as :math:`-\operatorname{expm1}(t \log\beta)`, accurate in float32 for every t.
    PyTorch's variants override both (:mod:`adaptx.torch_compat.pieces`).
    """

    decay: Any

    def complement(self, dtype) -> Array:
        r""":math:`1 - \beta` in ``dtype``."""
        return 1 - jnp.asarray(self.decay, dtype)

    def one_minus_power(self, t: Array, dtype) -> Array:
        r""":math:`1 - \beta^t` in ``dtype`` (``t`` a float array)."""
        return numerics.one_minus_power(jnp.asarray(self.decay, dtype), t)


class _Piece(abc.ABC):
    """What both kinds of moment estimate share: named state, per-step scalars, an elementwise update."""

    #: The arithmetic of ``update`` and the read-outs is elementwise (see the module docstring).
    elementwise: ClassVar[bool] = True

    @property
    @abc.abstractmethod
    def fields(self) -> tuple[str, ...]:
        """Names of the per-parameter arrays of the state, in storage order."""

    @property
    def step_fields(self) -> tuple[str, ...]:
        """Names of the per-optimizer scalars of the state (none by default)."""
        return ()

    def init_step(self, dtype) -> LeafState:
        """The per-optimizer scalars before the first step (``dtype``: the widest compute dtype)."""
        return {}

    def advance(self, step_state: LeafState, t: Array, dtype) -> LeafState:
        """The per-optimizer scalars after step ``t`` (called once per step; ``dtype``: the widest
        compute dtype of this step's gradients)."""
        return step_state

    @abc.abstractmethod
    def init(self, like: Array, dtype) -> LeafState:
        """The per-parameter state for a parameter ``like``, stored in ``dtype`` (zeros, usually)."""

    @abc.abstractmethod
    def scalars(self, t: Array, dtype, step_state: LeafState) -> Any:
        """Everything ``update`` needs that depends only on the step ``t`` and the hyperparameters."""

    @abc.abstractmethod
    def update(self, state: LeafState, g: Array, sc: Any) -> LeafState:
        """The new per-parameter state from the old one and the gradient ``g`` (compute dtype)."""


class FirstMoment(_Piece):
    r"""A first-moment estimator: the numerator :math:`\hat m_t` of an adaptive step.

    Implement ``fields``, ``init``, ``scalars``, ``update`` and ``numerator``.
    """

    @abc.abstractmethod
    def numerator(self, state: LeafState, g: Array, sc: Any) -> Array:
        r"""The numerator :math:`\hat m_t` from the *updated* state and this step's gradient."""

    def storage_dtype(self, param_dtype, requested) -> jnp.dtype:
        """The dtype the state is stored in: ``requested`` (``mu_dtype``) or the parameter's."""
        return jnp.dtype(requested or param_dtype)


class SecondMoment(_Piece):
    r"""A second-moment accumulator: the denominator :math:`\sqrt{\hat v_t}` of an adaptive step.

    Implement ``fields``, ``init``, ``scalars``, ``update``, ``stored``, ``correct`` and
    ``sqrt_correct``; override ``raw_ratio`` and ``carry`` when the stored quantity is not the raw
    accumulator of the textbook recurrence.

    *Storage units.* ``stored(state)`` is the estimate as the piece keeps it; ``correct(x, sc)`` turns
    a value in those units into the bias-corrected :math:`\hat v` and ``sqrt_correct(r, sc)`` turns its
    root into :math:`\sqrt{\hat v}` (PyTorch divides the root by :math:`\sqrt{1-\beta_2^t}` rather than
    taking the root of a quotient). AdaX's accumulator grows like :math:`(1+\beta_2)^t` and is stored
    divided by that growth so that it never overflows; ``carry`` and ``raw_ratio`` relate its units to
    the raw accumulator for the pieces that need the raw value (AMSGrad's maximum of the raw
    accumulator, ε added to the raw root).
    """

    #: The accumulator tracks a norm (Adamax's :math:`u \approx \max|g|`), not a square: its root is the
    #: stored value itself.
    is_norm: ClassVar[bool] = False

    @abc.abstractmethod
    def stored(self, state: LeafState) -> Array:
        """The estimate in storage units (real, non-negative in exact arithmetic)."""

    @abc.abstractmethod
    def correct(self, x: Array, sc: Any) -> Array:
        r""":math:`\hat v` from a value ``x`` in storage units."""

    @abc.abstractmethod
    def sqrt_correct(self, r: Array, sc: Any) -> Array:
        r""":math:`\sqrt{\hat v}` from the root ``r`` of a value in storage units."""

    def raw_ratio(self, sc: Any) -> Array | None:
        r""":math:`\sqrt{v / \hat v}`: adding ε to the raw root equals adding ε / this to
        :math:`\sqrt{\hat v}` (then the factor cancels against the numerator's correction); ``None``
        when raw and corrected coincide."""
        return None

    def carry(self, sc: Any) -> Array | None:
        """The factor converting last step's storage units into this step's for the same raw value
        (``None``: 1)."""
        return None

    def estimate(self, state: LeafState, sc: Any) -> Array:
        r"""The bias-corrected estimate :math:`\hat v` (the square of a norm accumulator's value)."""
        if self.is_norm:
            return jnp.square(self.correct(self.stored(state), sc))
        return self.correct(self.stored(state), sc)

    def sqrt_estimate(self, state: LeafState, sc: Any) -> Array:
        r""":math:`\sqrt{\hat v}`, as :math:`\sqrt{\text{stored}}` corrected (a norm: corrected as is)."""
        if self.is_norm:
            return self.correct(self.stored(state), sc)
        return self.sqrt_correct(jnp.sqrt(self.stored(state)), sc)

    def storage_dtype(self, param_dtype, requested) -> jnp.dtype:
        """The dtype the state is stored in: ``requested`` (``nu_dtype``) or the parameter's, made real
        (the second moment of a complex gradient is real)."""
        return numerics.real_dtype(requested or param_dtype)
