r"""Weight decay, coupled (L2 added to the gradient) and decoupled (shrinking the parameters).

The two are different algorithms for adaptive methods (Loshchilov & Hutter, 2019): coupled L2 passes
through the preconditioner, decoupled decay does not. Both take a ``mask`` choosing which parameters decay
(a tree of booleans like the parameters, or a callable ``params -> such a tree``), and a weight decay that
may be a schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from adaptx.core import counting, hyperparams, numerics, trees
from adaptx.transforms.inplace import Parts, is_parts, opaque_round

Array = jax.Array


class WeightDecayState(NamedTuple):
    """State of the weight-decay transforms: the block's own counter, or ``None`` in a chain."""

    count: Array | None


def _weight_decay(
    who: str,
    weight_decay: Any,
    learning_rate: Any,
    sign: int,
    mask: Any,
    shared_count: bool,
    as_factor: bool = False,
    on: str = "previous",
    inplace: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """``u + sign * γ_t λ_t θ`` on the masked leaves (γ = 1 when ``learning_rate`` is ``None``).

    ``on="updated"`` decays ``θ + u`` instead of ``θ``; ``as_factor`` writes the decay as
    ``θ (1 - γλ) - θ`` with the factor rounded to the compute dtype; ``inplace`` rounds θ after the decay
    and after the update, as PyTorch's in-place operations do (see :func:`decoupled_weight_decay`).
    """
    if on not in ("previous", "updated"):
        raise ValueError(f"on must be 'previous' or 'updated', got {on!r}")
    hyperparams.check_non_negative("weight_decay", weight_decay, schedule_ok=True)
    if learning_rate is not None:
        hyperparams.check_non_negative("learning_rate", learning_rate, schedule_ok=True)

    def init_fn(params):
        del params
        return WeightDecayState(count=counting.init(shared_count))

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"{who} needs the current parameters: call update(updates, state, params)")
        t, count = counting.next_step(shared_count, state.count, extra_args, who)
        decide = mask(params) if callable(mask) else mask

        def leaf(u, p, decays=True):
            if not decays:
                return u
            like = u.parts[0] if isinstance(u, Parts) else u
            trees.check_shape(who, like, p)
            c = numerics.compute_dtype(like.dtype, p.dtype)
            rate = hyperparams.evaluate(weight_decay, t - 1, c)
            if learning_rate is not None:
                rate = rate * hyperparams.evaluate(learning_rate, t - 1, c)
            pc = p.astype(c)

            def decay(x):  # x after the decay alone
                if as_factor:
                    # θ·(1 − γλ): the factor is rounded once before it multiplies, as in PyTorch.
                    return x * (1 + sign * rate)
                return x + sign * rate * x

            if isinstance(u, Parts):
                # An update in parts (adaptx.transforms.inplace): the decay goes first, as its own part;
                # the closing apply_in_sequence block does the rounding after each part.
                if on != "previous":
                    raise ValueError(f"{who}: on='updated' cannot be combined with an update in parts")
                delta = opaque_round(decay(pc), p.dtype).astype(c) - pc  # exact (Sterbenz)
                return Parts((delta.astype(p.dtype),) + tuple(u.parts))
            uc = u.astype(c)
            if inplace:
                # PyTorch's in-place sequence on θ: each operation rounds θ to its dtype. The update is
                # the difference to the result, exact (Sterbenz) whenever θ changes by less than a
                # factor 2, so optax.apply_updates lands on the same float as PyTorch.
                def rounded(x):
                    # Round to θ's dtype *here*, out of reach of XLA's multiply-add contraction.
                    return opaque_round(x, p.dtype).astype(c)

                if on == "previous":
                    theta = rounded(rounded(decay(pc)) + uc)
                else:
                    theta = rounded(decay(rounded(pc + uc)))
                return (theta - pc).astype(u.dtype)
            base = pc if on == "previous" else pc + uc
            if as_factor:
                return (uc + (decay(base) - base)).astype(u.dtype)
            return (uc + sign * rate * base).astype(u.dtype)

        if any(is_parts(x) for x in jax.tree.leaves(updates, is_leaf=is_parts)):
            trees.map_leaves(who, lambda *_: None, params, updates)  # same structure check, reversed
            args = (updates, params) if decide is None else (updates, params, decide)
            new = jax.tree.map(leaf, *args, is_leaf=is_parts)
        elif decide is None:
            new = trees.map_leaves(who, leaf, updates, params)
        else:
            new = trees.map_leaves(who, leaf, updates, params, decide)
        return new, WeightDecayState(count=count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def add_l2(
    weight_decay: Any,
    *,
    mask: Any | Callable[[Any], Any] = None,
    shared_count: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Coupled L2 regularisation: add :math:`\lambda\theta` to the gradient.

    .. math::
        g \leftarrow g + \lambda_t \theta .

    Place it *before* the moment estimates (PyTorch's ``Adam(weight_decay=...)``, the AdaX authors' AdaX).

    Args:
      weight_decay: λ ``>= 0``, a number, an array or an optax schedule.
      mask: which parameters decay: a tree of Python booleans like the parameters, or a callable
        returning one. ``None`` decays all. Masks are static: they choose the program, not a value in it.
      shared_count: use the step counter of an enclosing :func:`adaptx.chain` (only schedules need it).

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.add_l2(5e-4), adaptx.scale_by_adax(), optax.scale(-1.5e-3))
    """
    return _weight_decay("adaptx.add_l2", weight_decay, None, +1, mask, shared_count)


def decoupled_weight_decay(
    weight_decay: Any,
    learning_rate: Any = None,
    *,
    mask: Any | Callable[[Any], Any] = None,
    shared_count: bool = False,
    as_factor: bool = False,
    on: str = "previous",
    inplace: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Decoupled weight decay: shrink the parameters directly, outside the preconditioner.

    .. math::
        u \leftarrow u - \gamma_t \lambda_t \theta_{t-1} \quad\text{(PyTorch AdamW, AdaXW)}, \qquad
        u \leftarrow u - \lambda_t \theta_{t-1} \quad\text{(``learning_rate=None``: labml's "absolute")}.

    Place it *after* the learning-rate scaling, so that the applied update is
    :math:`\theta_t = \theta_{t-1} - \gamma_t(\text{step} + \lambda_t\theta_{t-1})`, PyTorch's
    :math:`\theta_{t-1}(1 - \gamma\lambda) - \gamma\,\text{step}`.

    Args:
      weight_decay: λ ``>= 0``, a number, an array or an optax schedule.
      learning_rate: γ scaling the decay (number, array or schedule, evaluated like the optimizer's), or
        ``None`` for decay not scaled by the learning rate.
      mask: which parameters decay (tree of booleans or callable), ``None`` for all.
      shared_count: use the step counter of an enclosing :func:`adaptx.chain`.
      as_factor: write the decay as :math:`\theta_{t-1}(1 - \gamma_t\lambda_t) - \theta_{t-1}` with the
        factor :math:`1 - \gamma\lambda` rounded to the compute dtype first, PyTorch's
        ``param.mul_(1 - lr * weight_decay)``. In float32 that factor is off by up to half an ulp of 1
        (6e-8), the same error at every step: over 1000 steps it moves θ by ~3e-5 relative to what
        :math:`-\gamma\lambda\theta` gives, which is larger than the 1e-5 parity budget.
      on: ``"previous"`` decays :math:`\theta_{t-1}` (PyTorch, AdaXW); ``"updated"`` decays the already
        updated :math:`\theta_{t-1} + u` (HuggingFace's legacy ``AdamW``, which applies the decay after
        the Adam step): :math:`u \leftarrow u - \gamma_t\lambda_t(\theta_{t-1} + u)`.
      inplace: reproduce the rounding of PyTorch's two in-place operations on θ (the decay, then the
        optimizer step, or the reverse with ``on="updated"``): θ is rounded to its dtype after each, and
        the returned update is the difference to the result, which ``optax.apply_updates`` reproduces
        exactly. The additive form rounds only once per step; the extra rounding PyTorch does is
        half an ulp of θ, at random, every step — a random walk of ~16 ulps over 1000 steps, measured
        at up to 1.3e-5 of the movement of an AdamW run in float32. Place the block last.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_adam(), adaptx.scale_by_learning_rate(1e-3),
      ...                   adaptx.decoupled_weight_decay(1e-2, learning_rate=1e-3))
    """
    return _weight_decay(
        "adaptx.decoupled_weight_decay", weight_decay, learning_rate, -1, mask, shared_count,
        as_factor=as_factor, on=on, inplace=inplace,
    )

