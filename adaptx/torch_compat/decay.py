r"""PyTorch's decoupled weight decay, rounded as its in-place operations round.

``torch.optim.AdamW`` shrinks θ with ``param.mul_(1 - lr * weight_decay)`` and then adds the step with
``param.addcdiv_(...)``: two operations on θ, each rounded to θ's dtype, and a factor :math:`1-\gamma\lambda`
itself rounded before it multiplies. The generic :func:`adaptx.add_decayed_weights` adds
:math:`\lambda\theta` to the update instead, one rounding in all. The differences are half an ulp per step:
the rounded factor errs the same way at every step (over 1000 float32 steps ~3e-5 of the movement), and
the extra rounding of θ is a random walk of ~16 ulps (up to 1.3e-5 of the movement) — both larger than
the 1e-5 parity budget, so :mod:`adaptx.torch_compat` reproduces them here.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from adaptx.core import hyperparams, numerics, trees
from adaptx.torch_compat.inplace import Parts, is_parts, opaque_round
from adaptx.transforms.weight_decay import decay_block


def stepped_decay(
    weight_decay: Any,
    learning_rate: Any,
    *,
    as_factor: bool,
    on: str = "previous",
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Decoupled decay applied to θ in PyTorch's order, as the update that reproduces it.

    .. math::
        \theta' = \mathrm{fl}(\mathrm{fl}(\theta\,\mathrm{fl}(1-\gamma\lambda)) + u)
        \;(\text{as\_factor}), \quad
        \mathrm{fl}(\mathrm{fl}(\theta - \gamma\lambda\theta) + u), \quad
        \text{or, } on=\text{"updated"}: \mathrm{fl}(d(\mathrm{fl}(\theta + u))),

    returned as :math:`\theta' - \theta` (exact whenever θ changes by less than a factor 2, so
    ``optax.apply_updates`` lands on θ'). γ = 1 when ``learning_rate`` is ``None`` (labml's absolute
    decay). An update given in :class:`Parts` gets the decay as its first part. Reads the step number
    from its chain; place it last, after the learning rate.
    """
    who = "adaptx.torch_compat (decoupled weight decay)"
    if on not in ("previous", "updated"):
        raise ValueError(f"on must be 'previous' or 'updated', got {on!r}")
    hyperparams.check_non_negative("weight_decay", weight_decay, schedule_ok=True)

    def rule(updates, params, value):
        wd = value("weight_decay", weight_decay)
        lr = None if learning_rate is None else value("lr", learning_rate)
        decide = mask(params) if callable(mask) else mask
        u_leaves, treedef = jax.tree.flatten(updates, is_leaf=is_parts)
        p_leaves = trees.leaves_like(who, jax.tree.map(lambda _: 0, updates, is_leaf=is_parts), params,
                                     "parameters")
        flags = [True] * len(p_leaves) if decide is None else treedef.flatten_up_to(decide)

        def leaf(u, p, decays):
            if not decays:
                return u
            like = u.parts[0] if isinstance(u, Parts) else u
            trees.check_shape(who, like, p, "parameter")
            c = numerics.compute_dtype(like.dtype, p.dtype)
            rate = wd(c) if lr is None else wd(c) * lr(c)
            pc = numerics.cast_state(p, c)

            def rounded(x):  # θ's dtype here, out of reach of multiply-add contraction
                return numerics.cast_state(opaque_round(x, p.dtype), c)

            def decay(x):
                return x * (1 - rate) if as_factor else x - rate * x

            if isinstance(u, Parts):
                if on != "previous":
                    raise ValueError(f"{who}: on='updated' cannot be combined with an update in parts")
                return Parts(((rounded(decay(pc)) - pc).astype(p.dtype), *u.parts))
            uc = numerics.cast_state(u, c)
            theta = rounded(rounded(decay(pc)) + uc) if on == "previous" else rounded(decay(rounded(pc + uc)))
            return (theta - pc).astype(jnp.result_type(u.dtype, p.dtype))

        return treedef.unflatten([leaf(u, p, f) for u, p, f in zip(u_leaves, p_leaves, flags, strict=True)])

    return decay_block(who, weight_decay, rule)
