"""adaptx inside Flax NNX training code: ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` under ``nnx.jit``.

``nnx.Optimizer`` wraps every leaf of the optimizer state in an ``OptState`` variable and writes the new
state back with ``nnx.update`` after each step, so it needs exactly the optax contract: the state is a
pytree whose structure, shapes and dtypes stay the same from step to step, and ``update`` returns one
array per parameter in the parameter's dtype. A transformation that passes optax's own tests can still
break here (a state that changes structure on the second step, a moment in the wrong dtype), so each
optimizer trains a tiny model for three steps inside ``nnx.jit`` and the parameters are compared with an
independent reference: the same model written in plain ``jnp`` (no Flax), trained by a jitted
``tx.init`` / ``tx.update`` / ``optax.apply_updates`` loop from the same initial values.

Covered: every alias, every ``adaptx.torch_compat`` constructor, bfloat16 parameters with float32
moments (``mu_dtype`` / ``nu_dtype``; the updates must come back in bfloat16), and
``adaptx.engine.grouped``. Training code also reads the step of an optax state with
``optax.tree_utils.tree_get(state, "count")``, which needs exactly one counter in the state: checked
too. The model is kept tiny (one ``nnx.Linear(4, 3)`` plus a separate bias) so that the two compilations
per case stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import adaptx
from adaptx import torch_compat as tc

STEPS = 3
LR = 1e-2

# Every optimizer under test, built fresh per test (a learning rate large enough that three steps move
# every parameter by many float32 ulps, so a lost step or a wrong state would show).
OPTIMIZERS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adam": lambda: adaptx.adam(LR),
    "adamw": lambda: adaptx.adamw(LR, weight_decay=0.1),
    "amsgrad": lambda: adaptx.amsgrad(LR),
    "amsgradw": lambda: adaptx.amsgradw(LR, weight_decay=0.1),
    # A coupled L2 term, so that the parameter argument of ``update`` is exercised.
    "adax": lambda: adaptx.adax(LR, weight_decay=0.1),
    "adaxw": lambda: adaptx.adaxw(LR),
    "torch.sgd": lambda: tc.sgd(lr=0.1, momentum=0.9, nesterov=True),
    "torch.adam/amsgrad": lambda: tc.adam(lr=LR, amsgrad=True),
    "torch.adamw": lambda: tc.adamw(lr=LR),
    "torch.rmsprop": lambda: tc.rmsprop(lr=LR, centered=True, momentum=0.9),
    "torch.adagrad": lambda: tc.adagrad(lr=0.1),
    "torch.adamax": lambda: tc.adamax(lr=LR),
    "torch.nadam": lambda: tc.nadam(lr=LR),
    "torch.radam": lambda: tc.radam(lr=LR),
    "torch.adax": lambda: tc.adax(lr=LR),
    "torch.adaxw": lambda: tc.adaxw(lr=LR),
    "torch.hf_adamw": lambda: tc.hf_adamw(lr=LR, weight_decay=0.1),
    "torch.labml_adam": lambda: tc.labml_adam(lr=LR),
    "torch.labml_amsgrad": lambda: tc.labml_amsgrad(lr=LR),
    "grouped(adamw)": lambda: adaptx.engine.grouped(adaptx.adamw(LR, weight_decay=0.1)),
}


# bfloat16 parameters with float32 moments: the model's parameters stay bfloat16 and the moments keep
# the precision the small updates need. A larger learning rate: three steps must move the parameters by
# many bfloat16 ulps (2**-8 relative) for the comparison to mean anything (AdaX's first steps are
# shorter than Adam's, hence its larger rate).
MIXED: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adam/bf16": lambda: adaptx.adam(5e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    "adax/bf16": lambda: adaptx.adax(0.2, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
}


class Model(nnx.Module):
    """``nnx.Linear(4, 3)`` plus a second bias of its own: two parameter shapes, three leaves."""

    def __init__(self, dtype: Any, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 3, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.bias = nnx.Param(jnp.full((3,), 0.25, dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x) + self.bias[...]


def data(dtype: Any) -> tuple[jax.Array, jax.Array]:
    """A fixed regression batch: 8 inputs of 4 features, 3 targets."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((8, 4)), dtype)
    y = jnp.asarray(rng.standard_normal((8, 3)), dtype)
    return x, y


def nnx_loss(model: Model, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model(x) - y) ** 2)


def plain_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """The same model without Flax: the reference's forward pass."""
    pred = x @ params["linear"]["kernel"] + params["linear"]["bias"] + params["bias"]
    return jnp.mean((pred - y) ** 2)


