r"""Run an elementwise optimizer on (shape, dtype) groups of parameters instead of leaf by leaf.

Every adaptx block computes each parameter's update from that parameter's own gradient, state and value,
plus scalars shared by the whole step (bias corrections, learning rate). Nothing in the arithmetic needs
the parameters to be separate arrays, so :func:`grouped` hands the *same* inner transformation stacked
buffers instead: the leaves of the parameter tree that share a shape, a dtype and a weight-decay mask
value are stacked on a new leading axis,

.. math::
    G_k = \mathrm{stack}(g_i : i \in \text{group } k) \in \mathbb{R}^{n_k \times \text{shape}_k},

the inner transformation runs once per group, and the updates are unstacked into the tree of the
parameters. Its state (the moments) is kept stacked, so it is never re-packed; only the gradient and the
parameter enter stacked each step, and only the update leaves unstacked.

Why stacking on a new axis and not one flat concatenation per dtype: a leaf keeps its own axes, so a
sharded leaf stays sharded the same way inside its group (the group is sharded ``(None, *leaf_axes)``) and
no re-layout is needed; leaves of a transformer repeat a handful of shapes, so the groups stay few.

Results are bit-for-bit those of the per-leaf computation: the same elementwise operations on the same
values in the same dtypes (``tests/test_engine.py`` checks every alias).

Two ways to use it:

* :func:`grouped` wraps an optimizer: the step still takes and returns one array per parameter, and
  the gradients are stacked and the updates unstacked inside every step;
* :func:`group` stacks the parameters once, and the caller carries the :class:`Groups` from step to step
  (the model reads them through :func:`ungroup`, and the gradient with respect to the groups comes out
  grouped). Any elementwise optimizer then runs on the groups as on any pytree, and a jitted step takes
  and returns one array per group.

Whether either is *faster* depends on the backend and on the tree; see ``docs/speed.md`` for what was
measured on XLA:CPU, where the per-leaf unstacking is not free and where every array a jitted call takes
or returns costs microseconds, so that only the second way makes a step over thousands of leaves cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.core import counting, trees
from adaptx.transforms.adaptive import ELEMENTWISE

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """One group: which leaves (positions in the flattened parameter tree) it stacks, and their kind.

    Attributes:
      shape: the common shape of the leaves.
      dtype: their common dtype (a string, so the spec is hashable and comparable).
      flag: the value of the user's mask for these leaves (``True`` when there is no mask).
      label: the leaves' label from ``partition`` (e.g. their ``PartitionSpec``), ``None`` without one.
      index: positions of the leaves in the flattened tree, in order of the leading axis.
    """

    shape: tuple
    dtype: str
    flag: bool
    label: Any
    index: tuple


@jax.tree_util.register_pytree_node_class
class Groups:
    """A parameter-like tree in grouped form: one stacked buffer per :class:`GroupSpec`.

    Its children are the stacked buffers; its static part is the tree structure of the original
    parameters and the group specs, so a :class:`Groups` found anywhere in an optimizer state can be turned
    back into ordinary per-parameter trees with :func:`ungroup`.
    """

    def __init__(self, buffers: tuple, treedef: Any, specs: tuple):
        self.buffers = tuple(buffers)
        self.treedef = treedef
        self.specs = specs

    def tree_flatten(self):
        return self.buffers, (self.treedef, self.specs)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children, *aux)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{len(s.index)}x{s.shape} {s.dtype}" for s in self.specs)
        return f"Groups({kinds})"


def group_mask(groups: Groups) -> Groups:
    """The mask to give the inner transformation of :func:`grouped`: each group's flag.

    :func:`grouped` puts leaves with different mask values in different groups, so inside it a mask is
    one boolean per group. Pass this function as the inner transformation's ``mask``.

    Example:
      >>> import adaptx
      >>> from adaptx import engine
      >>> opt = engine.grouped(adaptx.adamw(1e-3, weight_decay=1e-2, mask=engine.group_mask),
      ...                      mask=lambda p: {"w": True, "b": False})
    """
    return Groups(tuple(s.flag for s in groups.specs), groups.treedef, groups.specs)


def _flags(mask: Any, params: Any, treedef: Any, n: int) -> list[bool]:
    """One Python boolean per leaf from a mask tree (or callable), all ``True`` without a mask."""
    if mask is None:
        return [True] * n
    tree = mask(params) if callable(mask) else mask
    flags = treedef.flatten_up_to(tree)
    out = []
    for f in flags:
        if not isinstance(f, (bool, np.bool_)):
            raise ValueError(
                "adaptx.engine.grouped: a mask must hold Python booleans (it chooses the groups, so it "
                f"must be static), got {f!r}"
            )
        out.append(bool(f))
    return out


def _labels(partition: Any, params: Any, treedef: Any, n: int) -> list:
    """One hashable label per leaf from ``partition`` (tree or callable), all ``None`` without one."""
    if partition is None:
        return [None] * n
    tree = partition(params) if callable(partition) else partition
    return treedef.flatten_up_to(tree)


def _plan(leaves: list, treedef: Any, flags: list[bool], labels: list) -> tuple:
    """The groups of a list of leaves, in order of first appearance (deterministic for a given tree)."""
    members: dict[tuple, list[int]] = {}
    for i, (x, f, lab) in enumerate(zip(leaves, flags, labels, strict=True)):
        key = (tuple(x.shape), jnp.dtype(x.dtype).name, f, lab)
        members.setdefault(key, []).append(i)
    return tuple(GroupSpec(*k, tuple(v)) for k, v in members.items())


# Outside jit every jax operation is compiled for its exact operand list: a stack of 8192 leaves is one
# 8192-operand program (minutes to compile on 2 cores) and a Python-int index is one program per row.
# So outside jit we stack in chunks of _CHUNK leaves (equal chunks share one compiled program) and read
# rows with a runtime index (one program per group shape).
_CHUNK = 128


def _stack_group(xs: list) -> Array:
    if len(xs) <= _CHUNK or any(isinstance(x, jax.core.Tracer) for x in xs):
        return jnp.stack(xs)
    return jnp.concatenate([jnp.stack(xs[i : i + _CHUNK]) for i in range(0, len(xs), _CHUNK)])


@jax.jit
def _row(a: Array, i: Array) -> Array:
    return jax.lax.dynamic_index_in_dim(a, i, 0, keepdims=False)


def _rows(a: Array, n: int) -> list:
    """The n rows of a stacked array. Traced: one split (n slices; the reshape that drops the stacking
    axis is a bitcast). Concrete: one runtime-indexed read per row (see _CHUNK)."""
    if not isinstance(a, jax.core.Tracer):
        return [_row(a, np.int32(j)) for j in range(n)]
    if n == 1:
        return [a[0]]
    return [x.reshape(a.shape[1:]) for x in jax.lax.split(a, [1] * n, axis=0)]


def _stack(leaves: list, specs: tuple, treedef: Any) -> Groups:
    """Stack the leaves of each group on a new leading axis (one ``concatenate`` per group)."""
    return Groups(tuple(_stack_group([leaves[i] for i in s.index]) for s in specs), treedef, specs)


def _unstack(groups: Groups) -> Any:
    """The per-parameter tree of a :class:`Groups` (one slice per leaf of each stacked array)."""
    leaves: list = [None] * groups.treedef.num_leaves
    for buf, s in zip(groups.buffers, groups.specs, strict=True):
        for j, row in enumerate(_rows(buf, len(s.index))):
            leaves[s.index[j]] = row
    return groups.treedef.unflatten(leaves)


def _unstack_rows(groups: Groups, rows: tuple, treedef: Any) -> Any:
    """:func:`_unstack` reading each leaf's row at the runtime index ``rows[i]``, into ``treedef``."""
    leaves: list = [None] * treedef.num_leaves
    for buf, s in zip(groups.buffers, groups.specs, strict=True):
        for i in s.index:
            leaves[i] = jax.lax.dynamic_index_in_dim(buf, rows[i], 0, keepdims=False)
    return treedef.unflatten(leaves)


