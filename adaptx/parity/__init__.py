"""Parity harness: compare any PyTorch optimizer with any adaptx or optax transformation.

>>> import torch
>>> from adaptx import parity, torch_compat
>>> result = parity.compare(lambda p: torch.optim.RMSprop(p.values(), lr=1e-2),
...                         torch_compat.rmsprop(lr=1e-2), parity.make_problem(steps=100))
>>> result.passed, result.first_failure
(True, None)

``python -m adaptx.parity`` prints the table over every :mod:`adaptx.torch_compat` optimizer, with
optax's nearest alias beside it. PyTorch is needed only to run a comparison, not to import adaptx.
"""

from adaptx.parity.harness import (
    DEFAULT_SHAPES,
    TOLERANCE,
    LeastSquares,
    ParityResult,
    Problem,
    compare,
    deviation,
    make_problem,
    run_jax,
    run_torch,
)
from adaptx.parity.training import TrainingParity, compare_training, compare_training_many

__all__ = [
    "DEFAULT_SHAPES",
    "TOLERANCE",
    "LeastSquares",
    "ParityResult",
    "Problem",
    "compare",
    "deviation",
    "make_problem",
    "run_jax",
    "run_torch",
    "TrainingParity",
    "compare_training",
    "compare_training_many",
]
