"""The optimizer state is optax-shaped, whatever the optimizer and however its hyperparameters are given.

* every array in the state is a scalar (the one step counter, NAdam's product of momenta) or sits in a
  tree shaped like the parameters, one such tree per named field (``mu``, ``nu``, ``nu_max``, ...);
* ``optax.tree_utils.tree_get(state, "count")`` finds exactly one counter, and ``tree_get(state, "nu")``
  the second moment as a real array of the parameter's shape;
* the state's tree structure does not depend on a hyperparameter being a Python 0, an array or injected
  by ``optax.inject_hyperparams`` (a checkpoint written with one restores into the other);
* a state pickles and unpickles in a fresh process (its classes are made on demand).
"""

from __future__ import annotations

import pickle
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from harness import run_python

import adaptx
from adaptx import torch_compat as tc

PARAMS = {"w": jnp.ones((3, 2)), "b": [jnp.ones(2), jnp.ones(())]}

OPTIMIZERS = {
    "adam": lambda: adaptx.adam(1e-3),
    "adamw": lambda: adaptx.adamw(1e-3),
    "amsgrad": lambda: adaptx.amsgrad(1e-3),
    "amsgradw": lambda: adaptx.amsgradw(1e-3),
    "adax": lambda: adaptx.adax(1e-3),
    "adaxw": lambda: adaptx.adaxw(1e-3),
    "adax-amsgrad": lambda: adaptx.adax(1e-3, amsgrad=True),
    "tc.sgd": lambda: tc.sgd(momentum=0.9),
    "tc.adam-amsgrad": lambda: tc.adam(amsgrad=True),
    "tc.rmsprop": lambda: tc.rmsprop(centered=True, momentum=0.9),
    "tc.adagrad": lambda: tc.adagrad(),
    "tc.adamax": lambda: tc.adamax(),
    "tc.nadam": lambda: tc.nadam(),
    "tc.radam": lambda: tc.radam(),
    "tc.hf_adamw": lambda: tc.hf_adamw(),
    "tc.labml_amsgrad": lambda: tc.labml_amsgrad(),
}


def _field_trees(state):
    """(name, subtree) of every NamedTuple field of the state that is not itself a NamedTuple or tuple."""
    out = []

    def walk(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name, child in zip(node._fields, node, strict=True):
                if isinstance(child, tuple):
                    walk(child)
                else:
                    out.append((name, child))
        elif isinstance(node, tuple):
            for child in node:
                walk(child)

    walk(state)
    return out


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_state_array_is_a_scalar_or_in_a_parameter_shaped_tree(name):
    opt = OPTIMIZERS[name]()
    state = opt.init(PARAMS)
    _, state = opt.update(PARAMS, state, PARAMS)
    pdef, pshapes = jax.tree.structure(PARAMS), [p.shape for p in jax.tree.leaves(PARAMS)]
    for field, tree in _field_trees(state):
        leaves = jax.tree.leaves(tree)
        if len(leaves) == 1 and leaves[0].shape == () and jax.tree.structure(tree).num_nodes == 1:
            continue  # a scalar: the counter or NAdam's product
        assert jax.tree.structure(tree) == pdef, (name, field)
        assert [x.shape for x in leaves] == pshapes, (name, field)
    assert int(optax.tree_utils.tree_get(state, "count")) == 1


@pytest.mark.parametrize("name", ["adam", "amsgrad", "adax", "tc.rmsprop", "tc.adamax"])
def test_nu_is_the_real_second_moment_shaped_like_the_parameters(name):
    params = {"w": jnp.full((3, 2), 1 + 1j, jnp.complex64)} if name == "adam" else {"w": jnp.ones((3, 2))}
    opt = OPTIMIZERS[name]()
    g = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
    _, state = opt.update(g, opt.init(params), params)
    nu = optax.tree_utils.tree_get(state, "nu")["w"]
    assert nu.shape == (3, 2) and not jnp.iscomplexobj(nu)
    assert np.all(np.asarray(nu) > 0)


@pytest.mark.parametrize("make,kw", [
    (adaptx.adamw, "weight_decay"), (adaptx.adax, "weight_decay"), (adaptx.adaxw, "weight_decay"),
    (tc.adam, "weight_decay"), (tc.sgd, "momentum"), (tc.rmsprop, "momentum"),
])
def test_state_structure_does_not_depend_on_how_a_value_is_given(make, kw):
    lr = {"lr": 1e-3} if make.__module__.startswith("adaptx.torch_compat") else {"learning_rate": 1e-3}
    plain = make(**lr, **{kw: 0.0}).init(PARAMS)
    array = make(**lr, **{kw: jnp.asarray(0.0)}).init(PARAMS)
    injected = optax.inject_hyperparams(make)(**lr, **{kw: 0.0}).init(PARAMS).inner_state
    assert jax.tree.structure(plain) == jax.tree.structure(array) == jax.tree.structure(injected)


def test_inject_hyperparams_adax_has_the_plain_state_tree():
    plain = adaptx.adax(1e-3).init(PARAMS)
    injected = optax.inject_hyperparams(adaptx.adax)(learning_rate=1e-3).init(PARAMS).inner_state
    assert jax.tree.structure(plain) == jax.tree.structure(injected)


def test_a_state_pickles_into_a_fresh_process(tmp_path):
    opt = adaptx.adax(1e-3, amsgrad=True)
    _, state = opt.update(PARAMS, opt.init(PARAMS), PARAMS)
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps(jax.device_get(state)))
    proc = run_python(textwrap.dedent(f"""
        import pickle
        state = pickle.loads(open({str(path)!r}, "rb").read())
        print(sorted(state.inner[1]._fields), int(state.count))
    """))
    assert "['mu', 'nu', 'nu_max', 'nu_residual'] 1" in proc.stdout, proc.stderr
