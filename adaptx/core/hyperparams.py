"""Hyperparameters: validation where they are consumed, and evaluation once per step and dtype.

A hyperparameter may be

* a Python number or a concrete array: validated when the block that uses it is built, in the dtype it
  will be used in (jax's default float: float32, or float64 under ``jax_enable_x64``). A value that is
  valid as a real number but rounds to an invalid one there is refused: β1 = 1 − 1e-9 rounds to 1 in
  float32, a learning rate of 1e39 to infinity, AdaX's β2 = 1e-39 to a subnormal;
* a traced jax array (inside ``jit``/``vmap``/``optax.inject_hyperparams``): its value cannot be read
  without a host round-trip, so only its shape is checked. An invalid traced value yields invalid
  numbers, exactly as a bad constant in any jax program would;
* for the learning rate and weight decay, an optax schedule ``step -> value``: evaluated every step at the
  number of steps already taken (0 for the first update), like a PyTorch LR scheduler stepped once per
  optimizer step; only its callability is checked up front.

Every hyperparameter is a scalar: an array of another shape would broadcast the parameters to its shape,
so it is refused with a ``ValueError`` naming the hyperparameter.
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


def is_schedule(value: Any) -> bool:
    """A callable that is not an array, a type or a dtype: an optax schedule."""
    return callable(value) and not isinstance(value, (jax.Array, np.ndarray, np.generic, type, np.dtype))


def is_python_zero(value: Any) -> bool:
    """A Python number equal to 0 (not a bool, an array or a tracer): its arithmetic may be skipped."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def default_float() -> np.dtype:
    """The dtype concrete hyperparameters are checked in: float64 under ``jax_enable_x64``, else float32."""
    return np.dtype(jnp.result_type(float))


def check_scalar(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` (a number, an array or a tracer) is a scalar."""
    shape = np.shape(value) if not is_traced(value) else value.shape
    if shape != ():
        raise ValueError(
            f"{name} must be a scalar (it would broadcast the parameters to its shape), got an array of "
            f"shape {tuple(shape)}"
        )


def _concrete_values(name: str, value: Any) -> np.ndarray | None:
    """The value of a concrete hyperparameter as a float64 scalar array, ``None`` if traced.

    Raises ``ValueError`` for anything that is not a real scalar (strings, None, complex numbers,
    non-scalar arrays) and for integers too large for a float.
    """
    if is_traced(value):
        check_scalar(name, value)
        return None
    if isinstance(value, (bool, str, bytes, type, np.dtype)) or value is None or callable(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        try:
            return np.asarray(float(value))
        except OverflowError:
            raise ValueError(f"{name} must be finite, got a number too large for a float: {value!r}") \
                from None
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic objects
        raise ValueError(f"{name} must be a real number, got {value!r}") from err
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    check_scalar(name, arr)
    return arr.astype(np.float64)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


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
    """Raise ``ValueError`` unless a concrete ``value`` lies in the interval, before and after rounding.

    The interval is ``[low, high]`` with either end made open by ``low_open``/``high_open``. NaN and ±inf
    are always rejected, and so is a value whose rounding to :func:`default_float` leaves the interval
    or overflows. Traced values are only checked to be scalars; callables pass when ``schedule_ok``.
    """
    if is_schedule(value):
        if schedule_ok:
            return
        raise ValueError(f"{name} must be a number or an array, not a schedule; got {value!r}")
    arr = _concrete_values(name, value)
    if arr is None:
        return
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (not NaN or inf), got {value!r}")
    dtype = default_float()
    with np.errstate(over="ignore"):
        rounded = arr.astype(dtype).astype(np.float64)
    for x, how in ((arr, ""), (rounded, f" once rounded to {dtype.name} ({float(rounded)!r})")):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} overflows {dtype.name}: got {value!r}")
        too_low = (x <= low) if low_open else (x < low)
        too_high = (x >= high) if high_open else (x > high)
        if too_low.any() or too_high.any():
            raise ValueError(
                f"{name} must lie in {_interval(low, high, low_open, high_open)}{how}, got {value!r}"
            )


def check_non_negative(name: str, value: Any, *, schedule_ok: bool = False) -> None:
    """``value >= 0`` (learning rates, ε, weight decay)."""
    check_range(name, value, 0.0, schedule_ok=schedule_ok)


def check_decay(name: str, value: Any) -> None:
    """An exponential decay rate ``0 <= value < 1`` (Adam's β1 and β2), also after rounding."""
    check_range(name, value, 0.0, 1.0, high_open=True)


def check_positive(name: str, value: Any) -> None:
    """``value > 0`` and a normal number once rounded (AdaX's β2: a subnormal loses its digits)."""
    check_range(name, value, 0.0, low_open=True)
    arr = _concrete_values(name, value)
    tiny = float(np.finfo(default_float()).tiny)
    if arr is not None and float(arr) < tiny:
        raise ValueError(f"{name} must be at least {tiny!r} (the smallest normal {default_float().name}), "
                         f"got {value!r}")


def evaluate(name: str, value: ScalarOrSchedule, step: Array, dtype=jnp.float32) -> Array:
    """The value of a hyperparameter at ``step`` (steps already taken), as a scalar of ``dtype``.

    Schedules are called with ``step``; numbers and arrays are cast to ``dtype`` (the compute dtype,
    at least float32, so that bf16 parameters never lower the precision of a hyperparameter). A value
    or schedule result that is not a scalar raises ``ValueError`` naming ``name``.
    """
    if is_schedule(value):
        value = value(step)
    check_scalar(name, value)
    return jnp.asarray(value, dtype)


class PerDtype:
    """A hyperparameter's value at one step, evaluated once per compute dtype however many leaves ask.

    Example:
      >>> import jax.numpy as jnp
      >>> lr = PerDtype("learning_rate", 1e-3, jnp.asarray(0))
      >>> float(lr(jnp.float32))
      0.0010000000474974513
    """

    def __init__(self, name: str, value: ScalarOrSchedule, step: Array):
        self.name, self.value, self.step = name, value, step
        self._cache: dict = {}

    def __call__(self, dtype) -> Array:
        key = jnp.dtype(dtype)
        if key not in self._cache:
            self._cache[key] = evaluate(self.name, self.value, self.step, key)
        return self._cache[key]


def check_dtype(name: str, value: Any) -> None:
    """``None`` or something ``jnp.dtype`` accepts (``mu_dtype``, ``nu_dtype``); ``ValueError`` otherwise."""
    if value is None:
        return
    # A number, an array or a schedule is a hyperparameter in the wrong position, not a dtype.
    if isinstance(value, (int, float, complex, bool, jax.Array, np.ndarray)) or is_schedule(value):
        raise ValueError(f"{name} must be a dtype or None, got {value!r}")
    try:
        jnp.dtype(value)
    except TypeError:
        raise ValueError(f"{name} must be a dtype or None, got {value!r}") from None

