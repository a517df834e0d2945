r"""What every sweep runner takes and returns: checked inputs, a :class:`Result`, and the ``Runner``
interface.

A sweep runs an optimizer on a :class:`~adaptx.experiments.problems.Problem` for every hyperparameter
setting and seed (the algorithm is written out in :mod:`adaptx.experiments.reference`). Its arguments
are checked once, here, by :func:`prepare`, which returns a :class:`SweepInputs`; a runner turns those
into a :class:`Result`. Two runners implement :class:`Runner`: the plain reference
(:func:`adaptx.experiments.reference.run_reference`) and the CPU fast path
(:func:`adaptx.experiments.fast.run_fast`); :func:`adaptx.experiments.sweep` picks one.

Example:
  >>> import adaptx
  >>> from adaptx.experiments import Online
  >>> from adaptx.experiments.contract import prepare
  >>> inputs = prepare(adaptx.adam(1e-2), Online(), steps=1000, log_points=4)
  >>> inputs.times.tolist(), inputs.chunk
  ([1, 10, 100, 1000], 8192)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.core import hyperparams
from adaptx.experiments import sampling
from adaptx.experiments.problems import Problem

OptimizerFactory = Callable[..., optax.GradientTransformation]

#: The most steps a run may take: its step counters are int32, with room for a window past the end.
MAX_STEPS = 2**31 - 2**20

#: The most points :func:`log_times` logs (each is a call of the compiled program and a row of output).
MAX_LOG_POINTS = 2**20

#: The least chunk :func:`prepare` lowers a chunk to (and the default chunk of the runners).
DEFAULT_CHUNK = 8192


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
      runner: the runner that produced it, ``"fast"`` or ``"reference"``.
      plan: how the fast path compiled and split the run (:class:`adaptx.experiments.fast.Plan`);
        ``None`` from the reference runner.
    """

    problem: Any
    t: np.ndarray
    x: np.ndarray
    avg_regret: np.ndarray
    seeds: np.ndarray
    grid: dict[str, np.ndarray]
    label: str = ""
    seconds: float = 0.0
    runner: str = ""
    plan: Any = None

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
    """Every combination of the given values, as the ``grid`` argument of a sweep.

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
      adaptx.experiments.contract.GridError: b2 must lie in [0.0, 1.0), got 1.5 (grid setting ...)
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
    """``lambda: transformation``, the same function object for the same transformation (so that a
    runner's cache of compiled programs, keyed by the factory, finds the program of a previous run)."""
    return lambda: transformation


@dataclasses.dataclass(frozen=True)
class SweepInputs:
    """A sweep's arguments after :func:`prepare` has checked and normalised them.

    Attributes:
      make_optimizer: a function of the grid's hyperparameters returning an optax transformation.
      problem: the :class:`~adaptx.experiments.problems.Problem`.
      steps: the number of steps T.
      seeds: the integer seeds, ``[seeds]``.
      grid: name -> float64 ``[settings]`` (empty: one setting).
      x0: the starting point, inside the problem's domain.
      times: the logged steps (:func:`log_times`).
      chunk: the most steps one compiled call runs (already lowered for a short run).
      dtype: the floating dtype of the iterates.
      label: the name stored in the result.
    """

    make_optimizer: OptimizerFactory
    problem: Problem
    steps: int
    seeds: np.ndarray
    grid: dict[str, np.ndarray]
    x0: float
    times: np.ndarray
    chunk: int
    dtype: np.dtype
    label: str

    @property
    def num_settings(self) -> int:
        """The number of hyperparameter settings (1 without a grid)."""
        return next(iter(self.grid.values())).size if self.grid else 1

    @property
    def run_seeds(self) -> np.ndarray:
        """The seeds that need a run of their own: all of them for a stochastic problem, the first alone
        for a deterministic one (whose numbers every seed shares)."""
        return self.seeds if self.problem.stochastic else self.seeds[:1]

    def cuts(self) -> list[int]:
        """The steps at which a runner returns to the host: the logged steps and the multiples of
        ``chunk``, increasing; a compiled call runs the steps from one cut to the next."""
        chunks = np.arange(self.chunk, self.steps, self.chunk, dtype=np.int64)
        return np.union1d(self.times, chunks).tolist()

    def drive(
        self, piece: Callable[[Any, Any, Any], Any], state: Any,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[list, list]:
        """Call ``state = piece(state, t0, n)`` for the steps between consecutive :meth:`cuts` (int32
        ``t0`` steps done, ``n`` to take), keeping on the device, at each logged step, the iterates
        ``state.x`` and the regret's ``(state.regret, state.partial, state.compensation)``; returns
        them read back to the host (the arguments of :meth:`result`, before any trimming).
        ``progress(done, steps)`` is called after each call, once the device is done with it."""
        logged = set(self.times.tolist())
        xs, sums, done = [], [], 0
        for end in self.cuts():
            state = piece(state, jnp.int32(done), jnp.int32(end - done))
            done = end
            if done in logged:  # kept on the device; read back once at the end
                xs.append(state.x)
                sums.append((state.regret, state.partial, state.compensation))
            if progress is not None:
                jax.block_until_ready(state.x)
                progress(done, self.steps)
        return jax.device_get((xs, sums))

    def result(self, xs: Sequence[np.ndarray], sums: Sequence[tuple], seconds: float, runner: str,
               plan: Any = None) -> Result:
        r"""The :class:`Result` from the values logged at each of ``times``.

        Args:
          xs: per logged step, the iterates, ``[settings, runs]`` with runs = ``run_seeds.size``.
          sums: per logged step, the regret's ``(regret, partial, compensation)``, each like ``xs``: the
            Kahan sum of the completed blocks, the current block's plain sum and the Kahan correction,
            so that :math:`R_T = \text{regret} + (\text{partial} - \text{compensation})`.
          seconds, runner, plan: stored in the result.
        """
        # R_T / T in the run's dtype, on the host: NumPy's float32 arithmetic rounds these three
        # operations as XLA's does, and needs no compiled program.
        np_dtype = np.dtype(self.dtype)
        regrets = [
            (r + (p - c)) / np.asarray(t, np_dtype)
            for (r, p, c), t in zip(sums, self.times.tolist(), strict=True)
        ]

        def stack(points):  # [points][settings, runs] -> [settings, seeds, points]
            a = np.moveaxis(np.stack(points), 0, -1)
            shape = (self.num_settings, self.seeds.size, len(points))
            return np.ascontiguousarray(np.broadcast_to(a, shape))

        return Result(
            problem=self.problem,
            t=self.times,
            x=stack(xs),
            avg_regret=stack(regrets),
            seeds=self.seeds,
            grid=self.grid,
            label=self.label,
            seconds=seconds,
            runner=runner,
            plan=plan,
        )


def prepare(
    make_optimizer: OptimizerFactory | optax.GradientTransformation,
    problem: Problem,
    *,
    steps: int,
    seeds: Sequence[int] | int = 1,
    grid: Mapping[str, Sequence[float]] | None = None,
    x0: float = 0.0,
    log_points: int = 200,
    spacing: str = "log",
    chunk: int = DEFAULT_CHUNK,
    label: str = "",
    dtype: Any = jnp.float32,
) -> SweepInputs:
    """Check a sweep's arguments (those of :func:`adaptx.experiments.sweep`) and normalise them.

    Nothing is compiled; every error is a ``ValueError`` naming the argument (:class:`GridError` for a
    grid value). A chunk above the number of steps is lowered to the smallest power of two that covers
    them, but not below :data:`DEFAULT_CHUNK` (so that runs of different lengths share their program).

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import Stochastic
      >>> from adaptx.experiments.contract import prepare
      >>> prepare(adaptx.adam(1e-2), Stochastic(), steps=20_000, chunk=10**9).chunk  # 2**15
      32768
    """
    grid_np, _ = _as_grid(grid)
    if isinstance(make_optimizer, optax.GradientTransformation):
        if grid_np:
            raise ValueError("with a grid, pass a function of the hyperparameters, not a transformation")
        make_optimizer = _constant_factory(make_optimizer)
    if not callable(make_optimizer):
        raise ValueError(f"make_optimizer must be callable, got {make_optimizer!r}")
    if not isinstance(problem, Problem):
        raise ValueError(
            "problem must have the members of adaptx.experiments.Problem (x_star, domain, stochastic, "
            f"gradient, describe), got {problem!r}"
        )
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
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a floating dtype, got {dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    times = log_times(steps, log_points, spacing)
    check_grid(make_optimizer, grid_np)
    chunk = min(int(chunk), max(DEFAULT_CHUNK, 1 << (int(steps) - 1).bit_length()))
    return SweepInputs(
        make_optimizer=make_optimizer,
        problem=problem,
        steps=int(steps),
        seeds=seeds_np,
        grid=grid_np,
        x0=float(x0),
        times=times,
        chunk=chunk,
        dtype=dtype,
        label=label,
    )


class Runner(Protocol):
    """A sweep runner: runs :class:`SweepInputs` and returns their :class:`Result`.

    ``progress``, if given, is called as ``progress(0, steps)`` once before anything is compiled, then
    as ``progress(steps_done, steps)`` after each compiled call (waiting for the device).
    """

    def __call__(
        self, inputs: SweepInputs, progress: Callable[[int, int], None] | None = None
    ) -> Result: ...
