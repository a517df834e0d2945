"""A schedule is evaluated once per update and compute dtype, whatever the number of parameters and of
blocks that read it (the learning rate and a decoupled weight decay scaled by it).

Reference: a counting schedule (a Python function called once per evaluation while the update is traced)
and the number of distinct compute dtypes of the parameters (float32 for float32 and bfloat16 leaves).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import adaptx
from adaptx import torch_compat as tc


class Counting:
    """A constant schedule that counts its calls."""

    def __init__(self, value: float):
        self.value, self.calls = value, 0

    def __call__(self, step):
        self.calls += 1
        return jnp.asarray(self.value, jnp.float32) * jnp.ones_like(step, jnp.float32)


# 12 leaves, two of them bfloat16: one compute dtype (float32)
PARAMS = {f"w{i}": jnp.full((3, i + 1), 0.5, jnp.bfloat16 if i < 2 else jnp.float32) for i in range(12)}

ALIASES = {
    "adam": lambda lr: adaptx.adam(lr),
    "adamw": lambda lr: adaptx.adamw(lr, weight_decay=1e-2),
    "amsgrad": lambda lr: adaptx.amsgrad(lr),
    "amsgradw": lambda lr: adaptx.amsgradw(lr, weight_decay=1e-2),
    "adax": lambda lr: adaptx.adax(lr),
    "adaxw": lambda lr: adaptx.adaxw(lr, weight_decay=1e-2),
    "decoupled": lambda lr: adaptx.chain(adaptx.scale_by_adam(), adaptx.decoupled_weight_decay(1e-2, lr),
                                         adaptx.scale_by_learning_rate(lr)),
}
TORCH = {
    "adagrad": lambda lr: tc.adagrad(lr, weight_decay=1e-2),
    "adam": lambda lr: tc.adam(lr, weight_decay=1e-2),
    "adamax": lambda lr: tc.adamax(lr, weight_decay=1e-2),
    "adamw": lambda lr: tc.adamw(lr, weight_decay=1e-2),
    "adax": lambda lr: tc.adax(lr, weight_decay=1e-2),
    "adaxw": lambda lr: tc.adaxw(lr, weight_decay=1e-2),
    "hf_adamw": lambda lr: tc.hf_adamw(lr, weight_decay=1e-2),
    "labml_adam": lambda lr: tc.labml_adam(lr, weight_decay=1e-2),
    "labml_amsgrad": lambda lr: tc.labml_amsgrad(lr, weight_decay=1e-2),
    "nadam": lambda lr: tc.nadam(lr, weight_decay=1e-2, decoupled_weight_decay=True),
    "radam": lambda lr: tc.radam(lr, weight_decay=1e-2, decoupled_weight_decay=True),
    "rmsprop": lambda lr: tc.rmsprop(lr, weight_decay=1e-2),
    "sgd": lambda lr: tc.sgd(lr, weight_decay=1e-2),
}
CASES = [(f"adaptx.{n}", f) for n, f in ALIASES.items()]
CASES += [(f"torch_compat.{n}", f) for n, f in TORCH.items()]


@pytest.mark.parametrize("name, make", CASES, ids=[n for n, _ in CASES])
def test_the_learning_rate_schedule_is_evaluated_once_per_update(name, make):
    schedule = Counting(1e-3)
    opt = make(schedule)
    state = opt.init(PARAMS)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    schedule.calls = 0
    jax.jit(opt.update).lower(grads, state, PARAMS)  # one trace of one update
    assert schedule.calls == 1, (name, schedule.calls)


def test_two_compute_dtypes_evaluate_twice():
    """float32 and float64 parameters under x64: the schedule is evaluated in each compute dtype."""
    with jax.enable_x64(True):
        params = {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(3, jnp.float64), "c": jnp.ones(2, jnp.float32)}
        schedule = Counting(1e-3)
        opt = tc.adamw(schedule, weight_decay=1e-2)
        state = opt.init(params)
        schedule.calls = 0
        jax.jit(opt.update).lower(params, state, params)
        assert schedule.calls == 2


def test_a_weight_decay_schedule_is_evaluated_once_per_update():
    decay = Counting(1e-2)
    for opt in (adaptx.adamw(1e-3, weight_decay=decay), tc.adamw(1e-3, weight_decay=decay)):
        state = opt.init(PARAMS)
        decay.calls = 0
        jax.jit(opt.update).lower(PARAMS, state, PARAMS)
        assert decay.calls == 1


def test_the_optax_chain_of_two_adaptx_blocks_still_works():
    """Outside adaptx.chain each block has its own counter and memo: two evaluations, right values."""
    schedule = Counting(1e-3)
    opt = optax.chain(adaptx.scale_by_adam(), adaptx.scale_by_learning_rate(schedule),
                      adaptx.scale_by_learning_rate(schedule, flip_sign=False))
    state = opt.init(PARAMS)
    schedule.calls = 0
    updates, _ = opt.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
    assert schedule.calls == 2
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