def _state_groups(state: Any) -> Groups | None:
    """The first :class:`Groups` in an optimizer state: the layout ``init`` chose (``None``: none)."""
    found = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, Groups))
    return next((g for g in found if isinstance(g, Groups)), None)


def check_elementwise(inner: optax.GradientTransformation, who: str) -> None:
    """Refuse a transformation whose adaptx blocks declare non-elementwise arithmetic.

    Stacking parameters of one shape into one array is only exact for elementwise arithmetic (the moment
    pieces declare it, :attr:`adaptx.moments.base.FirstMoment.elementwise`). Transformations that are not
    adaptx blocks are trusted: optax's own (``scale_by_adam``, ``clip_by_global_norm``, ...) give the
    same result on stacked groups.
    """
    for part in counting.stepped_parts(inner):
        if ELEMENTWISE.get(part.update, True) is False:
            raise ValueError(
                f"{who}: the optimizer has a block whose arithmetic is not elementwise (e.g. a factored "
                "second moment); it cannot run on stacked groups of parameters"
            )


def group(
    tree: Any,
    *,
    mask: Any | Callable[[Any], Any] = None,
    partition: Any | Callable[[Any], Any] = None,
    like: Groups | None = None,
) -> Groups:
    r"""Stack a tree of parameters (or gradients) into :class:`Groups`, one buffer per group.

    .. math::
        \Theta_k = \mathrm{stack}(\theta_i : i \in \text{group } k), \qquad
        \text{group of } i = (\text{shape}_i, \text{dtype}_i, \text{mask}_i, \text{partition}_i).

    This is the layout :func:`grouped` uses inside a step, handed to the caller so that the *parameters
    themselves* can be carried grouped from one step to the next. A jitted training step over grouped
    parameters takes and returns one array per group instead of one per leaf; on XLA:CPU that per-array
    cost, not the arithmetic, is what bounds a step over thousands of leaves (``docs/speed.md``). Inside
    the step, :func:`ungroup` gives the model its ordinary tree, and the gradient with respect to the
    groups comes out grouped; any elementwise optimizer (``mask=group_mask`` for a decay mask) runs on
    the groups as on any pytree, and the results are bit-for-bit those of the per-leaf optimizer.

    Args:
      tree: the parameters (a pytree of arrays).
      mask: a tree of Python booleans like ``tree`` (or a callable returning one), e.g. the weight-decay
        mask: leaves with different values never share a group (:func:`group_mask` reads it back).
      partition: a tree of hashable labels like ``tree`` (or a callable), e.g. the ``PartitionSpec`` of
        each parameter, so that leaves sharded differently never share a group.
      like: group ``tree`` exactly as these groups (same leaves in the same rows), e.g. gradients
        computed per leaf, to be given to an optimizer over grouped parameters; ``mask`` and
        ``partition`` are then taken from ``like``.

    Returns:
      a :class:`Groups`; ``ungroup`` of it is ``tree`` again.

    Example:
      >>> import adaptx, jax, jax.numpy as jnp, optax
      >>> from adaptx import engine
      >>> params = {"w1": jnp.ones((4, 4)), "w2": jnp.ones((4, 4)), "b": jnp.zeros(4)}
      >>> mask = {"w1": True, "w2": True, "b": False}
      >>> gp = engine.group(params, mask=mask)          # two buffers: (2, 4, 4) and (1, 4)
      >>> opt = adaptx.adamw(1e-2, weight_decay=1e-2, mask=engine.group_mask)
      >>> state = opt.init(gp)
      >>> def loss(gp, x):
      ...     p = engine.ungroup(gp)                   # the model sees its ordinary tree
      ...     return jnp.sum((x @ p["w1"] @ p["w2"] + p["b"]) ** 2)
      >>> @jax.jit
      ... def step(gp, state, x):
      ...     grads = jax.grad(loss)(gp, x)            # grouped like gp
      ...     updates, state = opt.update(grads, state, gp)
      ...     return optax.apply_updates(gp, updates), state
      >>> gp, state = step(gp, state, jnp.ones((2, 4)))
      >>> engine.ungroup(gp)["w1"].shape
      (4, 4)
    """
    if like is None:
        layout, leaves = _layout(tree, mask, partition, tree)
        return _stack(leaves, layout.specs, layout.treedef)
    if not isinstance(like, Groups):
        raise ValueError(f"adaptx.engine.group: like must be a Groups, got {type(like).__name__}")
    if mask is not None or partition is not None:
        raise ValueError("adaptx.engine.group: pass either like or mask/partition (like has its own)")
    leaves, treedef = jax.tree.flatten(tree)
    if treedef != like.treedef:
        raise ValueError(
            f"adaptx.engine.group: the tree does not match the groups' tree: {treedef} vs {like.treedef}"
        )
    for s in like.specs:
        for i in s.index:
            x = leaves[i]
            if tuple(jnp.shape(x)) != s.shape or jnp.dtype(jnp.result_type(x)).name != s.dtype:
                raise ValueError(
                    f"adaptx.engine.group: a leaf of shape {tuple(jnp.shape(x))} and dtype "
                    f"{jnp.result_type(x)} does not match its group ({s.shape}, {s.dtype})"
                )
    return _stack(leaves, like.specs, like.treedef)


