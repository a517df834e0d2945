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

with :math:`x_1 = x_0` (default 0) and :math:`x^* = -1` (the problem's ``x_star``; :math:`[-1, 1]` is its
``domain``). A log entry at step T holds :math:`R_T / T` and
the iterate after T updates, :math:`x_{T+1}` (written :math:`x_T` in plots, as in the paper).

Runners. Everything below is the *fast path*, tuned for XLA:CPU, and :func:`sweep` runs it on a CPU.
On every other backend (or with ``runner="reference"``) it runs
:func:`adaptx.experiments.reference.reference_sweep` instead: the same algorithm written plainly, the
specification this module is tested against (tests/test_reference_runner.py). Both read the
problem's ``x_star`` and ``domain`` (:class:`adaptx.experiments.problems.Problem`).

Memory and chunks. The steps run inside ``jit`` as loops over one *piece* of at most ``chunk`` steps
at a time; the host calls the compiled piece for consecutive pieces, cut at the logged steps and at
multiples of ``chunk``, and keeps only the logged values. Memory therefore depends on the number of
logged points and on ``chunk``, not on the number of steps. The numbers do not depend on how the run is
cut: every step runs the same compiled arithmetic, block boundaries (below) sit at absolute step
numbers, and the random big steps of a seed are a pure function of the seed (see
:mod:`adaptx.experiments.sampling`).

Speed. Part of every step depends on t alone: the step counter and the bias corrections computed from
it, the online problem's gradient, and in a learning-rate grid on the online problem the optimizer's
moments too. A piece is cut in two by :mod:`adaptx.experiments.staging`: that shared part runs ahead a
stage of 256 steps (its state's recurrence as a loop over scalars, what hangs off it, such as the bias
corrections, as vector code over the 256 steps), then the settings and seeds take those steps reading
its values (see :func:`_staged_piece`), one step per loop iteration (two when the settings carry no
optimizer state of their own). On a CPU the piece is compiled with XLA's region-based copy insertion
(``_CPU_OPTIONS``), which drops copies XLA otherwise makes in every loop iteration.

Regret accuracy. :math:`R_t` grows like :math:`t` and reaches ~1e8 in a 10M-step run, where one
float32 ulp is 8 while the increments are ~20. It is accumulated with Kahan's compensated summation (a
running correction term carries the low-order bits lost by each addition), which keeps the float32 sum
within a few ulp of the exact one whatever the number of steps. Both pieces add the regret of each
block of 256 steps (one stage, aligned on multiples of 256) in plain float32 first, then add the block's
sum to the Kahan sum (three vector kernels per block instead of per step: 1.2x the stochastic sweep's
speed). A float32 sum of 256 terms is off by at most 255 roundings of its own size (at most ~0.25 for
the paper's problem, whose block sums are ~1e4; the rounding errors mostly cancel), and these errors do
not grow with the magnitude of :math:`R_t` the way a plain running sum's do (tests: 2M steps of either
problem within 1e-6 of the exact sum; measured 2e-9 online and 2e-8 stochastic).

Same numbers everywhere. XLA:CPU lets LLVM contract a multiply and an add into a fused multiply-add,
and its vector loops and their scalar remainders need not contract the same pairs, so without care a
run's last bits would depend on where it sits in the batch. The batch axis is therefore padded to a
multiple of 64 (see :func:`sweep`): a seed gives bit-identical numbers alone or anywhere in a sweep of
any size, since every seed runs through the same vector code of the same program. A setting alone and
inside a grid of the same hyperparameter names gives the same bits too in the tests, but these are two
programs with different numbers of settings, which XLA could in principle contract differently.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.core import hyperparams
from adaptx.experiments import sampling, staging

Array = jax.Array
OptimizerFactory = Callable[..., optax.GradientTransformation]


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


#: The most steps a run may take: its step counters are int32, with room for a window past the end.
MAX_STEPS = 2**31 - 2**20

#: The most points :func:`log_times` logs (each is a call of the compiled program and a row of output).
MAX_LOG_POINTS = 2**20


