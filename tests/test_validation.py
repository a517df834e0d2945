"""Bad input gets a clear error, never a silent NaN.

* A concrete invalid hyperparameter raises ``ValueError`` when the transformation is built, and the
  message names the argument and shows the value.
* A traced hyperparameter cannot be inspected without a host round-trip and is deliberately not
  checked: construction under ``jit``/``vmap`` must pass.
* Gradients that do not fit the state (another tree, or a leaf of another shape) raise an error that
  says so.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptx
from adaptx import moments

NAN, INF = math.nan, math.inf

# (what is built, the argument, the bad value, how the value appears in the message)
BAD_VALUES = {
    "negative learning rate": (lambda v: adaptx.adam(v), "learning_rate", -1e-3),
    "nan learning rate": (lambda v: adaptx.adamw(v), "learning_rate", NAN),
    "inf learning rate": (lambda v: adaptx.adax(v), "learning_rate", INF),
    "string learning rate": (lambda v: adaptx.amsgrad(v), "learning_rate", "1e-3"),
    "None learning rate": (lambda v: adaptx.adaxw(v), "learning_rate", None),
    "bool learning rate": (lambda v: adaptx.adam(v), "learning_rate", True),
    "negative array learning rate": (lambda v: adaptx.adam(v), "learning_rate", np.array(-0.5)),
    "adam b1 = 1": (lambda v: adaptx.adam(1e-3, b1=v), "b1", 1.0),
    "adam b1 < 0": (lambda v: adaptx.adamw(1e-3, b1=v), "b1", -0.1),
    "adam b1 nan": (lambda v: adaptx.amsgradw(1e-3, b1=v), "b1", NAN),
    "adam b2 = 1": (lambda v: adaptx.adam(1e-3, b2=v), "b2", 1.0),
    "adam b2 > 1": (lambda v: adaptx.amsgrad(1e-3, b2=v), "b2", 1.5),
    "adam b2 < 0": (lambda v: adaptx.scale_by_adam(b2=v), "b2", -0.999),
    "adam b2 inf": (lambda v: adaptx.adamw(1e-3, b2=v), "b2", INF),
    "adam b2 string": (lambda v: adaptx.adam(1e-3, b2=v), "b2", "0.999"),
    "amsgrad b2 = 1": (lambda v: adaptx.scale_by_amsgrad(b2=v), "b2", 1.0),
    "adax b2 = 0": (lambda v: adaptx.adax(1e-3, b2=v), "b2", 0.0),
    "adax b2 < 0": (lambda v: adaptx.adaxw(1e-3, b2=v), "b2", -1e-4),
    "adax b2 nan": (lambda v: adaptx.scale_by_adax(b2=v), "b2", NAN),
    "adax b2 inf": (lambda v: adaptx.adax(1e-3, b2=v), "b2", INF),
    "adax b1 = 1": (lambda v: adaptx.adax(1e-3, b1=v), "b1", 1.0),
    "adam negative eps": (lambda v: adaptx.adam(1e-3, eps=v), "eps", -1e-8),
    "adax negative eps": (lambda v: adaptx.adaxw(1e-3, eps=v), "eps", -1e-12),
    "nan eps": (lambda v: adaptx.scale_by_adam(eps=v), "eps", NAN),
    "negative eps_root": (lambda v: adaptx.adam(1e-3, eps_root=v), "eps_root", -1e-10),
    "moments negative eps": (lambda v: adaptx.scale_by_moments(moments.MovingAverage(), eps=v), "eps", -1.0),
    "adamw negative weight decay": (lambda v: adaptx.adamw(1e-3, weight_decay=v), "weight_decay", -1e-2),
    "adamw nan weight decay": (lambda v: adaptx.amsgradw(1e-3, weight_decay=v), "weight_decay", NAN),
    "adax negative weight decay": (lambda v: adaptx.adax(1e-3, weight_decay=v), "weight_decay", -5e-4),
    "adaxw inf weight decay": (lambda v: adaptx.adaxw(1e-3, weight_decay=v), "weight_decay", INF),
    "add_l2 negative": (lambda v: adaptx.add_l2(v), "weight_decay", -1.0),
    "decoupled negative": (lambda v: adaptx.decoupled_weight_decay(v), "weight_decay", -1.0),
    "decoupled negative learning rate": (
        lambda v: adaptx.decoupled_weight_decay(1e-2, learning_rate=v), "learning_rate", -1e-3
    ),
    "scale_by_learning_rate negative": (lambda v: adaptx.scale_by_learning_rate(v), "learning_rate", -1.0),
    "b1 schedule": (lambda v: adaptx.adam(1e-3, b1=v), "b1", optax.constant_schedule(0.9)),
}


def value_in_message(value) -> str:
    """How the offending value is expected to appear in the message."""
    if isinstance(value, np.ndarray):
        return str(value.item())
    if callable(value):
        return "schedule"
    return repr(value)


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_invalid_hyperparameter_raises_naming_argument_and_value(case):
    build, argument, value = BAD_VALUES[case]
    with pytest.raises(ValueError) as info:
        build(value)
    message = str(info.value)
    assert argument in message
    assert value_in_message(value) in message, message


BAD_OPTIONS = {
    "eps_on": (lambda: adaptx.adam(1e-3, eps_on="middle"), "eps_on", "'middle'"),
    "amsgrad": (lambda: adaptx.scale_by_adam(amsgrad="max"), "amsgrad", "'max'"),
    "max_of": (lambda: adaptx.amsgrad(1e-3, max_of="both"), "max_of", "'both'"),
    "adax eps_on": (lambda: adaptx.scale_by_adax(eps_on="inside"), "eps_on", "'inside'"),
    "MaxTracked over": (lambda: moments.MaxTracked(moments.MovingAverage(), over="v"), "over", "'v'"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_invalid_option_raises_naming_it(case):
    build, argument, shown = BAD_OPTIONS[case]
    with pytest.raises(ValueError) as info:
        build()
    assert argument in str(info.value) and shown in str(info.value)


def test_valid_edge_values_are_accepted():
    """The ends of the valid ranges build: β = 0, ε = 0, λ = 0, γ = 0 and an AdaX β2 above 1."""
    adaptx.adam(0.0, b1=0.0, b2=0.0, eps=0.0, eps_root=0.0)
    adaptx.adamw(0.0, weight_decay=0.0)
    adaptx.adax(1e-3, b1=0.0, b2=2.0, eps=0.0, weight_decay=0.0)
    adaptx.adaxw(1e-3, weight_decay=optax.constant_schedule(0.0))
    adaptx.adamw(optax.linear_schedule(1e-3, 0.0, 10), weight_decay=jnp.asarray(1e-2))


# --- traced values are not checked --------------------------------------------------------------------------


PARAMS = {"w": jnp.ones((2, 3)), "b": [jnp.ones(3), jnp.ones(())]}


@pytest.mark.parametrize("alias", ["adam", "adamw", "amsgrad", "amsgradw", "adax", "adaxw"])
def test_traced_hyperparameters_pass_construction(alias):
    """Under ``jit`` the hyperparameters are tracers: construction does not inspect them (no host
    round-trip), even when their value would be rejected as a constant, and ``update`` runs."""
    make = getattr(adaptx, alias)

    def step(lr, b1):
        opt = make(lr, b1=b1)
        return opt.update(PARAMS, opt.init(PARAMS), PARAMS)[0]

    traced = jax.eval_shape(step, jnp.asarray(1e-3), jnp.asarray(0.9))
    assert jax.tree.structure(traced) == jax.tree.structure(PARAMS)
    jax.eval_shape(step, jnp.asarray(-1.0), jnp.asarray(2.0))  # invalid, but traced: not checked
    with pytest.raises(ValueError, match="learning_rate"):
        step(jnp.asarray(-1.0), jnp.asarray(0.9))  # the same value as a concrete array is checked


def test_traced_hyperparameters_under_vmap_pass_construction():
    def direction(b2):
        opt = adaptx.scale_by_adax(b2=b2)
        return opt.update(PARAMS, opt.init(PARAMS))[0]

    out = jax.eval_shape(jax.vmap(direction), jnp.array([1e-4, 1e-2, 0.5]))
    assert out["w"].shape == (3, 2, 3)


# --- gradients that do not fit the state --------------------------------------------------------------------

TRANSFORMS = {
    "adam": lambda: adaptx.adam(1e-3),
    "adamw": lambda: adaptx.adamw(1e-3),
    "amsgradw": lambda: adaptx.amsgradw(1e-3),
    "adax": lambda: adaptx.adax(1e-3, weight_decay=1e-2),
    "adaxw": lambda: adaptx.adaxw(1e-3),
    "scale_by_adam": lambda: adaptx.scale_by_adam(),
    "scale_by_adax": lambda: adaptx.scale_by_adax(amsgrad=True),
    "add_l2": lambda: adaptx.add_l2(1e-2),
    "decoupled_weight_decay": lambda: adaptx.decoupled_weight_decay(1e-2),
}

MISMATCHED_TREES = {
    "missing leaf": {"w": jnp.ones((2, 3)), "b": [jnp.ones(3)]},
    "extra key": {"w": jnp.ones((2, 3)), "b": [jnp.ones(3), jnp.ones(())], "c": jnp.ones(2)},
    "other container": {"w": jnp.ones((2, 3)), "b": (jnp.ones(3), jnp.ones(()))},
}


@pytest.mark.parametrize("tree", list(MISMATCHED_TREES))
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_gradient_tree_mismatch_raises(name, tree):
    """Gradients of another tree than the state's: an error that says the trees do not match."""
    opt = TRANSFORMS[name]()
    state = opt.init(PARAMS)
    grads = MISMATCHED_TREES[tree]
    with pytest.raises(ValueError, match="does not match"):
        jax.eval_shape(lambda g: opt.update(g, state, PARAMS), grads)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_gradient_leaf_shape_mismatch_raises(name):
    """A gradient leaf of another shape (even one that would broadcast) names both shapes."""
    opt = TRANSFORMS[name]()
    state = opt.init(PARAMS)
    grads = {"w": jnp.ones((1, 3)), "b": [jnp.ones(3), jnp.ones(())]}
    with pytest.raises(ValueError) as info:
        jax.eval_shape(lambda g: opt.update(g, state, PARAMS), grads)
    assert "(1, 3)" in str(info.value) and "(2, 3)" in str(info.value)


