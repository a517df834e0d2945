"""Property-based tests (hypothesis): invariants that must hold for every hyperparameter set, not only the
hand-picked ones of the other test modules.

For every alias (``adaptx.adam``, ``adamw``, ``amsgrad``, ``amsgradw``, ``adax``, ``adaxw``) and every
:mod:`adaptx.torch_compat` constructor, over random valid hyperparameters, parameters and gradients:

* finite in, finite out: finite gradients of moderate size never give a NaN or inf update;
* a zero gradient with the weight decay off leaves the parameters bit for bit where they are;
* ``maximize=True`` on g is minimizing on −g (torch_compat);
* ``jax.vmap`` over a batch of parameter sets gives what a Python loop over them gives;
* a jitted step is within a few ulp of the same step run eagerly (op by op);
* ``adaptx.adamw(lr, weight_decay=0.0)`` is ``adaptx.adam(lr)`` (and likewise amsgradw/amsgrad,
  adaxw/adax);
* parity with PyTorch over random hyperparameter sets, for every torch_compat constructor (``torch.optim``,
  or the PyTorch implementations of the reference formulations in ``torch_refs.py``), at the harness's
  tolerance (:data:`adaptx.parity.TOLERANCE`), through :func:`adaptx.parity.compare`.

The references are independent of the code under test: PyTorch for parity; exact arithmetic facts
(x + 0 = x, negation is exact, the same step compiled differently agrees to rounding) for the rest.

Compilation dominates the run time, so hyperparameters are *traced* arguments of one jitted function per
optimizer (adaptx accepts jax arrays as hyperparameters): the examples of a test reuse one compilation.
The PyTorch parity tests are the exception: they pass Python floats, the path on which torch_compat
reproduces PyTorch's float64 constants, so every example compiles; they run a third of the profile's
examples per optimizer.

Hypothesis profiles (registered in ``conftest.py``), chosen by the environment variable
``ADAPTX_HYPOTHESIS_PROFILE``:

* ``ci`` (default): 10 examples per test, derandomized (every run draws the same examples), no deadline,
  no shrinking (a failure is reported with the example as drawn);
* ``long``: 500 examples per test, random, shrinking, e.g. ``ADAPTX_HYPOTHESIS_PROFILE=long pytest
  tests/test_properties.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch_refs
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptx
from adaptx import parity
from adaptx import torch_compat as tc

# Compiling without LLVM optimisation and with XLA:CPU's classic code generator is ~3x faster and keeps
# IEEE semantics; the jit-versus-eager test compiles with the default options users get.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
STEPS = 6  # steps of every traced run
SHAPES = {"b": (3,), "w": (2, 3)}  # two leaves, nine parameters
F32 = np.float32

Hypers = dict[str, Any]


# ------------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------------


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats spread evenly over the decades of [lo, hi]."""
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(10.0**e))


def or_zero(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    """``strategy`` or an exact 0 (a hyperparameter switched off)."""
    return st.one_of(st.just(0.0), strategy)


LR = log_uniform(1e-5, 1.0)
B1 = st.floats(0.0, 0.99)
B2 = st.floats(0.5, 0.9999)
ADAX_B2 = log_uniform(1e-5, 1e-1)
EPS = or_zero(log_uniform(1e-12, 1e-3))
WD = or_zero(log_uniform(1e-5, 1e-1))
UNIT = st.floats(0.0, 0.99)


@dataclasses.dataclass(frozen=True)
class Spec:
    """An optimizer under test.

    Attributes:
      build: ``(hyperparameters, maximize) -> transformation``; the hyperparameters may be traced
        arrays. ``maximize`` is ignored by the aliases, which have none.
      hypers: a strategy per hyperparameter name, its valid range. ``"wd"`` is the weight decay.
      torch_compat: a torch_compat constructor (has ``maximize``).
    """

    build: Callable[[Hypers, bool], optax.GradientTransformation]
    hypers: dict[str, st.SearchStrategy[float]]
    torch_compat: bool = False


ADAM_HYPERS = {"lr": LR, "b1": B1, "b2": B2, "eps": EPS}
ADAX_HYPERS = {"lr": LR, "b1": B1, "b2": ADAX_B2, "eps": EPS, "wd": WD}


def _alias(fn: Callable, decay: bool) -> Callable[[Hypers, bool], optax.GradientTransformation]:
    def build(h: Hypers, maximize: bool) -> optax.GradientTransformation:
        del maximize
        extra = {"weight_decay": h["wd"]} if decay else {}
        return fn(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], **extra)

    return build


