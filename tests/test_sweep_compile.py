"""How a sweep's program is compiled: short sweeps compile for a fast start (XLA:CPU's classic code
generator), long ones for a fast loop, and the two give the same bits.

Reference: the same sweep compiled the other way.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
import pytest

import adaptx
from adaptx.experiments import Online, Stochastic, run, sweep

SWEEP = sys.modules["adaptx.experiments.sweep"]
ADAM = adaptx.adam(1e-2, 0.9, 0.99)
AMSGRAD = adaptx.amsgrad(1e-2, 0.9, 0.99)
needs_cpu = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the option is XLA:CPU's")


@needs_cpu
def test_the_fast_start_option_is_in_effect():
    assert SWEEP._cpu_options(True) == {**SWEEP._CPU_OPTIONS, **SWEEP._FAST_COMPILE_OPTIONS}
    assert SWEEP._cpu_options(False) == SWEEP._CPU_OPTIONS


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


def test_the_choice_follows_the_work(monkeypatch):
    """steps x runs (padded to 64 lanes) up to FAST_COMPILE_WORK: fast start; beyond: fast loop."""
    chosen = []

    class Stop(Exception):
        pass

    def record(*args):
        chosen.append(args[7])
        raise Stop

    monkeypatch.setattr(SWEEP, "_program", record)
    for steps, seeds in ((10_000, 64), (2**25 // 64, 3), (2**25 // 64 + 1, 3), (10**6, 64)):
        with pytest.raises(Stop):
            run(ADAM, Stochastic(), steps=steps, seeds=seeds)
    assert chosen == [True, True, False, False]
    with pytest.raises(Stop):
        run(ADAM, Stochastic(), steps=10, seeds=2, fast_compile=False)
    assert chosen[-1] is False
