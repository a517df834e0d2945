"""The moment estimates adaptive transforms are assembled from.

``first``: estimators of the numerator (:class:`adaptx.moments.first.MovingAverage`).
``second``: accumulators of the denominator (EMA, AdaX's long-term average) and AMSGrad's
:class:`MaxTracked`, which wraps any of them.
"""

from adaptx.moments import first, second
from adaptx.moments.second import (
    Accumulator,
    LongTermAverage,
    LongTermState,
    MaxState,
    MaxTracked,
    MovingAverage,
    Scalars,
)

__all__ = [
    "Accumulator",
    "LongTermAverage",
    "LongTermState",
    "MaxState",
    "MaxTracked",
    "MovingAverage",
    "Scalars",
    "first",
    "second",
]