def _betas(h: Hypers) -> tuple[Any, Any]:
    return (h["b1"], h["b2"])


SPECS: dict[str, Spec] = {
    "adam": Spec(_alias(adaptx.adam, False), ADAM_HYPERS),
    "adamw": Spec(_alias(adaptx.adamw, True), {**ADAM_HYPERS, "wd": WD}),
    "amsgrad": Spec(_alias(adaptx.amsgrad, False), ADAM_HYPERS),
    "amsgradw": Spec(_alias(adaptx.amsgradw, True), {**ADAM_HYPERS, "wd": WD}),
    "adax": Spec(_alias(adaptx.adax, True), ADAX_HYPERS),
    "adaxw": Spec(_alias(adaptx.adaxw, True), ADAX_HYPERS),
    "tc.sgd": Spec(
        lambda h, mx: tc.sgd(h["lr"], h["momentum"], h["dampening"], h["wd"], maximize=mx),
        {"lr": LR, "momentum": UNIT, "dampening": st.floats(0.0, 0.9), "wd": WD}, True),
    "tc.adam": Spec(
        lambda h, mx: tc.adam(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
    "tc.adamw": Spec(
        lambda h, mx: tc.adamw(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
    "tc.rmsprop": Spec(
        lambda h, mx: tc.rmsprop(h["lr"], h["alpha"], h["eps"], h["wd"], h["momentum"], maximize=mx),
        {"lr": LR, "alpha": st.floats(0.5, 0.999), "eps": EPS, "wd": WD, "momentum": UNIT}, True),
    "tc.adagrad": Spec(
        lambda h, mx: tc.adagrad(h["lr"], h["lr_decay"], h["wd"], h["init"], h["eps"], maximize=mx),
        {"lr": LR, "lr_decay": or_zero(log_uniform(1e-4, 1e-1)), "wd": WD,
         "init": or_zero(st.floats(1e-3, 1.0)), "eps": EPS}, True),
    "tc.adamax": Spec(
        lambda h, mx: tc.adamax(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
    "tc.nadam": Spec(
        lambda h, mx: tc.nadam(h["lr"], _betas(h), h["eps"], h["wd"], h["psi"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD, "psi": or_zero(log_uniform(1e-4, 1e-1))}, True),
    "tc.radam": Spec(
        lambda h, mx: tc.radam(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
    "tc.adax": Spec(
        lambda h, mx: tc.adax(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx), ADAX_HYPERS, True),
    "tc.adaxw": Spec(
        lambda h, mx: tc.adaxw(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx), ADAX_HYPERS, True),
    "tc.hf_adamw": Spec(
        lambda h, mx: tc.hf_adamw(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
    "tc.labml_adam": Spec(
        lambda h, mx: tc.labml_adam(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
    "tc.labml_amsgrad": Spec(
        lambda h, mx: tc.labml_amsgrad(h["lr"], _betas(h), h["eps"], h["wd"], maximize=mx),
        {**ADAM_HYPERS, "wd": WD}, True),
}
ALIAS_NAMES = [k for k, s in SPECS.items() if not s.torch_compat]
TC_NAMES = [k for k, s in SPECS.items() if s.torch_compat]
assert {k[3:] for k in TC_NAMES} == set(tc.__all__), "a torch_compat constructor is not covered"


def hypers_of(name: str) -> st.SearchStrategy[Hypers]:
    return st.fixed_dictionaries(SPECS[name].hypers)


@st.composite
def trees(draw: st.DrawFn, scale: float, steps: int | None = None, batch: int | None = None) -> dict:
    """A tree of float32 arrays shaped like the parameters (with leading ``batch``/``steps`` axes).

    Hypothesis draws the law, NumPy the elements (drawing every element through hypothesis costs more
    than the optimizer steps): magnitudes log-uniform between 10**lo and ``scale`` (``lo`` drawn, from
    1e-30 up), random signs, and a drawn fraction of exact zeros (none, some or all) — so that tiny,
    huge, mixed and zero gradients all occur.

    Nothing nearer to float32's underflow than 1e-30: XLA:CPU flushes subnormal results to zero, which
    makes θ + 0 differ from a subnormal θ, and can turn the quotients of an ε = 0 optimizer whose moments
    sit at the bottom of the normal range into 0/0 (``torch_compat.adamax`` with ε = 0 and a traced β1 on
    g ≈ 1e-37 gives NaN when compiled with :data:`FAST_COMPILE`, 0 with the default options): properties
    of the platform's arithmetic, not of the optimizer's formulas.
    """
    hi = math.log10(scale)
    lo = draw(st.floats(-30.0, hi), label="log10 of the smallest magnitude")
    zeros = draw(st.sampled_from([0.0, 0.0, 0.2, 1.0]), label="fraction of zeros")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    lead = tuple(n for n in (batch, steps) if n is not None)
    out = {}
    for k, shape in SHAPES.items():
        size = lead + shape
        x = np.sign(rng.standard_normal(size)) * 10.0 ** rng.uniform(lo, hi, size)
        out[k] = np.where(rng.random(size) < zeros, 0.0, x).astype(F32)
    return out


PARAMS = trees(10.0)
GRADS = trees(1e3, steps=STEPS)


def as_arrays(hypers: Hypers) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, jnp.float32) for k, v in hypers.items()}


# ------------------------------------------------------------------------------------------------------
# One compilation per optimizer
# ------------------------------------------------------------------------------------------------------


def _step(tx: optax.GradientTransformation, carry: tuple, g: Any) -> tuple:
    p, state = carry
    u, state = tx.update(g, state, p)
    p = optax.apply_updates(p, u)
    return (p, state), (u, p)


def _trajectory(name: str, maximize: bool) -> Callable:
    """``(hypers, params, grads) -> (updates, params)`` for every step, built with traced hypers."""

    def run(hypers, params, grads):
        tx = SPECS[name].build(hypers, maximize)
        carry = (params, tx.init(params))
        _, (updates, trajectory) = jax.lax.scan(functools.partial(_step, tx), carry, grads)
        return updates, trajectory

    return run


@functools.cache
def runner(name: str, maximize: bool = False) -> Callable:
    return jax.jit(_trajectory(name, maximize), compiler_options=FAST_COMPILE)


@functools.cache
def batched_runner(name: str) -> Callable:
    return jax.jit(jax.vmap(_trajectory(name, False), in_axes=(None, 0, 0)), compiler_options=FAST_COMPILE)


@functools.cache
def jitted_step(name: str) -> Callable:
    """One step with traced hyperparameters, compiled with the default options."""

    def step(hypers, g, state, params):
        return SPECS[name].build(hypers, False).update(g, state, params)

    return jax.jit(step)


def assert_within_rounding(actual: Any, expected: Any, params: Any, what: str) -> None:
    """Updates equal to rounding: elementwise within 4 ulp of the update plus 2 ulp of the parameter, or
    within 1e-6 of the leaf's largest update.

    The parameter's ulp enters because the torch_compat optimizers that emulate PyTorch's in-place steps
    return θ_new − θ as their update, rounded to θ's grid; the leaf's scale, because a sum of terms
    (decay and step) can cancel to a value far smaller than its terms.
    """
    leaves = zip(jax.tree.leaves(actual), jax.tree.leaves(expected), jax.tree.leaves(params), strict=True)
    for a, e, p in leaves:
        a, e, p = np.asarray(a), np.asarray(e), np.asarray(p)
        assert a.shape == e.shape and a.dtype == e.dtype, (what, a.shape, e.shape, a.dtype, e.dtype)
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(e)), (what, a, e)
        scale = np.max(np.abs(e)) if e.size else 0.0
        bound = np.maximum(4 * np.spacing(np.abs(e)) + 2 * np.spacing(np.abs(p)), F32(1e-6) * scale)
        worst = np.abs(a.astype(np.float64) - e.astype(np.float64)) - bound
        assert np.all(worst <= 0), (
            f"{what}: off by up to {np.max(np.abs(a.astype(np.float64) - e)):.3g} (bound "
            f"{np.max(bound):.3g}); got {a}, expected {e}"
        )


# ------------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------------

TRACED = ALIAS_NAMES + TC_NAMES


@pytest.mark.parametrize("name", TRACED)
@given(data=st.data(), params=PARAMS, grads=GRADS)
def test_finite_gradients_give_finite_updates(name: str, data: st.DataObject, params: dict,
                                              grads: dict) -> None:
    """|g| <= 1e3, |θ| <= 10, any valid hyperparameters (ε = 0 included): every update is finite."""
    hypers = data.draw(hypers_of(name), label="hypers")
    updates, trajectory = runner(name)(as_arrays(hypers), params, grads)
    for leaf in jax.tree.leaves((updates, trajectory)):
        assert np.all(np.isfinite(np.asarray(leaf))), (name, hypers, updates)


@pytest.mark.parametrize("name", TRACED)
@given(data=st.data(), params=PARAMS)
def test_zero_gradient_without_decay_leaves_parameters(name: str, data: st.DataObject, params: dict) -> None:
    """g = 0 from the start, weight decay 0: θ stays bit for bit (0/0 with ε = 0 is a zero step)."""
    hypers = data.draw(hypers_of(name), label="hypers")
    if "wd" in hypers:
        hypers["wd"] = 0.0
    zeros = {k: np.zeros((STEPS, *shape), F32) for k, shape in SHAPES.items()}
    _, trajectory = runner(name)(as_arrays(hypers), params, zeros)
    for k in SHAPES:
        for t in range(STEPS):
            assert np.array_equal(np.asarray(trajectory[k][t]), params[k]), (
                f"{name} with {hypers}: step {t + 1} of zero gradients moved {k}: "
                f"{params[k]} -> {np.asarray(trajectory[k][t])}"
            )


@pytest.mark.parametrize("name", TC_NAMES)
@given(data=st.data(), params=PARAMS, grads=GRADS)
def test_maximize_is_minimizing_the_negated_gradient(name: str, data: st.DataObject, params: dict,
                                                     grads: dict) -> None:
    """``maximize=True`` on g = ``maximize=False`` on −g (PyTorch negates g first; negation is exact)."""
    hypers = as_arrays(data.draw(hypers_of(name), label="hypers"))
    negated = jax.tree.map(np.negative, grads)
    up_max, _ = runner(name, True)(hypers, params, grads)
    up_min, traj = runner(name, False)(hypers, params, negated)
    before = jax.tree.map(lambda p0, tr: np.concatenate([p0[None], np.asarray(tr)[:-1]]), params, traj)
    assert_within_rounding(up_max, up_min, before, f"{name}: maximize on g vs minimize on -g")


@pytest.mark.parametrize("name", TRACED)
@given(data=st.data(), params=trees(10.0, batch=2), grads=trees(1e3, steps=STEPS, batch=2))
def test_vmap_over_parameter_sets_is_a_loop(name: str, data: st.DataObject, params: dict,
                                            grads: dict) -> None:
    """``jax.vmap`` over two parameter sets (and their gradients) = one run per set."""
    hypers = as_arrays(data.draw(hypers_of(name), label="hypers"))
    batched, _ = batched_runner(name)(hypers, params, grads)
    for i in range(2):
        p_i = {k: v[i] for k, v in params.items()}
        one, traj = runner(name)(hypers, p_i, {k: v[i] for k, v in grads.items()})
        before = jax.tree.map(lambda p0, tr: np.concatenate([p0[None], np.asarray(tr)[:-1]]), p_i, traj)
        assert_within_rounding({k: v[i] for k, v in batched.items()}, one, before,
                               f"{name}: member {i} of vmap")


@pytest.mark.parametrize("name", TRACED)
@given(data=st.data(), params=PARAMS, grads=trees(1e3, steps=2))
def test_jit_step_is_the_eager_step(name: str, data: st.DataObject, params: dict, grads: dict) -> None:
    """Two steps, each run eagerly (op by op) and jitted (default compiler options) from the same
    state: the updates agree within a few ulp."""
    hypers = as_arrays(data.draw(hypers_of(name), label="hypers"))
    tx = SPECS[name].build(hypers, False)  # the same hyperparameters, concrete arrays: the eager path
    step = jitted_step(name)
    p = jax.tree.map(jnp.asarray, params)
    state = tx.init(p)
    for t in range(2):
        g = {k: jnp.asarray(v[t]) for k, v in grads.items()}
        u_jit, _ = step(hypers, g, state, p)
        u_eager, state = tx.update(g, state, p)
        assert_within_rounding(u_jit, u_eager, p, f"{name}: step {t + 1} jitted vs eager")


DECAY_PAIRS = {"adamw": ("adam", adaptx.adamw), "amsgradw": ("amsgrad", adaptx.amsgradw),
               "adaxw": ("adax", adaptx.adaxw)}


@functools.cache
def undecayed(name: str) -> Callable:
    """``name`` (a decoupled alias) with the Python number ``weight_decay=0.0``, other hypers traced."""

    def run(hypers, params, grads):
        tx = DECAY_PAIRS[name][1](hypers["lr"], b1=hypers["b1"], b2=hypers["b2"], eps=hypers["eps"],
                                  weight_decay=0.0)
        return jax.lax.scan(functools.partial(_step, tx), (params, tx.init(params)), grads)[1]

    return jax.jit(run, compiler_options=FAST_COMPILE)


@pytest.mark.parametrize("name", list(DECAY_PAIRS))
@given(data=st.data(), params=PARAMS, grads=GRADS)
def test_decoupled_alias_without_decay_is_the_plain_alias(name: str, data: st.DataObject, params: dict,
                                                          grads: dict) -> None:
    """``adamw(lr, weight_decay=0.0)`` = ``adam(lr)``, bit for bit (likewise amsgradw, adaxw)."""
    plain = DECAY_PAIRS[name][0]
    hypers = as_arrays(data.draw(hypers_of(plain), label="hypers"))
    if "wd" in hypers:  # adax's coupled L2 is switched off as well
        hypers["wd"] = jnp.zeros([], jnp.float32)
    got, _ = undecayed(name)(hypers, params, grads)
    expected, _ = runner(plain)(hypers, params, grads)
    for k in SHAPES:
        assert np.array_equal(np.asarray(got[k]), np.asarray(expected[k])), (
            f"{name}(weight_decay=0.0) vs {plain}: {k}: {np.asarray(got[k])} vs {np.asarray(expected[k])}"
        )


# ------------------------------------------------------------------------------------------------------
# PyTorch parity over random hyperparameter sets
# ------------------------------------------------------------------------------------------------------

PARITY_STEPS = 50
PARITY_SHAPES = {"scalar": (), "matrix": (4, 3)}
# A third of the profile's examples: each one compiles (Python-float hyperparameters, see the docstring).
PARITY_EXAMPLES = max(3, settings().max_examples // 3)

# Hyperparameter ranges for parity: an optimizer's total movement over 50 steps stays below ~1 unit, so
# the least-squares runs never reach their optimum (3 to 6 units away), where adaptive steps oscillate and
# amplify rounding (see adaptx.parity.make_problem); momentum-like methods get lr × (1 − momentum).
P_LR = log_uniform(1e-4, 1e-2)
P_B1 = st.floats(0.0, 0.95)
P_B2 = st.floats(0.9, 0.9999)
P_EPS = log_uniform(1e-10, 1e-6)
P_WD = or_zero(log_uniform(1e-4, 1e-1))
P_ADAX_B2 = log_uniform(1e-5, 1e-2)


@dataclasses.dataclass(frozen=True)
class ParityCase:
    """A torch_compat constructor and its PyTorch counterpart, called with the same keyword arguments."""

    adaptx_fn: Callable
    torch_cls: Callable
    kwargs: st.SearchStrategy[dict]
    sgd_like: bool = False  # movement proportional to the gradient: parameters at the gradient's scale


def _adam_kwargs(**extra: st.SearchStrategy) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"lr": P_LR, "betas": st.tuples(P_B1, P_B2), "eps": P_EPS,
                                  "weight_decay": P_WD, "maximize": st.booleans(), **extra})


@st.composite
def _sgd_kwargs(draw: st.DrawFn) -> dict:
    momentum = draw(or_zero(st.floats(0.1, 0.9)))
    nesterov = momentum > 0 and draw(st.booleans())
    return {"lr": draw(log_uniform(1e-3, 3e-2)) * (1 - momentum), "momentum": momentum,
            "dampening": 0.0 if nesterov else draw(or_zero(st.floats(0.0, 0.5))),
            "weight_decay": draw(P_WD), "nesterov": nesterov, "maximize": draw(st.booleans())}


@st.composite
def _rmsprop_kwargs(draw: st.DrawFn) -> dict:
    momentum = draw(or_zero(st.floats(0.1, 0.9)))
    return {"lr": draw(P_LR) * (1 - momentum), "alpha": draw(st.floats(0.9, 0.999)), "eps": draw(P_EPS),
            "weight_decay": draw(P_WD), "momentum": momentum, "centered": draw(st.booleans()),
            "maximize": draw(st.booleans())}


PARITY: dict[str, ParityCase] = {
    "sgd": ParityCase(tc.sgd, torch.optim.SGD, _sgd_kwargs(), sgd_like=True),
    "adam": ParityCase(tc.adam, torch.optim.Adam, _adam_kwargs(
        amsgrad=st.booleans(), decoupled_weight_decay=st.booleans())),
    "adamw": ParityCase(tc.adamw, torch.optim.AdamW, _adam_kwargs(amsgrad=st.booleans())),
    "rmsprop": ParityCase(tc.rmsprop, torch.optim.RMSprop, _rmsprop_kwargs()),
    "adagrad": ParityCase(tc.adagrad, torch.optim.Adagrad, st.fixed_dictionaries({
        "lr": log_uniform(1e-3, 1e-1), "lr_decay": or_zero(log_uniform(1e-4, 1e-1)), "weight_decay": P_WD,
        "initial_accumulator_value": or_zero(st.floats(1e-3, 1.0)), "eps": P_EPS,
        "maximize": st.booleans()})),
    "adamax": ParityCase(tc.adamax, torch.optim.Adamax, _adam_kwargs()),
    "nadam": ParityCase(tc.nadam, torch.optim.NAdam, _adam_kwargs(
        momentum_decay=log_uniform(1e-4, 1e-1), decoupled_weight_decay=st.booleans())),
    "radam": ParityCase(tc.radam, torch.optim.RAdam, _adam_kwargs(decoupled_weight_decay=st.booleans())),
    "adax": ParityCase(tc.adax, torch_refs.AdaX, st.fixed_dictionaries({
        "lr": P_LR, "betas": st.tuples(P_B1, P_ADAX_B2), "eps": or_zero(log_uniform(1e-14, 1e-8)),
        "weight_decay": P_WD, "maximize": st.booleans()})),
    "adaxw": ParityCase(tc.adaxw, functools.partial(torch_refs.AdaX, decoupled=True), st.fixed_dictionaries({
        "lr": P_LR, "betas": st.tuples(P_B1, P_ADAX_B2), "eps": or_zero(log_uniform(1e-14, 1e-8)),
        "weight_decay": P_WD, "maximize": st.booleans()})),
    "hf_adamw": ParityCase(tc.hf_adamw, torch_refs.HFAdamW, _adam_kwargs(correct_bias=st.booleans())),
    "labml_adam": ParityCase(tc.labml_adam, torch_refs.LabmlAdam, _adam_kwargs(
        weight_decouple=st.booleans(), absolute=st.booleans(), optimized_update=st.booleans(),
        amsgrad=st.booleans())),
    "labml_amsgrad": ParityCase(
        tc.labml_amsgrad, functools.partial(torch_refs.LabmlAdam, amsgrad=True), _adam_kwargs(
            weight_decouple=st.booleans(), optimized_update=st.booleans())),
}
assert set(PARITY) == set(tc.__all__), "a torch_compat constructor without a parity case"

PROBLEMS = st.one_of(
    st.tuples(st.just("random"), st.sampled_from([1e-3, 1.0, 1e2]), st.integers(0, 2**16)),
    st.tuples(st.just("least_squares"), st.just(1.0), st.integers(0, 2**16)),
)


@pytest.mark.parametrize("name", list(PARITY))
@settings(max_examples=PARITY_EXAMPLES)
@given(data=st.data(), problem=PROBLEMS)
def test_torch_parity_random_hyperparameters(name: str, data: st.DataObject,
                                             problem: tuple[str, float, int]) -> None:
    """50 steps beside PyTorch from the same parameters: max|θ_torch − θ_adaptx| within
    ``parity.TOLERANCE["float32"]`` of the total movement at every step."""
    case = PARITY[name]
    kwargs = data.draw(case.kwargs, label="kwargs")
    kind, scale, seed = problem
    prob = parity.make_problem(kind, steps=PARITY_STEPS, scale=scale, seed=seed, shapes=PARITY_SHAPES,
                               param_scale=scale if case.sgd_like else 1.0)
    res = parity.compare(lambda p: case.torch_cls(p.values(), **kwargs), case.adaptx_fn(**kwargs), prob,
                         compiler_options=FAST_COMPILE)
    theta0 = np.concatenate([np.ravel(prob.params[k]) for k in prob.names])
    # The run must move θ by far more than its rounding, or the bound would say nothing.
    assert res.movement > 1e3 * np.finfo(F32).eps * np.max(np.abs(theta0)), (kwargs, problem, res.movement)
    assert res.passed, (
        f"{name}({kwargs}) on {problem}: max|θ_torch − θ_adaptx| = {res.max_rel_deviation:.3g} × movement "
        f"{res.movement:.3g}; first step over {res.tolerance:g}: {res.first_failure}"
    )
