"""Dtypes: updates keep each parameter's dtype; ``mu_dtype``/``nu_dtype`` choose the storage of the
moments; arithmetic is carried out in at least float32 whatever the storage.

The structural checks trace with ``jax.eval_shape`` (nothing is compiled); the numerical ones run
bfloat16 parameters for 200 steps and compare with the float64 reference on the same (bf16-rounded)
gradients.
"""

from __future__ import annotations

import harness as H
import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

import adaptx

ALIASES = ["adam", "adamw", "amsgrad", "amsgradw", "adax", "adaxw"]


def build(alias, **kw):
    extra = {"weight_decay": 1e-2} if alias == "adax" else {}  # adax has no decay block by default
    return getattr(adaptx, alias)(1e-3, **extra, **kw)


def mixed_params():
    """One tree holding bfloat16, float32 and (under x64) float64 leaves."""
    return {
        "bf16": jnp.ones((3, 2), jnp.bfloat16),
        "f32": [jnp.ones(4, jnp.float32), jnp.ones((), jnp.bfloat16)],
        "f64": (jnp.ones((2, 1, 2), jnp.float64),),
    }


def traced_step(opt, params):
    def step(params):
        state = opt.init(params)
        updates, state = opt.update(jax.tree.map(lambda p: p * 0.5, params), state, params)
        return updates, state

    return jax.eval_shape(step, params)


def storage_dtype(leaf):
    """The dtype a state leaf stores."""
    return leaf.dtype


def moment_leaves(state, field):
    """(path, leaf) of the per-parameter arrays of the state field ``field`` (``mu``, ``nu``, ``nu_max``,
    ``nu_residual``) of an alias state; ``"nu"`` includes every second-moment field."""
    out = []
    wanted = ("nu", "nu_max", "nu_residual") if field == "nu" else (field,)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        names = [getattr(k, "name", None) for k in path]
        if any(w in names for w in wanted):
            out.append((jax.tree_util.keystr(path), leaf))
    return out


@pytest.mark.parametrize("alias", ALIASES)
def test_updates_and_state_keep_each_parameter_dtype(alias):
    with jax.enable_x64(True):
        params = mixed_params()
        updates, state = traced_step(build(alias), params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
        assert (u.shape, u.dtype) == (p.shape, p.dtype)
    # by default the moments are stored in the parameter's dtype
    p_dtypes = [p.dtype for p in jax.tree.leaves(params)]
    for field in ("mu", "nu"):
        leaves = moment_leaves(state, field)
        assert leaves
        per_param = len(leaves) // len(p_dtypes)  # AMSGrad and AdaX keep two second-moment arrays
        want = [d for _ in range(per_param) for d in p_dtypes]
        assert [storage_dtype(leaf) for _, leaf in leaves] == want, field


@pytest.mark.parametrize("storage", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("alias", ALIASES)
def test_mu_dtype_and_nu_dtype_set_the_state_dtypes(alias, storage):
    params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
    other = jnp.float32 if storage == jnp.bfloat16 else jnp.bfloat16
    kw = dict(mu_dtype=storage, nu_dtype=other)
    if alias in ("adam", "adamw", "adax", "adaxw"):
        kw["amsgrad"] = True  # so that the running maximum's dtype is checked too
    updates, state = traced_step(build(alias, **kw), params)
    assert {leaf.dtype for _, leaf in moment_leaves(state, "mu")} == {jnp.dtype(storage)}
    nu = moment_leaves(state, "nu")
    assert any("nu_max" in path for path, _ in nu)
    assert {storage_dtype(leaf) for _, leaf in nu} == {jnp.dtype(other)}
    assert updates["w"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32


# --- bfloat16 parameters: arithmetic in float32 ------------------------------------------------------

BLOCKS = {
    "adam": (
        lambda **kw: adaptx.scale_by_adam(0.9, 0.999, 1e-6, **kw),
        lambda: ref.Adam(0.9, 0.999, 1e-6),
    ),
    "amsgrad": (
        lambda **kw: adaptx.scale_by_amsgrad(0.9, 0.99, 1e-6, **kw),
        lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw"),
    ),
    "adax": (lambda **kw: adaptx.scale_by_adax(0.9, 1e-4, 1e-9, **kw), lambda: ref.AdaX(0.9, 1e-4, 1e-9)),
}


@pytest.fixture(scope="module")
def bf16_runs():
    prob = H.problem(jnp.bfloat16)
    f32 = dict(mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    opts = {}
    for name, (make, _) in BLOCKS.items():
        opts[name + "/bf16-state"] = make()
        opts[name + "/f32-state"] = make(**f32)
    got = H.run(opts, prob.params, prob.grads)
    expected = {
        name: H.stack(ref.directions(make_ref(), prob.grads_ref)) for name, (_, make_ref) in BLOCKS.items()
    }
    return prob, got, expected


@pytest.mark.parametrize("name", list(BLOCKS))
def test_bf16_params_with_float32_state_round_only_the_result(name, bf16_runs):
    """bf16 parameters with float32 moments: every update is the float32 result rounded once to
    bfloat16, i.e. within bfloat16's unit roundoff 2^-8 of the float64 reference, element by element
    (plus the float32 tolerance, relative to the leaf)."""
    prob, got, expected = bf16_runs
    updates = got[name + "/f32-state"][0]
    for u, e, p in zip(updates, expected[name], jax.tree.leaves(prob.params), strict=True):
        assert p.dtype == jnp.bfloat16
        bound = 2.0**-8 * np.abs(e) + H.F32_RTOL * np.max(np.abs(e))
        assert np.all(np.abs(u - e) <= bound)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_bf16_params_and_state_stay_close_to_float32(name, bf16_runs):
    """bf16 parameters *and* bf16 moments (the default storage) stay within 5% (of the leaf's largest
    update) of the float64 reference over 200 steps: the stored moments are rounded to 2^-8 at every
    step and the averages carry a few such errors, ~1-2% observed. Arithmetic in bfloat16 could not
    do this: β2 = 0.999 is 1.0 in bfloat16, which would freeze Adam's second moment at zero."""
    assert float(jnp.bfloat16(0.999)) == 1.0
    prob, got, expected = bf16_runs
    updates = got[name + "/bf16-state"][0]
    assert all(np.all(np.isfinite(u)) for u in updates)
    assert H.rel_error(updates, expected[name]) <= 0.05


@pytest.mark.parametrize("alias", ALIASES)
def test_bf16_gradients_on_float32_parameters_give_float32_updates(alias):
    """The update has the parameter's dtype: bf16 gradients on float32 parameters are not rounded to bf16
    steps (the step is the float32 arithmetic on the bf16 gradient's value)."""
    params = {"w": jnp.linspace(0.5, 1.5, 6, dtype=jnp.float32).reshape(2, 3)}
    g32 = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32).reshape(2, 3) / 3}
    g16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), g32)
    opt = build(alias)
    u16, _ = opt.update(g16, opt.init(params), params)
    u32, _ = opt.update(jax.tree.map(lambda x: x.astype(jnp.float32), g16), opt.init(params), params)
    assert u16["w"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(u16["w"]), np.asarray(u32["w"]))
