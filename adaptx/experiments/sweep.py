r"""Run an optimizer on the AMSGrad paper's problems: many seeds and hyperparameters in one program.

The problem is one-dimensional, so a *run* is a scalar iterate :math:`x_t \in [-1, 1]` and a scalar
optimizer state. A sweep keeps one such scalar per (hyperparameter setting, seed) in arrays of shape
``[settings, seeds]``: the parameter handed to the optimizer is the vector of all seeds' iterates (an
elementwise optimizer on a vector is exactly ``vmap`` over seeds, and its per-step scalars such as bias
corrections are computed once for all seeds), and the hyperparameter settings are a ``jax.vmap`` over
the optimizer's *construction* (adaptx and optax accept traced hyperparameters).

Each step t (1-based) of a run does

.. math::
    c_t = \text{gradient of } f_t, \quad R_t = R_{t-1} + c_t (x_t - x^*), \quad
    x_{t+1} = \Pi_{[-1,1]}\bigl(x_t + \text{update}(c_t)\bigr),

with :math:`x_1 = x_0` (default 0) and :math:`x^* = -1`. A log entry at step T holds :math:`R_T / T` and
the iterate after T updates, :math:`x_{T+1}` (written :math:`x_T` in plots, as in the paper).

Memory and chunks. The steps run inside ``jit`` as a ``lax.fori_loop`` over one *piece* of at most
``chunk`` steps at a time; the host calls the compiled piece for consecutive pieces, cut at the logged
steps and at multiples of ``chunk``, and keeps only the logged values. Memory therefore depends on the
number of logged points and on ``chunk``, not on the number of steps. The numbers do not depend on how
the run is cut: the step computation is the same compiled loop body, and the random big steps of a seed
are a pure function of the seed (see :mod:`adaptx.experiments.sampling`).

Regret accuracy. :math:`R_t` grows like :math:`t` and reaches ~1e8 in a 10M-step run, where one
float32 ulp is 8 while the increments are ~20. It is accumulated with Kahan's compensated summation (a
running correction term carries the low-order bits lost by each addition), which keeps the float32 sum
within a few ulp of the exact one whatever the number of steps.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.experiments import sampling
from adaptx.experiments.problems import X_STAR

Array = jax.Array
OptimizerFactory = Callable[..., optax.GradientTransformation]


class Carry(NamedTuple):
    """Everything a sweep carries from one step to the next.

    Attributes:
      x: iterates, ``[settings, seeds]``.
      opt_state: the optimizer states, batched over settings (and over seeds inside each leaf).
      regret: :math:`R_t`, ``[settings, seeds]``, the Kahan sum.
      compensation: the Kahan correction of ``regret`` (the low-order bits still to be added).
      sampler: the big-step sampler state (stochastic problem), or ``None``.
    """

    x: Array
    opt_state: Any
    regret: Array
    compensation: Array
    sampler: sampling.SamplerState | None


@dataclasses.dataclass
class Result:
    """The logged trajectory of a sweep.

    Attributes:
      problem: the problem object that was run.
      t: int64 ``[points]``, the logged step numbers T (increasing, the last is the number of steps).
      x: float ``[settings, seeds, points]``, the iterate after T steps.
      avg_regret: float ``[settings, seeds, points]``, :math:`R_T / T`.
      seeds: the integer seeds, ``[seeds]``.
      grid: the hyperparameter values of each setting, name -> ``[settings]`` (empty without a grid).
      label: a name for tables and legends.
      seconds: wall-clock time of the run, compilation included.
    """

    problem: Any
    t: np.ndarray
    x: np.ndarray
    avg_regret: np.ndarray
    seeds: np.ndarray
    grid: dict[str, np.ndarray]
    label: str = ""
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """The number of steps run."""
        return int(self.t[-1])

    @property
    def num_settings(self) -> int:
        return self.x.shape[0]

    def setting(self, i: int) -> dict[str, float]:
        """The hyperparameters of setting ``i`` as Python floats."""
        return {k: float(v[i]) for k, v in self.grid.items()}

    def final_x(self) -> np.ndarray:
        """:math:`x_T` at the last step, ``[settings, seeds]``."""
        return self.x[..., -1]

    def final_avg_regret(self) -> np.ndarray:
        """:math:`R_T / T` at the last step, ``[settings, seeds]``."""
        return self.avg_regret[..., -1]

    def summary(self) -> list[dict[str, float]]:
        """One row per setting: its hyperparameters, mean and std over seeds of :math:`x_T` and
        :math:`R_T / T`, and the fraction of seeds ending at :math:`x_T > 0` (the wrong half)."""
        xs, rs = self.final_x(), self.final_avg_regret()
        rows = []
        for i in range(self.num_settings):
            rows.append(
                {
                    **self.setting(i),
                    "x_mean": float(xs[i].mean()),
                    "x_std": float(xs[i].std()),
                    "regret_mean": float(rs[i].mean()),
                    "regret_std": float(rs[i].std()),
                    "frac_positive": float((xs[i] > 0).mean()),
                }
            )
        return rows


def log_times(steps: int, points: int = 200, spacing: str = "log") -> np.ndarray:
    """The step numbers to log: ``points`` values in ``[1, steps]``, log- or evenly spaced, always ending
    at ``steps`` (duplicates after rounding removed, so there may be fewer).

    Example:
      >>> from adaptx.experiments import log_times
      >>> log_times(1000, 4).tolist()
      [1, 10, 100, 1000]
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if steps > 2**31 - 2**20:
        raise ValueError(f"steps must be below 2**31 - 2**20 (int32 step counters), got {steps}")
    if not isinstance(points, (int, np.integer)) or points < 1:
        raise ValueError(f"points must be a positive int, got {points!r}")
    if spacing == "log":
        ts = np.geomspace(1, steps, points)
    elif spacing == "linear":
        ts = np.linspace(steps / points, steps, points)
    else:
        raise ValueError(f"spacing must be 'log' or 'linear', got {spacing!r}")
    ts = np.unique(np.clip(np.round(ts).astype(np.int64), 1, steps))
    return np.unique(np.append(ts, steps))


