"""The learning rate: the last scaling of an update, constant or scheduled."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from adaptx.core import counting, hyperparams, numerics


def stepped_learning_rate(
    learning_rate: Any, *, flip_sign: bool = True, name: str = "learning_rate"
) -> optax.GradientTransformationExtraArgs:
    """:func:`scale_by_learning_rate` reading the step number from its chain; validates the rate under
    ``name`` (PyTorch's optimizers call it ``lr``)."""
    who = "adaptx.scale_by_learning_rate"
    hyperparams.check_non_negative(name, learning_rate, schedule_ok=True)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params
        lr = counting.hyperparameter(extra_args, who, name, learning_rate)

        def leaf(u):
            c = numerics.compute_dtype(u.dtype)
            gamma = -lr(c) if flip_sign else lr(c)
            return (gamma * numerics.cast_state(u, c)).astype(u.dtype)

        return jax.tree.map(leaf, updates), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_learning_rate(
    learning_rate: Any, *, flip_sign: bool = True
) -> optax.GradientTransformationExtraArgs:
    r"""Multiply updates by :math:`-\gamma_t` (a descent step).

    .. math::
        u \leftarrow -\gamma_t\, u, \qquad \gamma_t = \text{schedule}(t - 1) \text{ or the constant } \gamma.

    The schedule is evaluated at the number of steps already taken (0 for the first update), as a
    PyTorch LR scheduler stepped once per optimizer step, and once per step and compute dtype whatever
    the number of parameters. γ is applied in float32 (float64 for float64 parameters) and the product
    cast back to the update's dtype. The state is ``optax.EmptyState()``: the step number comes from
    the optimizer's one counter (:func:`adaptx.chain`).

    Args:
      learning_rate: γ ``>= 0``: a number, a scalar array (may be traced) or an optax schedule.
      flip_sign: multiply by :math:`-\gamma` (default) rather than :math:`\gamma`.

    Example:
      >>> import adaptx, optax
      >>> opt = adaptx.chain(adaptx.scale_by_adam(), adaptx.scale_by_learning_rate(
      ...     optax.cosine_decay_schedule(1e-3, 1000)))
    """
    return counting.counted(stepped_learning_rate(learning_rate, flip_sign=flip_sign))


def inverse_time_decay(learning_rate: Any, decay: Any) -> Any:
    r"""Adagrad's learning-rate decay as a schedule: :math:`\gamma_s = \gamma(s) / (1 + s \cdot d)`.

    ``s`` is the number of steps already taken (what :func:`scale_by_learning_rate` passes), so the
    t-th update uses :math:`\gamma / (1 + (t-1) d)`, PyTorch's ``Adagrad(lr_decay=d)``. ``learning_rate``
    may itself be a schedule; with ``decay == 0`` it is returned unchanged.

    Args:
      learning_rate: γ: a number, an array or a schedule.
      decay: d ``>= 0``.

    Example:
      >>> import adaptx
      >>> sched = adaptx.transforms.learning_rate.inverse_time_decay(1e-2, 1e-3)
      >>> round(float(sched(1000)), 6)
      0.005
    """
    hyperparams.check_non_negative("lr_decay", decay)
    hyperparams.check_non_negative("learning_rate", learning_rate, schedule_ok=True)
    if hyperparams.is_python_zero(decay):
        return learning_rate

    def schedule(step):
        lr = learning_rate(step) if hyperparams.is_schedule(learning_rate) else learning_rate
        s = jnp.asarray(step, jnp.result_type(float))  # float64 under jax_enable_x64, else float32
        return lr / (1 + s * decay)

    return schedule
