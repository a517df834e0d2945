"""Every alias against the float64 NumPy reference optimizer, over 200 steps on a nested tree.

Each alias is compared, parameters and updates, with ``numpy_reference.optimize``: PyTorch's order of
operations (coupled L2 into the gradient, the direction, ``-γ_t``, decoupled decay ``-γ_t λ_t θ_{t-1}``),
with the defaults written out explicitly below (read from ``adaptx/aliases.py``: optax's for the Adam
family, with optax's AdamW decay 1e-4; the AdaX authors' for AdaX, with λ = 0 for ``adax`` and 5e-2 for
``adaxw``). Weight decay, masks (tree and callable) and schedules (learning rate and weight decay) are
exercised on every alias that takes them.
"""

from __future__ import annotations

import harness as H
import numpy_reference as ref
import pytest

import adaptx

LR, LR_NP = H.LR_SCHEDULE
WD, WD_NP = H.WD_SCHEDULE


def optimizer(make_ref, learning_rate, **kwargs):
    """Expected updates: the reference optimizer's, on the problem's parameters and gradients."""

    def expected(prob):
        options = dict(kwargs)
        if "mask" in options:
            options["mask"] = H.mask_list(options["mask"], prob)
        return ref.optimize(make_ref(), prob.params_ref, prob.grads_ref, learning_rate, **options)

    return expected


# The documented defaults, spelled out.
ADAM = dict(b1=0.9, b2=0.999, eps=1e-8)
ADAX = dict(b1=0.9, b2=1e-4, eps=1e-12)

C = H.Case
CASES = {
    # --- adam ------------------------------------------------------------------------------------------
    "adam/defaults": C(lambda: adaptx.adam(1e-2), optimizer(lambda: ref.Adam(**ADAM), 1e-2)),
    "adam/schedule,b1,b2,eps,eps_root": C(
        lambda: adaptx.adam(LR, 0.8, 0.95, 1e-6, 1e-10),
        optimizer(lambda: ref.Adam(0.8, 0.95, 1e-6, 1e-10), LR_NP),
    ),
    "adam/eps_on=raw,amsgrad=corrected": C(
        lambda: adaptx.adam(1e-2, 0.9, 0.99, 1e-6, eps_on="raw", amsgrad="corrected"),
        optimizer(lambda: ref.Adam(0.9, 0.99, 1e-6, eps_on="raw", amsgrad="corrected"), 1e-2),
    ),
    # --- adamw -----------------------------------------------------------------------------------------
    "adamw/defaults": C(
        lambda: adaptx.adamw(1e-2), optimizer(lambda: ref.Adam(**ADAM), 1e-2, decoupled=1e-4)
    ),
    "adamw/schedules,mask-callable": C(
        lambda: adaptx.adamw(LR, 0.8, 0.95, 1e-6, weight_decay=WD, mask=H.mask_fn),
        optimizer(lambda: ref.Adam(0.8, 0.95, 1e-6), LR_NP, decoupled=WD_NP, mask=H.mask_fn),
    ),
    "adamw/mask-tree,amsgrad,eps_on=raw": C(
        lambda: adaptx.adamw(
            1e-2, 0.9, 0.99, 1e-6, weight_decay=0.1, mask=H.mask_tree(), amsgrad=True, eps_on="raw"
        ),
        optimizer(
            lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw", eps_on="raw"),
            1e-2,
            decoupled=0.1,
            mask=H.mask_tree(),
        ),
    ),
    # --- amsgrad / amsgradw (default: PyTorch's max over the raw v) -----------------------------------
    "amsgrad/defaults": C(
        lambda: adaptx.amsgrad(1e-2), optimizer(lambda: ref.Adam(**ADAM, amsgrad="raw"), 1e-2)
    ),
    "amsgrad/max_of=corrected,schedule": C(
        lambda: adaptx.amsgrad(LR, 0.9, 0.99, 1e-6, max_of="corrected"),
        optimizer(lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="corrected"), LR_NP),
    ),
    "amsgradw/defaults": C(
        lambda: adaptx.amsgradw(1e-2),
        optimizer(lambda: ref.Adam(**ADAM, amsgrad="raw"), 1e-2, decoupled=1e-4),
    ),
    "amsgradw/raw,schedules,mask-tree": C(
        lambda: adaptx.amsgradw(LR, 0.9, 0.99, 1e-6, weight_decay=WD, mask=H.mask_tree()),
        optimizer(
            lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw"), LR_NP, decoupled=WD_NP, mask=H.mask_tree()
        ),
    ),
    "amsgradw/corrected,mask-callable": C(
        lambda: adaptx.amsgradw(1e-2, 0.9, 0.99, 1e-6, weight_decay=0.1, mask=H.mask_fn, max_of="corrected"),
        optimizer(
            lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="corrected"), 1e-2, decoupled=0.1, mask=H.mask_fn
        ),
    ),
    # --- adax (coupled L2) / adaxw (decoupled) -------------------------------------------------------
    "adax/defaults": C(lambda: adaptx.adax(1.5e-3), optimizer(lambda: ref.AdaX(**ADAX), 1.5e-3)),
    "adax/l2-schedule,mask-callable,lr-schedule": C(
        lambda: adaptx.adax(LR, 0.8, 0.02, 1e-9, weight_decay=WD, mask=H.mask_fn),
        optimizer(lambda: ref.AdaX(0.8, 0.02, 1e-9), LR_NP, l2=WD_NP, mask=H.mask_fn),
    ),
    "adax/l2,eps_on=corrected,amsgrad=corrected": C(
        lambda: adaptx.adax(1e-2, 0.9, 0.02, 1e-6, 0.1, eps_on="corrected", amsgrad="corrected"),
        optimizer(lambda: ref.AdaX(0.9, 0.02, 1e-6, eps_on="corrected", amsgrad="corrected"), 1e-2, l2=0.1),
    ),
    "adaxw/defaults": C(
        lambda: adaptx.adaxw(5e-3), optimizer(lambda: ref.AdaX(**ADAX), 5e-3, decoupled=5e-2)
    ),
    "adaxw/schedules,mask-tree,amsgrad": C(
        lambda: adaptx.adaxw(LR, 0.8, 0.02, 1e-9, weight_decay=WD, mask=H.mask_tree(), amsgrad="corrected"),
        optimizer(
            lambda: ref.AdaX(0.8, 0.02, 1e-9, amsgrad="corrected"), LR_NP, decoupled=WD_NP, mask=H.mask_tree()
        ),
    ),
}

