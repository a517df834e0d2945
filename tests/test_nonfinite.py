"""Non-finite numbers in, non-finite numbers out: adaptx never turns a bad gradient into a silent zero.

The policy (issue 18, "no silent wrong numbers"), the one optax and ``torch.optim`` follow:

* a NaN or ±inf gradient element gives a non-finite update of that element, on the first step as on any
  later one, and leaves every other element alone (all the optimizers are elementwise);
* a NaN that reached the state keeps the element's updates non-finite (PyTorch's and optax's moments
  hold the NaN forever); an update must never quietly become 0 because a comparison with NaN is false;
* the rule "a zero denominator gives a zero step" (no gradient signal ever recorded and ε = 0, the
  legitimate 0/0) holds only where the gradient and the state are finite;
* ``optax.apply_if_finite`` (which inspects the gradient it is handed) around any alias skips a bad
  step: the parameters and the inner state come out of it unchanged, and training continues as if the
  step never happened.

Checked for every alias, every public scaling block and every :mod:`adaptx.torch_compat` constructor;
the ``torch_compat`` constructors are also compared with PyTorch itself (``torch.optim``, or the PyTorch
implementations of ``torch_refs.py``) step by step, non-finite pattern and values.

Three reliability cases of the same issue, each against PyTorch:

* the int32 step counter saturates at 2**31 − 1; every optimizer must keep producing finite steps there
  (NAdam's momentum schedule evaluated at t + 1 must not overflow), equal to PyTorch's at that step;
* huge finite gradients, 1.9e19 <= |g| <= 5.8e20 in float32: PyTorch forms (1 − β2)·g·g, which is finite,
  where g·g overflows; ``torch_compat.adam`` must move exactly as PyTorch does;
* centered RMSprop with a constant gradient, where the variance v − ḡ² cancels to rounding noise:
  PyTorch produces NaN (the root of a negative rounding residue) or huge steps g·lr/ε, elementwise, and
  ``torch_compat.rmsprop(centered=True)`` must produce the same ones. What PyTorch does there is decided by
  the rounding of each operation (its CPU kernels fuse multiply-adds), so this is a bit-level parity test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch_refs

import adaptx
from adaptx import parity
from adaptx import torch_compat as tc

Maker = Callable[[], optax.GradientTransformation]

ALIASES: dict[str, Maker] = {
    "adam": lambda: adaptx.adam(1e-3),
    "adamw": lambda: adaptx.adamw(1e-3, weight_decay=1e-2),
    "amsgrad": lambda: adaptx.amsgrad(1e-3),
    "amsgradw": lambda: adaptx.amsgradw(1e-3, weight_decay=1e-2),
    "adax": lambda: adaptx.adax(1e-3),
    "adaxw": lambda: adaptx.adaxw(1e-3),
}
BLOCK_NAMES = [
    "scale_by_adam", "scale_by_amsgrad", "scale_by_adax", "scale_by_rmsprop", "scale_by_adagrad",
    "scale_by_adamax", "scale_by_nadam", "scale_by_radam", "scale_by_momentum",
]
BLOCKS: dict[str, Maker] = {name: getattr(adaptx, name) for name in BLOCK_NAMES}
TORCH_COMPAT: dict[str, Maker] = {name: getattr(tc, name) for name in tc.__all__}
ALL: dict[str, Maker] = {
    **{f"alias.{k}": v for k, v in ALIASES.items()},
    **{f"block.{k}": v for k, v in BLOCKS.items()},
    **{f"torch_compat.{k}": v for k, v in TORCH_COMPAT.items()},
}

# The PyTorch side of every torch_compat constructor, with the same defaults.
TORCH: dict[str, Callable] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "adax": torch_refs.AdaX,
    "adaxw": functools.partial(torch_refs.AdaX, lr=5e-3, weight_decay=5e-2, decoupled=True),
    "hf_adamw": torch_refs.HFAdamW,
    "labml_adam": torch_refs.LabmlAdam,
    "labml_amsgrad": functools.partial(torch_refs.LabmlAdam, amsgrad=True),
}
assert set(TORCH) == set(TORCH_COMPAT), "a torch_compat constructor without its PyTorch counterpart"

PARAMS = np.array([0.5, -1.5], np.float32)
GOOD = np.array([0.3, -0.2], np.float32)  # a finite gradient
BAD = {"nan": np.float32(np.nan), "+inf": np.float32(np.inf), "-inf": np.float32(-np.inf)}
F32_EPS = float(np.finfo(np.float32).eps)


@functools.cache
def stepper(name: str) -> tuple[optax.GradientTransformation, Callable]:
    """The transformation of ``name`` (a key of :data:`ALL`) and its jitted update, compiled once."""
    tx = ALL[name]()
    return tx, jax.jit(tx.update)


def updates_for(name: str, grads: list[np.ndarray], params: np.ndarray = PARAMS) -> list[np.ndarray]:
    """The updates of ``name`` for the gradient sequence ``grads``, from a fresh state."""
    tx, update = stepper(name)
    p = jnp.asarray(params)
    state = tx.init(p)
    out = []
    for g in grads:
        u, state = update(jnp.asarray(g, jnp.float32), state, p)
        out.append(np.asarray(u))
    return out


def with_bad(value: np.float32) -> np.ndarray:
    """The finite gradient with its first element replaced by ``value``."""
    g = GOOD.copy()
    g[0] = value
    return g


# ------------------------------------------------------------------------------------------------------
# NaN and ±inf gradients, every transformation
# ------------------------------------------------------------------------------------------------------

WHEN = {"first": 0, "later": 3}  # finite steps taken before the bad one


@pytest.mark.parametrize("when", list(WHEN))
@pytest.mark.parametrize("name", list(ALL))
def test_nan_gradient_gives_nan_update(name: str, when: str) -> None:
    """g = [nan, finite] -> u = [nan, finite]; a silent 0 (NaN > 0 is false) would hide the bad step."""
    u = updates_for(name, [GOOD] * WHEN[when] + [with_bad(BAD["nan"])])[-1]
    assert np.isnan(u[0]), f"{name}: a NaN gradient element gave the update {u[0]!r}, not NaN"
    assert np.isfinite(u[1]), f"{name}: a NaN in another element made this update {u[1]!r}"


@pytest.mark.parametrize("when", list(WHEN))
@pytest.mark.parametrize("sign", ["+inf", "-inf"])
@pytest.mark.parametrize("name", list(ALL))
def test_infinite_gradient_gives_nonfinite_update(name: str, sign: str, when: str) -> None:
    """g = [±inf, finite] -> u = [non-finite, finite] (inf/inf is NaN, as in PyTorch and optax)."""
    u = updates_for(name, [GOOD] * WHEN[when] + [with_bad(BAD[sign])])[-1]
    assert not np.isfinite(u[0]), f"{name}: a {sign} gradient element gave the finite update {u[0]!r}"
    assert np.isfinite(u[1]), f"{name}: a {sign} in another element made this update {u[1]!r}"


@pytest.mark.parametrize("name", [k for k in ALL if not k.startswith("torch_compat.")])
def test_nan_in_the_state_keeps_the_updates_nonfinite(name: str) -> None:
    """After a NaN gradient every moment of the element is NaN, so its later updates must be too.

    (Every alias and block keeps a per-parameter state. The torch_compat constructors are compared with
    PyTorch instead, below: plain SGD has no state and rightly recovers.)
    """
    us = updates_for(name, [GOOD, with_bad(BAD["nan"]), GOOD, GOOD, GOOD])
    for t, u in enumerate(us[2:], start=3):
        assert not np.isfinite(u[0]), f"{name}: step {t} after a NaN gradient gave {u[0]!r}"
        assert np.isfinite(u[1]), f"{name}: step {t}: the other element became {u[1]!r}"


def torch_updates(name: str, grads: list[np.ndarray], params: np.ndarray = PARAMS) -> list[np.ndarray]:
    """PyTorch's step from ``params`` for each gradient (the parameters reset to ``params`` each step,
    so that a NaN parameter does not hide what the optimizer state does), as θ' - θ in float64."""
    p = torch.tensor(params, requires_grad=True)
    opt = TORCH[name]([p])
    out = []
    for g in grads:
        with torch.no_grad():
            p.copy_(torch.from_numpy(params))
        p.grad = torch.tensor(g)
        opt.step()
        out.append(p.detach().numpy().astype(np.float64) - params.astype(np.float64))
    return out


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("name", list(TORCH_COMPAT))
def test_torch_compat_matches_torch_around_a_bad_gradient(name: str, bad: str) -> None:
    """Finite, finite, bad, then finite steps: the same non-finite elements as PyTorch, the same values
    elsewhere (θ' = θ + u compared, the rounding PyTorch's in-place step gives)."""
    grads = [GOOD, 1.5 * GOOD, with_bad(BAD[bad]), GOOD, 0.5 * GOOD, GOOD]
    expected = torch_updates(name, grads)
    p = jnp.asarray(PARAMS)
    got = [np.asarray(optax.apply_updates(p, jnp.asarray(u)), np.float64) - PARAMS.astype(np.float64)
           for u in updates_for(f"torch_compat.{name}", grads)]
    for t, (e, a) in enumerate(zip(expected, got, strict=True), start=1):
        assert np.array_equal(np.isfinite(e), np.isfinite(a)), (
            f"{name}, {bad} gradient at step 3: step {t}: PyTorch moved θ by {e}, adaptx by {a}"
        )
        fin = np.isfinite(e)
        tol = 1e-5 * np.abs(e[fin]) + 4 * F32_EPS * np.abs(PARAMS[fin])
        assert np.all(np.abs(e[fin] - a[fin]) <= tol), (name, bad, t, e, a)


