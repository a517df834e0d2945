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

from adaptx.moments import first, second
from adaptx.moments.base import LeafState
from adaptx.torch_compat import constants
from adaptx.torch_compat.inplace import Parts

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
    """:class:`adaptx.moments.second.CenteredMovingAverage` with PyTorch's :math:`1 - \\alpha`."""


class SplitNesterov(_HostConstants, first.NesterovMovingAverage):
    """NAdam's first moment with PyTorch's constants, its numerator returned as two :class:`Parts`."""

    def numerator(self, state: LeafState, g: Array, sc: first.NesterovScalars) -> Parts:
        return Parts(self.terms(state, g, sc))
