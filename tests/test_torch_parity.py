"""adaptx.torch_compat against real PyTorch: parity at float32 rounding over 1000 steps.

Every constructor is run beside its PyTorch counterpart (``torch.optim`` 2.13, or the reference
implementations of ``torch_refs.py`` for the formulations that are not in ``torch.optim``) from the same
parameters (a scalar, a vector, a matrix and a 4-d tensor) on

* fixed random gradient sequences (scale 1e-6, 1e-2 or 1e2 depending on the config) fed to both sides, and
* a least-squares loss whose gradient each side computes from its own parameters,

in three configs per optimizer: weight decay off; weight decay on under a cosine learning-rate schedule
(``torch.optim.lr_scheduler.CosineAnnealingLR`` stepped after every step against
``optax.cosine_decay_schedule``); and ``maximize``. Variant options (AMSGrad, Nesterov, centered, ...)
are spread over the configs. The bound is max|θ_torch − θ_adaptx| ≤ 1e-5 × max|θ_T − θ_0| in float32
and 1e-12 × in float64, checked at every step. The JAX side runs jitted under ``lax.scan`` (one compile per
configuration, shared by all its problems) with XLA's default compiler options, the ones users get (they
allow the multiply-add contraction that the in-place emulation must defeat), the PyTorch side in a Python
loop.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import optax
import pytest
import torch
import torch_refs

from adaptx import parity
from adaptx import torch_compat as tc

STEPS = 1000
TOL = {"float32": 1e-5, "float64": 1e-12}
@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer: its PyTorch class, its adaptx constructor and the arguments of its three configs.

    ``plain`` has weight decay off; ``decay_schedule`` turns it on and drives the learning rate by a
    cosine schedule; ``maximize`` ascends. Options that select a variant (AMSGrad, Nesterov, centered,
    ...) are spread over the configs so that each is run once without multiplying the compilations.
    """

    torch_cls: Callable
    adaptx_fn: Callable
    plain: dict
    decay_schedule: dict
    maximize: dict
    # SGD's movement is proportional to the gradient: its parameters start at the gradient's scale
    # so that the movement is not lost in the rounding of θ.
    params_follow_scale: bool = False


CASES: dict[str, Case] = {
    "sgd": Case(torch.optim.SGD, tc.sgd,
                plain=dict(lr=1e-2, momentum=0.9, dampening=0.1),
                decay_schedule=dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-2),
                maximize=dict(lr=1e-2, maximize=True), params_follow_scale=True),
    "adam": Case(torch.optim.Adam, tc.adam,
                 plain=dict(lr=1e-3),
                 decay_schedule=dict(lr=1e-3, weight_decay=1e-2, amsgrad=True),
                 maximize=dict(lr=1e-3, maximize=True, weight_decay=1e-1, decoupled_weight_decay=True)),
    "adamw": Case(torch.optim.AdamW, tc.adamw,
                  plain=dict(lr=1e-3, weight_decay=0.0),
                  decay_schedule=dict(lr=1e-3, weight_decay=1e-1),
                  maximize=dict(lr=1e-3, weight_decay=1e-1, amsgrad=True, maximize=True)),
    "rmsprop": Case(torch.optim.RMSprop, tc.rmsprop,
                    plain=dict(lr=1e-3),
                    decay_schedule=dict(lr=1e-3, weight_decay=1e-2, centered=True, momentum=0.9),
                    maximize=dict(lr=1e-3, momentum=0.5, maximize=True)),
    "adagrad": Case(torch.optim.Adagrad, tc.adagrad,
                    plain=dict(lr=1e-2),
                    decay_schedule=dict(lr=1e-2, lr_decay=1e-3, initial_accumulator_value=0.1,
                                        weight_decay=1e-2),
                    maximize=dict(lr=1e-2, eps=1e-6, maximize=True)),
    "adamax": Case(torch.optim.Adamax, tc.adamax,
                   plain=dict(lr=2e-3),
                   decay_schedule=dict(lr=2e-3, weight_decay=1e-2),
                   maximize=dict(lr=2e-3, betas=(0.8, 0.99), maximize=True)),
    "nadam": Case(torch.optim.NAdam, tc.nadam,
                  plain=dict(lr=1e-3),
                  decay_schedule=dict(lr=1e-3, weight_decay=1e-2),
                  maximize=dict(lr=1e-3, weight_decay=1e-1, decoupled_weight_decay=True,
                                momentum_decay=1e-2, maximize=True)),
    "radam": Case(torch.optim.RAdam, tc.radam,
                  plain=dict(lr=1e-3),
                  decay_schedule=dict(lr=1e-3, weight_decay=1e-1, decoupled_weight_decay=True),
                  maximize=dict(lr=1e-3, weight_decay=1e-2, betas=(0.9, 0.99), maximize=True)),
    # Reference formulations, against the PyTorch implementations of torch_refs.py.
    "adax": Case(torch_refs.AdaX, tc.adax,
                 plain=dict(lr=1.5e-3, weight_decay=0.0),
                 decay_schedule=dict(lr=1.5e-3, weight_decay=5e-4),
                 maximize=dict(lr=1.5e-3, weight_decay=5e-4, maximize=True)),
    "adaxw": Case(functools.partial(torch_refs.AdaX, decoupled=True), tc.adaxw,
                  plain=dict(lr=1e-3, weight_decay=0.0),
                  decay_schedule=dict(lr=1e-3, weight_decay=5e-2),
                  maximize=dict(lr=1e-3, weight_decay=5e-2, maximize=True)),
    "hf_adamw": Case(torch_refs.HFAdamW, tc.hf_adamw,
                     plain=dict(lr=1e-3),
                     decay_schedule=dict(lr=1e-3, weight_decay=1e-1),
                     maximize=dict(lr=1e-3, weight_decay=1e-1, correct_bias=False, maximize=True)),
    "labml_adam": Case(torch_refs.LabmlAdam, tc.labml_adam,
                       plain=dict(lr=1e-3, weight_decouple=False, optimized_update=False),
                       decay_schedule=dict(lr=1e-3, weight_decay=1e-1),
                       maximize=dict(lr=1e-3, weight_decay=1e-4, absolute=True, maximize=True)),
    "labml_amsgrad": Case(functools.partial(torch_refs.LabmlAdam, amsgrad=True), tc.labml_amsgrad,
                          plain=dict(lr=1e-3),
                          decay_schedule=dict(lr=1e-3, weight_decay=1e-1),
                          maximize=dict(lr=1e-3, weight_decay=1e-2, weight_decouple=False,
                                        maximize=True)),
}
# The random-gradient scale each config runs at: together they span 1e-6 ... 1e2.
SCALE = {"plain": 1e-6, "decay_schedule": 1e2, "maximize": 1e-2}
CONFIGS = list(SCALE)
PARAMS = [(n, c) for n in CASES for c in CONFIGS]


