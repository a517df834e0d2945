r"""Weight decay: adding :math:`\lambda\theta` to the update, before or after the preconditioner.

Coupled L2 regularisation and decoupled weight decay are the same addition placed differently (Loshchilov
& Hutter, 2019): before the moment estimates the decay passes through the preconditioner (L2, PyTorch's
``Adam(weight_decay=...)``); after them, and before the learning rate, it does not (AdamW, optax's
``adamw``). :func:`add_decayed_weights` is that addition; :func:`add_l2` is the same block under the name
its coupled use goes by; :func:`decoupled_weight_decay` subtracts :math:`\gamma\lambda\theta` after the
learning rate, for decay scaled by another rate than the optimizer's or by none. Each takes a ``mask``
choosing which parameters decay (a tree of booleans like the parameters, or a callable
``params -> such a tree``), and a weight decay that may be a schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.core import counting, hyperparams, numerics, trees


def decay_block(
    who: str, weight_decay: Any, rule: Callable[[Any, Any, Any], Any]
) -> optax.GradientTransformationExtraArgs:
    """A stepped weight-decay block: ``rule(updates, params, value)`` gives the new updates, where
    ``value(name, v)`` is the hyperparameter ``v`` at this update
    (:func:`adaptx.core.counting.hyperparameter`).

    What every decay shares: no state of its own (``optax.EmptyState``), the step number from the chain,
    the arithmetic skipped for a Python 0 (the state is the same either way), and a clear error when the
    parameters are not passed to ``update``.
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        counting.step_of(extra_args, who)  # inside a chain, even for a Python 0
        if hyperparams.is_python_zero(weight_decay):
            return updates, state
        if params is None:
            raise ValueError(f"{who} needs the current parameters: call update(updates, state, params)")

        def value(name, v):
            return counting.hyperparameter(extra_args, who, name, v)

        return rule(updates, params, value), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _stepped_decay(
    who: str, weight_decay: Any, learning_rate: Any, sign: int, mask: Any
) -> optax.GradientTransformationExtraArgs:
    """``u + sign * γ_t λ_t θ`` on the masked leaves (γ = 1 when ``learning_rate`` is ``None``)."""

    def rule(updates, params, value):
        wd = value("weight_decay", weight_decay)
        lr = None if learning_rate is None else value("learning_rate", learning_rate)
        p_leaves = trees.leaves_like(who, updates, params, "parameters")
        decide = mask(params) if callable(mask) else mask
        flags = [True] * len(p_leaves) if decide is None else trees.leaves_like(who, updates, decide, "mask")
        u_leaves, treedef = jax.tree.flatten(updates)

        def leaf(u, p, decays):
            static = isinstance(decays, (bool, np.bool_))
            if static and not decays:
                return u
            trees.check_shape(who, u, p, "parameter")
            c = numerics.compute_dtype(u.dtype, p.dtype)
            rate = wd(c) if lr is None else wd(c) * lr(c)
            step = sign * rate * numerics.cast_state(p, c)
            if not static:  # a boolean array (traced, or a Groups flag)
                step = step * decays
            # The parameter's dtype wins over a narrower gradient's (bf16 gradients on float32 θ).
            return (numerics.cast_state(u, c) + step).astype(jnp.result_type(u.dtype, p.dtype))

        return treedef.unflatten([leaf(u, p, f) for u, p, f in zip(u_leaves, p_leaves, flags, strict=True)])

    return decay_block(who, weight_decay, rule)


def add_decayed_weights(
    weight_decay: Any, *, mask: Any | Callable[[Any], Any] = None
) -> optax.GradientTransformationExtraArgs:
    r"""Add :math:`\lambda_t\theta` to the update.

    .. math::
        u \leftarrow u + \lambda_t \theta .

    Placed before the moment estimates it is coupled L2 (:func:`add_l2`); placed after them and before
    :func:`adaptx.scale_by_learning_rate` it is decoupled weight decay as in ``optax.adamw``:
    :math:`\theta_t = \theta_{t-1} - \gamma_t(\text{step} + \lambda_t\theta_{t-1})`.

    Args:
      weight_decay: λ ``>= 0``, a number, a scalar array or an optax schedule. A Python 0 skips the
        arithmetic (the state is the same either way).
      mask: which parameters decay: a tree of booleans like the parameters, or a callable returning one.
        ``None`` decays all.

    Example:
      >>> import adaptx, optax
      >>> opt = adaptx.chain(adaptx.scale_by_adam(), adaptx.add_decayed_weights(1e-2),
      ...                    adaptx.scale_by_learning_rate(1e-3))
    """
    hyperparams.check_non_negative("weight_decay", weight_decay, schedule_ok=True)
    return counting.counted(_stepped_decay("adaptx.add_decayed_weights", weight_decay, None, +1, mask))


def add_l2(
    weight_decay: Any, *, mask: Any | Callable[[Any], Any] = None
) -> optax.GradientTransformationExtraArgs:
    r"""Coupled L2 regularisation: add :math:`\lambda\theta` to the gradient.

    .. math::
        g \leftarrow g + \lambda_t \theta .

    :func:`add_decayed_weights` under the name of its coupled use: place it *before* the moment
    estimates (PyTorch's ``Adam(weight_decay=...)``, the AdaX authors' AdaX).

    Args:
      weight_decay: λ ``>= 0``, a number, a scalar array or an optax schedule.
      mask: which parameters decay (tree of booleans or callable), ``None`` for all.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.add_l2(5e-4), adaptx.scale_by_adax(), optax.scale(-1.5e-3))
    """
    hyperparams.check_non_negative("weight_decay", weight_decay, schedule_ok=True)
    return counting.counted(_stepped_decay("adaptx.add_l2", weight_decay, None, +1, mask))


def decoupled_weight_decay(
    weight_decay: Any,
    learning_rate: Any = None,
    *,
    mask: Any | Callable[[Any], Any] = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Decoupled weight decay applied after the learning rate: subtract :math:`\gamma_t\lambda_t\theta`.

    .. math::
        u \leftarrow u - \gamma_t \lambda_t \theta_{t-1}, \qquad
        u \leftarrow u - \lambda_t \theta_{t-1} \quad\text{(``learning_rate=None``: labml's "absolute")}.

    Place it *after* the learning-rate scaling. With γ the optimizer's own learning rate this is AdamW
    (prefer :func:`add_decayed_weights` before the learning rate then, which evaluates γ once);
    this block serves decay scaled by another rate, or by none.

    Args:
      weight_decay: λ ``>= 0``, a number, a scalar array or an optax schedule.
      learning_rate: γ scaling the decay (number, array or schedule), or ``None`` for none.
      mask: which parameters decay (tree of booleans or callable), ``None`` for all.

    Example:
      >>> import adaptx, optax
      >>> opt = adaptx.chain(adaptx.scale_by_adam(), adaptx.scale_by_learning_rate(1e-3),
      ...                    adaptx.decoupled_weight_decay(1e-2))
    """
    hyperparams.check_non_negative("weight_decay", weight_decay, schedule_ok=True)
    if learning_rate is not None:
        hyperparams.check_non_negative("learning_rate", learning_rate, schedule_ok=True)
    return counting.counted(
        _stepped_decay("adaptx.decoupled_weight_decay", weight_decay, learning_rate, -1, mask)
    )
