r"""The fast path's program: a piece of steps for every setting and seed, staged for XLA:CPU.

A piece runs steps ``t0 + 1 .. t0 + n`` of every run of a sweep inside one compiled call (the algorithm
is :mod:`adaptx.experiments.reference`'s; this module computes the same numbers with fewer kernel
launches per step).

Settings share work. Part of every step depends on t alone: the step counter and the bias corrections
computed from it, the online problem's gradient, and in a learning-rate grid on the online problem the
optimizer's moments too. :func:`settings_axes` finds which optimizer state depends on the settings
(those leaves get a settings axis; the others are stored once). :func:`adaptx.experiments.fast.staging.split`
then cuts a step in two: the shared part runs ahead a stage of :data:`BLOCK` = 256 steps (its state's
recurrence as a loop over scalars, what hangs off it, such as the bias corrections, as vector code
over the 256 steps), then the settings and seeds take those steps reading its values
(:func:`_staged_piece`), one step per loop iteration (two when the settings carry no optimizer state of
their own).

Copies. The step's regret reads the old iterate, which the new iterate overwrites. XLA:CPU's default
copy insertion cannot see that order and copies the iterate in every loop iteration;
:func:`_regret_first` writes the order into the step, and the program is compiled with the
region-based copy insertion (:mod:`adaptx.experiments.fast.options`).

Regret accuracy. :math:`R_t` is summed as the reference sums it: each block of 256 steps (one stage,
aligned on multiples of 256) in plain float32, then the block's sum into a Kahan sum (three vector
kernels per block instead of per step: 1.2x the stochastic sweep's speed). Tests: 2M steps of either
problem within 1e-6 of the exact sum; measured 2e-9 online and 2e-8 stochastic.

Same numbers everywhere. XLA:CPU lets LLVM contract a multiply and an add into a fused multiply-add,
and its vector loops and their scalar remainders need not contract the same pairs, so without care a
run's last bits would depend on where it sits in the batch. The runner therefore pads the batch axis
to a multiple of 64 lanes (:mod:`adaptx.experiments.fast.runner`): a seed gives bit-identical numbers
alone or anywhere in a sweep of any size, since every seed runs through the same vector code of the
same program. A setting alone and inside a grid of the same hyperparameter names gives the same bits
too in the tests, but these are two programs with different numbers of settings, which XLA could in
principle contract differently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adaptx.experiments.fast import staging, windows
from adaptx.experiments.problems import Problem
from adaptx.experiments.reference import BLOCK, kahan_add

Array = jax.Array

class Carry(NamedTuple):
    """Everything a sweep carries from one step to the next.

    Attributes:
      x: iterates, ``[settings, seeds]``.
      opt_state: the optimizer states, batched over settings (and over seeds inside each leaf).
      regret: :math:`R_t` up to the last block boundary, ``[settings, seeds]``, the Kahan sum.
      compensation: the Kahan correction of ``regret`` (the low-order bits still to be added).
      partial: the regret of the steps since the last block boundary (a plain float32 sum).
      sampler: the big-step sampler state (stochastic problem), or ``None``.
    """

    x: Array
    opt_state: Any
    regret: Array
    compensation: Array
    partial: Array
    sampler: windows.SamplerState | None



def _flush(regret, comp, partial):
    """Add a block's regret ``partial`` to the Kahan sum ``(regret, comp)``; ``partial`` restarts at 0."""
    return (*kahan_add(regret, comp, partial), jnp.zeros_like(partial))

def _in_blocks(t0, n, run, state, regret, comp, partial):
    """Steps ``t0 + 1 .. t0 + n`` in blocks that end at multiples of BLOCK (absolute step numbers).

    ``run(t_start, k, done, state, partial) -> (state, partial)`` takes steps ``t_start + 1 .. t_start
    + k`` (``done`` of the n already taken) and adds their regret to the block's plain float32 sum
    ``partial``; when the block is complete, its sum goes into the Kahan sum ``(regret, comp)``. Returns
    ``(state, regret, comp, partial)``.
    """

    def next_block(c):
        done, state, regret, comp, partial = c
        t_start = t0 + done
        k = jnp.minimum(BLOCK - t_start % BLOCK, n - done)  # up to the next multiple of BLOCK
        state, partial = run(t_start, k, done, state, partial)
        ends = (t_start + k) % BLOCK == 0
        kept = (regret, comp, partial)
        regret, comp, partial = (jnp.where(ends, a, b) for a, b in zip(_flush(*kept), kept, strict=True))
        return done + k, state, regret, comp, partial

    c = (jnp.int32(0), state, regret, comp, partial)
    return jax.lax.while_loop(lambda c: c[0] < n, next_block, c)[1:]




