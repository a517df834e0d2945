"""How a sweep's program is compiled: short sweeps compile for a fast start (XLA:CPU's classic code
generator), long ones for a fast loop, and the two give the same bits.

Reference: the same sweep compiled the other way.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import adaptx
from adaptx.experiments import Online, Stochastic, run, sweep
from adaptx.experiments.contract import prepare
from adaptx.experiments.fast import (
    CPU_OPTIONS,
    FAST_COMPILE_OPTIONS,
    FAST_COMPILE_WORK,
    compiler_options,
    make_plan,
    run_fast,
    supported,
)

ADAM = adaptx.adam(1e-2, 0.9, 0.99)
AMSGRAD = adaptx.amsgrad(1e-2, 0.9, 0.99)
needs_cpu = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the option is XLA:CPU's")


@needs_cpu
def test_the_fast_start_option_is_in_effect():
    """This jax accepts both option sets, so the sweeps in these tests use them."""
    assert compiler_options("cpu", True) == {**CPU_OPTIONS, **FAST_COMPILE_OPTIONS}
    assert compiler_options("cpu", False) == CPU_OPTIONS
    assert run(ADAM, Stochastic(), steps=10, seeds=2).plan.compiler_options == compiler_options("cpu", True)


def test_other_platforms_get_xla_defaults_and_unknown_options_are_dropped():
    assert compiler_options("gpu", True) is None and compiler_options("tpu", False) is None
    assert supported({"xla_cpu_no_such_option": True}) == {}
    assert supported({"xla_cpu_use_fusion_emitters": "not a bool"}) == {}


@needs_cpu
@pytest.mark.parametrize(
    "case",
    [
        lambda fast: run(AMSGRAD, Stochastic(), steps=1_200, seeds=[0, 1, 2], log_points=8,
                         fast_compile=fast),
        lambda fast: sweep(lambda learning_rate: adaptx.adam(learning_rate, 0.9, 0.99), Online(),
                           grid={"learning_rate": [1e-2, 1e-3, 3e-4]}, steps=1_200, log_points=8,
                           fast_compile=fast),
    ],
    ids=["stochastic-amsgrad", "online-learning-rate-grid"],
)
def test_both_compilations_give_the_same_bits(case):
    """Per-seed moments on the stochastic problem (one step per loop iteration) and moments shared by
    a learning-rate grid on the online one (two steps per iteration): bit for bit."""
    fast, slow = case(True), case(False)
    np.testing.assert_array_equal(fast.x, slow.x)
    np.testing.assert_array_equal(fast.avg_regret, slow.avg_regret)


def test_the_choice_follows_the_work():
    """steps x runs (padded to 64 lanes) up to FAST_COMPILE_WORK: fast start; beyond: fast loop."""
    assert FAST_COMPILE_WORK == 2**25

    def plan(steps, seeds, **kw):
        return make_plan(prepare(ADAM, Stochastic(), steps=steps, seeds=seeds), **kw)

    chosen = [plan(steps, seeds).fast_compile
              for steps, seeds in ((10_000, 64), (2**25 // 64, 3), (2**25 // 64 + 1, 3), (10**6, 64))]
    assert chosen == [True, True, False, False]
    assert plan(10, 2, fast_compile=False).fast_compile is False
    online = make_plan(prepare(ADAM, Online(), steps=2**25 // 64 + 1, seeds=1000))
    assert online.shape == (64,) and not online.fast_compile  # one run stands for the seeds


def test_cpu_compile_options_keep_the_numbers():
    """On a CPU the sweep's program is compiled with XLA's region-based copy insertion, an option that
    only drops copies: the same bits as XLA's defaults (``compiler_options={}``) for an online grid (two
    steps per loop iteration) and the stochastic problem. (These programs are compiled for a fast loop,
    as long sweeps are; the tests above compare the fast-start ones.)"""
    make = lambda learning_rate: adaptx.adam(learning_rate, 0.9, 0.99)  # noqa: E731
    cases = [
        prepare(make, Online(), grid={"learning_rate": [1e-2, 1e-3]}, steps=1_500, log_points=8),
        prepare(ADAM, Stochastic(), seeds=[0, 1], steps=1_500, log_points=8),
    ]
    for inputs in cases:
        tuned = run_fast(inputs, plan=make_plan(inputs, fast_compile=False))
        plain = run_fast(inputs, plan=make_plan(inputs, fast_compile=False, compiler_options={}))
        if jax.default_backend() == "cpu":
            assert tuned.plan.compiler_options == CPU_OPTIONS
        assert plain.plan.compiler_options is None
        np.testing.assert_array_equal(plain.x, tuned.x)
        np.testing.assert_array_equal(plain.avg_regret, tuned.avg_regret)
