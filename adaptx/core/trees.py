"""Mapping per-leaf math over gradient trees, with errors that say what went wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def map_leaves(who: str, fn: Callable, updates: Any, *states: Any) -> Any:
    """``jax.tree.map(fn, updates, *states)`` that first checks the trees fit together.

    ``updates`` gives the structure; each state tree must have it as a prefix (a state may hold a small
    NamedTuple per parameter). A mismatch, usually gradients of a different model than the one the state
    was initialised with, raises ``ValueError`` naming the transformation and both structures.
    """
    for state in states:
        try:
            jax.tree.map(lambda *_: None, updates, state)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{who}: the gradient tree does not match the optimizer state (was the state "
                f"initialised from other parameters?)\n  gradients: {jax.tree.structure(updates)}\n"
                f"  state:     {jax.tree.structure(state)}"
            ) from err
    return jax.tree.map(fn, updates, *states)


def check_shape(who: str, update: Any, like: Any) -> None:
    """Raise ``ValueError`` when a gradient leaf and its state leaf differ in shape (no broadcasting)."""
    if update.shape != like.shape:
        raise ValueError(
            f"{who}: a gradient of shape {update.shape} does not match its optimizer state of shape "
            f"{like.shape}"
        )


def unzip(tree: Any, like: Any, n: int) -> tuple:
    """Split a tree whose leaves (at the positions of ``like``'s leaves) are ``n``-tuples into n trees."""
    treedef = jax.tree.structure(like)
    parts = treedef.flatten_up_to(tree)
    return tuple(treedef.unflatten([p[i] for p in parts]) for i in range(n))
