"""The learning rate: the last scaling of an update, constant or scheduled."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptx.core import counting, hyperparams, numerics

Array = jax.Array


class ScaleByLearningRateState(NamedTuple):
    """State of :func:`scale_by_learning_rate`: the block's own counter, or ``None`` in a chain."""

    count: Array | None


def scale_by_learning_rate(
    learning_rate: Any, *, flip_sign: bool = True, shared_count: bool = False
) -> optax.GradientTransformationExtraArgs:
    r"""Multiply updates by :math:`-\gamma_t` (a descent step).

    .. math::
        u \leftarrow -\gamma_t\, u, \qquad \gamma_t = \text{schedule}(t - 1) \text{ or the constant } \gamma.

    The schedule is evaluated at the number of steps already taken (0 for the first update), as a
    PyTorch LR scheduler stepped once per optimizer step. γ is applied in float32 (or float64 for
    float64 parameters) and the product cast back to the update's dtype.

    Args:
      learning_rate: γ ``>= 0``: a number, an array (may be traced) or an optax schedule.
      flip_sign: multiply by :math:`-\gamma` (default) rather than :math:`\gamma`.
      shared_count: use the step counter of an enclosing :func:`adaptx.chain`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_adam(), adaptx.scale_by_learning_rate(
      ...     optax.cosine_decay_schedule(1e-3, 1000)))
    """
    hyperparams.check_non_negative("learning_rate", learning_rate, schedule_ok=True)
    sign = -1 if flip_sign else 1
    who = "adaptx.scale_by_learning_rate"

    def init_fn(params):
        del params
        return ScaleByLearningRateState(count=counting.init(shared_count))

    def update_fn(updates, state, params=None, **extra_args):
        del params
        t, count = counting.next_step(shared_count, state.count, extra_args, who)

        def leaf(u):
            c = numerics.compute_dtype(u.dtype)
            lr = hyperparams.evaluate(learning_rate, t - 1, c)
            return (sign * lr * u.astype(c)).astype(u.dtype)

        return jax.tree.map(leaf, updates), ScaleByLearningRateState(count=count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
    if isinstance(decay, (int, float)) and decay == 0:
        return learning_rate

    def schedule(step):
        lr = learning_rate(step) if callable(learning_rate) else learning_rate
        s = jnp.asarray(step, jnp.result_type(float))  # float64 under jax_enable_x64, else float32
        return lr / (1 + s * decay)

    return schedule