@pytest.mark.parametrize("name", ["add_l2", "decoupled_weight_decay", "adamw"])
def test_weight_decay_without_params_raises(name):
    """Weight decay needs the parameters; forgetting them is an error, not a silent no-op."""
    opt = TRANSFORMS[name]()
    state = opt.init(PARAMS)
    with pytest.raises(ValueError, match="params"):
        jax.eval_shape(lambda g: opt.update(g, state), PARAMS)


# --- values valid as reals but not once rounded, shapes, types and messages ----------------------------

ROUNDING_CASES = {
    "b1 rounds to 1": (lambda: adaptx.adam(1e-3, b1=1 - 1e-9), "b1"),
    "b2 rounds to 1": (lambda: adaptx.adam(1e-3, b2=1 - 1e-9), "b2"),
    "learning rate overflows": (lambda: adaptx.adam(1e39), "learning_rate"),
    "weight decay overflows": (lambda: adaptx.adamw(1e-3, weight_decay=1e39), "weight_decay"),
    "adax b2 subnormal": (lambda: adaptx.adax(1e-3, b2=1e-39), "b2"),
    "int too large for a float": (lambda: adaptx.adam(10**400), "learning_rate"),
    "torch betas round to 1": (lambda: adaptx.torch_compat.adam(betas=(0.9, 1 - 1e-9)), "betas"),
}