# ------------------------------------------------------------------------------------------------------
# The legitimate 0/0: no gradient signal ever, ε = 0
# ------------------------------------------------------------------------------------------------------

ZERO_EPS: dict[str, Maker] = {
    "adam": lambda: adaptx.adam(1e-3, eps=0.0),
    "adamw": lambda: adaptx.adamw(1e-3, eps=0.0, weight_decay=0.0),
    "amsgrad": lambda: adaptx.amsgrad(1e-3, eps=0.0),
    "amsgradw": lambda: adaptx.amsgradw(1e-3, eps=0.0, weight_decay=0.0),
    "adax": lambda: adaptx.adax(1e-3, eps=0.0),
    "adaxw": lambda: adaptx.adaxw(1e-3, eps=0.0, weight_decay=0.0),
    "scale_by_adam": lambda: adaptx.scale_by_adam(eps=0.0),
    "scale_by_amsgrad": lambda: adaptx.scale_by_amsgrad(eps=0.0),
    "scale_by_adax": lambda: adaptx.scale_by_adax(eps=0.0),
    "scale_by_rmsprop": lambda: adaptx.scale_by_rmsprop(eps=0.0),
    "scale_by_rmsprop(centered)": lambda: adaptx.scale_by_rmsprop(eps=0.0, centered=True),
    "scale_by_adagrad": lambda: adaptx.scale_by_adagrad(eps=0.0),
    "scale_by_adamax": lambda: adaptx.scale_by_adamax(eps=0.0),
    "scale_by_nadam": lambda: adaptx.scale_by_nadam(eps=0.0),
    "scale_by_radam": lambda: adaptx.scale_by_radam(eps=0.0),
    "scale_by_momentum": lambda: adaptx.scale_by_momentum(),
}