def build(name: str, config: str):
    """The PyTorch factory and the adaptx transformation of one case in one config."""
    case = CASES[name]
    kwargs = dict(getattr(case, config))
    lr = kwargs["lr"]
    scheduled = config == "decay_schedule"

    def torch_factory(params):
        opt = case.torch_cls(params.values(), **kwargs)
        if scheduled:
            return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
        return opt

    jax_kwargs = dict(kwargs, lr=optax.cosine_decay_schedule(lr, STEPS) if scheduled else lr)
    return torch_factory, case.adaptx_fn(**jax_kwargs)


@functools.cache
def problem(kind: str, scale: float, params_follow_scale: bool) -> parity.Problem:
    return parity.make_problem(
        kind, steps=STEPS, scale=scale, param_scale=scale if params_follow_scale else 1.0, seed=1
    )


def check(name: str, config: str, dtype: str, scale: float, least_squares: bool = True):
    torch_factory, transform = build(name, config)
    follow = CASES[name].params_follow_scale
    runs = [(f"random gradients of scale {scale:g}", problem("random", scale, follow))]
    if least_squares:
        runs.append(("least squares", problem("least_squares", 1.0, False)))
    for label, prob in runs:
        res = parity.compare(torch_factory, transform, prob, dtype=dtype, tolerance=TOL[dtype])
        theta0 = np.concatenate([np.ravel(v) for _, v in sorted(prob.params.items())])
        # The run must move the parameters by far more than their rounding, or the bound says nothing.
        assert res.movement > 1e3 * np.finfo(dtype).eps * np.max(np.abs(theta0)), (label, res.movement)
        assert res.max_rel_deviation <= TOL[dtype], (
            f"{name} [{config}, {dtype}] on {label}: max|θ_torch − θ_adaptx| = "
            f"{res.max_rel_deviation:.3g} × movement {res.movement:.3g}; first step over "
            f"{TOL[dtype]:g}: {res.first_failure}"
        )


@pytest.mark.parametrize("name,config", PARAMS, ids=[f"{n}-{c}" for n, c in PARAMS])
def test_float32_parity(name, config):
    check(name, config, "float32", SCALE[config])


@pytest.mark.parametrize("name", list(CASES))
def test_float64_parity(name):
    """float64 once per optimizer: the config with decay and schedule, random gradients of scale 1."""
    check(name, "decay_schedule", "float64", 1.0, least_squares=False)


def test_parameter_groups_map_to_optax_partition():
    """Two torch parameter groups with different hyperparameters = optax.partition of two optimizers."""
    prob = problem("random", 1e-2, False)

    def torch_factory(p):
        return torch.optim.AdamW([
            {"params": [p["matrix"], p["tensor4"]]},
            {"params": [p["scalar"], p["vector"]], "lr": 3e-3, "weight_decay": 0.0, "amsgrad": True},
        ], lr=1e-3, weight_decay=1e-1)

    labels = {"matrix": "decayed", "tensor4": "decayed", "scalar": "other", "vector": "other"}
    transform = optax.partition(
        {"decayed": tc.adamw(lr=1e-3, weight_decay=1e-1),
         "other": tc.adamw(lr=3e-3, weight_decay=0.0, amsgrad=True)},
        labels,
    )
    res = parity.compare(torch_factory, transform, prob)
    assert res.max_rel_deviation <= TOL["float32"], res.max_rel_deviation
    # The groups really differ: one AdamW for all parameters does not match.
    res_one = parity.compare(torch_factory, tc.adamw(lr=1e-3, weight_decay=1e-1), prob)
    assert res_one.max_rel_deviation > 1e-2
