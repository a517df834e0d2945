"""The sweep's analysis of which optimizer state depends on the hyperparameter settings: found in one
trace of ``vmap`` (its batch tracers), it must match the answer of tracing every output alone with
``out_axes=None`` (which vmap refuses for an output that depends on a mapped input)."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import optax
import pytest

import adaptx
from adaptx.experiments import Online, Stochastic
from adaptx.experiments.optimizers import factory

SWEEP = sys.modules["adaptx.experiments.sweep"]


def opaque(learning_rate, b1, b2):
    """An optimizer whose update is one jitted call: every output of it counts as mapped."""
    opt = adaptx.adam(learning_rate, b1, b2)
    return optax.GradientTransformation(opt.init, jax.jit(opt.update))


CASES = [
    ("adam", ("learning_rate",)),
    ("adam", ("learning_rate", "b2")),
    ("amsgrad", ("b1",)),
    ("adax", ("learning_rate", "b2")),
    ("sgd", ("learning_rate",)),
]


@pytest.mark.skipif(SWEEP._batch_tracer() is None, reason="no BatchTracer in this jax")
@pytest.mark.parametrize("problem", [Online(), Stochastic()], ids=["online", "stochastic"])
@pytest.mark.parametrize("name, names", [*CASES, ("opaque", ("learning_rate",))])
def test_one_trace_finds_what_tracing_each_output_finds(problem, name, names, monkeypatch):
    make = opaque if name == "opaque" else factory(name)
    defaults = {"learning_rate": 1e-2, "b1": 0.9, "b2": 1e-4 if name == "adax" else 0.99}

    def make_grid(**hyper):
        return make(**{**defaults, **hyper})

    calls = []
    real = SWEEP._mapped

    def both(fn, in_axes, args, num):
        fast, slow = real(fn, in_axes, args, num), real(fn, in_axes, args, num, one_by_one=True)
        assert jax.tree.structure(fast, is_leaf=lambda z: z is None) == jax.tree.structure(
            slow, is_leaf=lambda z: z is None
        )
        assert jax.tree.leaves(fast, is_leaf=lambda z: z is None) == jax.tree.leaves(
            slow, is_leaf=lambda z: z is None
        )
        calls.append(jax.tree.leaves(fast, is_leaf=lambda z: z is None))
        return fast

    monkeypatch.setattr(SWEEP, "_mapped", both)
    monkeypatch.setattr(SWEEP, "_PROGRAMS", {})
    settings, seeds = 64, (64 if problem.stochastic else None)
    shape = (settings, seeds) if seeds else (settings,)
    grid = {n: jnp.linspace(0.5, 1.0, settings) * defaults[n] for n in names}
    SWEEP._program(problem, make_grid, jnp.dtype(jnp.float32), grid, jnp.zeros(shape), 8192)
    assert len(calls) >= 2  # the state at init, then the step until the pattern is stable
    assert any(0 in c for c in calls)  # the grid reaches something
