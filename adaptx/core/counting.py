"""One step counter per optimizer.

Every adaptx block that needs the step number (bias corrections, schedules) can either keep its own
counter, which makes it usable on its own inside a plain ``optax.chain``, or read the counter of the
enclosing :func:`adaptx.chain`, which owns a single saturating int32 counter for the whole optimizer and
hands the current step number ``t`` (1 for the first update) to every block as the extra argument
``count``. The aliases are built the second way, so an ``adamw`` state holds exactly one counter.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from adaptx.core import numerics

Array = jax.Array


class ChainState(NamedTuple):
    """State of :func:`chain`: the shared step counter and the states of the chained transforms."""

    count: Array
    inner: Any


def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    r"""Chain transformations around one shared step counter.

    Works like ``optax.chain``, and in addition keeps a saturating int32 counter
    :math:`t \leftarrow \min(t + 1, 2^{31} - 1)` that is passed to every transform as the keyword
    argument ``count`` (the number of this update, 1-based). adaptx blocks built with
    ``shared_count=True`` read it; other optax transforms ignore it.

    Args:
      *transforms: the transformations, applied in order.

    Example:
      >>> import adaptx, optax
      >>> opt = adaptx.chain(
      ...     adaptx.scale_by_adam(shared_count=True),
      ...     adaptx.scale_by_learning_rate(1e-3, shared_count=True),
      ... )
    """
    inner = optax.chain(*transforms)

    def init_fn(params):
        return ChainState(count=numerics.init_count(), inner=inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        count = numerics.increment(state.count)
        extra_args["count"] = count
        updates, inner_state = inner.update(updates, state.inner, params, **extra_args)
        return updates, ChainState(count=count, inner=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def init(shared_count: bool) -> Array | None:
    """The counter a block stores: its own int32 zero, or ``None`` when it reads the chain's."""
    return None if shared_count else numerics.init_count()


def next_step(
    shared_count: bool, count: Array | None, extra_args: dict, who: str
) -> tuple[Array, Array | None]:
    """The step number ``t`` of this update and the counter value the block should store.

    A block with its own counter increments it; a block with ``shared_count=True`` takes ``t`` from the
    ``count`` extra argument and raises a ``ValueError`` if no enclosing :func:`chain` provided one.
    """
    if shared_count:
        if "count" not in extra_args:
            raise ValueError(
                f"{who} was built with shared_count=True and needs the step count of an enclosing "
                "adaptx.chain; wrap it in adaptx.chain(...) or build it with shared_count=False"
            )
        return extra_args["count"], None
    t = numerics.increment(count)
    return t, t
