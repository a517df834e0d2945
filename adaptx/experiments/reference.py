r"""The reference sweep runner: the plain algorithm that :func:`adaptx.experiments.sweep` specialises.

This is the specification of a sweep, written to be read: one step of one run, ``vmap``-ed over seeds
and then over hyperparameter settings, looped inside ``jit`` for a piece of steps at a time, pieces cut
at the logged steps. No XLA flags, no compiler options, no staging; the CPU fast path
(:mod:`adaptx.experiments.fast`) is tested to give its numbers (tests/test_reference_runner.py).

For every setting h, seed s and step t = 1, ..., T of a :class:`~adaptx.experiments.problems.Problem`
with optimum :math:`x^*` and domain :math:`[a, b]`:

.. math::
    c_t = \text{problem.gradient}(t, \text{big}_{s,t}), \quad
    x_{t+1} = \Pi_{[a, b]}\bigl(x_t + \text{update}_h(c_t)\bigr), \quad
    R_t = R_{t-1} + c_t (x_t - x^*),

with :math:`x_1 = x_0`. For a stochastic problem, the big steps :math:`\text{big}_{s,t}` of seed s are
those of :mod:`adaptx.experiments.sampling`: the first is at the seed's gap 0, and each big step is
followed by the next gap, :math:`\text{next} \leftarrow \text{next} + \text{gap}(\text{key}_s, i)`,
i = 1, 2, ... (the same geometric gaps, from the same counters, as the fast path's windows).

Regret is summed in blocks, because :math:`R_t` grows like t and a plain float32 running sum loses the
increments (~20) once it nears 1e8, where one ulp is 8: the terms of each block of :data:`BLOCK` = 256
steps (blocks end at multiples of 256, absolute step numbers) are added in plain float32, then the
block's sum goes into a Kahan (compensated) sum, so
:math:`R_T = \text{regret} + (\text{partial} - \text{compensation})`. A float32 sum of 256 terms is off
by at most 255 roundings of its own size, an error that does not grow with :math:`R_t`.

Example:
  >>> import adaptx
  >>> from adaptx.experiments import Stochastic
  >>> from adaptx.experiments.reference import reference_sweep
  >>> res = reference_sweep(adaptx.adam(1e-2, b2=0.99), Stochastic(), steps=2000, seeds=2, log_points=5)
  >>> res.x.shape  # [settings, seeds, logged points]
  (1, 2, 5)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptx.experiments import sampling
from adaptx.experiments.contract import DEFAULT_CHUNK, Result, SweepInputs, prepare
from adaptx.experiments.problems import Problem

Array = jax.Array

#: Steps per block of the blocked Kahan sum (blocks end at multiples of it).
BLOCK = 256


class RunState(NamedTuple):
    """The state of one run (one setting, one seed); batched ``[settings, seeds]`` in a sweep.

    Attributes:
      x: the iterate :math:`x_t`.
      opt_state: the optimizer's state.
      regret, compensation: the Kahan sum of the completed blocks' regret and its correction.
      partial: the plain float32 sum of the current block's regret terms.
      next: the 1-based step of the seed's next big step (stochastic problems; else unused).
      drawn: how many gaps the seed has drawn (the counter of its next gap).
    """

    x: Array
    opt_state: Any
    regret: Array
    compensation: Array
    partial: Array
    next: Array
    drawn: Array


def kahan_add(total: Array, comp: Array, value: Array) -> tuple[Array, Array]:
    r"""Add ``value`` to the compensated sum ``(total, comp)``: the sum is ``total - comp``, where
    ``comp`` holds what the last addition to ``total`` lost (Kahan's summation)."""
    y = value - comp
    new = total + y
    return new, (new - total) - y


def _step(problem: Problem, make_optimizer: Callable, hyper: dict, key: Array, t: Array, s: RunState):
    """Step ``t`` of one run: gradient, update, projection, regret term, next big step."""
    dtype = s.x.dtype
    big = None
    nxt, drawn = s.next, s.drawn
    if problem.stochastic:
        big = t == s.next
        nxt = jnp.where(big, s.next + sampling.gap(key, s.drawn, problem.p), s.next)
        drawn = s.drawn + big.astype(jnp.int32)
    g = problem.gradient(t, big, dtype)
    updates, opt_state = make_optimizer(**hyper).update(g, s.opt_state, s.x)
    low, high = problem.domain
    x = jnp.clip(s.x + updates, low, high)
    partial = s.partial + g * (s.x - problem.x_star)
    flushed = kahan_add(s.regret, s.compensation, partial) + (jnp.zeros_like(partial),)
    ends = t % BLOCK == 0
    regret, comp, partial = (
        jnp.where(ends, a, b) for a, b in zip(flushed, (s.regret, s.compensation, partial), strict=True)
    )
    return RunState(x, opt_state, regret, comp, partial, nxt, drawn)


def run_reference(inputs: SweepInputs, progress: Callable[[int, int], None] | None = None) -> Result:
    """Run checked :class:`~adaptx.experiments.contract.SweepInputs` (a
    :class:`~adaptx.experiments.contract.Runner`): one ``jit``-ed loop over :func:`_step`, ``vmap``-ed
    over seeds and settings, called once per piece of :meth:`~SweepInputs.cuts`."""
    start = time.perf_counter()
    if progress is not None:
        progress(0, inputs.steps)
    problem, make_optimizer, dtype = inputs.problem, inputs.make_optimizer, inputs.dtype
    run_seeds = inputs.run_seeds
    keys = sampling.keys(run_seeds)
    hyper = {k: jnp.asarray(v, dtype) for k, v in inputs.grid.items()}  # [settings] each
    x = jnp.full((inputs.num_settings, run_seeds.size), inputs.x0, dtype)

    def init(hyper, key, x):
        first = sampling.gap(key, jnp.int32(0), problem.p) if problem.stochastic else jnp.int32(0)
        zero = jnp.zeros_like(x)
        return RunState(x, make_optimizer(**hyper).init(x), zero, zero, zero, first, jnp.int32(1))

    def step(hyper, key, t, s):
        return _step(problem, make_optimizer, hyper, key, t, s)

    # one setting (hyper) x one seed (key); seeds inside, settings outside
    init_all = jax.vmap(jax.vmap(init, (None, 0, 0)), (0, None, 0))
    step_all = jax.vmap(jax.vmap(step, (None, 0, None, 0)), (0, None, None, 0))

    @jax.jit
    def piece(state, hyper, keys, t0, n):
        return jax.lax.fori_loop(0, n, lambda i, s: step_all(hyper, keys, t0 + i + 1, s), state)

    state = jax.jit(init_all)(hyper, keys, x)
    xs, sums = inputs.drive(lambda s, t0, n: piece(s, hyper, keys, t0, n), state, progress)
    return inputs.result(xs, sums, time.perf_counter() - start, "reference")


def reference_sweep(
    make_optimizer: Callable[..., optax.GradientTransformation] | optax.GradientTransformation,
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
) -> Result:
    r"""Run ``make_optimizer(**setting)`` on ``problem`` for every setting of ``grid`` and every seed.

    The arguments and the result are those of :func:`adaptx.experiments.sweep` (see there; they are
    checked by :func:`~adaptx.experiments.contract.prepare`), so either runner's
    :class:`~adaptx.experiments.Result` feeds the same reports. ``chunk`` bounds the steps of one
    compiled call (memory does not depend on it). A deterministic problem is run once per setting and
    its numbers given to every seed.

    Returns:
      a :class:`~adaptx.experiments.Result`: ``x`` and ``avg_regret`` = :math:`R_T / T`, each
      ``[settings, seeds, points]``, at the steps ``t`` of :func:`~adaptx.experiments.log_times`.

    Example:
      >>> import adaptx
      >>> from adaptx.experiments import Online
      >>> from adaptx.experiments.reference import reference_sweep
      >>> res = reference_sweep(lambda learning_rate: adaptx.adam(learning_rate, b2=0.99), Online(),
      ...                       steps=20_000, grid={"learning_rate": [1e-2, 1e-3]}, log_points=10)
      >>> [round(float(x), 1) for x in res.final_x()[:, 0]]  # heading for the worst point, +1
      [1.0, 0.4]
    """
    inputs = prepare(
        make_optimizer, problem, steps=steps, seeds=seeds, grid=grid, x0=x0, log_points=log_points,
        spacing=spacing, chunk=chunk, label=label, dtype=dtype,
    )
    return run_reference(inputs, progress)
