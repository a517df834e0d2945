"""The moment-piece interfaces carry new optimizers without changes elsewhere (docs/architecture.md).

Two pieces written only against :mod:`adaptx.moments.base`, as a user would write them:

* an Adadelta first moment (its state depends on its own update), compared with ``torch.optim.Adadelta``;
* a factored second moment (row and column statistics, Adafactor's idea), which declares
  ``elementwise = False``: :func:`adaptx.scale_by_moments` runs it, compared with a NumPy float64
  reference, and :func:`adaptx.engine.grouped` refuses it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import adaptx
from adaptx.moments import FirstMoment, SecondMoment


@dataclasses.dataclass(frozen=True)
class Adadelta(FirstMoment):
    rho: Any = 0.9
    eps: Any = 1e-6
    fields = ("nu", "delta_sq", "delta")

    def init(self, like, dtype):
        return {f: jnp.zeros_like(like, dtype=dtype) for f in self.fields}

    def scalars(self, t, dtype, step_state):
        rho = jnp.asarray(self.rho, dtype)
        return rho, 1 - rho, jnp.asarray(self.eps, dtype)

    def update(self, state, g, sc):
        rho, one_minus_rho, eps = sc
        nu = rho * state["nu"] + one_minus_rho * g * g
        delta = jnp.sqrt(state["delta_sq"] + eps) / jnp.sqrt(nu + eps) * g
        delta_sq = rho * state["delta_sq"] + one_minus_rho * delta * delta
        return {"nu": nu, "delta_sq": delta_sq, "delta": delta}

    def numerator(self, state, g, sc):
        return state["delta"]


def test_adadelta_piece_matches_torch():
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(7).astype(np.float32)
    grads = [rng.standard_normal(7).astype(np.float32) for _ in range(50)]
    theta = torch.tensor(theta0.copy(), requires_grad=True)
    opt = torch.optim.Adadelta([theta], lr=1.0, rho=0.9, eps=1e-6)
    for g in grads:
        theta.grad = torch.tensor(g)
        opt.step()
    tx = adaptx.chain(adaptx.scale_by_moments(None, Adadelta()), adaptx.scale_by_learning_rate(1.0))
    params = jnp.asarray(theta0)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for g in grads:
        u, state = step(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, u)
    want = theta.detach().numpy()
    movement = np.abs(want - theta0).max()
    assert np.abs(np.asarray(params) - want).max() <= 1e-5 * movement
    assert sorted(state.inner[0]._fields) == ["delta", "delta_sq", "nu"]


@dataclasses.dataclass(frozen=True)
class Factored(SecondMoment):
    r"""EMA of the row and column means of g² (matrices only): v̂ = r cᵀ / mean(r)."""

    decay: Any = 0.9
    elementwise = False
    fields = ("row", "col")

    def init(self, like, dtype):
        return {"row": jnp.zeros(like.shape[:1], dtype), "col": jnp.zeros(like.shape[1:], dtype)}

    def scalars(self, t, dtype, step_state):
        b = jnp.asarray(self.decay, dtype)
        return b, 1 - b, -jnp.expm1(t.astype(dtype) * jnp.log(b))

    def update(self, state, g, sc):
        b, c, _ = sc
        sq = g * g
        return {"row": b * state["row"] + c * sq.mean(1), "col": b * state["col"] + c * sq.mean(0)}

    def stored(self, state):
        return jnp.outer(state["row"], state["col"]) / state["row"].mean()

    def correct(self, x, sc):
        return x / sc[2]

    def sqrt_correct(self, r, sc):
        return r / jnp.sqrt(sc[2])


def test_factored_piece_runs_and_matches_numpy():
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((4, 3)) for _ in range(10)]
    tx = adaptx.scale_by_moments(Factored(0.9), eps=1e-8)
    params = jnp.zeros((4, 3), jnp.float32)
    state = tx.init(params)
    assert state.row.shape == (4,) and state.col.shape == (3,)
    row, col = np.zeros(4), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        u, state = tx.update(jnp.asarray(g, jnp.float32), state)
        row = 0.9 * row + 0.1 * (g * g).mean(1)
        col = 0.9 * col + 0.1 * (g * g).mean(0)
        v_hat = np.outer(row, col) / row.mean() / (1 - 0.9**t)
        np.testing.assert_allclose(np.asarray(u), g / (np.sqrt(v_hat) + 1e-8), rtol=2e-5)


def test_engine_refuses_the_factored_piece():
    tx = adaptx.chain(adaptx.scale_by_moments(Factored()), adaptx.scale_by_learning_rate(1e-3))
    with pytest.raises(ValueError, match="not elementwise"):
        adaptx.engine.grouped(tx)