def _step_fn(problem, make_optimizer, dtype, names, treedef):
    """Step t of one setting on flat arguments ``(*hyper, t, [big,] x, *state_leaves, partial)``,
    returning ``[x, *state_leaves, partial]``: the hyperparameters in the order of ``names``, ``big``
    (the seeds' big-step flags) for the stochastic problem only, and ``partial`` the block's regret so
    far, to which the step adds its own."""
    nh, nb = len(names), int(problem.stochastic)

    def step(*args):
        hyper, t, big = args[:nh], args[nh], (args[nh + 1] if nb else None)
        x, state, partial = args[nh + 1 + nb], args[nh + 2 + nb : -1], args[-1]
        opt = make_optimizer(**dict(zip(names, hyper, strict=True)))
        x, new_state, term = _take_step(problem, opt, t, big, dtype, x, jax.tree.unflatten(treedef, state))
        return [x, *treedef.flatten_up_to(new_state), partial + term]

    return step


def _take_step(problem, opt, t, big, dtype, x, opt_state):
    r"""Step t of one setting from its iterate ``x`` (a scalar, or one entry per seed).

    Returns :math:`x_{t+1} = \Pi_{[a, b]}(x_t + \text{update}(c_t))` (:math:`[a, b]` the problem's
    ``domain``), the new optimizer state and the step's regret :math:`c_t (x_t - x^*)`.
    """
    g = jnp.reshape(problem.gradient(t, big, dtype), (-1,))  # [seeds] or [1]
    g = jnp.reshape(g, ()) if x.ndim == 0 else jnp.broadcast_to(g, x.shape)
    updates, opt_state = opt.update(g, opt_state, x)
    low, high = problem.domain
    return jnp.clip(x + updates, low, high), opt_state, g * (x - problem.x_star)




def _mapped(fn, in_axes, args, num, one_by_one: bool = False) -> Any:
    """Which outputs of ``vmap(fn, in_axes)`` depend on the mapped inputs: a tree like the output with
    0 (mapped) or ``None`` (the same for every setting) at each leaf. Found by tracing only.

    One trace of ``vmap(fn)`` sees it: inside it, an output that depends on a mapped input is one of
    vmap's batch tracers, with a batch axis; the others are not (jax's private ``BatchTracer``). Without
    that class (another jax), or with ``one_by_one``, each output is traced alone with
    ``out_axes=None``, which vmap refuses for a mapped output: the same answer, one trace per leaf (a
    second or more of a short sweep's start; tests: test_sweep_analysis.py).
    """
    batch_tracer = None if one_by_one else _batch_tracer()
    if batch_tracer is not None:
        found = []

        def probe(*a):
            out = fn(*a)
            batched = [isinstance(o, batch_tracer) and o.batch_dim is not None for o in jax.tree.leaves(out)]
            found.append([0 if b else None for b in batched])
            return out

        out = jax.eval_shape(jax.vmap(probe, in_axes=in_axes, axis_size=num), *args)
        return jax.tree.unflatten(jax.tree.structure(out), found[-1])
    out = jax.eval_shape(jax.vmap(fn, in_axes=in_axes, axis_size=num), *args)
    leaves, treedef = jax.tree.flatten(out)
    axes = []
    for j in range(len(leaves)):
        def pick(*a, j=j):
            return jax.tree.leaves(fn(*a))[j]

        try:
            jax.eval_shape(jax.vmap(pick, in_axes=in_axes, out_axes=None, axis_size=num), *args)
            axes.append(None)
        except ValueError:
            axes.append(0)
    return jax.tree.unflatten(treedef, axes)