@pytest.mark.parametrize("case", list(ROUNDING_CASES))
def test_values_invalid_after_rounding_to_float32_are_refused(case):
    """A value valid in float64 that rounds to an invalid float32 (1, inf, a subnormal) is refused at
    construction, naming the argument: it would otherwise give NaN, frozen parameters or zero steps."""
    make, name = ROUNDING_CASES[case]
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: adaptx.adam(jnp.full(3, 1e-3)), "learning_rate"),
        (lambda: adaptx.adam(1e-3, b1=np.array([0.9, 0.8])), "b1"),
        (lambda: adaptx.adamw(1e-3, weight_decay=jnp.ones(2)), "weight_decay"),
        (lambda: adaptx.torch_compat.sgd(lr=np.ones((1,))), "lr"),
    ],
)
def test_array_hyperparameters_must_be_scalars(make, name):
    """An array hyperparameter of another shape would broadcast a scalar parameter to its shape."""
    with pytest.raises(ValueError, match=f"{name} must be a scalar"):
        make()


def test_traced_non_scalar_hyperparameter_is_refused_when_traced():
    params = {"w": jnp.ones(3)}

    def step(lr):
        opt = adaptx.adam(lr)
        return opt.update(params, opt.init(params), params)[0]

    with pytest.raises(ValueError, match="learning_rate must be a scalar"):
        jax.eval_shape(step, jax.ShapeDtypeStruct((3,), jnp.float32))


