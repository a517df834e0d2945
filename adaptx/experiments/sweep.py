r"""Run an optimizer on the AMSGrad paper's problems: many seeds and hyperparameters in one program.

The problems are one-dimensional, so a *run* is a scalar iterate :math:`x_t` in the problem's domain
:math:`[a, b]` and a scalar optimizer state. A sweep runs one per (hyperparameter setting, seed): the
settings are a ``vmap`` over the optimizer's *construction* (adaptx and optax accept traced
hyperparameters), the seeds a ``vmap`` over the iterate. Each step t (1-based) of a run does

.. math::
    c_t = \text{gradient of } f_t, \quad R_t = R_{t-1} + c_t (x_t - x^*), \quad
    x_{t+1} = \Pi_{[a, b]}\bigl(x_t + \text{update}(c_t)\bigr),

with :math:`x_1 = x_0` (default 0) and the problem's optimum :math:`x^*`
(:class:`~adaptx.experiments.problems.Problem`). A log entry at step T holds :math:`R_T / T` and the
iterate after T updates, :math:`x_{T+1}` (written :math:`x_T` in plots, as in the paper).

Runners. :func:`sweep` checks its arguments once (:func:`adaptx.experiments.contract.prepare`) and
hands them to one of two runners with the same :class:`~adaptx.experiments.contract.Runner` interface:

* ``"reference"``, :mod:`adaptx.experiments.reference`: the algorithm written plainly; the
  specification, and the default on every backend but CPU;
* ``"fast"``, :mod:`adaptx.experiments.fast`: the same numbers with XLA:CPU's costs in mind (staging,
  padding to whole vectors, per-program compiler options); the default on a CPU, and the only runner
  that splits runs over devices.

Memory and chunks. Both run the steps inside ``jit`` as loops over at most ``chunk`` steps at a time;
the host calls the compiled loop for consecutive pieces, cut at the logged steps and at multiples of
``chunk``, and keeps only the logged values, so memory depends on the number of logged points and on
``chunk``, not on the number of steps. The numbers do not depend on how the run is cut: the regret's
blocks sit at absolute step numbers and the random big steps of a seed are a pure function of the seed
(see :mod:`adaptx.experiments.sampling`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from adaptx.experiments.contract import DEFAULT_CHUNK, OptimizerFactory, Result, prepare
from adaptx.experiments.fast import make_plan, run_fast
from adaptx.experiments.problems import Problem
from adaptx.experiments.reference import run_reference

#: :func:`sweep`'s runners: the CPU fast path and the plain reference.
RUNNERS = ("fast", "reference")


def sweep(
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
    progress: Callable[[int, int], None] | None = None,
    dtype: Any = jnp.float32,
    devices: Sequence[Any] | int | None = None,
    fast_compile: bool | None = None,
    runner: str | None = None,
) -> Result:
    r"""Run ``make_optimizer(**setting)`` on ``problem`` for every hyperparameter setting and seed.

    For each setting h and seed s the run starts at :math:`x_1 = x_0`, steps
    :math:`x_{t+1} = \Pi_{[a, b]}(x_t + \text{update}_t)` for ``steps`` steps (:math:`[a, b]` the
    problem's ``domain``), and logs :math:`x` and :math:`R_T/T` at
    :func:`~adaptx.experiments.log_times` ``(steps, log_points, spacing)``. All settings and seeds run as
    one compiled program; see the module docstring for how steps are chunked.

    Args:
      make_optimizer: a function of the grid's hyperparameters (keyword arguments, traced jax scalars)
        returning an optax transformation, e.g. ``lambda learning_rate, b2: adaptx.adam(learning_rate,
        b2=b2)``; or, without ``grid``, a transformation itself.
      problem: any :class:`~adaptx.experiments.Problem`, such as :class:`~adaptx.experiments.Online`
        or :class:`~adaptx.experiments.Stochastic`.
      steps: number of steps T (at most :data:`~adaptx.experiments.contract.MAX_STEPS`, 2**31 - 2**20).
      seeds: the integer seeds, each in ``[0, 2**64)`` (distinct seeds draw distinct big steps), or
        their number n for ``range(n)``. Seed s draws the same big steps in every sweep, whatever the
        other seeds, settings or ``chunk``. The online problem is deterministic: it is run once per
        setting and every seed gets its numbers.
      grid: hyperparameter settings, name -> sequence of values, all of the same length (one entry per
        setting; :func:`~adaptx.experiments.product_grid` builds every combination). ``None``: one setting.
        The values are checked before anything is compiled (:func:`~adaptx.experiments.check_grid`).
      x0: the starting point :math:`x_1`, inside the problem's ``domain``.
      log_points, spacing: how many steps to log and whether ``"log"`` or ``"linear"`` spaced.
      chunk: the most steps one compiled call runs; changes memory, not results. A chunk above the
        number of steps is lowered to the smallest power of two that covers them, but not below 8192
        (so that runs of different lengths share their program); the fast path also lowers it so that
        the big-step mask of a window (chunk x seeds bits) stays within 256 MiB.
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
      fast_compile: fast runner on a CPU: compile for a fast start rather than a fast loop
        (:mod:`adaptx.experiments.fast.options`: a few times faster to compile, a few times slower per
        step; the same bits in every case measured). ``None``: when steps x runs is at most
        :data:`~adaptx.experiments.fast.FAST_COMPILE_WORK`.
      runner: ``"fast"``, :mod:`adaptx.experiments.fast`, the staged program tuned for XLA:CPU;
        ``"reference"``, :mod:`adaptx.experiments.reference`, the plain specification (no ``devices``,
        ``fast_compile`` unused), which the fast path is tested to match. ``None``: ``"fast"`` on a CPU
        (``jax.default_backend() == "cpu"``) or when ``devices`` is given (only the fast path splits
        runs over devices), ``"reference"`` on every other backend (the fast path's tuning assumes
        XLA:CPU).

    Returns:
      a :class:`~adaptx.experiments.Result`; its ``runner`` says which runner ran, and its ``plan``
      how the fast path compiled and split the run (:class:`adaptx.experiments.fast.Plan`).

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
    if runner == "reference" and devices is not None:
        raise ValueError("devices: only the fast runner splits runs over devices")
    inputs = prepare(
        make_optimizer, problem, steps=steps, seeds=seeds, grid=grid, x0=x0, log_points=log_points,
        spacing=spacing, chunk=chunk, label=label, dtype=dtype,
    )
    if runner == "reference":
        return run_reference(inputs, progress)
    return run_fast(inputs, progress, make_plan(inputs, devices=devices, fast_compile=fast_compile))


def run(optimizer: optax.GradientTransformation, problem: Problem, **kwargs: Any) -> Result:
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