@functools.cache
def _batch_tracer() -> type | None:
    """jax's ``BatchTracer`` class if this jax has it where :func:`_mapped` looks, else ``None``."""
    try:
        from jax._src.interpreters.batching import BatchTracer
    except ImportError:  # pragma: no cover - another jax
        return None
    return BatchTracer if hasattr(BatchTracer, "batch_dim") else None


def _join(a, b):
    """Leafwise: mapped if either is."""
    both_none = lambda u, v: None if u is None and v is None else 0  # noqa: E731
    return jax.tree.map(both_none, a, b, is_leaf=lambda z: z is None)


def settings_axes(
    make_optimizer: Callable, problem: Problem, grid: Mapping[str, Array], x: Array, *,
    per_output: bool = False,
) -> Any:
    """Which leaves of the optimizer state depend on the hyperparameter settings: a tree like the state
    with 0 (one value per setting) or ``None`` (one value for all settings) at each leaf.

    Settings are a ``vmap`` over the optimizer's construction. A plain ``vmap`` returns every output with
    a settings axis, but in a grid over the learning rate alone (the usual case) the moments do not
    depend on the setting: a ``vmap`` of the *whole* run would keep them unmapped, one copy for all
    settings, and cost a fraction as much. A sweep is cut into pieces, so the pattern is found here:
    trace ``init`` and one step, see which state leaves come out mapped, and iterate to the fixed point.
    Tracing only; nothing is compiled.

    Args:
      make_optimizer: a function of the grid's hyperparameters returning an optax transformation.
      problem: the problem (its gradient is part of the step).
      grid: name -> ``[settings]`` values.
      x: the iterates, ``[settings]`` or ``[settings, seeds]``.
      per_output: find the mapped outputs by tracing each alone with ``out_axes=None`` (which vmap
        refuses for a mapped output) instead of by one trace that reads vmap's batch tracers: the same
        answer, one trace per leaf. Used when this jax lacks the private ``BatchTracer`` class.

    Example:
      >>> import jax.numpy as jnp
      >>> import adaptx
      >>> from adaptx.experiments import Online
      >>> from adaptx.experiments.fast import settings_axes
      >>> make = lambda learning_rate: adaptx.adam(learning_rate, 0.9, 0.99)
      >>> settings_axes(make, Online(), {"learning_rate": jnp.array([1e-2, 1e-3])}, jnp.zeros(2))
      ChainState(count=None, inner=(MomentsState(mu=None, nu=None), EmptyState()))
      >>> make = lambda b2: adaptx.adam(1e-2, 0.9, b2)  # only the second moment depends on beta2
      >>> settings_axes(make, Online(), {"b2": jnp.array([0.99, 0.999])}, jnp.zeros(2)).inner[0]
      MomentsState(mu=None, nu=0)
    """
    return _analyse(make_optimizer, problem, x.dtype, grid, x, one_by_one=per_output)[1]


def _analyse(make_optimizer, problem, dtype, grid, x, one_by_one=False):
    """``(init_axes, state_axes, opt_state, step)``: the axes of the state after ``init`` and at the fixed
    point of :func:`settings_axes`, the initial state batched accordingly, and the flat step function
    (:func:`_step_fn`)."""
    num = x.shape[0]
    names = sorted(grid)

    def init(hyper, x):
        return make_optimizer(**hyper).init(x)

    first_axes = axes = _mapped(init, (0, 0), (grid, x), num, one_by_one)
    opt_state = jax.vmap(init, in_axes=(0, 0), out_axes=axes, axis_size=num)(grid, x)
    treedef = jax.tree.structure(opt_state)
    step = _step_fn(problem, make_optimizer, dtype, names, treedef)
    hyper = [grid[k] for k in names]
    scalar = jax.ShapeDtypeStruct((), jnp.int32)
    big = [jax.ShapeDtypeStruct(x.shape[1:], jnp.bool_)] if problem.stochastic else []
    while True:
        leaf_axes = treedef.flatten_up_to(axes)
        in_axes = (*[0] * len(hyper), None, *[None] * len(big), 0, *leaf_axes, 0)
        args = (*hyper, scalar, *big, x, *treedef.flatten_up_to(opt_state), x)
        out = _mapped(step, in_axes, args, num, one_by_one)
        joined = _join(axes, jax.tree.unflatten(treedef, out[1:-1]))
        if joined == axes:
            return first_axes, axes, opt_state, step
        opt_state = _broadcast(opt_state, axes, joined, num)
        axes = joined


