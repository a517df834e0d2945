"""adaptx inside Flax Linen and Haiku training code.

The two older JAX model libraries drive an optax optimizer in their own ways: Linen through
``flax.training.train_state.TrainState`` (``TrainState.create`` calls ``tx.init`` and ``apply_gradients``
calls ``tx.update`` and ``optax.apply_updates`` on Linen's ``{"params": ...}`` collection), Haiku through
the user's own loop over the nested parameter dict that ``hk.transform`` returns. Each loop trains a
tiny model (a dense layer plus a separate bias) for three jitted steps, and its parameters are compared
with an independent reference: the same model written in plain ``jnp`` on a parameter dict of our own,
trained by a jitted ``tx.init`` / ``tx.update`` / ``optax.apply_updates`` loop from the same initial
values. A few optimizers with different state shapes are covered: Adam, AMSGrad (a running maximum),
AdaX, and PyTorch's centred RMSprop with momentum (two chained moment states).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import adaptx

STEPS = 3

OPTIMIZERS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adam": lambda: adaptx.adam(1e-2),
    "amsgrad": lambda: adaptx.amsgrad(1e-2),
    "adax": lambda: adaptx.adax(1e-2, weight_decay=0.1),
    "torch.rmsprop": lambda: adaptx.torch_compat.rmsprop(lr=1e-2, centered=True, momentum=0.9),
}


def data() -> tuple[jax.Array, jax.Array]:
    """A fixed regression batch: 8 inputs of 4 features, 3 targets."""
    rng = np.random.default_rng(1)
    return jnp.asarray(rng.standard_normal((8, 4)), jnp.float32), jnp.asarray(
        rng.standard_normal((8, 3)), jnp.float32
    )


def mse(pred: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((pred - y) ** 2)


# The reference: the model without any framework, on a flat dict {"kernel", "bias", "extra"}.


def plain_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    return mse(x @ params["kernel"] + params["bias"] + params["extra"], y)


def train_plain(tx: optax.GradientTransformation, params: dict) -> dict:
    @jax.jit
    def step(params: dict, state: Any, x: jax.Array, y: jax.Array) -> tuple[dict, Any]:
        updates, state = tx.update(jax.grad(plain_loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    x, y = data()
    state = tx.init(params)
    for _ in range(STEPS):
        params, state = step(params, state, x, y)
    return params


def assert_matches_reference(make: Callable[[], optax.GradientTransformation], initial: dict, got: dict):
    """``got`` (the framework loop's result, as a flat dict) equals the reference trained from ``initial``
    to a few float32 ulps (bit-identical when both programs fuse alike), and training moved every leaf."""
    want = train_plain(make(), initial)
    for key in ("kernel", "bias", "extra"):
        g, w, p0 = (np.asarray(t[key], np.float64) for t in (got, want, initial))
        assert got[key].dtype == jnp.float32, f"{key}: dtype {got[key].dtype}"
        tol = 4 * float(jnp.finfo(jnp.float32).eps) * max(float(np.max(np.abs(w))), 1.0)
        err = float(np.max(np.abs(g - w)))
        assert err <= tol, f"{key}: the framework loop and the plain loop differ by {err:.3g} > {tol:.3g}"
        assert float(np.max(np.abs(w - p0))) > 1e-3, f"{key}: training did not move it"


# Flax Linen with TrainState.


class LinenModel(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        extra = self.param("extra", nn.initializers.constant(0.25), (3,), jnp.float32)
        return nn.Dense(3)(x) + extra


def linen_flat(variables: dict) -> dict:
    p = variables["params"]
    return {"kernel": p["Dense_0"]["kernel"], "bias": p["Dense_0"]["bias"], "extra": p["extra"]}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_linen_train_state_matches_plain_loop(name: str) -> None:
    model = LinenModel()
    x, y = data()
    variables = model.init(jax.random.key(0), x)
    state = train_state.TrainState.create(apply_fn=model.apply, params=variables, tx=OPTIMIZERS[name]())

    @jax.jit
    def step(state: train_state.TrainState, x: jax.Array, y: jax.Array) -> train_state.TrainState:
        grads = jax.grad(lambda v: mse(state.apply_fn(v, x), y))(state.params)
        return state.apply_gradients(grads=grads)

    for _ in range(STEPS):
        state = step(state, x, y)
    assert int(state.step) == STEPS
    assert_matches_reference(OPTIMIZERS[name], linen_flat(variables), linen_flat(state.params))


# Haiku with hk.transform and a hand-written loop.


def haiku_forward(x: jax.Array) -> jax.Array:
    extra = hk.get_parameter("extra", (3,), jnp.float32, init=hk.initializers.Constant(0.25))
    return hk.Linear(3)(x) + extra


def haiku_flat(params: dict) -> dict:
    return {"kernel": params["linear"]["w"], "bias": params["linear"]["b"], "extra": params["~"]["extra"]}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_haiku_loop_matches_plain_loop(name: str) -> None:
    model = hk.without_apply_rng(hk.transform(haiku_forward))
    x, y = data()
    params = model.init(jax.random.key(0), x)
    # Haiku's kernel initialiser is a truncated normal and its bias starts at zero; both loops start here.
    initial = haiku_flat(params)
    tx = OPTIMIZERS[name]()

    @jax.jit
    def step(params: dict, opt_state: Any, x: jax.Array, y: jax.Array) -> tuple[dict, Any]:
        grads = jax.grad(lambda p: mse(model.apply(p, x), y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for _ in range(STEPS):
        params, opt_state = step(params, opt_state, x, y)
    assert_matches_reference(OPTIMIZERS[name], initial, haiku_flat(params))
