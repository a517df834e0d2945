"""Every block of adaptx against the float64 NumPy reference, over 200 steps on a nested tree.

Each case below is an adaptx block (used on its own, with its own step counter, inside ``optax.chain``
where it needs a learning rate) and the reference it must reproduce. All cases run in one compiled
program per dtype (see ``harness.run``); the float32 run must match to ``F32_RTOL`` and the float64 run
(jax x64 enabled) to ``F64_RTOL``, both justified in ``harness.py``.
"""

from __future__ import annotations

import harness as H
import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import optax
import pytest

import adaptx
from adaptx import moments
from adaptx.moments import first

LR, LR_NP = H.LR_SCHEDULE
WD, WD_NP = H.WD_SCHEDULE


def direction(make_ref):
    """Expected updates of a scaling block: the reference's directions for the problem's gradients."""
    return lambda prob: ref.directions(make_ref(), prob.grads_ref)


def optimizer(make_ref, learning_rate, **kwargs):
    """Expected updates of a chain with a learning rate: the reference optimizer's applied updates."""

    def expected(prob):
        options = dict(kwargs)
        if "mask" in options:
            options["mask"] = H.mask_list(options["mask"], prob)
        return ref.optimize(make_ref(), prob.params_ref, prob.grads_ref, learning_rate, **options)

    return expected


