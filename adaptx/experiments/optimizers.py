r"""The optimizers of the AMSGrad paper's comparison, by name, as factories of their hyperparameters.

Each entry maps ``(learning_rate, b1, b2)`` to an optax transformation, where ``learning_rate`` is a
number, a traced scalar or an optax schedule, so a whole grid of settings can be ``vmap``-ed
(:func:`adaptx.experiments.sweep`). ``b2`` means each method's own second-moment parameter: Adam's and
AMSGrad's decay β2 (the paper's 0.99), AdaX's growth rate β2 (its authors' 1e-4).

* ``adam``: :func:`adaptx.adam`, ε = 1e-8 on the corrected root (PyTorch's Adam).
* ``amsgrad``: :func:`adaptx.amsgrad`, the maximum of the raw second moment (PyTorch's and labml's rule).
* ``amsgrad-corrected``: the maximum of the bias-corrected second moment (the paper's algorithm, optax's
  ``amsgrad``).
* ``adax``: :func:`adaptx.adax`, the authors' AdaX (ε = 1e-12 on the raw root, no L2).
* ``sgd``: plain projected gradient descent, for scale.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import optax

from adaptx import aliases

Factory = Callable[[Any, Any, Any], optax.GradientTransformation]

OPTIMIZERS: dict[str, Factory] = {
    "adam": lambda lr, b1, b2: aliases.adam(lr, b1, b2),
    "amsgrad": lambda lr, b1, b2: aliases.amsgrad(lr, b1, b2),
    "amsgrad-corrected": lambda lr, b1, b2: aliases.amsgrad(lr, b1, b2, max_of="corrected"),
    "adax": lambda lr, b1, b2: aliases.adax(lr, b1, b2),
    "sgd": lambda lr, b1, b2: optax.sgd(lr),
}

#: Display names for tables and legends.
DISPLAY = {
    "adam": "Adam",
    "amsgrad": "AMSGrad",
    "amsgrad-corrected": "AMSGrad (corrected max)",
    "adax": "AdaX",
    "sgd": "SGD",
}

#: The β2 each method uses unless told otherwise (the paper's for Adam/AMSGrad, the authors' for AdaX).
DEFAULT_B2 = {"adam": 0.99, "amsgrad": 0.99, "amsgrad-corrected": 0.99, "adax": 1e-4, "sgd": 0.0}


def constant(lr: Any) -> Any:
    """A constant step size γ (returned as it is)."""
    return lr


def inverse_sqrt(alpha: Any) -> Callable:
    r"""The theory's step size :math:`\alpha_t = \alpha / \sqrt{t}` (t = 1 for the first step).

    adaptx evaluates schedules at the number of steps already taken (0 first), hence ``alpha /
    sqrt(count + 1)``.
    """
    import jax.numpy as jnp

    return lambda count: alpha / jnp.sqrt(count + 1.0)


SCHEDULES = {"constant": constant, "inv-sqrt": inverse_sqrt}


@functools.cache
def factory(name: str, schedule: str = "constant") -> Callable[..., optax.GradientTransformation]:
    """The optimizer ``name`` as a function of keyword arguments ``learning_rate, b1, b2`` (for
    :func:`adaptx.experiments.sweep`), with step-size ``schedule`` ``"constant"`` or ``"inv-sqrt"``.
    The same function object for the same arguments, so repeated sweeps reuse their compiled program.

    Example:
      >>> from adaptx.experiments.optimizers import factory
      >>> opt = factory("amsgrad", "inv-sqrt")(learning_rate=0.1, b1=0.9, b2=0.99)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    make, sched = OPTIMIZERS[name], SCHEDULES[schedule]
    return lambda learning_rate, b1, b2: make(sched(learning_rate), b1, b2)
