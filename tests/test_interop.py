"""adaptx inside the optax/jax ecosystem.

* Hyperparameters as jax arrays: a jitted step does not retrace when they change; ``jax.vmap`` over a
  grid of (learning rate, β2) runs every alias in one program and equals the per-setting runs;
  ``optax.inject_hyperparams`` gives the same trajectory as the plain alias.
* ``init`` works on ``jax.ShapeDtypeStruct`` leaves; ``update`` keeps the state's structure.
* Chaining: adaptx blocks inside ``optax.chain`` next to optax transforms (``clip_by_global_norm``,
  ``masked``, ``MultiSteps``), optax transforms inside ``adaptx.chain``, each against the float64
  reference of the equivalent manual math.
"""

from __future__ import annotations

import functools
import inspect

import chex
import harness as H
import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import optax
import pytest

import adaptx
from adaptx import moments
from adaptx.moments import first

LR, LR_NP = H.LR_SCHEDULE
WD, WD_NP = H.WD_SCHEDULE

# Every alias with β2 values valid for it (AdaX's β2 is a growth rate > 0, Adam's a decay < 1).
ALIASES = {
    "adam": (adaptx.adam, (0.9, 0.999)),
    "adamw": (adaptx.adamw, (0.9, 0.999)),
    "amsgrad": (adaptx.amsgrad, (0.9, 0.999)),
    "amsgradw": (adaptx.amsgradw, (0.9, 0.999)),
    "adax": (adaptx.adax, (1e-4, 0.02)),
    "adaxw": (adaptx.adaxw, (1e-4, 0.02)),
}

# Every public block and alias, for the structural tests (no compilation involved).
TRANSFORMS = {
    **{name: (lambda make=make: make(1e-3)) for name, (make, _) in ALIASES.items()},
    "adamw/mask": lambda: adaptx.adamw(1e-3, weight_decay=WD, mask=H.mask_fn),
    "scale_by_adam/amsgrad": lambda: adaptx.scale_by_adam(amsgrad="corrected"),
    "scale_by_amsgrad": lambda: adaptx.scale_by_amsgrad(),
    "scale_by_adax/amsgrad": lambda: adaptx.scale_by_adax(amsgrad="raw"),
    "scale_by_moments/no-first": lambda: adaptx.scale_by_moments(moments.MovingAverage(0.9, debias=False)),
    "scale_by_moments/max-tracked": lambda: adaptx.scale_by_moments(
        moments.MaxTracked(moments.LongTermAverage()), first.MovingAverage(debias=False)
    ),
    "add_l2": lambda: adaptx.add_l2(1e-2, mask=H.mask_tree()),
    "decoupled_weight_decay": lambda: adaptx.decoupled_weight_decay(WD, LR),
    "scale_by_learning_rate": lambda: adaptx.scale_by_learning_rate(LR),
    "chain": lambda: adaptx.chain(adaptx.scale_by_adam(), adaptx.scale_by_learning_rate(1e-3)),
}


def small_problem(dtype=jnp.float32):
    return H.tree_of(lambda shape: jnp.full(shape, 0.5, dtype))


# --- structure -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_update_keeps_the_state_structure(name):
    """``update`` returns a state with the structure, shapes and dtypes ``init`` gave (lax.scan,
    lax.cond in ``MultiSteps`` and checkpoint restoring depend on it)."""
    H.check_step(TRANSFORMS[name](), small_problem())


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_init_on_shape_dtype_structs(name):
    """``init`` needs only shapes and dtypes: it accepts ``jax.ShapeDtypeStruct`` leaves (and runs
    under ``jax.eval_shape``), giving the state that concrete parameters give."""
    opt = TRANSFORMS[name]()
    params = H.tree_of(lambda shape: jnp.ones(shape, jnp.float32))
    params = {**params, "half": jnp.ones((2, 2), jnp.bfloat16)}
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    concrete = opt.init(params)
    for state in (opt.init(abstract), jax.eval_shape(opt.init, params)):
        assert jax.tree.structure(state) == jax.tree.structure(concrete)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(concrete), strict=True):
            assert (a.shape, a.dtype) == (b.shape, b.dtype)