def test_bfloat16_scalar_hyperparameters_are_accepted():
    opt = adaptx.adam(jnp.asarray(1e-3, jnp.bfloat16), b1=jnp.asarray(0.9, jnp.bfloat16))
    params = {"w": jnp.ones(3)}
    u, _ = opt.update(params, opt.init(params), params)
    assert np.all(np.isfinite(np.asarray(u["w"])))


def test_optax_positional_order_and_wrong_types():
    """optax's positional call passes mu_dtype sixth; a dtype where a number belongs raises."""
    opt = adaptx.adamw(1e-2, 0.9, 0.999, 1e-8, 0.0, jnp.bfloat16)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    assert optax.tree_utils.tree_get(state, "mu")["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="weight_decay"):
        adaptx.adamw(1e-2, weight_decay=jnp.float32)
    with pytest.raises(ValueError, match="mu_dtype"):
        adaptx.adam(1e-2, mu_dtype=0.5)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: adaptx.torch_compat.adam(lr=-1.0), "lr"),
        (lambda: adaptx.torch_compat.adamw(betas=(1.5, 0.999)), "betas"),
        (lambda: adaptx.torch_compat.nadam(betas=(0.9, -0.1)), "betas"),
        (lambda: adaptx.torch_compat.rmsprop(lr=math.nan), "lr"),
    ],
)
def test_torch_compat_errors_use_torch_argument_names(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_gradient_tree_shallower_than_the_parameters_raises_value_error():
    opt = adaptx.adam(1e-3)
    params = {"a": jnp.ones(3), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match="does not match"):
        opt.update(jnp.ones(3), opt.init(params), params)


@pytest.mark.parametrize("grad_kind", ["numpy", "bfloat16"])
def test_grouped_accepts_what_the_per_leaf_optimizer_accepts(grad_kind):
    """engine.grouped with numpy or bf16 gradients on float32 parameters runs like the per-leaf one."""
    params = {"a": jnp.ones((2, 3)), "b": jnp.ones((2, 3))}
    grads = {k: np.full((2, 3), 0.5, np.float32) for k in params}
    if grad_kind == "bfloat16":
        grads = {k: jnp.asarray(v, jnp.bfloat16) for k, v in grads.items()}
    per_leaf, grouped = adaptx.adam(1e-3), adaptx.engine.grouped(adaptx.adam(1e-3))
    want, _ = per_leaf.update(grads, per_leaf.init(params), params)
    got, _ = grouped.update(grads, grouped.init(params), params)
    for k in params:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]))
