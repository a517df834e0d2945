"""Complex parameters: optax's semantics in the generic blocks, PyTorch's in ``torch_compat``.

optax (and adaptx's blocks and aliases) keep the first moment complex and the second moment real,
:math:`v = \\mathrm{EMA}(|g|^2)`; ``torch.optim`` steps a complex parameter as two real ones
(``view_as_real``), a second moment per part. Each side is compared with its own reference: optax run
side by side, and real torch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import adaptx
from adaptx import torch_compat as tc

P0 = np.array([1 + 1j, -0.5 + 2j, 0.3 - 0.7j, 0.0 + 0.1j], np.complex64)


def grads(n=25, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64) for _ in range(n)]


def run(tx, params, gs):
    state = tx.init(params)
    step = jax.jit(tx.update)
    for g in gs:
        u, state = step(jnp.asarray(g), state, params)
        assert u.dtype == params.dtype
        params = optax.apply_updates(params, u)
    return np.asarray(params), state


OPTAX_PAIRS = {
    "adam": (lambda: adaptx.adam(1e-2), lambda: optax.adam(1e-2)),
    "adamw": (lambda: adaptx.adamw(1e-2, weight_decay=1e-2), lambda: optax.adamw(1e-2, weight_decay=1e-2)),
    "amsgrad": (lambda: adaptx.amsgrad(1e-2, max_of="corrected"), lambda: optax.amsgrad(1e-2)),
    "adam-nesterov": (lambda: adaptx.adam(1e-2, nesterov=True), lambda: optax.adam(1e-2, nesterov=True)),
}


@pytest.mark.parametrize("name", list(OPTAX_PAIRS))
def test_aliases_follow_optax_on_complex_parameters(name):
    ours, theirs = OPTAX_PAIRS[name]
    got, state = run(ours(), jnp.asarray(P0), grads())
    want, _ = run(theirs(), jnp.asarray(P0), grads())
    # Both sides round in float32 in different orders (θ ~ 1, so an ulp of θ is 1.2e-7, and the runs move
    # θ by ~0.08): 16 ulps of θ allowed.
    tol = 16 * np.spacing(np.float32(2.0))
    assert np.abs(got - want).max() <= tol
    if name == "adam":  # the tolerance separates |g|^2 from PyTorch's second moment per part
        per_part, _ = run(tc.adam(lr=1e-2), jnp.asarray(P0), grads())
        assert np.abs(per_part - want).max() > 100 * tol
    nu = optax.tree_utils.tree_get(state, "nu")
    assert not jnp.iscomplexobj(nu) and nu.shape == P0.shape  # the second moment is real


@pytest.mark.parametrize(
    "make",
    [
        lambda: adaptx.adax(1e-2),
        lambda: adaptx.adaxw(1e-2, weight_decay=0.0),
        lambda: adaptx.amsgradw(1e-2, weight_decay=0.0),
        lambda: adaptx.scale_by_rmsprop(centered=True),
        lambda: adaptx.scale_by_adagrad(),
        lambda: adaptx.scale_by_adamax(),
        lambda: adaptx.scale_by_nadam(),
        lambda: adaptx.scale_by_radam(),
        lambda: adaptx.scale_by_momentum(0.9),
    ],
)
def test_every_block_keeps_the_imaginary_part(make):
    """A purely imaginary gradient moves only the imaginary part; a real one only the real part."""
    tx = make()
    params = jnp.asarray(P0)
    for g, part in ((1j * np.ones(4, np.float32), np.imag), (np.ones(4, np.float32), np.real)):
        u, _ = tx.update(jnp.asarray(g, jnp.complex64), tx.init(params), params)
        assert u.dtype == jnp.complex64
        moved = np.abs(part(np.asarray(u)))
        other = np.abs((np.real if part is np.imag else np.imag)(np.asarray(u)))
        assert np.all(moved > 0) and np.all(other == 0)


TORCH_CASES = {
    "adam-amsgrad": (torch.optim.Adam, tc.adam, dict(lr=1e-2, amsgrad=True)),
    "adamw": (torch.optim.AdamW, tc.adamw, dict(lr=1e-2, weight_decay=1e-2)),
    "rmsprop": (torch.optim.RMSprop, tc.rmsprop, dict(lr=1e-2, centered=True, momentum=0.9)),
    "adagrad": (torch.optim.Adagrad, tc.adagrad, dict(lr=1e-2)),
    "adamax": (torch.optim.Adamax, tc.adamax, dict(lr=1e-2)),
    "nadam": (torch.optim.NAdam, tc.nadam, dict(lr=1e-2)),
    "radam": (torch.optim.RAdam, tc.radam, dict(lr=1e-2)),
    "sgd": (torch.optim.SGD, tc.sgd, dict(lr=1e-2, momentum=0.9, nesterov=True)),
}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_torch_compat_matches_torch_on_complex_parameters(name):
    torch_cls, ours, kw = TORCH_CASES[name]
    gs = grads(40, seed=1)
    theta = torch.tensor(P0.copy(), requires_grad=True)
    opt = torch_cls([theta], **kw)
    for g in gs:
        theta.grad = torch.tensor(g)
        opt.step()
    want = theta.detach().numpy()
    got, state = run(ours(**kw), jnp.asarray(P0), gs)
    movement = np.abs(want - P0).max()
    assert np.abs(got - want).max() <= 1e-5 * movement, np.abs(got - want).max() / movement
    for leaf in jax.tree.leaves(state):  # PyTorch's layout: moments shaped and typed like θ
        assert leaf.shape in ((), P0.shape)
