r"""PyTorch's complex parameters: each complex number is two real parameters (``torch.view_as_real``).

``torch.optim``'s Adam family steps a complex parameter as the real array of its real and imaginary
parts: the second moment of :math:`g = a + ib` is kept per part, :math:`(\text{EMA}(a^2), \text{EMA}(b^2))`,
not as optax's (and adaptx's generic) :math:`\text{EMA}(|g|^2)`. :func:`as_real_pairs` wraps an optimizer
so that it sees complex leaves the same way. Its state keeps the shape and dtype of the parameters, as
PyTorch's does: a moment of a complex parameter is a complex array whose real and imaginary parts are the
moments of the two parts. Trees without complex leaves go through untouched.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def _has_complex(tree: Any) -> bool:
    return any(jnp.iscomplexobj(x) for x in jax.tree.leaves(tree))


def _to_pairs(x: Any) -> Any:
    return jnp.stack([jnp.real(x), jnp.imag(x)], axis=-1) if jnp.iscomplexobj(x) else x


def _from_pairs(x: Any) -> Any:
    return jax.lax.complex(x[..., 0], x[..., 1])


def _convert_state(state: Any, params: Any, to_complex: bool) -> Any:
    """Convert every parameter-shaped tree in ``state`` at the positions of complex parameters."""
    treedef = jax.tree.structure(params)
    p_leaves = treedef.flatten_up_to(params)
    pairs = [_to_pairs(p) for p in p_leaves]

    def like_params(sub: Any) -> bool:
        if jax.tree.structure(sub) != treedef:
            return False
        want = pairs if to_complex else p_leaves
        subs = treedef.flatten_up_to(sub)
        return all(getattr(x, "shape", None) == w.shape for x, w in zip(subs, want, strict=True))

    def convert(sub: Any) -> Any:
        if not like_params(sub):
            return sub
        leaves = treedef.flatten_up_to(sub)
        out = [
            (_from_pairs(x) if to_complex else _to_pairs(x)) if jnp.iscomplexobj(p) else x
            for x, p in zip(leaves, p_leaves, strict=True)
        ]
        return treedef.unflatten(out)

    return jax.tree.map(convert, state, is_leaf=like_params)


def as_real_pairs(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    r"""Run ``inner`` on complex parameters as PyTorch does: on the real view of each.

    .. math::
        \theta = a + ib \;\mapsto\; (a, b), \qquad u = u_a + i\,u_b .

    Args:
      inner: the optimizer (a :mod:`adaptx.torch_compat` one).

    Example:
      >>> import jax.numpy as jnp
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adam(lr=0.1)   # already wrapped
      >>> u, _ = opt.update(jnp.asarray(0.3 + 0.4j), opt.init(jnp.asarray(1 + 1j)), jnp.asarray(1 + 1j))
      >>> [round(float(u.real), 6), round(float(u.imag), 6)]   # each part steps like a real parameter
      [-0.1, -0.1]
    """

    def init_fn(params):
        if not _has_complex(params):
            return inner.init(params)
        return _convert_state(inner.init(jax.tree.map(_to_pairs, params)), params, to_complex=True)

    def update_fn(updates, state, params=None, **extra_args):
        if not _has_complex(updates):
            return inner.update(updates, state, params, **extra_args)
        real_state = _convert_state(state, updates, to_complex=False)
        real_params = None if params is None else jax.tree.map(_to_pairs, params)
        u, new_state = inner.update(jax.tree.map(_to_pairs, updates), real_state, real_params, **extra_args)
        u = jax.tree.map(lambda x, g: _from_pairs(x) if jnp.iscomplexobj(g) else x, u, updates)
        return u, _convert_state(new_state, updates, to_complex=True)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
