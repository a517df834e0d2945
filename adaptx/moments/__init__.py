"""The moment estimates adaptive transforms are assembled from.

``first``: estimators of the numerator (:class:`adaptx.moments.first.MovingAverage`, PyTorch's SGD
buffer :class:`~adaptx.moments.first.Momentum`, NAdam's
:class:`~adaptx.moments.first.NesterovMovingAverage`).
``second``: accumulators of the denominator (EMA, AdaX's long-term average, Adagrad's running sum,
centered RMSprop, Adamax's infinity norm) and AMSGrad's :class:`MaxTracked`, which wraps any of them.
``rectification``: RAdam's :class:`RAdamRectification`. ``constants``: decay constants formed the way
PyTorch forms them (``host_constants=True``).
"""

from adaptx.moments import constants, first, rectification, second
from adaptx.moments.rectification import RAdamRectification
from adaptx.moments.second import (
    Accumulator,
    CenteredMovingAverage,
    CenteredState,
    InfinityNorm,
    LongTermAverage,
    LongTermState,
    MaxState,
    MaxTracked,
    MovingAverage,
    RunningSum,
    Scalars,
)

__all__ = [
    "Accumulator",
    "CenteredMovingAverage",
    "CenteredState",
    "InfinityNorm",
    "LongTermAverage",
    "LongTermState",
    "MaxState",
    "MaxTracked",
    "MovingAverage",
    "RAdamRectification",
    "RunningSum",
    "Scalars",
    "constants",
    "first",
    "rectification",
    "second",
]
