"""The state of :func:`adaptx.scale_by_moments`: one NamedTuple whose fields are the pieces' fields.

A moment block keeps whatever its pieces declare (:mod:`adaptx.moments.base`): Adam keeps ``mu`` and
``nu``; AMSGrad adds ``nu_max``; AdaX keeps ``mu``, ``nu`` and ``nu_residual``; NAdam adds the scalar
``mu_product``. Each field is one tree shaped like the parameters (or one scalar), as in optax, so
``state.nu`` is the second moment and ``optax.tree_utils.tree_get(state, "nu_max")`` finds AMSGrad's
maximum. The class for a set of fields is made once and named after them
(``MomentsState__mu__nu__nu_max``); every such class is a subclass of :class:`MomentsState`, and the
module makes it again on demand, so pickled states load in a fresh process.
"""

from __future__ import annotations

import collections
import functools

_PREFIX = "MomentsState__"


class MomentsState:
    """Base of the state classes of :func:`adaptx.scale_by_moments` (``isinstance`` checks)."""

    __slots__ = ()

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self, strict=True))
        return f"MomentsState({inner})"


@functools.cache
def state_class(fields: tuple[str, ...]) -> type:
    """The NamedTuple class with exactly ``fields`` (the same class for the same fields)."""
    if len(set(fields)) != len(fields):
        raise ValueError(f"the pieces of a moment block declare the same field twice: {fields}")
    name = _PREFIX + "__".join(fields)
    base = collections.namedtuple(name, fields)
    cls = type(name, (MomentsState, base), {"__slots__": (), "__module__": __name__})
    return cls


def __getattr__(name: str) -> type:
    # Unpickling looks a class up by its module and name: make it if this process has not yet.
    if name.startswith(_PREFIX):
        return state_class(tuple(name[len(_PREFIX):].split("__")))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