# Precision at float64 does not depend on the options; one case per alias.
FLOAT64_CASES = [
    "adam/schedule,b1,b2,eps,eps_root",
    "adamw/schedules,mask-callable",
    "amsgrad/max_of=corrected,schedule",
    "amsgradw/raw,schedules,mask-tree",
    "adax/l2-schedule,mask-callable,lr-schedule",
    "adaxw/schedules,mask-tree,amsgrad",
]


@pytest.fixture(scope="module")
def outcomes() -> H.Outcomes:
    return H.Outcomes(CASES, "float32")


@pytest.fixture(scope="module")
def outcomes64() -> H.Outcomes:
    return H.Outcomes({name: CASES[name] for name in FLOAT64_CASES}, "float64")


@pytest.mark.parametrize("name", list(CASES))
def test_alias_matches_reference_float32(name, outcomes):
    outcomes.check(name)


@pytest.mark.parametrize("name", FLOAT64_CASES)
def test_alias_matches_reference_float64(name, outcomes64):
    outcomes64.check(name)


def test_weight_decay_and_masks_matter():
    """The decay settings of the cases change the trajectory by far more than the tolerance, so the
    cases above would catch decay applied to the wrong leaves, coupled instead of decoupled, or not
    scaled by the learning rate."""
    prob = H.problem()
    adam = lambda: ref.Adam(0.8, 0.95, 1e-6)
    run = lambda **kw: H.stack(ref.optimize(adam(), prob.params_ref, prob.grads_ref, LR_NP, **kw))
    mask = H.mask_list(H.mask_fn, prob)
    decayed = run(decoupled=WD_NP, mask=mask)
    for other in (
        run(),
        run(decoupled=WD_NP),  # no mask
        run(decoupled=WD_NP, mask=H.mask_list(H.mask_tree(), prob)),  # the other mask
        run(l2=WD_NP, mask=mask),  # coupled
        run(decoupled=WD_NP, mask=mask, decay_learning_rate=None),  # not scaled by γ
    ):
        assert H.rel_error(other, decayed) > 20 * H.F32_RTOL
