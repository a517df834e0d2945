"""Checkpointing adaptx optimizer states with Orbax, and resuming training from the checkpoint.

Real training is interrupted and resumed: the parameters and the optimizer state are saved with
``orbax.checkpoint.StandardCheckpointer``, and a new process restores them into an *abstract* target
built from ``jax.eval_shape(tx.init, params)`` (it has no concrete state to copy the structure from).
That needs the state to be a plain pytree of arrays that ``init`` reproduces exactly from shapes alone,
and everything the trajectory depends on (the moments, the step count that drives bias corrections and
schedules, AMSGrad's running maximum) to be in it. The check: K steps, save, restore, N more steps gives
bit for bit the parameters and state of K + N uninterrupted steps (the same compiled step runs on the
same numbers, so any lost or altered state shows as a difference).

Covered: every alias, an optax schedule as the learning rate (its value depends on the restored step
count), two ``adaptx.torch_compat`` optimizers with chained states, and ``adaptx.engine.grouped``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import adaptx

BEFORE, AFTER = 3, 3  # steps before the checkpoint and after the restore

OPTIMIZERS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adam": lambda: adaptx.adam(1e-2),
    "adamw": lambda: adaptx.adamw(1e-2, weight_decay=0.1),
    "amsgrad": lambda: adaptx.amsgrad(1e-2),
    "amsgradw": lambda: adaptx.amsgradw(1e-2, weight_decay=0.1),
    "adax": lambda: adaptx.adax(1e-2, weight_decay=0.1),
    "adaxw": lambda: adaptx.adaxw(1e-2),
    # The learning rate falls to zero over the six steps: a step count lost in the checkpoint (restored
    # as zero) would restart it at 1e-2.
    "adam/cosine": lambda: adaptx.adam(optax.cosine_decay_schedule(1e-2, decay_steps=BEFORE + AFTER)),
    "torch.rmsprop": lambda: adaptx.torch_compat.rmsprop(lr=1e-2, centered=True, momentum=0.9),
    "torch.nadam": lambda: adaptx.torch_compat.nadam(lr=1e-2),
    "grouped(adamw)": lambda: adaptx.engine.grouped(adaptx.adamw(1e-2, weight_decay=0.1)),
}


def problem() -> tuple[dict, jax.Array, jax.Array]:
    """Parameters of a small two-layer model (two leaves share a shape, so ``grouped`` stacks them) and
    a fixed batch."""
    rng = np.random.default_rng(2)
    f32 = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
    params = {"w1": f32(4, 5), "b1": f32(5), "w2": f32(5, 5), "b2": f32(5)}
    return params, f32(8, 4), f32(8, 5)


def loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


def make_step(tx: optax.GradientTransformation) -> Callable:
    @jax.jit
    def step(params: dict, state: Any, x: jax.Array, y: jax.Array) -> tuple[dict, Any]:
        updates, state = tx.update(jax.grad(loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    return step


def assert_identical(got: Any, want: Any, what: str) -> None:
    assert jax.tree.structure(got) == jax.tree.structure(want), f"{what}: tree structures differ"
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True):
        name = f"{what}{jax.tree_util.keystr(path)}"
        assert (g.shape, g.dtype) == (w.shape, w.dtype), f"{name}: {g.shape} {g.dtype} != {w.shape} {w.dtype}"
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_resume_from_checkpoint_is_bit_identical(name: str, tmp_path: Path) -> None:
    tx = OPTIMIZERS[name]()
    step = make_step(tx)
    params, x, y = problem()
    state = tx.init(params)
    for _ in range(BEFORE):
        params, state = step(params, state, x, y)

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", {"params": params, "opt_state": state})
    checkpointer.wait_until_finished()

    # The uninterrupted run continues from the in-memory values.
    want_params, want_state = params, state
    for _ in range(AFTER):
        want_params, want_state = step(want_params, want_state, x, y)

    # The resumed run knows only shapes: a fresh optimizer's abstract state is the restore target.
    fresh = OPTIMIZERS[name]()
    abstract = {"params": jax.eval_shape(lambda: params), "opt_state": jax.eval_shape(fresh.init, params)}
    restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    checkpointer.close()
    assert_identical(restored, {"params": params, "opt_state": state}, "restored")

    got_params, got_state = restored["params"], restored["opt_state"]
    fresh_step = make_step(fresh)
    for _ in range(AFTER):
        got_params, got_state = fresh_step(got_params, got_state, x, y)
    assert_identical(got_params, want_params, "params")
    assert_identical(got_state, want_state, "opt_state")
    # The continuation did something: the last steps moved every parameter.
    for a, b in zip(jax.tree.leaves(got_params), jax.tree.leaves(params), strict=True):
        assert not np.array_equal(a, b), "the steps after the restore left a parameter unchanged"