@pytest.mark.parametrize("name", list(ZERO_EPS))
def test_zero_gradient_with_zero_eps_gives_zero_update(name: str) -> None:
    """g = 0 from the start with ε = 0: every denominator is 0/0, and the step is 0, not NaN.

    Eight steps, so that RAdam's rectified (adaptive) branch, taken from step 6 on, is reached too.
    """
    tx = ZERO_EPS[name]()
    update = jax.jit(tx.update)
    p = jnp.asarray(PARAMS)
    state = tx.init(p)
    for t in range(1, 9):
        u, state = update(jnp.zeros(2, jnp.float32), state, p)
        assert np.array_equal(np.asarray(u), np.zeros(2)), f"{name}: step {t} of zero gradients gave {u}"


# ------------------------------------------------------------------------------------------------------
# optax.apply_if_finite can skip a bad step
# ------------------------------------------------------------------------------------------------------


def _tree_equal(a: Any, b: Any) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(la, lb, strict=True)
    )


@pytest.mark.parametrize("name", list(ALIASES))
def test_apply_if_finite_skips_a_nan_step(name: str) -> None:
    """A NaN gradient at step 3 of 6 under ``optax.apply_if_finite``: the step is seen and skipped
    (parameters and inner state unchanged), and the run then continues bit for bit like a run that never
    saw it."""
    tx = optax.apply_if_finite(ALIASES[name](), max_consecutive_errors=3)
    update = jax.jit(tx.update)
    rng = np.random.default_rng(0)
    good = [rng.standard_normal(2).astype(np.float32) for _ in range(5)]

    def run(grads):
        p = jnp.asarray(PARAMS)
        state = tx.init(p)
        trace = []
        for g in grads:
            u, state = update(jnp.asarray(g), state, p)
            p = optax.apply_updates(p, u)
            trace.append((p, state))
        return trace

    clean = run(good)
    bad = good[:2] + [with_bad(BAD["nan"])] + good[2:]
    hit = run(bad)
    (p_before, s_before), (p_after, s_after) = hit[1], hit[2]
    assert int(s_after.total_notfinite) == 1, f"{name}: apply_if_finite did not see the NaN step"
    assert np.array_equal(np.asarray(p_after), np.asarray(p_before)), (
        f"{name}: the skipped step moved the parameters {p_before} -> {p_after}"
    )
    assert _tree_equal(s_after.inner_state, s_before.inner_state), (
        f"{name}: the skipped step changed the inner state:\n{s_before.inner_state}\n->\n"
        f"{s_after.inner_state}"
    )
    for t, ((pc, _), (ph, _)) in enumerate(zip(clean[2:], hit[3:], strict=True), start=3):
        assert np.array_equal(np.asarray(ph), np.asarray(pc)), (
            f"{name}: after the skipped step, step {t} gives {ph} instead of {pc}"
        )