def ungroup(tree: Any) -> Any:
    """Replace every :class:`Groups` inside ``tree`` (e.g. an optimizer state) by its per-parameter tree.

    Use it to inspect the state of a :func:`grouped` optimizer: ``ungroup(state)`` has the layout the
    per-leaf optimizer's state would have (moments shaped like the parameters). On the result of
    :func:`group` it gives back the per-parameter tree (inside a jitted step: one slice per leaf).

    Example:
      >>> import adaptx, jax.numpy as jnp
      >>> from adaptx import engine
      >>> opt = engine.grouped(adaptx.adam(1e-3))
      >>> state = opt.init({"a": jnp.zeros(3), "b": jnp.zeros(3)})
      >>> mu = engine.ungroup(state).inner[0].mu   # {"a": zeros(3), "b": zeros(3)}
    """
    if isinstance(tree, GroupedState):
        tree = tree.inner
    return jax.tree.map(
        lambda x: _unstack(x) if isinstance(x, Groups) else x,
        tree,
        is_leaf=lambda x: isinstance(x, Groups),
    )


class GroupedState(NamedTuple):
    """State of :func:`grouped`.

    Attributes:
      inner: the inner transformation's state, over :class:`Groups` (see :func:`ungroup`).
      rows: one int32 scalar per parameter leaf, its row in its group. Carried as *data* so that the
        compiled step reads row ``rows[i]`` of a group with the same code for every leaf: XLA then
        compiles one unstacking kernel per group shape instead of one per leaf (a slice at a constant
        offset is a different kernel for every offset; measured on XLA:CPU: 256 leaves compile in
        ~10 s with constant offsets, ~1 s with these).
    """

    inner: Any
    rows: tuple


