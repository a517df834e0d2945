"""A sweep split over several devices (``devices=``, :func:`adaptx.experiments.run_devices`) gives the
one-device numbers to the bit, and bad device arguments are refused.

Reference: the same sweep on one device.
"""

from __future__ import annotations

import textwrap

import jax
import pytest
from harness import run_python

import adaptx
from adaptx.experiments import Online, run_devices, sweep

LR = 1e-2


SPLIT = textwrap.dedent(
    """
    import numpy as np, jax, adaptx
    from adaptx.experiments import Online, Stochastic, run_devices, sweep
    four = run_devices(4)  # jax has not started: splits the CPU into 4 devices
    assert [d.platform for d in four] == ["cpu"] * 4 and jax.device_count() == 4
    try:
        run_devices(5)  # jax has started with 4 devices now
    except ValueError as err:
        assert "4 available" in str(err) and "already started" in str(err), err
    else:
        raise AssertionError("no error")
    lr_b2 = {"learning_rate": [1e-2, 1e-3], "b2": [0.99, 0.999]}
    one = jax.devices()[2:3]  # one device, not the default one
    cases = [  # (optimizer or factory, problem, keyword arguments, device sets)
        # per-seed moments shared by the settings (AdaX's complex state); 70 seeds pad to 64 a device
        (lambda learning_rate: adaptx.adax(learning_rate), Stochastic(),
         dict(seeds=70, grid={"learning_rate": [1e-2, 3e-3]}), [four]),
        # per-seed moments per setting
        (lambda learning_rate, b2: adaptx.adam(learning_rate, b2=b2), Stochastic(),
         dict(seeds=9, grid=lr_b2), [2]),
        # online: the settings are split; AMSGrad's moments are per setting in a grid over b2
        (lambda learning_rate, b2: adaptx.amsgrad(learning_rate, b2=b2), Online(),
         dict(grid={"learning_rate": np.geomspace(1e-3, 1e-1, 35).repeat(2), "b2": [0.99, 0.9] * 35}),
         [4, one]),
    ]
    for opt, problem, kw, device_sets in cases:
        ref = sweep(opt, problem, steps=2000, log_points=20, chunk=700, **kw)
        for devices in device_sets:
            got = sweep(opt, problem, steps=2000, log_points=20, chunk=700, devices=devices, **kw)
            assert np.array_equal(ref.x, got.x), (problem, devices)
            assert np.array_equal(ref.avg_regret, got.avg_regret), (problem, devices)
    print("OK")
    """
)


def test_runs_split_over_devices_give_the_same_bits():
    """In a fresh process, run_devices(4) splits the CPU into 4 devices (and says why it cannot once jax
    has started). A sweep split over 2 or 4 of them, or run on another device than the default one,
    gives the numbers of the one-device sweep to the bit: seeds sharing their moments across settings,
    seeds with moments per setting, and online settings with moments per setting."""
    res = run_python(SPLIT, XLA_FLAGS=None)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("OK")


def test_invalid_devices():
    jax.devices()  # jax has started: run_devices can no longer split the CPU
    opt = adaptx.adam(LR)
    for bad in (0, -1, len(jax.devices()) + 1):
        with pytest.raises(ValueError, match="devices must be between 1"):
            sweep(opt, Online(), steps=10, devices=bad)
    for bad in ("cpu", [jax.devices()[0], jax.devices()[0]], [], [1, 2]):
        with pytest.raises(ValueError, match="devices must be"):
            sweep(opt, Online(), steps=10, devices=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n must be a positive int"):
            run_devices(bad)
    with pytest.raises(ValueError, match="available"):
        run_devices(len(jax.devices()) + 1)


DEVICES = """
import numpy as np
import adaptx
from adaptx.experiments import Online, Stochastic, run, run_devices, sweep
devices = run_devices(4)
opt = adaptx.adam(1e-2, 0.9, 0.99)
one = run(opt, Stochastic(), seeds=[0, 1], steps=600, log_points=6)
four = run(opt, Stochastic(), seeds=[0, 1], steps=600, log_points=6, devices=devices)
assert one.plan.devices is None and four.plan.devices == tuple(devices[:2]), four.plan
assert four.plan.shape == (1, 128), four.plan  # 64 lanes per device
np.testing.assert_array_equal(four.x, one.x)
make = lambda learning_rate: adaptx.adam(learning_rate, 0.9, 0.99)
res = sweep(make, Online(), grid={"learning_rate": [1e-2, 1e-3, 1e-4]}, steps=600, devices=4)
assert res.plan.devices == tuple(devices[:3]), res.plan
print("OK")
"""


def test_devices_beyond_the_runs_are_left_out():
    """Two seeds on four devices run on two of them (a device without a run of its own would only run
    padding: 64 copies of the last seed), three online settings on three; the same numbers as on one."""
    res = run_python(DEVICES, XLA_FLAGS=None)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("OK")