# ------------------------------------------------------------------------------------------------------
# The saturated step counter
# ------------------------------------------------------------------------------------------------------

T_SATURATED = 2**31 - 1


def saturate(state: Any) -> Any:
    """The state with every int32 leaf (the step counters) set to 2**31 - 2: one step short of the
    ceiling of the saturating counter."""
    return jax.tree.map(
        lambda x: jnp.full_like(x, T_SATURATED - 1) if jnp.asarray(x).dtype == jnp.int32 else x, state
    )


def saturated_updates(name: str, steps: int = 3) -> list[np.ndarray]:
    """One ordinary step, the counter moved to 2**31 - 2, then ``steps`` steps (the counter reaches the
    ceiling and stays there)."""
    tx, update = stepper(name)
    p = jnp.asarray(PARAMS)
    g = jnp.asarray(GOOD)
    _, state = update(g, tx.init(p), p)
    state = saturate(state)
    assert any(jnp.asarray(x).dtype == jnp.int32 for x in jax.tree.leaves(state)), "no counter found"
    out = []
    for _ in range(steps):
        u, state = update(g, state, p)
        out.append(np.asarray(u))
    return out


@pytest.mark.parametrize("name", list(ALL))
def test_saturated_counter_gives_finite_moving_steps(name: str) -> None:
    """At and past 2**31 - 1 steps every update is finite and nonzero (the gradient is)."""
    for t, u in enumerate(saturated_updates(name), start=1):
        assert np.all(np.isfinite(u)) and np.all(u != 0), f"{name}: step {t} at the ceiling gave {u}"


def _torch_saturate(opt: torch.optim.Optimizer) -> None:
    for st in opt.state.values():
        if torch.is_tensor(st["step"]):
            st["step"].fill_(T_SATURATED - 1)  # float32 in torch.optim: rounds to 2**31
        else:
            st["step"] = T_SATURATED - 1


# PyTorch's own counter is exact there (a float or a Python int), so it can be compared with up to the
# ceiling, except for the AdaX reference, whose (1 + β2)**t overflows a Python float long before.
@pytest.mark.parametrize("name", [k for k in TORCH_COMPAT if k not in ("adax", "adaxw")])
def test_saturated_counter_matches_torch(name: str) -> None:
    """torch_compat at t = 2**31 - 1 against PyTorch at t ≈ 2**31: every step-dependent factor has
    reached its limit in both (β^t = 0 in float64), so the steps agree to float32 rounding."""
    p = torch.tensor(PARAMS, requires_grad=True)
    opt = TORCH[name]([p])
    expected = []
    for t in range(4):
        with torch.no_grad():
            p.copy_(torch.from_numpy(PARAMS))
        p.grad = torch.tensor(GOOD)
        opt.step()
        if t == 0:
            _torch_saturate(opt)
        else:
            expected.append(p.detach().numpy().astype(np.float64) - PARAMS.astype(np.float64))
    got = [np.asarray(optax.apply_updates(jnp.asarray(PARAMS), jnp.asarray(u)), np.float64)
           - PARAMS.astype(np.float64) for u in saturated_updates(f"torch_compat.{name}")]
    for t, (e, a) in enumerate(zip(expected, got, strict=True), start=1):
        tol = 1e-5 * np.abs(e) + 4 * F32_EPS * np.abs(PARAMS)
        assert np.all(np.abs(e - a) <= tol), f"{name}: step {t} at the ceiling: PyTorch {e}, adaptx {a}"


# ------------------------------------------------------------------------------------------------------
# Huge finite gradients: (1 - β2)·g·g is finite where g·g is not
# ------------------------------------------------------------------------------------------------------

ADAM = tc.adam()  # one transformation object: the harness compiles it once for both problems


