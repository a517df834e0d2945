"""The moment estimates adaptive transforms are assembled from.

``base``: the two declared interfaces, :class:`FirstMoment` and :class:`SecondMoment`.
``first``: estimators of the numerator (:class:`adaptx.moments.first.MovingAverage`, PyTorch's SGD
buffer :class:`~adaptx.moments.first.Momentum`, NAdam's :class:`~adaptx.moments.first.NesterovMovingAverage`).
``second``: accumulators of the denominator (EMA, AdaX's long-term average, Adagrad's running sum,
centered RMSprop, Adamax's infinity norm) and AMSGrad's :class:`MaxTracked`, which wraps any of them.
``rectification``: RAdam's :class:`RAdamRectification`.
"""

from adaptx.moments import base, first, rectification, second
from adaptx.moments.base import FirstMoment, SecondMoment
from adaptx.moments.rectification import RAdamRectification
from adaptx.moments.second import (
    CenteredMovingAverage,
    InfinityNorm,
    LongTermAverage,
    MaxTracked,
    MovingAverage,
    RunningSum,
)

__all__ = [
    "CenteredMovingAverage",
    "FirstMoment",
    "InfinityNorm",
    "LongTermAverage",
    "MaxTracked",
    "MovingAverage",
    "RAdamRectification",
    "RunningSum",
    "SecondMoment",
    "base",
    "first",
    "rectification",
    "second",
]