def _as_grid(grid: Mapping[str, Any] | None) -> tuple[dict[str, np.ndarray], int]:
    if not grid:
        return {}, 1
    out = {}
    for name, values in grid.items():
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if arr.ndim != 1:
            raise ValueError(f"grid[{name!r}] must be a 1-D sequence of values, got shape {arr.shape}")
        out[name] = arr
    sizes = {name: v.size for name, v in out.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(
            f"grid values must all have the same length (one entry per setting; see product_grid), "
            f"got {sizes}"
        )
    return out, next(iter(sizes.values()))


def product_grid(**axes: Sequence[float]) -> dict[str, np.ndarray]:
    """Every combination of the given values, as the ``grid`` argument of :func:`sweep`.

    Example:
      >>> from adaptx.experiments import product_grid
      >>> {k: v.tolist() for k, v in product_grid(learning_rate=[1e-2, 1e-3], b2=[0.99, 0.999]).items()}
      {'learning_rate': [0.01, 0.01, 0.001, 0.001], 'b2': [0.99, 0.999, 0.99, 0.999]}
    """
    names = list(axes)
    mesh = np.meshgrid(*[np.asarray(axes[n], dtype=np.float64) for n in names], indexing="ij")
    return {n: m.ravel() for n, m in zip(names, mesh, strict=True)}


@functools.lru_cache(maxsize=64)
def _constant_factory(transformation: optax.GradientTransformation) -> OptimizerFactory:
    """``lambda: transformation``, the same function object for the same transformation (so that
    :func:`_step_fn`'s cache finds the compiled program of a previous run)."""
    return lambda: transformation


def _one_setting(problem, make_optimizer, dtype, unroll=1):
    """The functions of *one* hyperparameter setting (all seeds): its initial state, and a piece of steps.

    ``advance(hyper, mask, t0, n, x, opt_state, regret, comp)`` runs steps ``t0 + 1 .. t0 + n``; ``mask``
    holds the big steps of the stochastic problem (row i is step ``t0 + 1 + i``), ``None`` online.
    """

    def init(hyper, x):
        return make_optimizer(**hyper).init(x)

    def advance(hyper, mask, t0, n, x, opt_state, regret, comp):
        opt = make_optimizer(**hyper)

        def body(i, c):
            x, opt_state, regret, comp = c
            t = t0 + i + 1
            big = None if mask is None else sampling.is_big(mask, i)
            g = jnp.reshape(problem.gradient(t, big, dtype), (-1,))  # [seeds] or [1]
            g = jnp.reshape(g, ()) if x.ndim == 0 else jnp.broadcast_to(g, x.shape)
            # Kahan summation of R_t += c_t (x_t - x*): `comp` holds what the last addition lost.
            y = g * (x - X_STAR) - comp
            total = regret + y
            comp = (total - regret) - y
            updates, opt_state = opt.update(g, opt_state, x)
            x = jnp.clip(x + updates, -1.0, 1.0)
            return x, opt_state, total, comp

        def block(j, c):  # `unroll` steps per loop iteration: fewer iterations, same arithmetic
            for k in range(unroll):
                c = body(j * unroll + k, c)
            return c

        c = (x, opt_state, regret, comp)
        if unroll == 1:
            return jax.lax.fori_loop(0, n, body, c)
        c = jax.lax.fori_loop(0, n // unroll, block, c)
        return jax.lax.fori_loop((n // unroll) * unroll, n, body, c)  # the remaining n % unroll steps

    return init, advance


def _mapped(fn, in_axes, args, num) -> Any:
    """Which outputs of ``vmap(fn, in_axes)`` depend on the mapped inputs: a tree like the output with
    0 (mapped) or ``None`` (the same for every setting) at each leaf. Found by tracing only."""
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


def _join(a, b):
    """Leafwise: mapped if either is."""
    both_none = lambda u, v: None if u is None and v is None else 0  # noqa: E731
    return jax.tree.map(both_none, a, b, is_leaf=lambda z: z is None)


_PROGRAMS: dict = {}
# Steps per loop iteration (online, stochastic). Each step of a small batch costs a dozen tiny kernel
# launches; unrolling a few steps per iteration lets XLA schedule them together. Measured best on a
# 2-core CPU: the online problem (no mask to read) gains most. The results do not depend on it.
_UNROLL = {False: 4, True: 1}


def _program(problem, make_optimizer, dtype, grid, x, seed_keys, chunk):
    """The initial optimizer states and the compiled piece ``(carry, grid, keys, t0, n) -> carry``.

    Settings are a ``vmap`` over the optimizer's construction. A plain ``vmap`` returns every output
    with a settings axis, but in a grid over the learning rate alone (the usual case) the moments do not
    depend on the setting: a ``vmap`` of the *whole* run would keep them unmapped, one copy for all
    settings, and cost a fraction as much. Our run is cut into pieces, so we find that pattern
    ourselves: trace one piece, see which state leaves come out mapped, and iterate to the fixed point.
    Unmapped leaves are then stored once and passed with ``in_axes=None``. The compiled piece is cached
    per (problem, factory, dtype, grid names, sizes).
    """
    num = x.shape[0]
    init, advance = _one_setting(problem, make_optimizer, dtype, _UNROLL[problem.stochastic])
    key = (problem, make_optimizer, dtype, tuple(sorted(grid)), x.shape, chunk)
    if key in _PROGRAMS:
        init_axes, state_axes, piece = _PROGRAMS[key]
        opt_state = jax.vmap(init, in_axes=(0, 0), out_axes=init_axes, axis_size=num)(grid, x)
        return _broadcast(opt_state, init_axes, state_axes, num), piece
    if num == 1:  # one setting: nothing to share, skip the analysis (it costs a few traces)
        first_axes = init_axes = jax.tree.map(lambda _: 0, jax.eval_shape(init, grid, x[0]))
    else:
        first_axes = init_axes = _mapped(init, (0, 0), (grid, x), num)
    opt_state = jax.vmap(init, in_axes=(0, 0), out_axes=init_axes, axis_size=num)(grid, x)
    rows = sampling.mask_rows(chunk)
    mask = jax.ShapeDtypeStruct((rows, seed_keys.shape[0]), jnp.uint32) if problem.stochastic else None
    scalar = jax.ShapeDtypeStruct((), jnp.int32)
    axes = init_axes
    while num > 1:
        in_axes = (0, None, None, None, 0, axes, 0, 0)
        out = _mapped(advance, in_axes, (grid, mask, scalar, scalar, x, opt_state, x, x), num)
        joined = _join(axes, out[1])
        if joined == axes:
            break
        axes = joined
        opt_state = _broadcast(opt_state, init_axes, axes, num)
        init_axes = axes
    state_axes = axes

    def piece(carry: Carry, grid, seed_keys, t0, n):
        if problem.stochastic:
            mask, sampler = sampling.window(seed_keys, carry.sampler, t0, n, chunk, problem.p)
        else:
            mask, sampler = None, carry.sampler
        x, opt_state, regret, comp = jax.vmap(
            advance,
            in_axes=(0, None, None, None, 0, state_axes, 0, 0),
            out_axes=(0, state_axes, 0, 0),
            axis_size=num,
        )(grid, mask, t0, n, carry.x, carry.opt_state, carry.regret, carry.compensation)
        return Carry(x, opt_state, regret, comp, sampler)

    if len(_PROGRAMS) > 64:
        _PROGRAMS.clear()
    _PROGRAMS[key] = (first_axes, state_axes, jax.jit(piece))
    return opt_state, _PROGRAMS[key][2]


def _broadcast(tree, axes_from, axes_to, num):
    """Give a settings axis to the leaves that are unmapped in ``axes_from`` but mapped in ``axes_to``."""

    def fix(leaf, a, b):
        if a is None and b == 0:
            return jnp.broadcast_to(leaf, (num, *jnp.shape(leaf)))
        return leaf

    return jax.tree.map(fix, tree, axes_from, axes_to, is_leaf=lambda z: z is None)


def sweep(
    make_optimizer: OptimizerFactory | optax.GradientTransformation,
    problem: Any,
    *,
    steps: int,
    seeds: Sequence[int] | int = 1,
    grid: Mapping[str, Sequence[float]] | None = None,
    x0: float = 0.0,
    log_points: int = 200,
    spacing: str = "log",
    chunk: int = 8192,
    label: str = "",
    progress: Callable[[int, int], None] | None = None,
    dtype: Any = jnp.float32,
) -> Result:
    r"""Run ``make_optimizer(**setting)`` on ``problem`` for every hyperparameter setting and seed.

    For each setting h and seed s the run starts at :math:`x_1 = x_0`, steps
    :math:`x_{t+1} = \Pi_{[-1,1]}(x_t + \text{update}_t)` for ``steps`` steps, and logs :math:`x` and
    :math:`R_T/T` at :func:`log_times` ``(steps, log_points, spacing)``. All settings and seeds run as one
    compiled program; see the module docstring for how steps are chunked.

    Args:
      make_optimizer: a function of the grid's hyperparameters (keyword arguments, traced jax scalars)
        returning an optax transformation, e.g. ``lambda learning_rate, b2: adaptx.adam(learning_rate,
        b2=b2)``; or, without ``grid``, a transformation itself.
      problem: :class:`~adaptx.experiments.Online` or :class:`~adaptx.experiments.Stochastic`.
      steps: number of steps T (``< 2**31 - 2**20``).
      seeds: the integer seeds, or their number n for ``range(n)``. Seed s draws the same big steps in
        every sweep, whatever the other seeds, settings or ``chunk``. The online problem is deterministic:
        every seed gives the same numbers.
      grid: hyperparameter settings, name -> sequence of values, all of the same length (one entry per
        setting; :func:`product_grid` builds every combination). ``None``: one setting.
      x0: the starting point :math:`x_1` in ``[-1, 1]``.
      log_points, spacing: how many steps to log and whether ``"log"`` or ``"linear"`` spaced.
      chunk: the most steps one compiled call runs (memory holds a ``[chunk, seeds]`` bool mask). Does not
        change the results.
      label: a name stored in the result.
      progress: called as ``progress(steps_done, steps)`` after every piece (the call waits for the
        device, so it slows tiny pieces down a little).
      dtype: floating dtype of the iterates.

    Returns:
      a :class:`Result`.

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import Online, sweep
      >>> res = sweep(lambda learning_rate: adaptx.adam(learning_rate, b2=0.99), Online(),
      ...             steps=20_000, grid={"learning_rate": [1e-2, 1e-3]})
      >>> [round(float(x), 1) for x in res.final_x()[:, 0]]  # heading for the worst point, +1
      [1.0, 0.4]
    """
    start = time.perf_counter()
    grid_np, num_settings = _as_grid(grid)
    if isinstance(make_optimizer, optax.GradientTransformation):
        if grid_np:
            raise ValueError("with a grid, pass a function of the hyperparameters, not a transformation")
        make_optimizer = _constant_factory(make_optimizer)
    if not callable(make_optimizer):
        raise ValueError(f"make_optimizer must be callable, got {make_optimizer!r}")
    seeds_np = np.arange(seeds) if isinstance(seeds, (int, np.integer)) else np.asarray(seeds)
    if seeds_np.ndim != 1 or seeds_np.size < 1 or seeds_np.dtype.kind not in "iu":
        raise ValueError(f"seeds must be a positive int or a 1-D sequence of ints, got {seeds!r}")
    if not -1.0 <= float(x0) <= 1.0:
        raise ValueError(f"x0 must lie in [-1, 1], got {x0!r}")
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    ts = log_times(steps, log_points, spacing)

    # XLA simplifies a program on single-element arrays differently (as scalars), which changes the
    # last bit of some results; a lone run is therefore computed as two copies of itself, so that it
    # gives exactly the numbers it gives inside a sweep.
    run_seeds = np.repeat(seeds_np, 2) if num_settings * seeds_np.size == 1 else seeds_np
    num_seeds = run_seeds.size
    grid_j = {k: jnp.asarray(v, dtype) for k, v in grid_np.items()}
    # One seed (the online problem, or a one-seed grid): each setting's iterate is a scalar, not a
    # length-1 vector; XLA runs [settings] arrays markedly faster than [settings, 1] ones.
    shape = (num_settings,) if num_seeds == 1 else (num_settings, num_seeds)
    x = jnp.full(shape, x0, dtype)
    seed_keys = sampling.keys(run_seeds)
    opt_state, piece = _program(problem, make_optimizer, jnp.dtype(dtype), grid_j, x, seed_keys, chunk)
    zeros = jnp.zeros_like(x)
    sampler = sampling.init(seed_keys, problem.p) if problem.stochastic else None
    carry = Carry(x, opt_state, zeros, zeros, sampler)

    cuts = np.union1d(ts, np.arange(chunk, steps, chunk, dtype=np.int64))
    logged = set(ts.tolist())
    xs, regrets = [], []
    done = 0
    for end in cuts.tolist():
        carry = piece(carry, grid_j, seed_keys, jnp.int32(done), jnp.int32(end - done))
        done = end
        if done in logged:
            xs.append(carry.x)
            regrets.append((carry.regret - carry.compensation) / jnp.asarray(done, dtype))
        if progress is not None:
            jax.block_until_ready(carry.x)
            progress(done, steps)
    x_log = np.asarray(jnp.stack(xs)).reshape(len(xs), num_settings, num_seeds)
    r_log = np.asarray(jnp.stack(regrets)).reshape(len(xs), num_settings, num_seeds)
    x_log = np.moveaxis(x_log, 0, -1)[:, : seeds_np.size]
    r_log = np.moveaxis(r_log, 0, -1)[:, : seeds_np.size]
    return Result(
        problem=problem,
        t=ts,
        x=x_log,
        avg_regret=r_log,
        seeds=seeds_np,
        grid=grid_np,
        label=label,
        seconds=time.perf_counter() - start,
    )


def run(optimizer: optax.GradientTransformation, problem: Any, **kwargs) -> Result:
    """One optimizer (no hyperparameter grid) on ``problem``: :func:`sweep` with ``grid=None``.

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import Stochastic, run
      >>> res = run(adaptx.amsgrad(1e-2, b2=0.99), Stochastic(), steps=10_000, seeds=4)
      >>> res.x.shape  # [settings, seeds, logged points]
      (1, 4, 154)
    """
    if "grid" in kwargs:
        raise ValueError("run takes no grid; use sweep")
    return sweep(optimizer, problem, **kwargs)
