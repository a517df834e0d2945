"""Shared test harness: the test problem (a nested tree of parameters and 200 steps of gradients), a
jitted ``lax.scan`` runner, and the comparison with the float64 references.

Errors are measured relative to the largest |element| of the same leaf over the whole trajectory
(:func:`rel_error`): an element of m that crosses zero has no meaningful relative error of its own,
while its absolute error stays at the rounding level of the leaf's typical magnitude.

Float32 tolerance (``F32_RTOL = 1e-5``), the argument. float32 rounds each operation to a relative
u = 2**-24 ≈ 6e-8, and one step of Adam or AdaX performs ~10 rounded operations per element. The moments
are exponential averages that carry each step's rounding errors forward with weight β, and the
parameters sum the updates, so over the 200 steps the errors of up to 200 steps add up; they are
independent roundings and add like a random walk: √200 × 10 × u ≈ 8.5e-6, hence 1e-5. (Coherent
accumulation, 200 × 10 × u ≈ 1e-4, would take systematically biased rounding.) adaptx also rounds its
hyperparameters to float32 while the references use them exactly (β2 = 0.999 becomes 0.99900001, 1 − β2
moves by 1.3e-5 relative), but the same rounded β2 enters v and its correction 1 − β2^t, and the
effect on v̂ cancels to first order. Observed: 2e-7 .. 1.2e-6 over all cases (2 .. 20 u), so the bound
has a margin of ~8. Every option a test distinguishes (ε placement, AMSGrad rule, bias corrections,
schedule offsets, masks, decay placement) changes the trajectory by more than 20 × F32_RTOL, which
``test_blocks.py::test_reference_variants_are_distinguishable`` and its siblings check, so the
tolerance cannot hide a wrong formula.

Float64 tolerance (``F64_RTOL = 1e-12``): the same argument with u = 2**-53 ≈ 1.1e-16 gives ~1.6e-14;
observed ≤ 1.7e-15. 1e-12 is the "~1e-12" the project asks for, far below any formula difference.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

T = 200  # steps of every trajectory test
# XLA's compile time dominates these tests (their run time is negligible). Compiling the test programs
# without LLVM optimisation and with XLA:CPU's classic (not the MLIR "fusion emitter") code generator
# halves it: ~10 s -> ~5.5 s of CPU for the 37 block cases. Neither option changes IEEE semantics.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
F32_RTOL = 1e-5
F64_RTOL = 1e-12

# Leaf scales in creation order: gradients spanning 1e-6 .. 10, so that ε matters for some leaves
# (where ε is comparable to √v) and not for others.
SCALES = (1.0, 1e-3, 10.0, 1e-6, 0.3)


def in_default_float(schedule: Callable) -> Callable:
    """``schedule`` called with the step converted to jax's default float (float64 under x64).

    optax's schedules divide the int32 step count by a Python number, which jax evaluates in float32
    even with x64 enabled, so the value of ``optax.exponential_decay`` is only float32-accurate (~6e-8)
    in a float64 run, for adaptx as for optax's own optimizers. The float64 tests demand 1e-12, so
    they hand the schedule a float step.
    """
    return lambda step: schedule(jnp.asarray(step, float))


# Schedules as (optax schedule for adaptx, the same function written in NumPy for the references).
# A wrong step offset (t instead of t - 1) changes the learning rate by 2.4% per step: easily seen.
LR_SCHEDULE = (
    in_default_float(optax.exponential_decay(2e-2, transition_steps=50, decay_rate=0.3)),
    lambda step: 2e-2 * 0.3 ** (step / 50),
)
WD_SCHEDULE = (
    in_default_float(optax.linear_schedule(0.2, 0.02, transition_steps=150)),
    lambda step: 0.02 + (0.2 - 0.02) * (1 - min(step, 150) / 150),
)


def tree_of(make: Callable[[tuple], Any]) -> Any:
    """The test tree: a matrix, a vector, a 3-d and a 4-d array and a scalar in nested dict/list/tuple.

    Five leaves only: XLA's compile time grows with the number of leaves and dominates these tests.
    """
    return {
        "dense": {"w": make((3, 4)), "b": make((4,))},
        "conv": [make((2, 3, 2)), (make((2, 1, 2, 3)), make(()))],
    }


def mask_tree() -> Any:
    """A mask as a tree of Python booleans: decay the 2-d and higher leaves only."""
    return tree_of(lambda shape: len(shape) >= 2)


def mask_fn(params: Any) -> Any:
    """A mask as a callable: decay everything except vectors (a different set than :func:`mask_tree`)."""
    return jax.tree.map(lambda p: p.ndim != 1, params)


def mask_list(mask: Any, prob: Problem) -> list[bool]:
    """A mask (tree or callable) as the per-leaf list of booleans the references take."""
    tree = mask(prob.params) if callable(mask) else mask
    return [bool(x) for x in jax.tree.leaves(tree)]


def _scaled(make):
    counter = iter(range(len(SCALES)))
    return lambda shape: make(shape, SCALES[next(counter)])


def envelope(steps: int) -> np.ndarray:
    """Gradient magnitude over time: a loud phase, a quiet one (v falls: AMSGrad's maximum matters),
    then a louder one (the maximum is overtaken)."""
    t = np.arange(steps)
    return np.where(t < 70, 1.0, np.where(t < 140, 0.05, 3.0))


@dataclasses.dataclass
class Problem:
    """A test problem at one dtype.

    ``params``/``grads`` are jax trees (``grads`` leaves have a leading axis of ``steps``);
    ``params_ref``/``grads_ref`` are the same numbers as float64 NumPy lists for the references
    (``grads_ref[t][i]``: step t, leaf i), so both sides start from bit-identical inputs.
    """

    params: Any
    grads: Any
    params_ref: list
    grads_ref: list
    treedef: Any


def problem(dtype=jnp.float32, steps: int = T, seed: int = 0, drift: float = 0.3) -> Problem:
    """Random parameters and a fixed gradient sequence on :func:`tree_of`, rounded to ``dtype``."""
    rng = np.random.default_rng(seed)
    env = envelope(steps)
    np_dtype = np.dtype(jnp.dtype(dtype).name) if jnp.dtype(dtype) != jnp.bfloat16 else np.float32

    def param(shape, scale):
        return (scale * rng.standard_normal(shape)).astype(np_dtype)

    def grad(shape, scale):
        noise = drift + rng.standard_normal((steps, *shape))
        return (scale * env.reshape((steps,) + (1,) * len(shape)) * noise).astype(np_dtype)

    params_np = tree_of(_scaled(param))
    grads_np = tree_of(_scaled(grad))
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), params_np)
    grads = jax.tree.map(lambda x: jnp.asarray(x, dtype), grads_np)
    # The references see exactly the rounded inputs adaptx sees.
    params_ref = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    g_leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(grads)]
    grads_ref = [[g[t] for g in g_leaves] for t in range(steps)]
    return Problem(params, grads, params_ref, grads_ref, jax.tree.structure(params))


def run(opts: dict[str, optax.GradientTransformation], params: Any, grads: Any) -> dict[str, tuple]:
    """Apply each optimizer of ``opts`` for every step of ``grads``, all in ONE jitted ``lax.scan``.

    XLA's compile time (~1 s per program on the test machine) dominates these tests; compiling many
    optimizers into one program costs ~0.1 s more per optimizer, so every test module runs all its
    trajectories at once. Returns, per name, the updates and the parameters after each step, as lists
    (one per leaf, in ``jax.tree.leaves`` order) of float64 arrays with a leading step axis.
    """
    names = list(opts)

    @functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
    def go(params, grads):
        def step(carry, g):
            new, out = [], []
            for name, (p, s) in zip(names, carry, strict=True):
                u, s = opts[name].update(g, s, p)
                p = optax.apply_updates(p, u)
                new.append((p, s))
                out.append((u, p))
            return new, out

        init = [(params, opts[name].init(params)) for name in names]
        return jax.lax.scan(step, init, grads)[1]

    outs = go(params, grads)
    as64 = lambda tree: [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]
    return {name: (as64(us), as64(ps)) for name, (us, ps) in zip(names, outs, strict=True)}


def run_one(opt: optax.GradientTransformation, params: Any, grads: Any) -> tuple[list, list]:
    """:func:`run` for a single optimizer: its (updates, params)."""
    return run({"opt": opt}, params, grads)["opt"]


def check_step(opt: optax.GradientTransformation, params: Any) -> None:
    """Trace ``init`` and one ``update`` (``jax.eval_shape``: nothing is compiled or run) and check the
    optax contract that ``update`` returns a state of the same tree structure, shapes and dtypes as
    ``init`` (``lax.scan``, ``MultiSteps`` and checkpointing rely on it)."""

    def one_step(params):
        state = opt.init(params)
        _, new_state = opt.update(params, state, params)
        return state, new_state

    state, new_state = jax.eval_shape(one_step, params)
    before, after = jax.tree.structure(state), jax.tree.structure(new_state)
    if before != after:
        raise AssertionError(
            f"update changed the state's tree structure:\n  init:   {before}\n  update: {after}"
        )
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        if (x.shape, x.dtype) != (y.shape, y.dtype):
            raise AssertionError(
                f"update changed a state leaf from {x.shape} {x.dtype} to {y.shape} {y.dtype}"
            )


def stack(seq: list) -> list:
    """A reference's per-step list of leaf lists -> one array per leaf with a leading step axis."""
    return [np.stack([step[i] for step in seq]) for i in range(len(seq[0]))]


def rel_error(actual: list, expected: list) -> float:
    """Largest error, relative to the largest |element| of the same leaf over the whole trajectory.

    Per-leaf rather than per-element: an element that crosses zero (a first moment changing sign) has
    no meaningful relative error of its own, while its absolute error stays at the rounding level of
    the leaf's typical magnitude.
    """
    worst = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape, f"shape {a.shape} != reference shape {e.shape}"
        scale = np.max(np.abs(e))
        worst = max(worst, float(np.max(np.abs(a - e))) / (scale if scale > 0 else 1.0))
    return worst


def assert_close(actual: list, expected: list, rtol: float, what: str = "") -> None:
    """Every element within ``rtol`` × (largest |element| of its leaf) of the reference."""
    assert all(np.all(np.isfinite(a)) for a in actual), f"{what}: non-finite values"
    err = rel_error(actual, expected)
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:.3g}"


