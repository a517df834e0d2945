"""One step counter per optimizer.

Bias corrections and schedules need the step number. optax gives every block that needs it a counter of
its own, so ``optax.adam`` with a schedule carries two. adaptx keeps exactly one: every block that needs
the step number is written as a *stepped* transformation, which reads the number of the current update
(``t``, 1 for the first) from the keyword argument ``count`` and stores no counter, and
:func:`chain` owns the single saturating int32 counter and passes it to each of them.

A public block such as :func:`adaptx.scale_by_adam` is its stepped transformation wrapped in a
one-element :func:`chain`, so it works on its own inside a plain ``optax.chain``. When such a block is
itself chained with :func:`chain`, the wrapper is taken off again: the blocks of a chain of chains share
the outermost counter, so ``optax.tree_utils.tree_get(state, "count")`` finds exactly one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from adaptx.core import hyperparams, numerics

Array = jax.Array

# The extra argument through which `chain` hands its blocks the memo of `hyperparameter`.
_VALUES = "adaptx_step_values"

# update function of a chain -> the stepped transformations it runs. Keyed weakly by the function object:
# a chain's entry lives exactly as long as the chain.
_STEPPED: weakref.WeakKeyDictionary[Callable, tuple] = weakref.WeakKeyDictionary()


class ChainState(NamedTuple):
    """State of :func:`chain`.

    Attributes:
      count: the number of updates taken (int32, saturating at 2**31 - 1).
      inner: the states of the chained transformations, a tuple in chain order.
    """

    count: Array
    inner: tuple


def stepped_parts(transform: optax.GradientTransformation) -> tuple:
    """The stepped transformations inside an adaptx chain, or ``(transform,)`` for anything else."""
    return _STEPPED.get(transform.update, (transform,))


def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    r"""Chain transformations around one shared step counter.

    Works like ``optax.chain``, and in addition keeps a saturating int32 counter
    :math:`t \leftarrow \min(t + 1, 2^{31} - 1)` that is passed to every transformation as the keyword
    argument ``count`` (the number of this update, 1-based). Other optax transformations ignore it.
    adaptx blocks and aliases given to ``chain`` drop their own counters and use this one, so the state
    of the result holds a single ``count``.

    Args:
      *transforms: the transformations, applied in order.

    Example:
      >>> import adaptx, optax
      >>> opt = adaptx.chain(optax.clip_by_global_norm(1.0), adaptx.scale_by_adam(),
      ...                    adaptx.scale_by_learning_rate(1e-3))
      >>> state = opt.init({"w": optax.tree.zeros_like({"w": 0.0})["w"]})
      >>> int(optax.tree_utils.tree_get(state, "count"))
      0
    """
    parts = tuple(p for t in transforms for p in stepped_parts(t))
    inner = optax.chain(*parts)

    def init_fn(params):
        return ChainState(count=numerics.init_count(), inner=inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        count = numerics.increment(state.count)
        extra = {**extra_args, "count": count, _VALUES: {}}
        updates, inner_state = inner.update(updates, state.inner, params, **extra)
        return updates, ChainState(count=count, inner=inner_state)

    register(update_fn, parts)
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def step_of(extra_args: dict, who: str) -> Array:
    """The number of the current update, ``t`` (1-based), passed by the enclosing :func:`chain`.

    Raises ``ValueError`` when a stepped transformation is called outside a chain (a private stepped
    transformation handed to ``optax.chain`` directly).
    """
    if "count" not in extra_args:
        raise ValueError(f"{who} needs the step count of an enclosing adaptx.chain; wrap it in adaptx.chain")
    return extra_args["count"]


def hyperparameter(extra_args: dict, who: str, name: str, value: Any) -> hyperparams.PerDtype:
    """The hyperparameter ``value`` (a number, an array or a schedule) at the current update, evaluated at
    the number of steps already taken (``t - 1``, as a PyTorch LR scheduler stepped once per step), once
    per compute dtype.

    The blocks of one :func:`chain` update share these values: a schedule read by two blocks (the
    learning rate, and a decoupled weight decay scaled by it) is evaluated once per step and dtype. The
    memo lives in the extra argument the chain passes with ``count`` and ends with the update.
    """
    t = step_of(extra_args, who)
    memo = extra_args.get(_VALUES)
    if memo is None or not hyperparams.is_schedule(value):
        return hyperparams.PerDtype(name, value, t - 1)
    if id(value) not in memo:  # the schedule is kept in the memo, so its id is not reused meanwhile
        memo[id(value)] = (value, hyperparams.PerDtype(name, value, t - 1))
    return memo[id(value)][1]


def counted(stepped: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """A stepped transformation with a counter of its own: the public form of a block."""
    return chain(stepped)


def register(update_fn: Callable, stepped: tuple) -> None:
    """Declare ``update_fn`` (of a transformation with its own counter) to run ``stepped``, so that
    :func:`chain` runs those instead and hands them its own counter."""
    _STEPPED[update_fn] = tuple(stepped)