_PROGRAMS: dict = {}


def build(problem, make_optimizer, dtype, grid, x, chunk, devices, options):
    """The initial optimizer states, the compiled piece ``(carry, grid, keys, t0, n) -> carry`` and the
    shardings of its arguments (``None`` on one device; see :func:`_split_runs`).

    The state leaves that :func:`settings_axes` finds unmapped are stored once and passed with
    ``in_axes=None``. The piece is compiled with the XLA compiler ``options`` (``None``: XLA's
    defaults) and cached per (problem, factory, dtype, grid names, shapes, chunk, devices, options).
    """
    num = x.shape[0]
    names = sorted(grid)
    key = (problem, make_optimizer, dtype, tuple(names), x.shape, chunk, devices,
           tuple(sorted((options or {}).items())))
    if key in _PROGRAMS:
        init_axes, state_axes, piece, shardings = _PROGRAMS[key]
        init = lambda hyper, x: make_optimizer(**hyper).init(x)  # noqa: E731
        opt_state = jax.vmap(init, in_axes=(0, 0), out_axes=init_axes, axis_size=num)(grid, x)
        return _broadcast(opt_state, init_axes, state_axes, num), piece, shardings
    first_axes, axes, opt_state, step = _analyse(make_optimizer, problem, dtype, grid, x)
    if len(_PROGRAMS) > 64:
        _PROGRAMS.clear()
    if devices is None:
        hyper = [grid[k] for k in names]
        piece, shardings = _staged_piece(problem, step, hyper, x, opt_state, axes, chunk), None
    else:
        piece, shardings = _split_runs(problem, step, grid, x, opt_state, axes, chunk, devices)
    compiled = jax.jit(piece, compiler_options=options) if options else jax.jit(piece)
    _PROGRAMS[key] = (first_axes, axes, compiled, shardings)
    return opt_state, compiled, shardings


_RUNS = "runs"  # the mesh axis the runs are split over


