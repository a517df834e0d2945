"""Hyperparameters: construction-time validation and per-step evaluation.

A hyperparameter may be

* a Python number or a concrete array: validated when the transformation is built;
* a traced jax array (inside ``jit``/``vmap``/``optax.inject_hyperparams``): it cannot be inspected
  without a host round-trip, so it is **not** validated. An invalid traced value yields invalid numbers,
  exactly as a bad constant in any jax program would;
* for the learning rate and weight decay, an optax schedule ``step -> value``: evaluated every step at the
  number of steps already taken (0 for the first update), like a PyTorch LR scheduler stepped once per
  optimizer step. A schedule is validated lazily as well: only its callability is checked.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Schedule = Callable[[Array], Array]
ScalarOrSchedule = Any  # float | jax.Array | Schedule


def is_traced(value: Any) -> bool:
    """True for abstract values (tracers) whose contents are unknown at construction."""
    return isinstance(value, jax.core.Tracer)


def _concrete_values(name: str, value: Any) -> np.ndarray | None:
    """The values of a concrete hyperparameter as a float64 array, ``None`` if traced.

    Raises ``ValueError`` for anything that is not a real number or an array of them (strings, None,
    complex numbers, ...).
    """
    if is_traced(value):
        return None
    if isinstance(value, bool) or isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        return np.asarray(float(value))
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic objects
        raise ValueError(f"{name} must be a real number, got {value!r}") from err
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return arr.astype(np.float64)


def check_range(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    schedule_ok: bool = False,
) -> None:
    """Raise ``ValueError`` unless every concrete element of ``value`` lies in the interval.

    The interval is ``[low, high]`` with either end made open by ``low_open``/``high_open``. NaN and ±inf are
    always rejected. Traced values pass unchecked (see the module docstring); callables pass when
    ``schedule_ok``.
    """
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        if schedule_ok:
            return
        raise ValueError(f"{name} must be a number or an array, not a schedule; got {value!r}")
    arr = _concrete_values(name, value)
    if arr is None:
        return
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (not NaN or inf), got {value!r}")
    too_low = (arr <= low) if low_open else (arr < low)
    too_high = (arr >= high) if high_open else (arr > high)
    if too_low.any() or too_high.any():
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {value!r}")


def check_non_negative(name: str, value: Any, *, schedule_ok: bool = False) -> None:
    """``value >= 0`` (learning rates, ε, weight decay)."""
    check_range(name, value, 0.0, schedule_ok=schedule_ok)


def check_decay(name: str, value: Any) -> None:
    """An exponential decay rate ``0 <= value < 1`` (Adam's β1 and β2)."""
    check_range(name, value, 0.0, 1.0, high_open=True)


def check_positive(name: str, value: Any) -> None:
    """``value > 0`` (AdaX's β2)."""
    check_range(name, value, 0.0, low_open=True)


def evaluate(value: ScalarOrSchedule, step: Array, dtype=jnp.float32) -> Array:
    """The value of a hyperparameter at ``step`` (steps already taken), as a scalar of ``dtype``.

    Schedules are called with ``step``; numbers and arrays are returned as they are, cast to ``dtype``
    (float32 unless parameters are float64), so that bf16 parameters never lower the precision of a
    hyperparameter.
    """
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        value = value(step)
    return jnp.asarray(value, dtype)
