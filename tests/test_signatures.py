"""adaptx's aliases take optax's arguments: positional order, keyword names and defaults.

Code written for ``optax.adamw(lr, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=...)``
must run unchanged, with the same meaning, on ``adaptx.adamw``. The signatures are compared with the
*installed* optax, so a change in optax shows up here. adaptx's own options must be keyword-only, so
that they can never capture one of optax's positional arguments.
"""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptx

SHARED = [name for name in ("adam", "adamw", "amsgrad") if hasattr(optax, name)]


@pytest.mark.parametrize("name", SHARED)
def test_optax_parameters_come_first_in_optax_order_with_optax_defaults(name):
    theirs = inspect.signature(getattr(optax, name)).parameters
    ours = inspect.signature(getattr(adaptx, name)).parameters
    positional = [p for p in theirs.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert list(ours)[: len(positional)] == [p.name for p in positional]
    for p in theirs.values():
        assert p.name in ours, f"adaptx.{name} lacks optax's argument {p.name}"
        assert ours[p.name].default == p.default, (name, p.name)
        assert ours[p.name].kind == p.kind, (name, p.name)
    extra = [p for p in ours.values() if p.name not in theirs]
    assert all(p.kind == p.KEYWORD_ONLY for p in extra), [p.name for p in extra]


@pytest.mark.parametrize("name", ["amsgradw", "adax", "adaxw"])
def test_adaptx_only_aliases_keep_options_keyword_only(name):
    params = inspect.signature(getattr(adaptx, name)).parameters
    hyper = {"learning_rate", "b1", "b2", "eps", "eps_root", "mu_dtype", "weight_decay", "mask"}
    for p in params.values():
        if p.name not in hyper:
            assert p.kind == p.KEYWORD_ONLY, (name, p.name)


@pytest.mark.parametrize("nesterov", [False, True])
def test_positional_call_means_what_it_means_in_optax(nesterov):
    """The same positional call on optax and adaptx: same updates (to float32 rounding), same dtypes."""
    args = (1e-2, 0.8, 0.99, 1e-6, 0.0, jnp.float32, 1e-2)
    ours, theirs = adaptx.adamw(*args, nesterov=nesterov), optax.adamw(*args, nesterov=nesterov)
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)}
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    for t in range(5):
        g = {"w": jnp.cos(params["w"] * (t + 1))}
        u_ours, s_ours = ours.update(g, s_ours, params)
        u_theirs, s_theirs = theirs.update(g, s_theirs, params)
        np.testing.assert_allclose(u_ours["w"], u_theirs["w"], rtol=2e-5, atol=1e-9)
        assert u_ours["w"].dtype == u_theirs["w"].dtype
