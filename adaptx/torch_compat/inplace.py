r"""Updates made of parts that PyTorch applies to θ one in-place operation at a time.

optax applies an update with one addition, :math:`\theta + u`, rounded once. Some PyTorch optimizers
change θ with several in-place operations per step, each rounded to θ's dtype: NAdam adds its gradient
term and its momentum term with two ``addcdiv_`` calls (after ``mul_(1 - lr * wd)`` with decoupled
decay). Each extra rounding moves θ by up to half an ulp, at random; over 1000 float32 steps that random
walk measured 0.9e-5 to 2e-5 of the parameter movement for NAdam, at the edge of the 1e-5 parity budget.

To reproduce it, a block may emit a :class:`Parts` per parameter (a tuple of updates, in the order
PyTorch applies them) instead of one array. Blocks that only scale updates (the learning rate) handle
it like any pytree; :func:`apply_in_sequence`, placed last, turns it into the single update
:math:`u = \mathrm{fl}(\ldots\mathrm{fl}(\mathrm{fl}(\theta + p_1) + p_2)\ldots) - \theta`, which
``optax.apply_updates`` lands on exactly (the difference is exact in floating point whenever θ changes
by less than a factor 2).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptx.core import numerics


class Parts(NamedTuple):
    """An update for one parameter given as parts applied in order, θ rounded after each."""

    parts: tuple


def is_parts(x: Any) -> bool:
    """``jax.tree`` ``is_leaf`` predicate: stop at :class:`Parts`."""
    return isinstance(x, Parts)


def opaque_round(x: jax.Array, dtype) -> jax.Array:
    """``x`` rounded to ``dtype`` at this point of the computation, whatever the compiler fuses.

    XLA contracts a multiply feeding an add into one fused multiply-add, which would skip a rounding
    PyTorch does (measured on XLA:CPU: 25% of θ·f + u differ by an ulp). A select on ``x == x`` is
    opaque to that contraction and changes no value (NaN stays NaN). A compiler could fold the select
    away, so ``tests/test_torch_blocks.py`` checks, with the compiler options users get, that the
    compiled program keeps it and that θ·f + u rounds twice. (``lax.optimization_barrier`` also blocks
    the contraction but measured 1.4e-5 of the movement from PyTorch's AdamW, against 0.7e-5 here: it
    also keeps XLA from contracting the products PyTorch's own kernels compute with one rounding.)
    """
    x = x.astype(dtype)
    return jnp.where(x == x, x, jnp.nan)


def sequence(theta: jax.Array, parts: tuple) -> jax.Array:
    """``θ + p1 + p2 + ...`` with θ rounded to its dtype after every addition, as in-place ops do."""
    c = numerics.compute_dtype(theta.dtype, *[p.dtype for p in parts])
    out = theta.astype(c)
    for p in parts:
        out = opaque_round(out + p.astype(c), theta.dtype).astype(c)
    return out


def apply_in_sequence() -> optax.GradientTransformationExtraArgs:
    r"""Collapse :class:`Parts` updates into the one update that reproduces their in-place application.

    .. math::
        \theta_0 = \theta, \quad \theta_k = \mathrm{fl}(\theta_{k-1} + p_k), \qquad u = \theta_K - \theta .

    Leaves that are plain arrays pass through unchanged. Place it last in the chain; it needs the
    parameters (``update(updates, state, params)``).

    Example:
      >>> import jax.numpy as jnp
      >>> from adaptx.torch_compat import inplace
      >>> tx = inplace.apply_in_sequence()
      >>> theta = jnp.ones(3)
      >>> u, _ = tx.update(inplace.Parts((jnp.full(3, 1e-8), jnp.full(3, 1e-8))), tx.init(theta), theta)
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("apply_in_sequence needs the current parameters: update(updates, state, params)")

        def leaf(u, p):
            if not isinstance(u, Parts):
                return u
            c = numerics.compute_dtype(p.dtype)
            return (sequence(p, u.parts) - p.astype(c)).astype(p.dtype)

        return jax.tree.map(leaf, updates, params, is_leaf=is_parts), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
