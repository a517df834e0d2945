r"""Split a function into the part that depends on some of its inputs and the part that does not.

A learning-rate sweep on the online problem runs the same optimizer with 1024 step sizes. The gradient
schedule, the step counter and (for Adam and its relatives) both moments do not depend on the step
size, so they are the same for every setting; only the iterate and its regret are per setting. A step
written for one setting and ``vmap``-ed over the settings computes the shared part once per step, as a
handful of scalar kernels, and the per-setting part as a few vector kernels. On a CPU each kernel
launch costs more than the arithmetic of a scalar, so a step is dominated by launches.

:func:`split` cuts the function's computation into

* the *known* part: every operation whose inputs do not depend on the inputs marked as varying. It can
  run ahead for a whole block of steps as a loop over scalars (XLA compiles a loop that small into one
  kernel), recording the values the other part needs (the *residuals*) per step; :func:`recurrence`
  cuts it once more, so that the loop computes only its state's recurrence and the rest runs
  afterwards for the whole block as vector code;
* the *varying* part: every other operation, which then reads the residuals instead of recomputing them.

Both parts perform the operations of the original function on the same values, in the same order for
each output; only where the computation is cut into kernels changes, with one rewrite: an array divided
by a known scalar, :math:`a / r`, becomes :math:`a \cdot (1 / r)` with the reciprocal computed by the
known part. That is how XLA:CPU compiles such a division anyway (it turns ``a / broadcast(r)`` into
``a * broadcast(1 / r)``, computing the reciprocal in a kernel of its own), so the numbers are the same
there; the varying part loses one scalar kernel per such division, which matters because XLA:CPU runs a
loop body of at most 8 kernels sequentially and a longer one through its slower concurrent executor.
Values computed from constants alone (a ``zeros_like``, a broadcast literal) are recomputed by the
varying part rather than stored per step.

Example:
  >>> import jax.numpy as jnp
  >>> from adaptx.experiments.fast.staging import split
  >>> f = lambda scale, t, x: (t + 1, x + scale * jnp.sqrt(t * 1.0))
  >>> known, varying = split(f, (1.0, 4, 0.0), varying=(True, False, True), known_outputs=(0,))
  >>> outs, res = known(4)             # the inputs not marked varying, in order
  >>> outs[0], varying((2.0, 0.0), res)[0]   # the varying inputs, then the residuals
  (Array(5, dtype=int32, weak_type=True), Array(4., dtype=float32, weak_type=True))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax import lax

try:
    from jax.extend.core import Literal
except ImportError:  # jax versions before jax.extend.core exported it
    from jax.core import Literal


class Inseparable(ValueError):
    """Outputs required to be known depend on a varying argument; their indices are ``outputs``."""

    def __init__(self, outputs: Sequence[int]):
        self.outputs = tuple(outputs)
        super().__init__(f"outputs {list(self.outputs)} depend on a varying argument")


def _evaluate(eqns, env: dict, reciprocals: dict | None = None) -> None:
    """Run the jaxpr equations ``eqns`` in order, reading and writing variable values in ``env``.

    ``reciprocals`` maps the divisor of some divisions to the variable holding its reciprocal; those
    divisions ``a / r`` run as ``a * (1 / r)``."""
    reciprocals = reciprocals or {}
    for eqn in eqns:
        r = _divisor(eqn)
        if r in reciprocals:
            env[eqn.outvars[0]] = lax.mul(_read(env, eqn.invars[0]), env[reciprocals[r]])
            continue
        args = [_read(env, v) for v in eqn.invars]
        bind = eqn.primitive.get_bind_params(eqn.params)
        # older jax versions return (sub-functions, params), newer ones the params alone
        subfuns, params = bind if isinstance(bind, tuple) else ((), bind)
        outs = eqn.primitive.bind(*subfuns, *args, **params)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for v, o in zip(eqn.outvars, outs, strict=True):
            env[v] = o


def _run(closed, eqns, bindings, reciprocals: dict | None = None) -> dict:
    """Evaluate ``eqns`` of the closed jaxpr ``closed`` with its constants and the ``(variables,
    values)`` pairs of ``bindings`` bound; returns the variable values."""
    env = dict(zip(closed.jaxpr.constvars, closed.consts, strict=True))
    for variables, values in bindings:
        env.update(zip(variables, values, strict=True))
    _evaluate(eqns, env, reciprocals)
    return env


def _read(env: dict, v):
    """The value of the jaxpr atom ``v``: a literal's own value, a variable's from ``env``."""
    return v.val if isinstance(v, Literal) else env[v]


def _divisor(eqn):
    """The divisor of a division equation if it is a variable; ``None`` for a literal divisor or
    another primitive."""
    if eqn.primitive is not lax.div_p or isinstance(eqn.invars[1], Literal):
        return None
    return eqn.invars[1]


class _Reciprocal:
    """A variable of the known part that holds ``1 / of``: a residual the original jaxpr lacks."""

    def __init__(self, of):
        self.of = of


def split(
    fn: Callable[..., Sequence[Any]],
    example_args: Sequence[Any],
    varying: Sequence[bool],
    known_outputs: Sequence[int],
) -> tuple[Callable, Callable]:
    """Split ``fn`` (array arguments, returning a flat sequence of arrays) by dependence on ``varying``.

    Args:
      fn: the function, traced once with ``example_args`` (arrays or shape-dtype structs).
      example_args: one example per argument, as it will be called.
      varying: per argument, whether it is *varying* (the other arguments are *known*).
      known_outputs: indices of outputs that must not depend on varying arguments.

    Returns:
      ``known(*known_args) -> (outputs, residuals)``: the outputs listed in ``known_outputs`` and a tuple
      of residuals; and ``varying(varying_args, residuals) -> outputs``: every other output, in order.

    Raises:
      Inseparable: if an output in ``known_outputs`` depends on a varying argument, as far as the
        equations show (an equation with any varying input counts as varying in all its outputs).
    """
    closed = jax.make_jaxpr(fn)(*example_args)
    jaxpr = closed.jaxpr
    if len(varying) != len(jaxpr.invars):
        raise ValueError(f"varying has {len(varying)} flags for {len(jaxpr.invars)} arguments")
    moving = {v for v, flag in zip(jaxpr.invars, varying, strict=True) if flag}
    # constants: values computed from literals and closed-over constants alone (a zeros_like, a
    # broadcast scalar). The varying part recomputes them rather than reading them as residuals.
    constant = set(jaxpr.constvars)
    known_eqns, varying_eqns = [], []
    for eqn in jaxpr.eqns:
        atoms = [v for v in eqn.invars if not isinstance(v, Literal)]
        if any(v in moving for v in atoms):
            varying_eqns.append(eqn)
            moving.update(eqn.outvars)
        else:
            known_eqns.append(eqn)
            if all(v in constant for v in atoms):
                constant.update(eqn.outvars)
                varying_eqns.append(eqn)
    outvars = list(jaxpr.outvars)
    known_set = set(known_outputs)
    bad = [i for i in known_outputs if not isinstance(outvars[i], Literal) and outvars[i] in moving]
    if bad:
        raise Inseparable(bad)
    rest = [i for i in range(len(outvars)) if i not in known_set]

    def stored(v):  # a known value the varying part must read rather than recompute
        return not isinstance(v, Literal) and v not in moving and v not in constant

    # An array divided by a known scalar reads the scalar's reciprocal instead (module docstring).
    reciprocals = {}
    for eqn in varying_eqns:
        r = _divisor(eqn)
        if r is None or not stored(r) or r in reciprocals:
            continue
        real = np.issubdtype(r.aval.dtype, np.floating)  # not an integer (or complex) division
        if real and r.aval.shape == () and eqn.invars[0].aval.shape != ():
            reciprocals[r] = _Reciprocal(r)

    # residuals: known variables read by the varying part, or returned among its outputs
    residuals, seen = [], set()
    needed = []
    for eqn in varying_eqns:
        divided = _divisor(eqn) in reciprocals
        needed += [eqn.invars[0], reciprocals[eqn.invars[1]]] if divided else list(eqn.invars)
    needed += [outvars[i] for i in rest]
    for v in needed:
        if (isinstance(v, _Reciprocal) or stored(v)) and v not in seen:
            seen.add(v)
            residuals.append(v)
    known_in = [v for v, flag in zip(jaxpr.invars, varying, strict=True) if not flag]
    varying_in = [v for v, flag in zip(jaxpr.invars, varying, strict=True) if flag]

    def known_fn(*args):
        env = _run(closed, known_eqns, [(known_in, args)])
        for r in reciprocals.values():
            env[r] = lax.div(lax.full_like(env[r.of], 1), env[r.of])
        return [_read(env, outvars[i]) for i in known_outputs], tuple(env[v] for v in residuals)

    def varying_fn(args, res):
        env = _run(closed, varying_eqns, [(varying_in, args), (residuals, res)], reciprocals)
        return [_read(env, outvars[i]) for i in rest]

    return known_fn, varying_fn


def recurrence(
    fn: Callable[..., Sequence[Any]], example_args: Sequence[Any], carried: int
) -> tuple[Callable, Callable]:
    """Split a step ``fn(*state) -> [*new_state, *rest]`` into its recurrence and what hangs off it.

    The first ``carried`` outputs of ``fn`` are the next state; computing them for step after step is
    inherently sequential. The other outputs are often most of the work (for Adam's shared part: two
    bias corrections through ``expm1``, square roots, divisions) and depend on the step's values without
    feeding the next step, so a block of steps can compute them all at once, as one vectorised call over
    the block, instead of as scalar operations inside the sequential loop.

    Args:
      fn: the step, traced once with ``example_args``; returns a flat sequence of arrays.
      example_args: one example per argument (arrays or shape-dtype structs).
      carried: how many leading outputs are the recurrence's state.

    Returns:
      ``advance(*args) -> (new_state, links)``: the equations the state needs (the backward slice of the
      first ``carried`` outputs) and the values the rest reads from this step (the *links*); and
      ``rest(links) -> outputs``: the other outputs of ``fn`` from the links, free of any recurrence,
      so ``jax.vmap(rest)`` computes them for many steps at once. Each output is computed by the same
      operations on the same values as in ``fn``.

    Example:
      >>> import jax.numpy as jnp
      >>> from adaptx.experiments.fast.staging import recurrence
      >>> f = lambda t, m: [t + 1, 0.9 * m + 1.0, jnp.sqrt(m) / (t + 1)]
      >>> advance, rest = recurrence(f, (1.0, 4.0), carried=2)
      >>> state, links = advance(1.0, 4.0)
      >>> [float(s) for s in state], [float(r) for r in rest(links)]
      ([2.0, 4.599999904632568], [1.0])
    """
    closed = jax.make_jaxpr(fn)(*example_args)
    jaxpr = closed.jaxpr
    outvars = list(jaxpr.outvars)
    needed = {v for v in outvars[:carried] if not isinstance(v, Literal)}
    chain = [False] * len(jaxpr.eqns)
    for i in reversed(range(len(jaxpr.eqns))):
        eqn = jaxpr.eqns[i]
        if any(v in needed for v in eqn.outvars):
            chain[i] = True
            needed.update(v for v in eqn.invars if not isinstance(v, Literal))
    advance_eqns = [e for e, c in zip(jaxpr.eqns, chain, strict=True) if c]
    rest_eqns = [e for e, c in zip(jaxpr.eqns, chain, strict=True) if not c]
    produced = {v for e in rest_eqns for v in e.outvars} | set(jaxpr.constvars)
    links, seen = [], set()
    for v in [v for e in rest_eqns for v in e.invars] + outvars[carried:]:
        if not isinstance(v, Literal) and v not in produced and v not in seen:
            seen.add(v)
            links.append(v)

    def advance_fn(*args):
        env = _run(closed, advance_eqns, [(jaxpr.invars, args)])
        return [_read(env, v) for v in outvars[:carried]], tuple(env[v] for v in links)

    def rest_fn(values):
        env = _run(closed, rest_eqns, [(links, values)])
        return [_read(env, v) for v in outvars[carried:]]

    return advance_fn, rest_fn