def _split_runs(problem, step, grid, x, opt_state, state_axes, chunk, devices):
    """The piece for runs split evenly over ``devices``, and the shardings of its arguments.

    The runs of a sweep are independent, so each device takes a contiguous block of the batch axis (the
    seeds of the stochastic problem, the settings of the online one) and runs :func:`_staged_piece`,
    built for its block's shapes, under ``jax.shard_map``: no communication, except that a device's
    big-step window loops until its own seeds are done (extra rounds change nothing: see
    :func:`adaptx.experiments.fast.windows.window`). The block of each device is a multiple of
    :data:`adaptx.experiments.fast.runner.LANES` (see :func:`~adaptx.experiments.fast.runner.make_plan`),
    so a run goes through the same vector code as on one device: the same bits.
    """
    mesh = jax.sharding.Mesh(np.asarray(devices), (_RUNS,))
    P = jax.sharding.PartitionSpec
    ndev = len(devices)
    if problem.stochastic:  # [settings, seeds]: split the seeds; a state leaf per seed ends in them
        run_axis, per_run = 1, x.shape[1:]
    else:  # [settings]: split the settings; every leaf mapped over the settings is per run
        run_axis, per_run = 0, None

    def axis_of(leaf, mapped):
        """The axis of ``leaf`` (a state leaf, mapped over the settings or not) that runs along the
        batch, or ``None``."""
        if per_run is None:
            return 0 if mapped else None
        rest = leaf.shape[1:] if mapped else leaf.shape
        return int(mapped) if rest == per_run else None

    def spec(axis):
        return P() if axis is None else P(*[None] * axis, _RUNS)

    def local(leaf, axis):
        if axis is None:
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
        shape = list(leaf.shape)
        shape[axis] //= ndev
        return jax.ShapeDtypeStruct(tuple(shape), leaf.dtype)

    leaves, treedef = jax.tree.flatten(opt_state)
    mapped = [a == 0 for a in treedef.flatten_up_to(state_axes)]
    leaf_axes = [axis_of(leaf, m) for leaf, m in zip(leaves, mapped, strict=True)]
    state_spec = jax.tree.unflatten(treedef, [spec(a) for a in leaf_axes])
    state_local = jax.tree.unflatten(
        treedef, [local(leaf, a) for leaf, a in zip(leaves, leaf_axes, strict=True)]
    )
    names = sorted(grid)
    grid_axis = None if problem.stochastic else 0
    hyper_local = [local(grid[k], grid_axis) for k in names]
    x_spec = spec(run_axis)
    sampler_spec = windows.SamplerState(P(_RUNS), P(_RUNS)) if problem.stochastic else None
    carry_spec = Carry(x_spec, state_spec, x_spec, x_spec, x_spec, sampler_spec)
    grid_spec = {k: spec(grid_axis) for k in names}
    keys_spec = P(_RUNS) if problem.stochastic else P()
    piece = _staged_piece(problem, step, hyper_local, local(x, run_axis), state_local, state_axes, chunk)
    split = jax.shard_map(
        piece,
        mesh=mesh,
        in_specs=(carry_spec, grid_spec, keys_spec, P(), P()),
        out_specs=carry_spec,
        check_vma=False,
    )
    named = lambda tree: jax.tree.map(  # noqa: E731
        lambda sp: jax.sharding.NamedSharding(mesh, sp), tree, is_leaf=lambda z: isinstance(z, P)
    )
    return split, (named(carry_spec), named(grid_spec), named(keys_spec))