class _Layout(NamedTuple):
    treedef: Any
    specs: tuple


def _layout(tree: Any, mask: Any, partition: Any, params: Any) -> tuple[_Layout, list]:
    leaves, treedef = jax.tree.flatten(tree)
    like = params if params is not None else tree
    flags = _flags(mask, like, treedef, len(leaves))
    labels = _labels(partition, like, treedef, len(leaves))
    return _Layout(treedef, _plan(leaves, treedef, flags, labels)), leaves


def grouped(
    inner: optax.GradientTransformation,
    *,
    mask: Any | Callable[[Any], Any] = None,
    partition: Any | Callable[[Any], Any] = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Run ``inner`` on stacked (shape, dtype, mask) groups of the parameters.

    .. math::
        (U_k, S_k) = \text{inner.update}(G_k, S_k, \Theta_k), \qquad
        G_k = \mathrm{stack}_{i \in k}\, g_i,\ \Theta_k = \mathrm{stack}_{i \in k}\, \theta_i,
        u_i = U_k[\text{position of } i].

    Takes and returns ordinary pytrees (chain it with optax as any transformation); ``inner`` must be
    elementwise (every adaptx block is; so are optax's ``scale_by_adam``, ``scale``, ...) and its ``init``
    must only read shapes and dtypes. Results equal the per-leaf ones bit for bit.

    Masks: leaves are split into groups by the value of ``mask`` (a tree of Python booleans like the
    parameters, or a callable returning one), and the inner transformation sees one flag per group
    through :func:`group_mask`. Build it with ``mask=adaptx.engine.group_mask``.

    Sharding: a group is one array, so its leaves should share one sharding. Leaves stack on a new
    leading axis and keep their own axes, so a group of leaves sharded alike stays sharded the same way;
    pass ``partition`` (e.g. the tree of the parameters' ``PartitionSpec``) to keep leaves that are
    sharded differently in different groups, otherwise they leave the step with their group's layout.

    The state is a :class:`GroupedState`: the inner state over :class:`Groups` (moments stacked per
    group) and each leaf's row in its group; :func:`ungroup` gives the per-parameter view of the inner
    state.

    Args:
      inner: the elementwise transformation to run (an alias such as :func:`adaptx.adamw`).
      mask: the weight-decay mask of the parameters, if ``inner`` uses :func:`group_mask`.
      partition: a tree like the parameters (or a callable returning one) of hashable labels; leaves with
        different labels never share a group. Use the parameters' ``PartitionSpec``s under sharding.

    Example:
      >>> import adaptx, optax, jax.numpy as jnp
      >>> from adaptx import engine
      >>> opt = engine.grouped(adaptx.adamw(1e-3))
      >>> params = {"w": jnp.ones((2, 3)), "v": jnp.ones((2, 3)), "b": jnp.zeros(3)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update(params, state, params)
      >>> params = optax.apply_updates(params, updates)
    """
    who = "adaptx.engine.grouped"
    check_elementwise(inner, who)

    def init_fn(params):
        layout, leaves = _layout(params, mask, partition, params)
        # Only shapes and dtypes: no stacked copy of the parameters is ever made at init.
        structs = tuple(
            jax.ShapeDtypeStruct((len(s.index), *s.shape), jnp.dtype(s.dtype)) for s in layout.specs
        )
        rows = [0] * len(leaves)
        for spec in layout.specs:
            for r, i in enumerate(spec.index):
                rows[i] = r
        return GroupedState(
            inner=inner.init(Groups(structs, layout.treedef, layout.specs)),
            rows=tuple(jnp.asarray(r, jnp.int32) for r in rows),
        )

    def update_fn(updates, state, params=None, **extra_args):
        leaves, treedef = jax.tree.flatten(updates)
        if len(state.rows) != len(leaves):
            raise ValueError(f"{who}: the gradient tree does not match the optimizer state")
        # The groups init chose are the layout: gradients of another dtype than the parameters (bf16,
        # NumPy) go into the same rows. Flax NNX initialises with its parameters wrapped in Variables and
        # updates with plain arrays, so the state's groups keep init's structure and the update is
        # returned in the gradients' own structure.
        like = _state_groups(state.inner)
        if like is None:
            layout, leaves = _layout(updates, mask, partition, params)
        else:
            layout = _Layout(like.treedef, like.specs)
        for s in layout.specs:
            for i in s.index:
                if tuple(jnp.shape(leaves[i])) != s.shape:
                    raise ValueError(
                        f"{who}: a gradient of shape {tuple(jnp.shape(leaves[i]))} does not match its "
                        f"group's shape {s.shape}"
                    )
        g = _stack(leaves, layout.specs, layout.treedef)
        p = None
        if params is not None:
            p_leaves = trees.leaves_like(who, updates, params, "parameters")
            for a, b in zip(leaves, p_leaves, strict=True):
                if a.shape != b.shape:
                    raise ValueError(
                        f"{who}: a gradient of shape {a.shape} does not match its parameter of shape "
                        f"{b.shape}"
                    )
            p = _stack(p_leaves, layout.specs, layout.treedef)
        try:
            u, new_state = inner.update(g, state.inner, p, **extra_args)
        except (ValueError, TypeError) as err:
            if "does not match" in str(err) or "structure" in str(err):
                raise ValueError(
                    f"{who}: the gradient tree does not match the optimizer state (was the state "
                    "initialised from other parameters?)"
                ) from err
            raise
        return _unstack_rows(u, state.rows, treedef), GroupedState(inner=new_state, rows=state.rows)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