@pytest.mark.parametrize("name", list(ALIASES))
def test_donated_step_updates_in_place_without_a_full_size_temporary(name):
    """A jitted step with params and state donated aliases all of them in place, and the compiled
    program holds no temporary array of a parameter's size (AdaX's average and its rounding residual
    are two arrays whose new values both read the old average: each must be one kernel, the residual's
    first, or XLA keeps a copy of the average)."""
    opt = ALIASES[name][0](1e-3)
    params = {"a": jnp.ones((256, 64)), "b": jnp.ones((128, 128))}
    state = opt.init(params)

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()
    mem = compiled.memory_analysis()
    assert mem.alias_size_in_bytes == sum(x.nbytes for x in jax.tree.leaves((params, state)))
    assert mem.temp_size_in_bytes < params["a"].nbytes // 64, mem


# --- hyperparameters as arrays ----------------------------------------------------------------------


def reference_alias(name, lr, b1, b2, eps, wd=0.0):
    """An alias as ``numpy_reference.optimize`` arguments: (direction, learning rate, options)."""
    if name.startswith("adax"):
        direction = ref.AdaX(b1, b2, eps)
    else:
        direction = ref.Adam(b1, b2, eps, amsgrad="raw" if name.startswith("amsgrad") else False)
    options = {"l2": wd} if name == "adax" else {"decoupled": wd} if name.endswith("w") else {}
    return direction, lr, options


def test_jit_does_not_retrace_when_array_hyperparameters_change():
    """One jitted step of every alias, with learning rate, β1, β2, ε and weight decay passed as
    arrays, is traced once for three different settings, and computes what each setting should."""
    params = small_problem()
    grads = H.tree_of(lambda shape: jnp.linspace(-1.0, 2.0, int(np.prod(shape))).reshape(shape))

    def b2_of(name, hp):
        return hp["b2_adax" if name.startswith("adax") else "b2"]

    def build(name, hp):
        make, _ = ALIASES[name]
        kw = dict(b1=hp["b1"], b2=b2_of(name, hp), eps=hp["eps"])
        if name.endswith("w") or name == "adax":
            kw["weight_decay"] = hp["wd"]
        return make(hp["lr"], **kw)

    @functools.partial(jax.jit, compiler_options=H.COMPILER_OPTIONS)
    @chex.assert_max_traces(n=1)
    def step(hp, states):
        return {name: build(name, hp).update(grads, states[name], params)[0] for name in ALIASES}

    settings = [
        dict(lr=1e-3, b1=0.9, b2=0.999, b2_adax=1e-4, eps=1e-8, wd=1e-2),
        dict(lr=3e-2, b1=0.5, b2=0.9, b2_adax=0.3, eps=1e-3, wd=0.5),
        # (a Python 0.0 weight decay would leave the decay block out: another state, a new trace)
        dict(lr=2e-1, b1=0.0, b2=0.5, b2_adax=1.0, eps=0.0, wd=1e-3),
    ]
    p_ref = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    g_ref = [np.asarray(x, np.float64) for x in jax.tree.leaves(grads)]
    for hp in settings:
        states = {name: build(name, hp).init(params) for name in ALIASES}
        got = step(jax.tree.map(jnp.asarray, hp), states)
        for name in ALIASES:
            direction, lr, options = reference_alias(
                name, hp["lr"], hp["b1"], b2_of(name, hp), hp["eps"], hp["wd"]
            )
            expected = ref.optimize(direction, p_ref, [g_ref], lr, **options)
            H.assert_close(
                [np.asarray(x)[None] for x in jax.tree.leaves(got[name])], H.stack(expected), H.F32_RTOL, name
            )


GRID = [(lr, i) for lr in (1e-3, 3e-2) for i in (0, 1)]  # (learning rate, index of β2 in ALIASES)
CORNERS = (0, len(GRID) - 1)  # compiling all four unbatched runs too would double the test's time