def applied(params0: list, updates_seq: list) -> list:
    """The parameters after each step when ``updates_seq`` (per-step leaf lists) is applied to ``params0``."""
    out, theta = [], list(params0)
    for u in updates_seq:
        theta = [p + x for p, x in zip(theta, u, strict=True)]
        out.append(theta)
    return out


@dataclasses.dataclass(frozen=True)
class Case:
    """One trajectory test: an adaptx optimizer and its reference.

    ``opt()`` builds the optimizer; ``ref(problem)`` returns the expected per-step updates (a list of
    leaf lists), from which the expected parameters follow by :func:`applied`.
    """

    opt: Callable[[], optax.GradientTransformation]
    ref: Callable[[Problem], list]


class Outcomes:
    """All cases of a test module run at one dtype (one compiled program), checked case by case."""

    def __init__(self, cases: dict[str, Case], dtype: str):
        self.cases, self.dtype = cases, dtype
        self.rtol = F64_RTOL if dtype == "float64" else F32_RTOL
        self.errors: dict[str, Exception] = {}
        with jax.enable_x64(dtype == "float64"):
            self.problem = problem(jnp.dtype(dtype))
            p, g = self.problem.params, self.problem.grads
            opts = {}
            for name, case in cases.items():
                # One broken case must not take the others down: trace one step of each first (cheap,
                # nothing is compiled) and leave out those that fail, with their error.
                try:
                    opts[name] = case.opt()
                    check_step(opts[name], p)
                except Exception as err:
                    self.errors[name] = err
                    opts.pop(name, None)
            self.got = run(opts, p, g)

    def expected(self, name: str) -> tuple[list, list]:
        updates = self.cases[name].ref(self.problem)
        return stack(updates), stack(applied(self.problem.params_ref, updates))

    def check(self, name: str) -> float:
        """Assert that updates and parameters of ``name`` match its reference; return the update error."""
        if name in self.errors:
            raise self.errors[name]
        got_u, got_p = self.got[name]
        exp_u, exp_p = self.expected(name)
        assert_close(got_u, exp_u, self.rtol, f"{name} updates [{self.dtype}]")
        assert_close(got_p, exp_p, self.rtol, f"{name} params [{self.dtype}]")
        return rel_error(got_u, exp_u)


def run_python(code: str, timeout: float = 240, **env: str | None) -> subprocess.CompletedProcess:
    """``python -c code`` in a fresh process on the CPU, with ``env`` set (``None``: unset). For what
    must happen before jax starts in a process (the number of simulated devices)."""
    full = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=timeout
    )
