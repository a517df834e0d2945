"""Matching optimizer state and parameters to a gradient tree, with errors that say what went wrong."""

from __future__ import annotations

from typing import Any

import jax


def _mismatch(who: str, updates: Any, other: Any, what: str) -> ValueError:
    return ValueError(
        f"{who}: the gradient tree does not match the {what} (was the state initialised from other "
        f"parameters?)\n  gradients: {jax.tree.structure(updates)}\n  {what}: {jax.tree.structure(other)}"
    )


def leaves_like(who: str, updates: Any, tree: Any, what: str = "optimizer state") -> list:
    """The leaves of ``tree`` at the positions of the leaves of ``updates``, in order.

    ``tree`` must have ``updates``' structure (a state field, the parameters, a mask). Raises
    ``ValueError`` naming ``who`` otherwise: a gradient tree shallower or deeper than the parameters
    is a mismatch, not a broadcast.
    """
    treedef = jax.tree.structure(updates)
    try:
        leaves = treedef.flatten_up_to(tree)
    except (ValueError, TypeError):
        raise _mismatch(who, updates, tree, what) from None
    if len(jax.tree.leaves(tree)) != treedef.num_leaves:
        raise _mismatch(who, updates, tree, what)
    return leaves


def check_shape(who: str, update: Any, like: Any, what: str = "optimizer state") -> None:
    """Raise ``ValueError`` when a gradient leaf and its state leaf differ in shape (no broadcasting)."""
    if update.shape != like.shape:
        raise ValueError(
            f"{who}: a gradient of shape {update.shape} does not match its {what} of shape {like.shape}"
        )