def test_vmap_over_learning_rate_and_b2_grid():
    """``jax.vmap`` over a grid of (learning rate, β2) runs all six aliases in one program. Every grid
    point matches the float64 reference of its setting, and the two opposite corners of the grid equal,
    to float32 rounding, the unbatched runs with those settings given as Python numbers."""
    prob = H.problem(steps=20)

    def trajectory(make, lr, b2):
        opt = make(lr, b2=b2)

        def step(carry, g):
            p, s = carry
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (prob.params, opt.init(prob.params)), prob.grads)[0][0]

    @functools.partial(jax.jit, compiler_options=H.COMPILER_OPTIONS)
    def everything():
        out = {}
        for name, (make, b2s) in ALIASES.items():
            lrs = jnp.array([lr for lr, _ in GRID])
            b2v = jnp.array([b2s[i] for _, i in GRID])
            out[name] = jax.vmap(lambda lr, b2, make=make: trajectory(make, lr, b2))(lrs, b2v)
            # the two opposite corners of the grid, unbatched, with Python numbers
            out[name + "/single"] = {k: trajectory(make, GRID[k][0], b2s[GRID[k][1]]) for k in CORNERS}
        return out

    out = everything()
    for name, (make, b2s) in ALIASES.items():
        leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(out[name])]
        for k, (lr, i) in enumerate(GRID):
            defaults = {p.name: p.default for p in inspect.signature(make).parameters.values()}
            direction, lr_, options = reference_alias(
                name, lr, defaults["b1"], b2s[i], defaults["eps"], defaults.get("weight_decay", 0.0)
            )
            expected = ref.optimize(direction, prob.params_ref, prob.grads_ref, lr_, **options)
            params = H.applied(prob.params_ref, expected)[-1]
            what = f"{name} lr={lr} b2={b2s[i]}"
            H.assert_close([x[k][None] for x in leaves], [p[None] for p in params], H.F32_RTOL, what)
            if k in CORNERS:
                single = [np.asarray(x, np.float64)[None] for x in jax.tree.leaves(out[name + "/single"][k])]
                assert H.rel_error([x[k][None] for x in leaves], single) <= 1e-6, what


# --- trajectories of chained and wrapped optimizers against the reference -------------------------------


def clip_by_global_norm(grads, max_norm):
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    return [g * (max_norm / norm) if norm > max_norm else g for g in grads]


def expected_clipped_adam(prob):
    grads = [clip_by_global_norm(g, 20.0) for g in prob.grads_ref]
    return ref.optimize(ref.Adam(0.8, 0.95, 1e-6), prob.params_ref, grads, 1e-2)


def expected_masked_adax(prob):
    mask = H.mask_list(H.mask_tree(), prob)
    adax = ref.directions(ref.AdaX(0.8, 0.02, 1e-9), prob.grads_ref)
    return [
        [-1e-2 * (d if on else g) for d, g, on in zip(ds, gs, mask, strict=True)]
        for ds, gs in zip(adax, prob.grads_ref, strict=True)
    ]


def expected_multisteps_adamw(prob, k=4):
    leaves = range(len(prob.params_ref))
    means = [
        [np.mean([prob.grads_ref[s][i] for s in range(j, j + k)], axis=0) for i in leaves]
        for j in range(0, len(prob.grads_ref), k)
    ]
    inner = ref.optimize(ref.Adam(0.8, 0.95, 1e-6), prob.params_ref, means, 1e-2, decoupled=0.1)
    zeros = [np.zeros_like(p) for p in prob.params_ref]
    return [u for step in inner for u in [zeros] * (k - 1) + [step]]


def expected_clip_in_adaptx_chain(prob):
    grads = [[np.clip(g, -5.0, 5.0) for g in gs] for gs in prob.grads_ref]
    return ref.optimize(ref.Adam(0.8, 0.95, 1e-6), prob.params_ref, grads, LR_NP)


def expected_adamw(prob, learning_rate=LR_NP, **kw):
    return ref.optimize(ref.Adam(0.8, 0.95, 1e-6), prob.params_ref, prob.grads_ref, learning_rate, **kw)