def _staged_piece(problem, step, hyper, x, opt_state, state_axes, chunk, unroll=None):
    r"""The piece: steps computed in stages, the part shared by all settings and seeds first.

    One step for one setting maps (hyperparameters, t, big-step flags, x, optimizer state, block
    regret) to their next values. Part of that depends on t alone: the step counter and the bias
    corrections computed from it, the online problem's gradient :math:`c_t`, and in a learning-rate grid
    on the online problem Adam's moments too. :func:`adaptx.experiments.fast.staging.split` cuts the step
    into that shared part and the per-setting part, which reads the values it needs from the shared part
    (its *residuals*). The state leaves the shared part carries are those that the analysis of
    :func:`settings_axes` found unmapped over the settings and that the split finds computed from t and
    from themselves alone (it reports any other; that leaf then moves to the per-setting part).

    A stage of k <= BLOCK steps runs the shared part for its k steps first: the recurrence of its state
    (:func:`adaptx.experiments.fast.staging.recurrence`: the counter, a grid's shared moments) as a loop over
    scalars that XLA compiles into one kernel, storing the values the rest of the shared part reads,
    then that rest (bias corrections through ``expm1``, square roots, reciprocals) for all the stage's
    steps in one vectorised call, which gives the residuals of every step (on XLA:CPU the same bits as
    computing them inside the loop gave, and 3-8% faster sweeps, interleaved); then the per-setting part
    for the k steps, a loop whose iteration is a few vector kernels over the settings and seeds (it
    reads the stochastic problem's big steps from the window's bit mask). Without the scalars, the
    iteration is fewer kernels (a hand-written Adam loop over 1024 seeds ran 1.8x faster with its bias
    corrections read from a buffer). When the per-setting part carries no optimizer state, the loop
    takes two steps per iteration (``unroll``, chosen below unless given). A stage ends at every
    multiple of BLOCK (absolute step numbers) and there the block's regret is added to the Kahan sum,
    so the numbers do not depend on how the run is cut.
    """
    num, nh = x.shape[0], len(hyper)
    leaves, treedef = jax.tree.flatten(opt_state)
    axes = treedef.flatten_up_to(state_axes)
    mapped = [a == 0 for a in axes]
    one = lambda a, m: jax.ShapeDtypeStruct(a.shape[1:] if m else a.shape, a.dtype)  # noqa: E731
    x1 = one(x, True)
    big = [jax.ShapeDtypeStruct(x1.shape, jnp.bool_)] if problem.stochastic else []
    t = jax.ShapeDtypeStruct((), jnp.int32)
    example = [one(h, True) for h in hyper] + [t, *big, x1]
    example += [one(leaf, m) for leaf, m in zip(leaves, mapped, strict=True)] + [x1]
    known = [not m for m in mapped]  # the candidates; shrinks to the leaves the split can share
    while True:
        varying = [True] * nh + [False] + [True] * len(big) + [True] + [not k for k in known] + [True]
        try:
            outputs = [1 + j for j, k in enumerate(known) if k]  # [x, *state, partial]
            shared_step, setting_step = staging.split(step, example, varying, outputs)
            break
        except staging.Inseparable as err:
            for i in err.outputs:
                known[i - 1] = False
    shared_examples = [one(leaf, False) for leaf, k in zip(leaves, known, strict=True) if k]
    # The shared part's state recurrence (the step counter, the moments of a learning-rate grid) runs
    # step after step; what only hangs off it (bias corrections, square roots, divisions) is computed
    # afterwards for the whole stage at once, vectorised over its steps (see `staging.recurrence`).
    advance, rest = staging.recurrence(
        lambda t, *s: [a for part in shared_step(t, *s) for a in part],
        [t, *shared_examples],
        carried=len(shared_examples),
    )
    _, links = jax.eval_shape(advance, t, *shared_examples)
    rest_axes = [a for a, k in zip(axes, known, strict=True) if not k]
    # Two steps per loop iteration when the per-setting part carries no optimizer state (a learning-rate
    # grid on the online problem: x and the regret alone): XLA fuses the two steps into the same 3
    # kernels as one (a compiled piece ran 1.2x faster, interleaved, with the same bits; 4 steps per
    # iteration ran 9% slower, 8 steps 2x slower, once XLA split their big regret kernel over threads).
    # With state per setting or seed, two steps made 10-11 kernels against 6-7, past XLA:CPU's 8-kernel
    # limit for sequential execution, and ran 2.6x slower.
    if unroll is None:
        unroll = 1 if rest_axes else 2
    if num == 1:  # one setting: its arrays lose the settings axis for the loop (see `piece`)
        per_settings = setting_step
    else:
        per_settings = jax.vmap(
            setting_step,
            in_axes=((*[0] * nh, *[None] * len(big), 0, *rest_axes, 0), None),
            out_axes=[0, *rest_axes, 0],
            axis_size=num,
        )

    def stage(t_start, k, done, mask, hyper, shared, varied):
        """Steps t_start + 1 .. t_start + k (k <= BLOCK); ``done`` of the piece's steps before them."""

        def run_shared(i, c):
            shared, buffers = c
            shared, values = advance(t_start + i + 1, *shared)
            buffers = tuple(
                jax.lax.dynamic_update_index_in_dim(b, v, i, 0) for b, v in zip(buffers, values, strict=True)
            )
            return shared, buffers

        empty = tuple(jnp.zeros((BLOCK, *v.shape), v.dtype) for v in links)
        shared, buffers = jax.lax.fori_loop(0, k, run_shared, (shared, empty))
        # rows past k hold zeros and give values that are never read
        buffers = tuple(jax.vmap(rest, axis_size=BLOCK)(buffers))

        def run_settings(i, varied):
            res = tuple(jax.lax.dynamic_index_in_dim(b, i, keepdims=False) for b in buffers)
            flags = (windows.is_big(mask, done + i),) if mask is not None else ()
            return tuple(per_settings((*hyper, *flags, *varied), res))

        if unroll == 1:
            return shared, jax.lax.fori_loop(0, k, _regret_first(run_settings), varied)

        # `unroll` steps per loop iteration, in slots aligned on absolute step numbers: step t always
        # runs in slot (t - 1) % unroll of the same compiled body, whatever the cut of the run, so its
        # arithmetic (which multiply-adds XLA:CPU contracts) does not depend on the cut. A slot outside
        # the stage computes a step on stale inputs and keeps the old values.
        first = t_start % unroll

        def run_group(j, varied):
            for slot in range(unroll):
                i = j * unroll + slot - first
                new = run_settings(i, varied)
                inside = (i >= 0) & (i < k)
                varied = tuple(jnp.where(inside, a, b) for a, b in zip(new, varied, strict=True))
            return varied

        return shared, jax.lax.fori_loop(0, (first + k + unroll - 1) // unroll, run_group, varied)

    # With one setting, the loop runs on arrays without the settings axis: a [1, seeds] array beside
    # the [seeds] moments (unmapped: no hyperparameter reaches them) costs a reshape between kernels
    # and keeps XLA from fusing them (the stochastic sweep ran 1.3x faster squeezed).
    squeeze = (lambda a: a[0]) if num == 1 else (lambda a: a)  # noqa: E731
    unsqueeze = (lambda a: a[None]) if num == 1 else (lambda a: a)  # noqa: E731

    def piece(carry: Carry, grid, seed_keys, t0, n):
        hyper = [squeeze(grid[k]) for k in sorted(grid)]
        if problem.stochastic:
            mask, sampler = windows.window(seed_keys, carry.sampler, t0, n, chunk, problem.p)
        else:
            mask, sampler = None, carry.sampler
        state = treedef.flatten_up_to(carry.opt_state)
        shared = [leaf for leaf, k in zip(state, known, strict=True) if k]
        own = [squeeze(a) if ax == 0 else a for a, ax, k in zip(state, axes, known, strict=True) if not k]
        varied = (squeeze(carry.x), *own)
        regret, comp, partial = (squeeze(a) for a in (carry.regret, carry.compensation, carry.partial))

        def next_stage(t_start, k, done, state, partial):
            shared, varied = state
            shared, varied = stage(t_start, k, done, mask, hyper, shared, (*varied, partial))
            return (shared, varied[:-1]), varied[-1]  # partial rides last

        (shared, varied), regret, comp, partial = _in_blocks(
            t0, n, next_stage, (shared, varied), regret, comp, partial
        )
        shared_it, varied_it = iter(shared), iter(varied[1:])
        state = [next(shared_it) if k else next(varied_it) for k in known]
        state = [unsqueeze(a) if ax == 0 else a for a, ax in zip(state, axes, strict=True)]
        opt_state = jax.tree.unflatten(treedef, state)
        x, regret, comp, partial = (unsqueeze(a) for a in (varied[0], regret, comp, partial))
        return Carry(x, opt_state, regret, comp, partial, sampler)

    return piece




def _regret_first(body):
    """``body`` (a loop body over ``(x, *state, partial)``) with the new iterate made to depend on the
    new block regret: ``x + min(|partial|, 0)``, which is x (a -0.0 becomes +0.0; NaN where partial is
    NaN, which only a NaN iterate or gradient makes, and those make x NaN anyway).

    Why: the regret reads the old iterate, and the new one overwrites it. With no dependency between
    the two kernels XLA:CPU cannot rely on their order and writes the new iterate aside, then copies
    it into place, in every iteration: a seventh kernel per step of the stochastic problem. With the
    new iterate reading the regret, the regret comes first and x is updated in place (the stochastic
    Adam sweep ran 1.07-1.13x faster, interleaved, with the same numbers). The online loop with two
    steps per iteration has no such copy (XLA's region-based copy insertion sees the order there) and
    ran 0.6x as fast with the dependency written into the step, so it is used for one step per
    iteration only.
    """

    def ordered(i, carry):
        x, *rest, partial = body(i, carry)
        return (x + jnp.minimum(jnp.abs(partial), 0.0), *rest, partial)

    return ordered


def _broadcast(tree, axes_from, axes_to, num):
    """Give a settings axis to the leaves that are unmapped in ``axes_from`` but mapped in ``axes_to``."""

    def fix(leaf, a, b):
        if a is None and b == 0:
            return jnp.broadcast_to(leaf, (num, *jnp.shape(leaf)))
        return leaf

    return jax.tree.map(fix, tree, axes_from, axes_to, is_leaf=lambda z: z is None)

