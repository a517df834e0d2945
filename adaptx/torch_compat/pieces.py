"""PyTorch's variants of the generic moment pieces: decay constants from the host, NAdam in two parts.

Each class here is the generic piece of :mod:`adaptx.moments` with one method overridden, so the update
rules stay written once:

* the ``Host*`` pieces form :math:`1-\\beta` and :math:`1-\\beta^t` as PyTorch does, from the Python
  float in float64 (:mod:`adaptx.torch_compat.constants`);
* :class:`SplitNesterov` returns NAdam's numerator as its two terms (:class:`Parts`), which PyTorch adds
  to θ with two rounded in-place operations (:mod:`adaptx.torch_compat.inplace`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from adaptx.moments import first, second
from adaptx.moments.base import LeafState
from adaptx.torch_compat import constants
from adaptx.torch_compat.inplace import Parts, opaque_round

Array = jax.Array


class _HostConstants:
    """Mixin: :math:`1-\\beta` and :math:`1-\\beta^t` from the Python float β, as PyTorch forms them."""

    decay: object

    def complement(self, dtype) -> Array:
        return constants.complement(self.decay, dtype)

    def one_minus_power(self, t: Array, dtype) -> Array:
        return constants.one_minus_power(self.decay, t, dtype)


class HostFirstAverage(_HostConstants, first.MovingAverage):
    """:class:`adaptx.moments.first.MovingAverage` with PyTorch's constants."""


class HostSecondAverage(_HostConstants, second.MovingAverage):
    """:class:`adaptx.moments.second.MovingAverage` with PyTorch's constants."""


class HostCentered(_HostConstants, second.CenteredMovingAverage):
    """:class:`adaptx.moments.second.CenteredMovingAverage` with PyTorch's constants and order of operations.

    PyTorch's ``square_avg.mul_(α).addcmul_(g, g, value=1-α)`` rounds α·v on its own before adding
    ((1-α)·g)·g, and ``grad_avg.lerp_(g, 1-α)`` switches formula at a weight of one half. With a nearly
    constant gradient v − ḡ² is a rounding residue, and only the same roundings give the same sign of
    it (NaN in PyTorch where it is negative); this piece keeps PyTorch's order, and XLA's contraction of
    a multiply into the following add then matches the fused multiply-adds of PyTorch's vectorised CPU
    kernels (``tests/test_nonfinite.py`` compares them).
    """

    def update(self, state: LeafState, g: Array, sc: second.CenteredScalars) -> LeafState:
        avg, w = state["grad_avg"], sc.complement
        # torch.lerp: start + w (end - start) for w < 1/2, else end - (end - start)(1 - w).
        new_avg = jnp.where(w < 0.5, avg + w * (g - avg), g - (g - avg) * (1 - w))
        nu = opaque_round(sc.decay * state["nu"], state["nu"].dtype) + second.scaled_square(w, g)
        return {"nu": nu, "grad_avg": new_avg}


class SplitNesterov(_HostConstants, first.NesterovMovingAverage):
    r"""NAdam's first moment with PyTorch's constants, its numerator returned as two :class:`Parts`, and
    :math:`\Pi_t` kept in float32 whatever the parameters' dtype (PyTorch's ``mu_product`` is a float32
    tensor, multiplied by a float64 μ_t and rounded back, even for float64 parameters)."""

    def init_step(self, dtype) -> LeafState:
        return {"mu_product": jnp.ones([], jnp.float32)}

    def numerator(self, state: LeafState, g: Array, sc: first.NesterovScalars) -> Parts:
        return Parts(self.terms(state, g, sc))