C = H.Case
CASES = {
    "optax.chain(clip_by_global_norm, scale_by_adam, scale_by_learning_rate)": C(
        lambda: optax.chain(
            optax.clip_by_global_norm(20.0),
            adaptx.scale_by_adam(0.8, 0.95, 1e-6),
            adaptx.scale_by_learning_rate(1e-2),
        ),
        expected_clipped_adam,
    ),
    "optax.masked(scale_by_adax)": C(
        lambda: optax.chain(
            optax.masked(adaptx.scale_by_adax(0.8, 0.02, 1e-9), H.mask_tree()), optax.scale(-1e-2)
        ),
        expected_masked_adax,
    ),
    "optax.MultiSteps(adamw, 4)": C(
        lambda: optax.MultiSteps(
            adaptx.adamw(1e-2, 0.8, 0.95, 1e-6, weight_decay=0.1), every_k_schedule=4
        ).gradient_transformation(),
        expected_multisteps_adamw,
    ),
    "adaptx.chain(optax.clip, blocks)": C(
        lambda: adaptx.chain(
            optax.clip(5.0),
            adaptx.scale_by_adam(0.8, 0.95, 1e-6),
            adaptx.scale_by_learning_rate(LR),
        ),
        expected_clip_in_adaptx_chain,
    ),
    "adamw": C(
        lambda: adaptx.adamw(LR, 0.8, 0.95, 1e-6, weight_decay=WD, mask=H.mask_fn),
        lambda prob: expected_adamw(prob, decoupled=WD_NP, mask=H.mask_list(H.mask_fn, prob)),
    ),
    "inject_hyperparams(adamw)/schedules,mask": C(
        lambda: optax.inject_hyperparams(adaptx.adamw, static_args=("mask",))(
            learning_rate=LR, b1=0.8, b2=0.95, eps=1e-6, weight_decay=WD, mask=H.mask_fn
        ),
        lambda prob: expected_adamw(prob, decoupled=WD_NP, mask=H.mask_list(H.mask_fn, prob)),
    ),
    "adamw/constants": C(
        lambda: adaptx.adamw(1e-2, 0.8, 0.95, 1e-6, weight_decay=0.1),
        lambda prob: expected_adamw(prob, learning_rate=1e-2, decoupled=0.1),
    ),
    "inject_hyperparams(adamw)/constants": C(
        lambda: optax.inject_hyperparams(adaptx.adamw)(1e-2, 0.8, 0.95, 1e-6, weight_decay=0.1),
        lambda prob: expected_adamw(prob, learning_rate=1e-2, decoupled=0.1),
    ),
}


@pytest.fixture(scope="module")
def outcomes() -> H.Outcomes:
    return H.Outcomes(CASES, "float32")


@pytest.mark.parametrize("name", list(CASES))
def test_chained_matches_reference(name, outcomes):
    outcomes.check(name)


@pytest.mark.parametrize("plain", ["adamw", "adamw/constants"])
def test_inject_hyperparams_gives_the_same_trajectory(plain, outcomes):
    """``optax.inject_hyperparams(adaptx.adamw)`` follows ``adaptx.adamw``'s trajectory to float32
    rounding (the hyperparameters become arrays, which changes nothing but the order of a few
    operations), with schedules evaluated at the same step."""
    injected = {"adamw": "inject_hyperparams(adamw)/schedules,mask", "adamw/constants":
                "inject_hyperparams(adamw)/constants"}[plain]
    for a, b in zip(outcomes.got[injected], outcomes.got[plain], strict=True):
        assert H.rel_error(a, b) <= 1e-6


def test_multisteps_and_clipping_change_the_trajectory():
    """The wrapped optimizers above differ from the plain ones by far more than the tolerance."""
    prob = H.problem()
    plain = H.stack(ref.optimize(ref.Adam(0.8, 0.95, 1e-6), prob.params_ref, prob.grads_ref, 1e-2))
    assert H.rel_error(H.stack(expected_clipped_adam(prob)), plain) > 20 * H.F32_RTOL
    assert H.rel_error(H.stack(expected_masked_adax(prob)), plain) > 20 * H.F32_RTOL
    plain_lr = H.stack(ref.optimize(ref.Adam(0.8, 0.95, 1e-6), prob.params_ref, prob.grads_ref, LR_NP))
    assert H.rel_error(H.stack(expected_clip_in_adaptx_chain(prob)), plain_lr) > 20 * H.F32_RTOL