def log_times(steps: int, points: int = 200, spacing: str = "log") -> np.ndarray:
    """The step numbers to log: ``points`` values in ``[1, steps]``, log- or evenly spaced, always ending
    at ``steps`` (duplicates after rounding removed, so there may be fewer; ``points`` above ``steps``
    count as ``steps``).

    Example:
      >>> from adaptx.experiments import log_times
      >>> log_times(1000, 4).tolist()
      [1, 10, 100, 1000]
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if steps > MAX_STEPS:
        raise ValueError(f"steps must be at most {MAX_STEPS:,} (int32 step counters), got {steps}")
    if not isinstance(points, (int, np.integer)) or isinstance(points, bool) or points < 1:
        raise ValueError(f"points must be a positive int, got {points!r}")
    if points > MAX_LOG_POINTS:
        raise ValueError(f"points must be at most 2**20 = {MAX_LOG_POINTS:,}, got {points}")
    points = min(int(points), int(steps))  # more points than steps would repeat steps
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


#: Grid names that mean the same thing for every optimizer here, with the checks adaptx's constructors
#: apply to them. Other names (``b2``: Adam's decay rate, AdaX's growth rate) are left to the optimizer's
#: constructor, which :func:`check_grid` calls with every setting.
NAMED_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "learning_rate": hyperparams.check_non_negative,
    "lr": hyperparams.check_non_negative,
    "b1": hyperparams.check_decay,
    "eps": hyperparams.check_non_negative,
    "weight_decay": hyperparams.check_non_negative,
}


class GridError(ValueError):
    """An invalid hyperparameter value in a grid (:func:`check_grid`).

    Attributes:
      reason: what is wrong, naming the argument (the message of the check that failed).
      setting: the setting, name -> value, or ``None`` when the value alone is invalid.
    """

    def __init__(self, reason: str, setting: dict[str, float] | None = None):
        where = "" if setting is None else ", ".join(f"{n}={v:g}" for n, v in setting.items())
        super().__init__(f"{reason} (grid setting {where})" if where else reason)
        self.reason, self.setting = reason, setting


def check_grid(make_optimizer: OptimizerFactory, grid: Mapping[str, Sequence[float]] | None) -> None:
    """Check a grid's hyperparameter values before anything is compiled; raise :class:`GridError` (a
    ``ValueError``) naming the argument and the setting.

    Inside a sweep the values are traced (one program runs every setting), so an optimizer's
    constructor cannot check them, and an invalid value (β2 = 1.5, a negative learning rate) would run
    and give meaningless numbers. So the concrete values are checked here, with the functions of
    :mod:`adaptx.core.hyperparams` that the constructors use: every value must be finite, the names of
    :data:`NAMED_CHECKS` get their checks, and ``make_optimizer`` is called with each distinct setting as
    Python floats, which runs the constructor's own checks (``b2`` of Adam must lie in [0, 1), of AdaX
    be positive, ...).

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import check_grid
      >>> check_grid(lambda learning_rate, b2: adaptx.adam(learning_rate, b2=b2),
      ...            {"learning_rate": [1e-2], "b2": [1.5]})
      Traceback (most recent call last):
      ...
      adaptx.experiments.sweep.GridError: b2 must lie in [0.0, 1.0), got 1.5 (grid setting ...)
    """
    grid_np, num = _as_grid(grid)
    for name, values in grid_np.items():
        for value in dict.fromkeys(values.tolist()):
            try:
                hyperparams.check_range(name, value)  # finite
                if name in NAMED_CHECKS:
                    NAMED_CHECKS[name](name, value)
            except ValueError as err:
                raise GridError(str(err)) from None
    names = list(grid_np)
    for row in dict.fromkeys(tuple(float(grid_np[n][i]) for n in names) for i in range(num) if names):
        setting = dict(zip(names, row, strict=True))
        try:
            make_optimizer(**setting)
        except ValueError as err:
            raise GridError(str(err), setting) from None


@functools.lru_cache(maxsize=64)
def _constant_factory(transformation: optax.GradientTransformation) -> OptimizerFactory:
    """``lambda: transformation``, the same function object for the same transformation (so that
    :func:`_step_fn`'s cache finds the compiled program of a previous run)."""
    return lambda: transformation


#: :func:`sweep`'s runners: the staged CPU program and the plain reference.
RUNNERS = ("fast", "reference")

_LANES = 64  # the batch axis is padded to a multiple of this (see `sweep`)
_DEFAULT_CHUNK = 8192  # `sweep`'s default chunk, and the least it lowers a chunk to


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` (1-D) extended to length ``n`` with copies of its last entry."""
    return np.concatenate([values, np.repeat(values[-1:], n - values.size)])


def _flush(regret, comp, partial):
    """Add a block's regret ``partial`` to the Kahan sum ``(regret, comp)``; ``partial`` restarts at 0.

    ``comp`` holds what the last addition to ``regret`` lost, so the sum is ``regret - comp``."""
    y = partial - comp
    total = regret + y
    return total, (total - regret) - y, jnp.zeros_like(partial)


def _in_blocks(t0, n, run, state, regret, comp, partial):
    """Steps ``t0 + 1 .. t0 + n`` in blocks that end at multiples of _STAGE (absolute step numbers).

    ``run(t_start, k, done, state, partial) -> (state, partial)`` takes steps ``t_start + 1 .. t_start
    + k`` (``done`` of the n already taken) and adds their regret to the block's plain float32 sum
    ``partial``; when the block is complete, its sum goes into the Kahan sum ``(regret, comp)``. Returns
    ``(state, regret, comp, partial)``.
    """

    def next_block(c):
        done, state, regret, comp, partial = c
        t_start = t0 + done
        k = jnp.minimum(_STAGE - t_start % _STAGE, n - done)  # up to the next multiple of _STAGE
        state, partial = run(t_start, k, done, state, partial)
        ends = (t_start + k) % _STAGE == 0
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

    Returns :math:`x_{t+1} = \Pi_{[-1,1]}(x_t + \text{update}(c_t))`, the new optimizer state and the
    step's regret :math:`c_t (x_t - x^*)`.
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


_PROGRAMS: dict = {}
# The regret block of both pieces (see `_in_blocks`), and how far the shared part of a step runs ahead
# of the settings (see `_staged_piece`). Each stage costs a few dozen kernel launches outside its loops;
# 256 steps spread them thinner than 64 did (online sweep 1.15x faster at 1024 settings, stochastic
# 1.04x, interleaved) and keep the stage's buffers a few KiB.
_STAGE = 256


def _program(problem, make_optimizer, dtype, grid, x, chunk, devices=None, fast_compile=False):
    """The initial optimizer states, the compiled piece ``(carry, grid, keys, t0, n) -> carry`` and the
    shardings of its arguments (``None`` on one device; see :func:`_split_runs`).

    Settings are a ``vmap`` over the optimizer's construction. A plain ``vmap`` returns every output
    with a settings axis, but in a grid over the learning rate alone (the usual case) the moments do not
    depend on the setting: a ``vmap`` of the *whole* run would keep them unmapped, one copy for all
    settings, and cost a fraction as much. Our run is cut into pieces, so we find that pattern
    ourselves: trace one step, see which state leaves come out mapped, and iterate to the fixed point.
    Unmapped leaves are then stored once and passed with ``in_axes=None``. The compiled piece is cached
    per (problem, factory, dtype, grid names, sizes, compile mode: see :func:`_cpu_options`).
    """
    num = x.shape[0]
    names = sorted(grid)

    def init(hyper, x):
        return make_optimizer(**hyper).init(x)

    key = (problem, make_optimizer, dtype, tuple(names), x.shape, chunk, devices, fast_compile)
    if key in _PROGRAMS:
        init_axes, state_axes, piece, shardings = _PROGRAMS[key]
        opt_state = jax.vmap(init, in_axes=(0, 0), out_axes=init_axes, axis_size=num)(grid, x)
        return _broadcast(opt_state, init_axes, state_axes, num), piece, shardings
    first_axes = axes = _mapped(init, (0, 0), (grid, x), num)
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
        out = _mapped(step, in_axes, args, num)
        joined = _join(axes, jax.tree.unflatten(treedef, out[1:-1]))
        if joined == axes:
            break
        opt_state = _broadcast(opt_state, axes, joined, num)
        axes = joined
    if len(_PROGRAMS) > 64:
        _PROGRAMS.clear()
    if devices is None:
        piece, shardings = _staged_piece(problem, step, hyper, x, opt_state, axes, chunk), None
    else:
        piece, shardings = _split_runs(problem, step, grid, x, opt_state, axes, chunk, devices)
    platform = devices[0].platform if devices else jax.default_backend()
    options = _cpu_options(fast_compile) if platform == "cpu" else None
    compiled = jax.jit(piece, compiler_options=options) if options else jax.jit(piece)
    _PROGRAMS[key] = (first_axes, axes, compiled, shardings)
    return opt_state, _PROGRAMS[key][2], shardings


# XLA:CPU options for the compiled piece (a per-program setting; other programs are not affected). The
# loop over the settings reads the old iterates for the regret and overwrites them with the new ones in
# place; XLA's default copy insertion cannot tell which comes first and copies the iterates and the loop
# index in every iteration. The region-based analysis sees the order and drops both copies in the online
# loop (online sweep 1.27x faster at 1024 settings, interleaved, with the same bits); in the stochastic
# loop it drops the index's copy only (1.01-1.02x); x's copy goes with `_regret_first`. Accelerators get
# XLA's defaults.
_CPU_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}

# For short sweeps, whose time is almost all compilation: XLA:CPU's classic code generator instead of its
# MLIR fusion emitters. Measured on 2 cores (jax 0.10.2), the stochastic piece compiled in 0.9-1.0 s
# instead of 4-5 s and the online one in 0.3 s instead of 0.9-1.2 s, with the same bits in every case
# tried (tests: test_sweep_compile.py), while the compiled loop ran 1.5-2.8x (stochastic) and 2-7x
# (online grids) slower. So it pays below ~2**25 seed-steps (`FAST_COMPILE_WORK`), where the slower loop
# costs well under a second.
_FAST_COMPILE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}

#: ``sweep(fast_compile=None)`` compiles for a fast start when steps x runs (padded) is at most this.
FAST_COMPILE_WORK = 2**25


@functools.cache
def _cpu_options(fast_compile: bool = False) -> dict | None:
    """The XLA:CPU options of the piece: ``_CPU_OPTIONS``, with ``_FAST_COMPILE_OPTIONS`` added when
    ``fast_compile``; each set only if this jax and XLA accept it (checked once on a tiny program), so
    that an XLA that has renamed or dropped an option compiles the piece with its defaults instead.
    ``None``: XLA's defaults."""

    def accepted(options: dict) -> bool:
        try:
            jax.jit(lambda a: a + 1, compiler_options=options).lower(np.float32(0)).compile()
        except Exception:  # an unknown option (XLA) or keyword (an older jax.jit)
            return False
        return True

    options = dict(_CPU_OPTIONS) if accepted(_CPU_OPTIONS) else {}
    if fast_compile and accepted(_FAST_COMPILE_OPTIONS):
        options.update(_FAST_COMPILE_OPTIONS)
    return options or None


_RUNS = "runs"  # the mesh axis the runs are split over


def _split_runs(problem, step, grid, x, opt_state, state_axes, chunk, devices):
    """The piece for runs split evenly over ``devices``, and the shardings of its arguments.

    The runs of a sweep are independent, so each device takes a contiguous block of the batch axis (the
    seeds of the stochastic problem, the settings of the online one) and runs :func:`_staged_piece`,
    built for its block's shapes, under ``jax.shard_map``: no communication, except that a device's
    big-step window loops until its own seeds are done (extra rounds change nothing: see
    :func:`adaptx.experiments.sampling.window`). The block of each device is a multiple of ``_LANES``
    (see :func:`sweep`), so a run goes through the same vector code as on one device: the same bits.
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
    sampler_spec = sampling.SamplerState(P(_RUNS), P(_RUNS)) if problem.stochastic else None
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
    on the online problem Adam's moments too. :func:`adaptx.experiments.staging.split` cuts the step
    into that shared part and the per-setting part, which reads the values it needs from the shared part
    (its *residuals*). The state leaves the shared part carries are those that the analysis of
    :func:`_program` found unmapped over the settings and that the split finds computed from t and
    from themselves alone (it reports any other; that leaf then moves to the per-setting part).

    A stage of k <= _STAGE steps runs the shared part for its k steps first: the recurrence of its state
    (:func:`adaptx.experiments.staging.recurrence`: the counter, a grid's shared moments) as a loop over
    scalars that XLA compiles into one kernel, storing the values the rest of the shared part reads,
    then that rest (bias corrections through ``expm1``, square roots, reciprocals) for all the stage's
    steps in one vectorised call, which gives the residuals of every step (on XLA:CPU the same bits as
    computing them inside the loop gave, and 3-8% faster sweeps, interleaved); then the per-setting part
    for the k steps, a loop whose iteration is a few vector kernels over the settings and seeds (it
    reads the stochastic problem's big steps from the window's bit mask). Without the scalars, the
    iteration is fewer kernels (a hand-written Adam loop over 1024 seeds ran 1.8x faster with its bias
    corrections read from a buffer). When the per-setting part carries no optimizer state, the loop
    takes two steps per iteration (``unroll``, chosen below unless given). A stage ends at every
    multiple of _STAGE (absolute step numbers) and there the block's regret is added to the Kahan sum,
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
        """Steps t_start + 1 .. t_start + k (k <= _STAGE); ``done`` of the piece's steps before them."""

        def run_shared(i, c):
            shared, buffers = c
            shared, values = advance(t_start + i + 1, *shared)
            buffers = tuple(
                jax.lax.dynamic_update_index_in_dim(b, v, i, 0) for b, v in zip(buffers, values, strict=True)
            )
            return shared, buffers

        empty = tuple(jnp.zeros((_STAGE, *v.shape), v.dtype) for v in links)
        shared, buffers = jax.lax.fori_loop(0, k, run_shared, (shared, empty))
        # rows past k hold zeros and give values that are never read
        buffers = tuple(jax.vmap(rest, axis_size=_STAGE)(buffers))

        def run_settings(i, varied):
            res = tuple(jax.lax.dynamic_index_in_dim(b, i, keepdims=False) for b in buffers)
            flags = (sampling.is_big(mask, done + i),) if mask is not None else ()
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
            mask, sampler = sampling.window(seed_keys, carry.sampler, t0, n, chunk, problem.p)
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
    devices: Sequence[Any] | int | None = None,
    fast_compile: bool | None = None,
    runner: str | None = None,
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
      steps: number of steps T (at most :data:`MAX_STEPS`, 2**31 - 2**20).
      seeds: the integer seeds, each in ``[0, 2**64)`` (distinct seeds draw distinct big steps), or
        their number n for ``range(n)``. Seed s draws the same big steps in every sweep, whatever the
        other seeds, settings or ``chunk``. The online problem is deterministic: it is run once per
        setting and every seed gets its numbers.
      grid: hyperparameter settings, name -> sequence of values, all of the same length (one entry per
        setting; :func:`product_grid` builds every combination). ``None``: one setting. The values are
        checked before anything is compiled (:func:`check_grid`).
      x0: the starting point :math:`x_1` in ``[-1, 1]``.
      log_points, spacing: how many steps to log and whether ``"log"`` or ``"linear"`` spaced.
      chunk: the most steps one compiled call runs (memory holds a ``[chunk, seeds]`` bit mask). Does not
        change the results. A chunk above the number of steps is lowered to the smallest power of two
        that covers them, but not below 8192 (so that runs of different lengths share their program).
      label: a name stored in the result.
      progress: called as ``progress(0, steps)`` once before the program is built and compiled (the
        compilation happens before its next call), then as ``progress(steps_done, steps)`` after every
        piece (the call waits for the device, so it slows tiny pieces down a little).
      dtype: floating dtype of the iterates.
      devices: the devices to split the runs over (the seeds of the stochastic problem, the settings
        of the online one; each device runs its share as its own program, with no communication), or
        their number n for the first n of ``jax.devices()``. ``None``: jax's default device. The
        numbers are the same bits on any number of devices. Devices beyond the number of runs are left
        out.
      fast_compile: on a CPU, compile for a fast start rather than a fast loop (see
        ``_FAST_COMPILE_OPTIONS``: a few times faster to compile, a few times slower per step; the same
        bits in every case measured). ``None``: when steps x runs is at most :data:`FAST_COMPILE_WORK`.
      runner: ``"fast"``, this module's staged program, tuned for XLA:CPU; ``"reference"``,
        :func:`adaptx.experiments.reference.reference_sweep`, the plain specification (no ``devices``,
        ``fast_compile`` unused), which the fast path is tested to match. ``None``: ``"fast"`` on a CPU
        (``jax.default_backend() == "cpu"``) or when ``devices`` is given (only the fast path splits
        runs over devices), ``"reference"`` on every other backend (the fast path's tuning assumes
        XLA:CPU).

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
    if runner is None:
        runner = "fast" if devices is not None or jax.default_backend() == "cpu" else "reference"
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)} or None, got {runner!r}")
    if runner == "reference":
        if devices is not None:
            raise ValueError("devices: only the fast runner splits runs over devices")
        from adaptx.experiments.reference import reference_sweep  # noqa: PLC0415

        return reference_sweep(
            make_optimizer, problem, steps=steps, seeds=seeds, grid=grid, x0=x0, log_points=log_points,
            spacing=spacing, chunk=chunk, label=label, progress=progress, dtype=dtype,
        )
    start = time.perf_counter()
    grid_np, num_settings = _as_grid(grid)
    if isinstance(make_optimizer, optax.GradientTransformation):
        if grid_np:
            raise ValueError("with a grid, pass a function of the hyperparameters, not a transformation")
        make_optimizer = _constant_factory(make_optimizer)
    if not callable(make_optimizer):
        raise ValueError(f"make_optimizer must be callable, got {make_optimizer!r}")
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive int or a 1-D sequence of ints, got {seeds!r}")
        seeds_np = np.arange(seeds)
    else:
        seeds_np = sampling.seed_array(seeds)
        if seeds_np.size < 1:
            raise ValueError(f"seeds must be a positive int or a 1-D sequence of ints, got {seeds!r}")
    low, high = problem.domain
    if not low <= float(x0) <= high:
        raise ValueError(f"x0 must lie in [{low:g}, {high:g}], got {x0!r}")
    if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    ts = log_times(steps, log_points, spacing)
    check_grid(make_optimizer, grid_np)
    chunk = min(int(chunk), max(_DEFAULT_CHUNK, 1 << (int(steps) - 1).bit_length()))
    devices = _as_devices(devices)
    runs = seeds_np.size if problem.stochastic else num_settings
    if devices is not None and len(devices) > runs:  # a device with no run of its own would run padding
        devices = _as_devices(devices[:runs])

    # The batch axis is padded with copies to a multiple of _LANES (per device), so that every run goes
    # through the vector code of a program of the same layout ("Same numbers everywhere" above).
    lanes = _LANES * (len(devices) if devices else 1)
    if problem.stochastic:  # [settings, seeds]
        grid_np_run = grid_np
        run_seeds = _pad(seeds_np, _round_up(seeds_np.size, lanes))
        shape = (num_settings, run_seeds.size)
    else:  # deterministic: one run per setting stands for every seed; [settings] arrays
        padded = _round_up(num_settings, lanes)
        grid_np_run = {k: _pad(v, padded) for k, v in grid_np.items()}
        run_seeds, shape = seeds_np[:1], (padded,)
    if fast_compile is None:
        fast_compile = int(steps) * math.prod(shape) <= FAST_COMPILE_WORK
    if progress is not None:
        progress(0, steps)
    grid_j = {k: jnp.asarray(v, dtype) for k, v in grid_np_run.items()}
    x = jnp.full(shape, x0, dtype)
    seed_keys = sampling.keys(run_seeds)
    opt_state, piece, shardings = _program(
        problem, make_optimizer, jnp.dtype(dtype), grid_j, x, chunk, devices, bool(fast_compile)
    )
    zeros = jnp.zeros_like(x)
    sampler = sampling.init(seed_keys, problem.p) if problem.stochastic else None
    carry = Carry(x, opt_state, zeros, zeros, zeros, sampler)
    if shardings is not None:
        carry, grid_j, seed_keys = jax.device_put((carry, grid_j, seed_keys), shardings)

    cuts = np.union1d(ts, np.arange(chunk, steps, chunk, dtype=np.int64))
    logged = set(ts.tolist())
    xs, sums = [], []
    done = 0
    for end in cuts.tolist():
        carry = piece(carry, grid_j, seed_keys, jnp.int32(done), jnp.int32(end - done))
        done = end
        if done in logged:  # kept on the device; read back once at the end
            xs.append(carry.x)
            sums.append((carry.regret, carry.partial, carry.compensation))
        if progress is not None:
            jax.block_until_ready(carry.x)
            progress(done, steps)

    # R_T / T = (regret + (partial - compensation)) / T, in the dtype of the run, on the host: NumPy's
    # float32 arithmetic rounds these three operations as XLA's does, and needs no compiled programs.
    xs, sums = jax.device_get((xs, sums))
    np_dtype = np.dtype(jnp.dtype(dtype))
    regrets = [
        (r + (p - c)) / np.asarray(t, np_dtype)
        for (r, p, c), t in zip(sums, ts.tolist(), strict=True)
    ]

    def trim(logged):  # [points, *shape] -> [settings, seeds, points], padding dropped
        a = np.moveaxis(np.stack(logged).reshape(len(logged), shape[0], -1), 0, -1)
        a = a[:num_settings, : seeds_np.size]
        return np.ascontiguousarray(np.broadcast_to(a, (num_settings, seeds_np.size, len(logged))))

    x_log, r_log = trim(xs), trim(regrets)
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


def _as_devices(devices) -> tuple | None:
    """``sweep``'s ``devices`` as a tuple of devices, or ``None`` for jax's default device alone."""
    if devices is None:
        return None
    available = jax.devices()
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices must be between 1 and {len(available)} (jax.devices()), got {devices}")
        devices = available[:devices]
    try:
        devices = tuple(devices)
    except TypeError:
        raise ValueError(
            f"devices must be an int, a sequence of jax devices or None, got {devices!r}"
        ) from None
    if not devices or not all(isinstance(d, jax.Device) for d in devices) or len(set(devices)) < len(devices):
        raise ValueError(f"devices must be distinct jax devices, got {devices!r}")
    if len(devices) == 1:
        return None if devices[0] == available[0] else devices
    return devices


_HOST_DEVICES = "--xla_force_host_platform_device_count"


def run_devices(n: int) -> list:
    """``n`` jax devices to split a sweep's runs over (:func:`sweep`'s ``devices``).

    jax shows a CPU as one device whatever its number of cores, and a sweep on one device runs on one
    core. XLA can present the CPU as several devices (the flag ``--xla_force_host_platform_device_count``
    in ``XLA_FLAGS``), but reads the flag only when jax starts its backends, at the first computation.
    So if jax has not started yet and ``XLA_FLAGS`` does not set that flag, this adds it with ``n``; an
    accelerator's devices are not affected (on a machine with GPUs, ``jax.devices()`` lists the GPUs).
    Then it returns the first ``n`` of ``jax.devices()``. This is the only place adaptx changes
    ``XLA_FLAGS``, and only when called with ``n > 1`` (``adaptx reddi --devices N``); :func:`sweep` and
    the reference runner set no XLA flag or compiler option of their own choosing on a non-CPU backend.

    Raises:
      ValueError: if ``n`` is not a positive int, or fewer than ``n`` devices are available (for a CPU,
        because jax started before the call: call this first thing, or set ``XLA_FLAGS`` yourself).

    Example:
      >>> from adaptx.experiments import run_devices
      >>> devices = run_devices(1)  # doctest: +SKIP
      >>> len(devices)  # doctest: +SKIP
      1
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    flags = os.environ.get("XLA_FLAGS", "")
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # pragma: no cover - a jax without the private helper
        started = True
    if n > 1 and not started and _HOST_DEVICES not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICES}={int(n)}".strip()
    available = jax.devices()
    if len(available) < n:
        why = " (jax had already started, so the CPU could not be split)" if started else ""
        raise ValueError(f"{n} devices asked for, {len(available)} available{why}")
    return list(available[:n])


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