def train_nnx(tx: optax.GradientTransformation, dtype: Any) -> tuple[dict, dict, list]:
    """Train with ``nnx.Optimizer`` inside ``nnx.jit``: (initial params, final params, update dtypes)."""
    model = Model(dtype, nnx.Rngs(0))
    initial = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model: Model, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> Any:
        grads = nnx.grad(nnx_loss)(model, x, y)
        return optimizer.update(model, grads)

    x, y = data(dtype)
    for _ in range(STEPS):
        updates = step(model, optimizer, x, y)
    dtypes = [u.dtype for u in jax.tree.leaves(updates)]
    return initial, nnx.to_pure_dict(nnx.state(model, nnx.Param)), dtypes


def train_plain(tx: optax.GradientTransformation, params: dict, dtype: Any) -> tuple[dict, Any]:
    """The reference: a jitted ``tx.update`` / ``optax.apply_updates`` loop on a plain dict."""

    @jax.jit
    def step(params: dict, state: Any, x: jax.Array, y: jax.Array) -> tuple[dict, Any]:
        grads = jax.grad(plain_loss)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    x, y = data(dtype)
    state = tx.init(params)
    for _ in range(STEPS):
        params, state = step(params, state, x, y)
    return params, state


def assert_same_params(got: dict, want: dict, initial: dict, ulps: float) -> None:
    """``got`` equals ``want`` to ``ulps`` units in the last place of each leaf's largest element, and
    training moved the parameters (so the comparison is not between two untouched copies)."""
    flat_got = jax.tree_util.tree_leaves_with_path(got)
    for (path, g), w, p0 in zip(flat_got, jax.tree.leaves(want), jax.tree.leaves(initial), strict=True):
        name = jax.tree_util.keystr(path)
        assert g.dtype == w.dtype == p0.dtype, f"{name}: dtype {g.dtype}, reference {w.dtype}"
        g64, w64, p64 = (np.asarray(a, np.float64) for a in (g, w, p0))
        tol = ulps * float(jnp.finfo(g.dtype).eps) * float(np.max(np.abs(w64)))
        err = float(np.max(np.abs(g64 - w64)))
        assert err <= tol, f"{name}: nnx and the plain loop differ by {err:.3g} > {tol:.3g}"
        assert float(np.max(np.abs(w64 - p64))) > 10 * tol, f"{name}: training did not move it"


def check(make: Callable[[], optax.GradientTransformation], dtype: Any, ulps: float) -> list:
    initial, got, dtypes = train_nnx(make(), dtype)
    want, _ = train_plain(make(), initial, dtype)
    assert_same_params(got, want, initial, ulps)
    return dtypes


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_nnx_optimizer_matches_plain_loop(name: str) -> None:
    # Two XLA programs of the same arithmetic may fuse differently, so allow a few float32 ulps
    # (observed with jax 0.10.2: bit-identical).
    dtypes = check(OPTIMIZERS[name], jnp.float32, ulps=4)
    assert all(d == jnp.float32 for d in dtypes)


@pytest.mark.parametrize("name", MIXED)
def test_bf16_params_with_f32_moments(name: str) -> None:
    # bfloat16 has 8 bits of mantissa: a gradient that differs in the last float32 bit between the two
    # programs may round a parameter to the neighbouring bfloat16 value, hence one bfloat16 ulp.
    dtypes = check(MIXED[name], jnp.bfloat16, ulps=1)
    assert all(d == jnp.bfloat16 for d in dtypes), f"updates in {dtypes}, parameters in bfloat16"
    # The moments: the state leaves shaped like a parameter. They must have the float32 precision asked
    # for (a real float32 array, or a complex64 one where a moment packs two float32 parts in one array).
    params = {"w": jnp.zeros((4, 3), jnp.bfloat16), "b": jnp.zeros((3,), jnp.bfloat16)}
    state = jax.eval_shape(MIXED[name]().init, params)
    shapes = {p.shape for p in jax.tree.leaves(params)}
    moments = [leaf for leaf in jax.tree.leaves(state) if leaf.shape in shapes]
    assert moments, "no state leaf has a parameter's shape"
    precision = [jnp.finfo(m.dtype).dtype for m in moments]
    assert all(p == np.float32 for p in precision), [m.dtype for m in moments]


@pytest.mark.parametrize("name", ["adam", "amsgrad", "adax", "grouped(adamw)", "torch.rmsprop"])
def test_step_count_is_readable_with_tree_get(name: str) -> None:
    # Training code reads the step of an optax state with ``optax.tree_utils.tree_get(state, "count")``
    # (for logging, or to resume a schedule); it must find exactly one counter, equal to the steps taken.
    make = OPTIMIZERS[name]
    params = {"linear": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}, "bias": jnp.zeros(3)}
    _, state = train_plain(make(), params, jnp.float32)
    assert int(optax.tree_utils.tree_get(state, "count")) == STEPS
