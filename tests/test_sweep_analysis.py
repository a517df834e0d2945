"""The fast path's analysis of which optimizer state depends on the hyperparameter settings
(:func:`adaptx.experiments.fast.settings_axes`).

References: the answer found in one trace of ``vmap`` (its batch tracers) must match the answer of
tracing every output alone with ``out_axes=None`` (which vmap refuses for an output that depends on a
mapped input), and both must match what the update rules say depends on which hyperparameter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import adaptx
from adaptx.experiments import Online, Stochastic
from adaptx.experiments.fast import settings_axes
from adaptx.experiments.optimizers import factory


def jitted(learning_rate, b1, b2):
    """Adam with its update as one jitted call: vmap batches a jitted call output by output, so the
    analysis still sees that the moments do not depend on the learning rate."""
    opt = adaptx.adam(learning_rate, b1, b2)
    return optax.GradientTransformation(opt.init, jax.jit(opt.update))


# (optimizer, grid names, the state fields that depend on the settings). The moments never depend on
# the learning rate (the gradient is c_t whatever the iterate); mu depends on β1, nu on β2 (AdaX's β2 is
# its growth rate, which also drives its compensation term), AMSGrad's maximum follows nu.
CASES = [
    ("adam", ("learning_rate",), set()),
    ("jitted", ("learning_rate",), set()),
    ("adam", ("learning_rate", "b2"), {"nu"}),
    ("amsgrad", ("b1",), {"mu"}),
    ("amsgrad", ("b2",), {"nu", "nu_max"}),
    ("adax", ("learning_rate", "b2"), {"nu", "nu_residual"}),
    ("sgd", ("learning_rate",), set()),
]


def fields(axes) -> set[str]:
    """The names of the moment fields mapped over the settings; the counter is never mapped."""
    assert axes.count is None
    moments = [s for s in axes.inner if hasattr(s, "_fields") and s._fields]
    return {name for s in moments for name, a in zip(s._fields, s, strict=True) if a == 0}


@pytest.mark.parametrize("problem", [Online(), Stochastic()], ids=["online", "stochastic"])
@pytest.mark.parametrize("name, names, expected", CASES)
def test_one_trace_finds_what_tracing_each_output_finds(problem, name, names, expected):
    make = jitted if name == "jitted" else factory(name)
    defaults = {"learning_rate": 1e-2, "b1": 0.9, "b2": 1e-4 if name == "adax" else 0.99}

    def make_grid(**hyper):
        return make(**{**defaults, **hyper})

    settings = 64
    shape = (settings, 64) if problem.stochastic else (settings,)
    grid = {n: jnp.linspace(0.5, 1.0, settings) * defaults[n] for n in names}
    fast = settings_axes(make_grid, problem, grid, jnp.zeros(shape))
    slow = settings_axes(make_grid, problem, grid, jnp.zeros(shape), per_output=True)
    is_leaf = lambda z: z is None  # noqa: E731
    assert jax.tree.structure(fast, is_leaf=is_leaf) == jax.tree.structure(slow, is_leaf=is_leaf)
    assert jax.tree.leaves(fast, is_leaf=is_leaf) == jax.tree.leaves(slow, is_leaf=is_leaf)
    if name != "sgd":
        assert fields(fast) == expected

