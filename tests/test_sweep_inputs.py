"""adaptx.experiments.sweep's inputs: seeds, hyperparameter grids and sizes are checked or clipped before
anything is compiled.

References: ``jax.random.key`` for the seeds' keys, the bounds of :mod:`adaptx.core.hyperparams` (written
out here as numbers), and runs with the unclipped sizes for the clipped ones.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import adaptx
from adaptx.experiments import (
    RUNNERS,
    GridError,
    Online,
    Stochastic,
    check_grid,
    log_times,
    run,
    sampling,
    sweep,
    theorem1,
)
from adaptx.experiments.contract import prepare
from adaptx.experiments.fast import make_plan, run_fast
from adaptx.experiments.optimizers import factory

ADAM = adaptx.adam(1e-2, 0.9, 0.99)
KW = dict(steps=600, log_points=6)


# ----------------------------------------------------------------------------------------- seeds


def test_seeds_past_2_to_the_32_are_their_own_seeds():
    """Seeds 2**32 and 2**32 + 1 used to draw the big steps of seeds 0 and 1 (their keys were taken
    modulo 2**32); they are distinct seeds now, and the result records them as given."""
    low = run(ADAM, Stochastic(), seeds=[0, 1], **KW)
    high = run(ADAM, Stochastic(), seeds=[2**32, 2**32 + 1], **KW)
    assert high.seeds.tolist() == [2**32, 2**32 + 1]
    for j in range(2):
        assert not np.array_equal(high.x[0, j], low.x[0, j])


def test_seed_keys_are_jax_keys_of_the_whole_seed():
    """The key of seed s is ``jax.random.key(s)`` (threefry), which under x64 holds both 32-bit words of
    a 64-bit seed; keys of distinct seeds differ."""
    seeds = [0, 1, 7, 2**32 - 1, 2**32, 2**32 + 1, 2**63 + 5, 2**64 - 1]
    got = np.asarray(jax.random.key_data(sampling.keys(seeds)))
    with jax.enable_x64(True):
        want = np.stack([
            np.asarray(jax.random.key_data(jax.random.key(np.uint64(s), impl="threefry2x32"))) for s in seeds
        ])
    np.testing.assert_array_equal(got, want)
    assert len({tuple(k) for k in got.tolist()}) == len(seeds)


@pytest.mark.parametrize("seeds", [[-1], [2**64], [0, 2**70], [1.5], ["3"], [[1, 2]]])
def test_seeds_that_would_alias_or_are_not_ints_are_refused(seeds):
    with pytest.raises(ValueError, match="seeds must"):
        run(ADAM, Stochastic(), seeds=seeds, **KW)


# ---------------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize(
    "name, grid, message",
    [
        ("adam", {"learning_rate": [1e-2], "b1": [0.9], "b2": [1.5]}, "b2 must lie in"),
        ("adam", {"learning_rate": [-0.01], "b1": [0.9], "b2": [0.99]}, "learning_rate must lie in"),
        ("adam", {"learning_rate": [1e-2], "b1": [-0.5], "b2": [0.99]}, "b1 must lie in"),
        ("amsgrad", {"learning_rate": [1e-2], "b1": [0.9], "b2": [1.0]}, "b2 must lie in"),
        ("adax", {"learning_rate": [1e-2], "b1": [0.9], "b2": [-1e-4]}, "b2 must lie in"),
        ("adam", {"learning_rate": [np.nan], "b1": [0.9], "b2": [0.99]}, "learning_rate must be finite"),
        ("sgd", {"learning_rate": [-1.0], "b1": [0.9], "b2": [0.0]}, "learning_rate must lie in"),
    ],
)
def test_invalid_grid_values_are_refused_before_compiling(name, grid, message):
    """Grid values are traced inside the sweep, where the constructors cannot check them; the sweep
    checks the concrete values first (the constructors' own bounds: β in [0, 1), γ >= 0, AdaX's β2 > 0).
    A runner calls ``progress(0, steps)`` before it builds anything, so a refused grid never calls it."""
    started = lambda done, total: pytest.fail("a runner started on an invalid grid")  # noqa: E731
    for schedule in ("constant", "inv-sqrt"):
        for runner in RUNNERS:
            with pytest.raises(GridError, match=message):
                sweep(factory(name, schedule), Online(), grid=grid, progress=started, runner=runner, **KW)


def test_a_grid_error_names_the_argument_and_the_setting():
    make = factory("adam")
    with pytest.raises(GridError) as info:
        check_grid(make, {"learning_rate": [1e-2, 1e-3], "b1": [0.9, 0.9], "b2": [0.99, 1.5]})
    assert info.value.reason.startswith("b2 must lie in [0.0, 1.0)")
    assert info.value.setting == {"learning_rate": 1e-3, "b1": 0.9, "b2": 1.5}
    assert "(grid setting learning_rate=0.001, b1=0.9, b2=1.5)" in str(info.value)
    check_grid(make, {"learning_rate": [0.0, 1.0], "b1": [0.0, 0.999], "b2": [0.0, 0.999]})  # the bounds


# ------------------------------------------------------------------------------------------- sizes


def test_log_points_are_clipped_to_the_steps():
    """Asking for 10**6 points of a 50-step run logs what 50 points log (it used to build a 10**6-entry
    table first; 10**9 took 8 GB)."""
    assert log_times(50, 10**6, "linear").tolist() == list(range(1, 51))
    assert log_times(50, 10**6).tolist() == log_times(50, 50).tolist()
    assert set(log_times(50, 10**6).tolist()) <= set(range(1, 51))
    with pytest.raises(ValueError, match="points must be at most"):
        log_times(10**6, 2**20 + 1)


def test_a_chunk_past_the_steps_is_lowered_without_changing_the_numbers():
    """A chunk of 10**9 steps (a 10**9-row mask) for a 600-step run: the run uses a chunk of 8192 and
    gives the numbers of the default chunk."""
    ref = sweep(ADAM, Stochastic(), seeds=[3], runner="fast", **KW)
    big = sweep(ADAM, Stochastic(), seeds=[3], chunk=10**9, runner="fast", **KW)
    assert ref.plan.chunk == big.plan.chunk == 8192
    np.testing.assert_array_equal(big.x, ref.x)
    assert prepare(ADAM, Stochastic(), seeds=[3], chunk=10**9, steps=20_000).chunk == 2**15  # covers 20,000
    assert prepare(ADAM, Stochastic(), seeds=[3], chunk=100, steps=20_000).chunk == 100  # kept


def test_the_fast_path_bounds_the_big_step_mask():
    """A window's mask holds chunk x padded seeds bits: 2**20 seeds lower a chunk of 2**20 steps to
    2**31 / 2**20 = 2048 (256 MiB of mask instead of 128 GiB); few seeds or the online problem keep it."""
    many = prepare(ADAM, Stochastic(), seeds=2**20, chunk=2**20, steps=10**7)
    assert make_plan(many).chunk == 2048
    assert make_plan(prepare(ADAM, Stochastic(), seeds=3, chunk=2**20, steps=10**7)).chunk == 2**20
    assert make_plan(prepare(ADAM, Online(), seeds=2**20, chunk=2**20, steps=10**7)).chunk == 2**20




# ------------------------------------------------------------------------------------- errors


def test_invalid_arguments():
    with pytest.raises(ValueError, match="C"):
        theorem1(2.0)
    with pytest.raises(ValueError, match="big"):
        Online(period=101, big=900.0, small=10.0)
    with pytest.raises(ValueError, match="p"):
        Stochastic(p=1.5)
    opt = adaptx.adam(1e-2)
    with pytest.raises(ValueError, match="x0"):
        run(opt, Online(), steps=10, x0=2.0)
    with pytest.raises(ValueError, match="steps"):
        run(opt, Online(), steps=0)
    with pytest.raises(ValueError, match="same length"):
        sweep(lambda learning_rate, b2: adaptx.adam(learning_rate, b2=b2), Online(), steps=10,
              grid={"learning_rate": [1e-2, 1e-3], "b2": [0.9]})
    with pytest.raises(ValueError, match="spacing"):
        log_times(100, 10, "cubic")


def test_log_times():
    ts = log_times(10_000_000, 200)
    assert ts[0] == 1 and ts[-1] == 10_000_000 and np.all(np.diff(ts) > 0)
    assert log_times(1000, 10, "linear").tolist() == list(range(100, 1001, 100))


def test_a_problem_without_the_problem_members_is_refused():
    """Before anything is traced, with the members named (the runners read all of them)."""

    class NoDescribe:
        x_star, domain, stochastic = -1.0, (-1.0, 1.0), False

        def gradient(self, t, big=None, dtype=np.float32):
            return t * 0.0

    for problem in (object(), NoDescribe()):
        for runner in RUNNERS:
            with pytest.raises(ValueError, match="members of adaptx.experiments.Problem"):
                sweep(ADAM, problem, steps=10, runner=runner)


def test_a_plan_with_a_lowered_chunk_cuts_the_run_at_its_chunk():
    """make_plan lowers the chunk for many seeds (the mask bound above); the run must then be cut at the
    plan's chunk, not the inputs'. It was cut at the inputs' 8192 steps while each window's mask held
    512: big steps past the mask were lost (wrong x, silently). Reference: the same sweep with chunk 512
    asked for, and the default chunk (the numbers do not depend on the cut)."""
    import dataclasses

    inputs = prepare(ADAM, Stochastic(), steps=4096, seeds=8, log_points=3)
    lowered = dataclasses.replace(make_plan(inputs), chunk=512)
    got = run_fast(inputs, plan=lowered)
    ref = sweep(ADAM, Stochastic(), steps=4096, seeds=8, log_points=3, chunk=512, runner="fast")
    default = sweep(ADAM, Stochastic(), steps=4096, seeds=8, log_points=3, runner="fast")
    assert got.plan.chunk == 512
    np.testing.assert_array_equal(got.x, ref.x)
    np.testing.assert_array_equal(got.x, default.x)


def test_a_plan_made_for_other_inputs_is_refused():
    few = prepare(ADAM, Stochastic(), steps=100, seeds=3)
    many = prepare(ADAM, Stochastic(), steps=100, seeds=100)
    with pytest.raises(ValueError, match="was not made for these inputs"):
        run_fast(many, plan=make_plan(few))  # 64 lanes cannot hold 100 seeds
    online = prepare(ADAM, Online(), steps=100)
    with pytest.raises(ValueError, match="was not made for these inputs"):
        run_fast(online, plan=make_plan(few))


@pytest.mark.parametrize("dtype", ["foo", "int32", object])
def test_a_dtype_that_is_not_floating_is_refused(dtype):
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        prepare(ADAM, Online(), steps=10, dtype=dtype)