@pytest.mark.parametrize("scale", [3e19, 5e20])
def test_huge_gradients_move_adam_like_torch(scale: float) -> None:
    """|g| in [1.2e19, 5e20] (float32): g·g overflows for most elements, (1 − β2)·g·g does not until v
    accumulates. PyTorch keeps moving (then stops, finitely, once v = inf); adaptx must follow it."""
    direction = np.array([1.0, -1.0, 0.7, -0.4, 0.9], np.float32)
    steps = 6
    grads = np.repeat((scale * direction)[None], steps, axis=0)
    n = direction.size
    problem = parity.Problem(
        params={"w": np.linspace(-1.0, 1.0, n)},
        gradients={"w": grads},
        loss=parity.LeastSquares(np.zeros((2 * n, n)), np.zeros(2 * n), weight=0.0),
    )
    assert np.all(np.isfinite(grads.astype(np.float32)))
    res = parity.compare(lambda p: torch.optim.Adam(p.values()), ADAM, problem)
    assert res.movement > 1e-3, res.movement  # PyTorch moved: about one lr per element at least
    assert np.all(np.isfinite(res.jax_final)), f"adaptx produced {res.jax_final}"
    assert res.passed, (
        f"g = {scale:g}·{direction}: max|θ_torch − θ_adaptx| = {res.max_rel_deviation:.3g} × movement; "
        f"first step over {res.tolerance:g}: {res.first_failure}; torch {res.torch_final}, "
        f"adaptx {res.jax_final}"
    )


# ------------------------------------------------------------------------------------------------------
# Centered RMSprop where the variance cancels
# ------------------------------------------------------------------------------------------------------

CENTERED_STEPS = {0.9: 160, 0.5: 40}  # past the step where v − ḡ² is rounding noise (NaN in PyTorch)


@pytest.mark.parametrize("alpha", list(CENTERED_STEPS))
def test_centered_rmsprop_constant_gradient_matches_torch(alpha: float) -> None:
    """A constant gradient: the exact variance (1 − α^t) α^t g² decays to below float32's resolution of
    v, after which PyTorch's v − ḡ² is a rounding residue: NaN where it is negative, a step g·lr/ε where it
    is 0. The same elements must be NaN in both, at the same steps, and the finite ones must agree.

    Long before that the variance has lost most of its digits, so only the same roundings give the same
    numbers. On this machine (torch's AVX2 kernels) PyTorch's state is reproduced bit for bit, checked in
    float64-emulated NumPy, by ḡ ← fma(1 − α, g − ḡ, ḡ) (``lerp_``), v ← fma((1 − α)·g, g, α·v)
    (``mul_``, ``addcmul_``) and v − ḡ² = fma(−ḡ, ḡ, v) (``addcmul(value=-1)``); the NaN pattern then
    matches exactly and θ to 1 ulp. A PyTorch build without fused multiply-adds rounds differently.
    """
    rng = np.random.default_rng(1)
    g = rng.uniform(-10, 10, 24).astype(np.float32)
    theta0 = np.zeros_like(g)
    steps = CENTERED_STEPS[alpha]

    p = torch.tensor(theta0, requires_grad=True)
    opt = torch.optim.RMSprop([p], lr=1e-2, alpha=alpha, centered=True)
    tx = tc.rmsprop(lr=1e-2, alpha=alpha, centered=True)
    update = jax.jit(tx.update)
    q = jnp.asarray(theta0)
    state = tx.init(q)
    moved = np.zeros(g.size)
    for t in range(1, steps + 1):
        p.grad = torch.tensor(g)
        opt.step()
        u, state = update(jnp.asarray(g), state, q)
        q = optax.apply_updates(q, u)
        e = p.detach().numpy().astype(np.float64)
        a = np.asarray(q, np.float64)
        nan_e, nan_a = np.isnan(e), np.isnan(a)
        assert np.array_equal(nan_e, nan_a), (
            f"α = {alpha}, step {t}: NaN in PyTorch at {np.flatnonzero(nan_e & ~nan_a).tolist()} where "
            f"adaptx has {a[nan_e & ~nan_a]}; NaN in adaptx at {np.flatnonzero(nan_a & ~nan_e).tolist()} "
            f"where PyTorch has {e[nan_a & ~nan_e]}"
        )
        fin = ~nan_e
        moved[fin] = np.maximum(moved[fin], np.abs(e[fin] - theta0[fin]))
        bad = np.abs(e[fin] - a[fin]) > 1e-5 * moved[fin]
        assert not bad.any(), (
            f"α = {alpha}, step {t}: elements {np.flatnonzero(fin)[bad].tolist()}: PyTorch {e[fin][bad]}, "
            f"adaptx {a[fin][bad]}"
        )
