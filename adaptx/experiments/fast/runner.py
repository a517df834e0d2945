"""The fast path's runner: its :class:`Plan` (decided on the host, before anything is traced) and the
host loop that calls the compiled piece of :mod:`adaptx.experiments.fast.program`."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adaptx.experiments import sampling
from adaptx.experiments.contract import Result, SweepInputs
from adaptx.experiments.fast import options as xla_options
from adaptx.experiments.fast import program, windows
from adaptx.experiments.fast.devices import as_devices

#: The batch axis is padded to a multiple of this many lanes per device, so that every run goes through
#: the vector code of a program of the same layout (see :mod:`adaptx.experiments.fast.program`).
LANES = 64

#: The most bits of a window's big-step mask (``chunk x padded seeds``, 256 MiB): :func:`make_plan`
#: lowers the chunk of a stochastic sweep with many seeds to stay within it (not below 256 steps).
MAX_MASK_BITS = 2**31


@dataclasses.dataclass(frozen=True)
class Plan:
    """How the fast path runs a sweep; :func:`make_plan` decides it, :func:`run_fast` follows it, and
    the :class:`~adaptx.experiments.Result` keeps it (``result.plan``).

    Attributes:
      platform: the platform the program is compiled for (``"cpu"``, ``"gpu"``, ...).
      shape: the batch the program steps: ``(settings, seeds)`` padded to whole lanes for a stochastic
        problem, ``(settings,)`` padded for a deterministic one (one run per setting).
      devices: the devices the runs are split over, or ``None`` for jax's default device alone.
      chunk: the most steps one compiled call runs: the inputs' chunk, lowered for a stochastic sweep
        so that the window's big-step mask holds at most :data:`MAX_MASK_BITS` bits.
      fast_compile: compiled for a fast start rather than a fast loop (see
        :mod:`adaptx.experiments.fast.options`).
      compiler_options: the XLA options of the program, ``None`` for XLA's defaults.
    """

    platform: str
    shape: tuple[int, ...]
    devices: tuple | None
    chunk: int
    fast_compile: bool
    compiler_options: dict[str, object] | None


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def make_plan(
    inputs: SweepInputs,
    *,
    devices: Sequence[Any] | int | None = None,
    fast_compile: bool | None = None,
    compiler_options: Mapping[str, object] | None = None,
) -> Plan:
    """The :class:`Plan` of a sweep: padding, devices and compilation. Nothing is traced or compiled.

    Args:
      inputs: the checked sweep (:func:`adaptx.experiments.contract.prepare`).
      devices: as :func:`adaptx.experiments.sweep`'s; devices beyond the number of runs (the seeds of a
        stochastic problem, the settings of a deterministic one) are left out.
      fast_compile: compile for a fast start; ``None``: when steps x runs (padded) is at most
        :data:`~adaptx.experiments.fast.options.FAST_COMPILE_WORK`.
      compiler_options: XLA options for the program, used as given (``{}``: XLA's defaults); ``None``:
        :func:`~adaptx.experiments.fast.options.compiler_options` for the platform and ``fast_compile``.

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import Stochastic
      >>> from adaptx.experiments.contract import prepare
      >>> from adaptx.experiments.fast import make_plan
      >>> plan = make_plan(prepare(adaptx.adam(1e-2), Stochastic(), steps=1000, seeds=3))
      >>> plan.shape, plan.fast_compile  # 3 seeds padded to 64 lanes; a short sweep
      ((1, 64), True)
    """
    devices = as_devices(devices)
    runs = inputs.run_seeds.size if inputs.problem.stochastic else inputs.num_settings
    if devices is not None and len(devices) > runs:  # a device with no run of its own would run padding
        devices = as_devices(devices[:runs])
    lanes = LANES * (len(devices) if devices else 1)
    chunk = inputs.chunk
    if inputs.problem.stochastic:
        shape = (inputs.num_settings, _round_up(inputs.seeds.size, lanes))
        chunk = min(chunk, max(256, MAX_MASK_BITS // shape[1]))
    else:
        shape = (_round_up(inputs.num_settings, lanes),)
    if fast_compile is None:
        fast_compile = inputs.steps * math.prod(shape) <= xla_options.FAST_COMPILE_WORK
    platform = devices[0].platform if devices else jax.default_backend()
    if compiler_options is None:
        chosen = xla_options.compiler_options(platform, bool(fast_compile))
    else:
        chosen = dict(compiler_options) or None
    return Plan(platform, shape, devices, chunk, bool(fast_compile), chosen)


def _check_plan(inputs: SweepInputs, plan: Plan) -> None:
    """``ValueError`` unless ``plan`` can run ``inputs``: its batch holds their runs and its chunk is at
    most theirs (a plan made for other inputs would run padding as results or overrun its window)."""
    runs = (inputs.num_settings, inputs.seeds.size) if inputs.problem.stochastic else (inputs.num_settings,)
    shape = tuple(plan.shape)
    fits = len(shape) == len(runs) and all(have >= need for have, need in zip(shape, runs, strict=True))
    if inputs.problem.stochastic and fits:
        fits = shape[0] == runs[0]
    if not fits or not 1 <= plan.chunk <= inputs.chunk:
        raise ValueError(
            f"plan (batch {shape}, chunk {plan.chunk}) was not made for these inputs ({runs[0]} settings"
            f"{f', {runs[1]} seeds' if len(runs) == 2 else ''}, chunk {inputs.chunk}): use make_plan(inputs)"
        )


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` (1-D) extended to length ``n`` with copies of its last entry."""
    return np.concatenate([values, np.repeat(values[-1:], n - values.size)])


def run_fast(
    inputs: SweepInputs, progress: Callable[[int, int], None] | None = None, plan: Plan | None = None
) -> Result:
    """Run checked :class:`~adaptx.experiments.contract.SweepInputs` on the fast path, following
    ``plan`` (default: :func:`make_plan` ``(inputs)``); a :class:`~adaptx.experiments.contract.Runner`.

    The host calls the compiled piece for the steps between consecutive
    :meth:`~adaptx.experiments.contract.SweepInputs.cuts` and keeps only the logged values on the device,
    reading them back once at the end; memory depends on the number of logged points and on the chunk,
    not on the number of steps.

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import Stochastic
      >>> from adaptx.experiments.contract import prepare
      >>> from adaptx.experiments.fast import make_plan, run_fast
      >>> inputs = prepare(adaptx.adam(1e-2, b2=0.99), Stochastic(), steps=2000, seeds=2, log_points=5)
      >>> res = run_fast(inputs, plan=make_plan(inputs, compiler_options={}))  # XLA's defaults
      >>> res.runner, res.plan.compiler_options, res.x.shape
      ('fast', None, (1, 2, 5))
    """
    start = time.perf_counter()
    plan = make_plan(inputs) if plan is None else plan
    _check_plan(inputs, plan)
    # The run is cut where the program's window ends: at multiples of the plan's chunk, which
    # make_plan may have lowered below the inputs' (a window's mask holds chunk steps, no more).
    inputs = dataclasses.replace(inputs, chunk=plan.chunk)
    problem, dtype = inputs.problem, inputs.dtype
    if progress is not None:
        progress(0, inputs.steps)
    # The batch is padded with copies of its last run (see `LANES`).
    if problem.stochastic:  # [settings, seeds]
        grid_np = inputs.grid
        run_seeds = _pad(inputs.seeds, plan.shape[1])
    else:  # deterministic: one run per setting stands for every seed; [settings] arrays
        grid_np = {k: _pad(v, plan.shape[0]) for k, v in inputs.grid.items()}
        run_seeds = inputs.seeds[:1]
    grid = {k: jnp.asarray(v, dtype) for k, v in grid_np.items()}
    x = jnp.full(plan.shape, inputs.x0, dtype)
    seed_keys = sampling.keys(run_seeds)
    opt_state, piece, shardings = program.build(
        problem, inputs.make_optimizer, dtype, grid, x, plan.chunk, plan.devices, plan.compiler_options
    )
    zeros = jnp.zeros_like(x)
    sampler = windows.init(seed_keys, problem.p) if problem.stochastic else None
    carry = program.Carry(x, opt_state, zeros, zeros, zeros, sampler)
    if shardings is not None:
        carry, grid, seed_keys = jax.device_put((carry, grid, seed_keys), shardings)

    xs, sums = inputs.drive(lambda c, t0, n: piece(c, grid, seed_keys, t0, n), carry, progress)

    runs = inputs.run_seeds.size

    def trim(a):  # the padded batch -> [settings, runs]
        return a.reshape(plan.shape[0], -1)[: inputs.num_settings, :runs]

    xs = [trim(a) for a in xs]
    sums = [tuple(trim(a) for a in s) for s in sums]
    return inputs.result(xs, sums, time.perf_counter() - start, "fast", plan)