C = H.Case
CASES = {
    # --- scale_by_adam: every switch -------------------------------------------------------------
    "adam/default": C(lambda: adaptx.scale_by_adam(), direction(lambda: ref.Adam())),
    "adam/b1,b2,eps": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-6), direction(lambda: ref.Adam(0.8, 0.95, 1e-6))
    ),
    "adam/debias_mu=False": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-6, debias_mu=False),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-6, debias_mu=False)),
    ),
    "adam/debias_nu=False": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-6, debias_nu=False),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-6, debias_nu=False)),
    ),
    "adam/no-debias(BERT)": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-6, debias_mu=False, debias_nu=False),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-6, debias_mu=False, debias_nu=False)),
    ),
    "adam/eps_on=raw": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-6, eps_on="raw"),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-6, eps_on="raw")),
    ),
    "adam/eps_on=raw,debias_nu=False": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-6, eps_on="raw", debias_nu=False),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-6, eps_on="raw", debias_nu=False)),
    ),
    "adam/eps_root": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-8, eps_root=1e-10),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-8, eps_root=1e-10)),
    ),
    "adam/eps_root,eps_on=raw": C(
        lambda: adaptx.scale_by_adam(0.8, 0.95, 1e-8, eps_root=1e-10, eps_on="raw"),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-8, eps_root=1e-10, eps_on="raw")),
    ),
    "adam/amsgrad=True": C(
        lambda: adaptx.scale_by_adam(0.9, 0.95, 1e-6, amsgrad=True),
        direction(lambda: ref.Adam(0.9, 0.95, 1e-6, amsgrad="raw")),
    ),
    "adam/amsgrad=raw": C(
        lambda: adaptx.scale_by_adam(0.9, 0.99, 1e-6, amsgrad="raw"),
        direction(lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw")),
    ),
    "adam/amsgrad=corrected": C(
        lambda: adaptx.scale_by_adam(0.9, 0.99, 1e-6, amsgrad="corrected"),
        direction(lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="corrected")),
    ),
    "adam/amsgrad=raw,eps_on=raw": C(
        lambda: adaptx.scale_by_adam(0.9, 0.99, 1e-6, amsgrad="raw", eps_on="raw"),
        direction(lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw", eps_on="raw")),
    ),
    "adam/amsgrad=corrected,eps_on=raw,eps_root": C(
        lambda: adaptx.scale_by_adam(0.9, 0.99, 1e-8, 1e-10, amsgrad="corrected", eps_on="raw"),
        direction(lambda: ref.Adam(0.9, 0.99, 1e-8, 1e-10, amsgrad="corrected", eps_on="raw")),
    ),
    # --- scale_by_amsgrad: torch's max over raw v vs optax's max over v-hat ------------------------
    "amsgrad/max_of=raw": C(
        lambda: adaptx.scale_by_amsgrad(0.9, 0.99, 1e-6, max_of="raw"),
        direction(lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw")),
    ),
    "amsgrad/max_of=corrected": C(
        lambda: adaptx.scale_by_amsgrad(0.9, 0.99, 1e-6, max_of="corrected"),
        direction(lambda: ref.Adam(0.9, 0.99, 1e-6, amsgrad="corrected")),
    ),
    # --- scale_by_adax: textbook recurrence, no first-moment correction ----------------------------
    "adax/default": C(lambda: adaptx.scale_by_adax(), direction(lambda: ref.AdaX())),
    "adax/b1,b2,eps": C(
        lambda: adaptx.scale_by_adax(0.8, 0.02, 1e-9), direction(lambda: ref.AdaX(0.8, 0.02, 1e-9))
    ),
    "adax/eps_on=corrected": C(
        lambda: adaptx.scale_by_adax(0.9, 0.02, 1e-6, eps_on="corrected"),
        direction(lambda: ref.AdaX(0.9, 0.02, 1e-6, eps_on="corrected")),
    ),
    "adax/amsgrad=raw": C(
        lambda: adaptx.scale_by_adax(0.9, 0.02, 1e-9, amsgrad="raw"),
        direction(lambda: ref.AdaX(0.9, 0.02, 1e-9, amsgrad="raw")),
    ),
    "adax/amsgrad=corrected": C(
        lambda: adaptx.scale_by_adax(0.9, 0.02, 1e-9, amsgrad="corrected"),
        direction(lambda: ref.AdaX(0.9, 0.02, 1e-9, amsgrad="corrected")),
    ),
    "adax/amsgrad=raw,eps_on=corrected": C(
        lambda: adaptx.scale_by_adax(0.9, 0.02, 1e-6, amsgrad="raw", eps_on="corrected"),
        direction(lambda: ref.AdaX(0.9, 0.02, 1e-6, amsgrad="raw", eps_on="corrected")),
    ),
    "adax/amsgrad=corrected,eps_on=corrected": C(
        lambda: adaptx.scale_by_adax(0.9, 0.02, 1e-6, amsgrad="corrected", eps_on="corrected"),
        direction(lambda: ref.AdaX(0.9, 0.02, 1e-6, amsgrad="corrected", eps_on="corrected")),
    ),
    # --- scale_by_moments assembled directly -------------------------------------------------------
    "moments/rmsprop": C(
        lambda: adaptx.scale_by_moments(moments.MovingAverage(0.9, debias=False), eps=1e-6),
        direction(lambda: ref.RMSprop(0.9, 1e-6)),
    ),
    "moments/long-term,no-first-moment": C(
        lambda: adaptx.scale_by_moments(moments.LongTermAverage(0.02), eps=1e-9, eps_on="raw"),
        direction(lambda: ref.AdaX(0.0, 0.02, 1e-9)),  # β1 = 0: m = g
    ),
    "moments/max-tracked-long-term": C(
        lambda: adaptx.scale_by_moments(
            moments.MaxTracked(moments.LongTermAverage(0.02), over="corrected"),
            first.MovingAverage(0.8, debias=False),
            eps=1e-9,
            eps_on="raw",
        ),
        direction(lambda: ref.AdaX(0.8, 0.02, 1e-9, amsgrad="corrected")),
    ),
    "moments/ema,undebiased-first": C(
        lambda: adaptx.scale_by_moments(
            moments.MaxTracked(moments.MovingAverage(0.95)), first.MovingAverage(0.8, debias=False), eps=1e-6
        ),
        direction(lambda: ref.Adam(0.8, 0.95, 1e-6, debias_mu=False, amsgrad="raw")),
    ),
    # --- weight decay (before / after a plain SGD step) ----------------------------------------------
    "add_l2": C(
        lambda: optax.chain(adaptx.add_l2(0.1), optax.scale(-1e-2)),
        optimizer(ref.SGD, 1e-2, l2=0.1),
    ),
    "add_l2/mask-tree,schedule": C(
        lambda: optax.chain(adaptx.add_l2(WD, mask=H.mask_tree()), optax.scale(-1e-2)),
        optimizer(ref.SGD, 1e-2, l2=WD_NP, mask=H.mask_tree()),
    ),
    "add_l2/mask-callable": C(
        lambda: optax.chain(adaptx.add_l2(0.1, mask=H.mask_fn), optax.scale(-1e-2)),
        optimizer(ref.SGD, 1e-2, l2=0.1, mask=H.mask_fn),
    ),
    "decoupled/absolute": C(
        lambda: optax.chain(optax.scale(-1e-2), adaptx.decoupled_weight_decay(5e-3)),
        optimizer(ref.SGD, 1e-2, decoupled=5e-3, decay_learning_rate=None),
    ),
    "decoupled/learning_rate": C(
        lambda: optax.chain(optax.scale(-1e-2), adaptx.decoupled_weight_decay(0.5, learning_rate=0.02)),
        optimizer(ref.SGD, 1e-2, decoupled=0.5, decay_learning_rate=0.02),
    ),
    "decoupled/schedules,mask-callable": C(
        lambda: optax.chain(
            adaptx.scale_by_learning_rate(LR),
            adaptx.decoupled_weight_decay(WD, learning_rate=LR, mask=H.mask_fn),
        ),
        optimizer(ref.SGD, LR_NP, decoupled=WD_NP, mask=H.mask_fn),
    ),
    "decoupled/absolute,schedule,mask-tree": C(
        lambda: optax.chain(optax.scale(-1e-2), adaptx.decoupled_weight_decay(WD, mask=H.mask_tree())),
        optimizer(ref.SGD, 1e-2, decoupled=WD_NP, decay_learning_rate=None, mask=H.mask_tree()),
    ),
    # --- learning rate ---------------------------------------------------------------------------------
    "learning_rate/constant": C(lambda: adaptx.scale_by_learning_rate(3e-2), optimizer(ref.SGD, 3e-2)),
    "learning_rate/schedule": C(lambda: adaptx.scale_by_learning_rate(LR), optimizer(ref.SGD, LR_NP)),
    "learning_rate/flip_sign=False": C(
        lambda: adaptx.scale_by_learning_rate(3e-2, flip_sign=False), optimizer(ref.SGD, -3e-2)
    ),
    # --- adaptx.chain: one counter shared by every block ----------------------------------------------
    "chain/l2,adam,schedule,decoupled": C(
        lambda: adaptx.chain(
            adaptx.add_l2(0.05, mask=H.mask_fn),
            adaptx.scale_by_adam(0.8, 0.95, 1e-6),
            adaptx.scale_by_learning_rate(LR),
            adaptx.decoupled_weight_decay(WD, LR, mask=H.mask_fn),
        ),
        optimizer(lambda: ref.Adam(0.8, 0.95, 1e-6), LR_NP, l2=0.05, decoupled=WD_NP, mask=H.mask_fn),
    ),
    "chain/optax-inside": C(
        lambda: adaptx.chain(
            optax.identity(),  # an optax transform ignores the count it is handed
            adaptx.scale_by_adax(0.8, 0.02, 1e-9),
            adaptx.scale_by_learning_rate(LR),
        ),
        optimizer(lambda: ref.AdaX(0.8, 0.02, 1e-9), LR_NP),
    ),
}


# The float64 runs check precision (1e-12), which does not depend on the options the float32 runs
# tell apart; one case per code path keeps the compile time down.
FLOAT64_CASES = [
    "adam/b1,b2,eps",
    "adam/eps_on=raw,debias_nu=False",
    "adam/amsgrad=corrected,eps_on=raw,eps_root",
    "amsgrad/max_of=raw",
    "adax/default",
    "adax/amsgrad=corrected,eps_on=corrected",
    "moments/rmsprop",
    "moments/max-tracked-long-term",
    "add_l2/mask-tree,schedule",
    "decoupled/absolute",
    "decoupled/schedules,mask-callable",
    "chain/l2,adam,schedule,decoupled",
]


@pytest.fixture(scope="module")
def outcomes() -> H.Outcomes:
    return H.Outcomes(CASES, "float32")


@pytest.fixture(scope="module")
def outcomes64() -> H.Outcomes:
    return H.Outcomes({name: CASES[name] for name in FLOAT64_CASES}, "float64")


@pytest.mark.parametrize("name", list(CASES))
def test_block_matches_reference_float32(name, outcomes):
    outcomes.check(name)


@pytest.mark.parametrize("name", FLOAT64_CASES)
def test_block_matches_reference_float64(name, outcomes64):
    outcomes64.check(name)


def test_amsgrad_rules_differ_and_are_not_plain_adam(outcomes):
    """The test problem makes AMSGrad's maximum bind: raw max, corrected max and no max all differ."""
    plain = outcomes.got["adam/b1,b2,eps"][0]
    raw = outcomes.got["amsgrad/max_of=raw"][0]
    corrected = outcomes.got["amsgrad/max_of=corrected"][0]
    assert H.rel_error(raw, corrected) > 1e-2
    assert H.rel_error(raw, plain) > 1e-2


def test_amsgrad_raw_on_adax_never_binds(outcomes):
    """AdaX's raw accumulator only grows (v ← (1+β2)v + β2 g²), so the running maximum over it is v
    itself: AMSGrad with ``"raw"`` leaves AdaX unchanged (the ``"corrected"`` rule does not)."""
    adax = ref.directions(ref.AdaX(0.9, 0.02, 1e-9), outcomes.problem.grads_ref)
    raw = outcomes.got["adax/amsgrad=raw"][0]
    corrected = outcomes.got["adax/amsgrad=corrected"][0]
    assert H.rel_error(raw, H.stack(adax)) <= outcomes.rtol
    assert H.rel_error(corrected, H.stack(adax)) > 1e-2


# The options the trajectory tests tell apart, as pairs of references that must differ by far more
# (20x) than the float32 tolerance on the test problem (otherwise a test could pass with the wrong
# option).
VARIANTS = {
    "eps_on": (ref.Adam(0.8, 0.95, 1e-6), ref.Adam(0.8, 0.95, 1e-6, eps_on="raw")),
    "debias_mu": (ref.Adam(0.8, 0.95, 1e-6), ref.Adam(0.8, 0.95, 1e-6, debias_mu=False)),
    "debias_nu": (ref.Adam(0.8, 0.95, 1e-6), ref.Adam(0.8, 0.95, 1e-6, debias_nu=False)),
    "eps_root": (ref.Adam(0.8, 0.95, 1e-8), ref.Adam(0.8, 0.95, 1e-8, eps_root=1e-10)),
    "amsgrad": (ref.Adam(0.9, 0.99, 1e-6), ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw")),
    "max_of": (ref.Adam(0.9, 0.99, 1e-6, amsgrad="raw"), ref.Adam(0.9, 0.99, 1e-6, amsgrad="corrected")),
    "adax eps_on": (ref.AdaX(0.9, 0.02, 1e-6), ref.AdaX(0.9, 0.02, 1e-6, eps_on="corrected")),
    "adax max_of": (ref.AdaX(0.9, 0.02, 1e-9), ref.AdaX(0.9, 0.02, 1e-9, amsgrad="corrected")),
    "adax vs adam": (ref.AdaX(0.9, 0.02, 1e-9), ref.Adam(0.9, 0.98, 1e-9, debias_mu=False)),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_reference_variants_are_distinguishable(name):
    prob = H.problem(np.float32)
    a, b = (H.stack(ref.directions(r, prob.grads_ref)) for r in VARIANTS[name])
    assert H.rel_error(a, b) > 20 * H.F32_RTOL


def test_schedule_offset_is_distinguishable():
    """Evaluating the schedule at t instead of t − 1 would be caught by the learning-rate cases."""
    prob = H.problem(np.float32)
    right = ref.optimize(ref.SGD(), prob.params_ref, prob.grads_ref, LR_NP)
    shifted = ref.optimize(ref.SGD(), prob.params_ref, prob.grads_ref, lambda s: LR_NP(s + 1))
    assert H.rel_error(H.stack(shifted), H.stack(right)) > 20 * H.F32_RTOL


def test_schedule_first_update_uses_step_zero():
    """A schedule is evaluated at the number of updates already taken: 0 for the first update."""
    opt = adaptx.scale_by_learning_rate(lambda step: 1.0 + 10.0 * step)
    g = {"w": jnp.array([1.0, -2.0])}
    state = opt.init(g)
    u1, state = opt.update(g, state)
    u2, state = opt.update(g, state)
    np.testing.assert_array_equal(u1["w"], [-1.0, 2.0])
    np.testing.assert_array_equal(u2["w"], [-11.0, 22.0])


# --- the shared counter ---------------------------------------------------------------------------------

STEPPED_BLOCKS = {
    "scale_by_adam": lambda: adaptx.scale_by_adam(),
    "scale_by_adax": lambda: adaptx.scale_by_adax(),
    "scale_by_learning_rate": lambda: adaptx.scale_by_learning_rate(1e-3),
    "add_l2": lambda: adaptx.add_l2(1e-2),
}


@pytest.mark.parametrize("name", list(STEPPED_BLOCKS))
def test_a_chain_of_blocks_keeps_one_counter(name):
    """Each public block counts on its own inside ``optax.chain``; chained with ``adaptx.chain`` (even
    nested) the blocks give up their counters and share the outermost one."""
    params = {"w": jnp.ones(3)}
    alone = optax.chain(STEPPED_BLOCKS[name](), STEPPED_BLOCKS[name]())
    assert len([x for x in jax.tree.leaves(alone.init(params)) if x.dtype == jnp.int32]) == 2
    nested = adaptx.chain(adaptx.chain(STEPPED_BLOCKS[name]()), STEPPED_BLOCKS[name]())
    state = nested.init(params)
    assert [x.dtype for x in jax.tree.leaves(state)].count(jnp.dtype(jnp.int32)) == 1
    _, state = nested.update(params, state, params)
    assert int(optax.tree_utils.tree_get(state, "count")) == 1


@pytest.mark.parametrize("alias", ["adam", "adamw", "amsgrad", "amsgradw", "adax", "adaxw"])
def test_alias_state_holds_one_counter(alias):
    """An alias built by ``adaptx.chain`` keeps exactly one int32 counter, which counts the updates and
    which ``optax.tree_utils.tree_get`` finds."""
    opt = getattr(adaptx, alias)(1e-3)
    params = {"w": jnp.ones((2, 3)), "b": [jnp.ones(2)]}
    state = opt.init(params)
    for _ in range(3):  # eagerly: compiling would cost more than running
        _, state = opt.update(params, state, params)
    counters = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.integer)]
    assert len(counters) == 1
    assert counters[0].dtype == jnp.int32 and int(counters[0]) == 3
    assert int(state.count) == 3
    assert int(optax.tree_utils.tree_get(state, "count")) == 3
