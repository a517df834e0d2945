"""adaptx on sharded parameters: 8 simulated CPU devices, meshes with Explicit and with Auto axes.

In sharded training the optimizer state must live where the parameters live: a moment created on one
device (or replicated) beside a parameter split over a mesh costs memory on every device, forces a
re-layout in every step, and under Explicit sharding is a type error. So, for meshes from
``jax.make_mesh`` with Explicit axis types (jax's default) and with Auto axis types, and for several
optimizers, this module checks that

* ``tx.init(params)`` returns every moment with its parameter's sharding, eagerly and under ``jax.jit``
  (on an Auto mesh, where a traced parameter carries no sharding and no optimizer can see it, under
  ``jax.jit`` with ``out_shardings`` mapped from the parameters by ``optax.tree_utils.tree_map_params``,
  which works only on an optax-shaped state);
* a jitted training step (loss -> ``jax.grad`` -> ``tx.update`` -> ``optax.apply_updates``) and a jitted
  ``lax.scan`` training loop run, and keep the parameters' and the moments' shardings;
* their results equal the same training on one device (tolerance below);
* a sharded Orbax checkpoint restores into a target made from ``jax.eval_shape(tx.init, params)`` with
  the shardings saved, and training continues bit for bit.

The moments are found without relying on the state's layout: the parameters have pairwise different,
non-scalar shapes, so a state leaf whose shape equals a parameter's shape is a moment of that parameter.
(``adaptx.engine.grouped`` keeps stacked moments of other shapes; ``tests/test_engine.py`` covers it.)

The device count must be set (``XLA_FLAGS``) before jax starts, so every check runs in ONE fresh Python
process (process start and compilation are the cost; see ``harness.run_python``), which imports this
module and calls :func:`child_main`; it prints one JSON line of results, and each pytest case reports one.
``optax.adam`` runs every check as a control, and each failure message says how it fared in the same
check, to tell an adaptx defect from a change in jax or in the checks.

Tolerance against one device: the loss is elementwise (each gradient element depends only on its own
parameter) so sharding changes no arithmetic, only how XLA fuses it: a fused multiply-add contracted in
one program but not the other moves a result by an ulp. Each leaf must agree within 4 float32 ulps of its
largest element (observed: identical).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from harness import COMPILER_OPTIONS, run_python

DEVICES = 8
STEPS = 3
MESHES = ("explicit", "auto")
CHECKS = ("init_eager", "init_jit", "step", "scan")
ORBAX = ("adam", "amsgrad")  # sharded checkpoint round trip, on the Explicit mesh
CONTROL = "optax.adam"
ULPS = 4

# name -> expression building the optimizer (evaluated in the child, where jax may start).
OPTIMIZERS = {
    "adam": "adaptx.adam(1e-2)",
    "amsgrad": "adaptx.amsgrad(1e-2)",
    "adax": "adaptx.adax(1e-2, weight_decay=0.1)",
    "torch.rmsprop": "adaptx.torch_compat.rmsprop(lr=1e-2, centered=True, momentum=0.9)",
    CONTROL: "optax.adam(1e-2)",
}
TESTED = [name for name in OPTIMIZERS if name != CONTROL]

# Parameters: pairwise different non-scalar shapes, sharded over both axes, one axis, or replicated.
SHAPES = {"w": (8, 6), "u": (4, 6), "b": (6,), "v": (8,), "r": (3,)}
SPECS = {"w": ("data", "model"), "u": (None, "model"), "b": ("model",), "v": ("data",), "r": ()}


def child_main() -> None:
    """Run every check on 8 simulated devices and print the results as one JSON line."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import orbax.checkpoint as ocp
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import adaptx  # noqa: F401  (the optimizers are built by evaluating OPTIMIZERS' expressions)

    assert len(jax.devices()) == DEVICES, jax.devices()
    results: dict[str, str] = {}

    def record(key: str, fn: Callable[[], None]) -> None:
        try:
            fn()
            results[key] = "ok"
        except Exception as err:  # every failure is reported, in one line each
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            results[key] = f"{type(err).__name__}: {' | '.join(lines[:3])[:400]}"

    def host_params() -> dict:
        rng = np.random.default_rng(0)
        return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}

    def loss(params: dict) -> jax.Array:
        # Elementwise: d/dp = -3 sin(3p) + p, each element from its own parameter only.
        return sum(jnp.sum(jnp.cos(3.0 * p) + 0.5 * p * p) for p in jax.tree.leaves(params))

    # Compile cheaply (see harness.COMPILER_OPTIONS); the same options on one device and on the mesh.
    jit = functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)

    def make_step(tx: optax.GradientTransformation) -> Callable:
        @jit
        def step(params: dict, state: Any) -> tuple[dict, Any]:
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state

        return step

    def make_loop(tx: optax.GradientTransformation) -> Callable:
        @jit
        def loop(params: dict, state: Any) -> tuple[dict, Any]:
            def body(carry: tuple, _: None) -> tuple[tuple, None]:
                params, state = carry
                updates, state = tx.update(jax.grad(loss)(params), state, params)
                return (optax.apply_updates(params, updates), state), None

            return jax.lax.scan(body, (params, state), None, length=STEPS)[0]

        return loop

    def moments(state: Any, params: dict) -> list[tuple[str, Any, Any]]:
        """(parameter name, moment, parameter) for every state leaf shaped like a parameter."""
        by_shape = {p.shape: k for k, p in params.items()}
        out = [(by_shape[x.shape], x, params[by_shape[x.shape]]) for x in jax.tree.leaves(state)
               if x.shape in by_shape]
        assert out, "no state leaf has a parameter's shape"
        return out

    def describe(sharding: Any) -> str:
        return f"spec {sharding.spec}" if isinstance(sharding, NamedSharding) else type(sharding).__name__

    def assert_sharded_like(x: Any, p: Any, what: str) -> None:
        assert x.sharding.is_equivalent_to(p.sharding, p.ndim), (
            f"{what}: {describe(x.sharding)}, the parameter's {describe(p.sharding)}"
        )

    def assert_state_sharded(state: Any, params: dict, what: str) -> None:
        for k, m, p in moments(state, params):
            assert_sharded_like(m, p, f"{what}: moment of {k!r}")

    def assert_close(got: dict, want: dict, what: str) -> None:
        for k in SHAPES:
            g, w = np.asarray(got[k], np.float64), np.asarray(want[k], np.float64)
            tol = ULPS * float(np.finfo(np.float32).eps) * float(np.max(np.abs(w)))
            err = float(np.max(np.abs(g - w)))
            assert err <= tol, f"{what}: {k!r} differs from the one-device run by {err:.3g} > {tol:.3g}"

    def checks(mesh: Any, params: dict, tx: optax.GradientTransformation, ref: Any) -> dict[str, Callable]:
        """The checks of one optimizer on one mesh (``ref``: the one-device results, or their error)."""

        def one_device() -> tuple[dict, dict]:
            if isinstance(ref, Exception):
                raise RuntimeError(f"the one-device run failed: {ref}")
            return ref

        def init_eager() -> None:
            assert_state_sharded(tx.init(params), params, "init")

        def init_jit() -> None:
            if mesh.axis_types[0] == AxisType.Explicit:
                state = jit(tx.init)(params)
            else:
                # On an Auto mesh a traced parameter carries no sharding (its type says P(None, None)), so
                # no init can place its moments under jit: training code passes out_shardings, mapping
                # the parameters' shardings onto the state with optax.tree_utils.tree_map_params. That
                # finds the moments only in an optax-shaped state (trees like the parameters).
                shardings = optax.tree_utils.tree_map_params(
                    tx, lambda _, p: p.sharding, jax.eval_shape(tx.init, params), params,
                    transform_non_params=lambda _: NamedSharding(mesh, P()),
                )
                state = jit(tx.init, out_shardings=shardings)(params)
            assert_state_sharded(state, params, "jit(init)")

        def step() -> None:
            want = one_device()[0]
            p, s, f = params, tx.init(params), make_step(tx)
            for i in range(STEPS):
                p, s = f(p, s)
                for k in SHAPES:
                    assert_sharded_like(p[k], params[k], f"step {i + 1}: parameter {k!r}")
                assert_state_sharded(s, params, f"step {i + 1}")
            assert_close(p, want, "jitted step")

        def scan() -> None:
            want = one_device()[1]
            p, s = make_loop(tx)(params, tx.init(params))
            for k in SHAPES:
                assert_sharded_like(p[k], params[k], f"scan: parameter {k!r}")
            assert_state_sharded(s, params, "scan")
            assert_close(p, want, "scan loop")

        def orbax() -> None:
            f = make_step(tx)
            p, s = f(params, tx.init(params))
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "ckpt")
                checkpointer = ocp.StandardCheckpointer()
                checkpointer.save(path, {"params": p, "opt_state": s})
                checkpointer.wait_until_finished()
                abstract = {"params": jax.eval_shape(lambda: p), "opt_state": jax.eval_shape(tx.init, params)}

                # eval_shape names an abstract mesh; Orbax places the arrays on the real one.
                def on_mesh(a: Any) -> Any:
                    spec = a.sharding.spec if a.sharding is not None else P()
                    return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, spec))

                restored = checkpointer.restore(path, jax.tree.map(on_mesh, abstract))
                checkpointer.close()
            rp, rs = restored["params"], restored["opt_state"]
            for k in SHAPES:
                assert_sharded_like(rp[k], params[k], f"restored parameter {k!r}")
            assert_state_sharded(rs, params, "restored state")
            for a, b in zip(jax.tree.leaves(f(rp, rs)), jax.tree.leaves(f(p, s)), strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg="step after restore")

        return {"init_eager": init_eager, "init_jit": init_jit, "step": step, "scan": scan, "orbax": orbax}

    # One-device references: the same step and loop on unsharded parameters.
    reference: dict[str, Any] = {}
    for name, expr in OPTIMIZERS.items():
        try:
            tx = eval(expr)
            one = jax.device_put(host_params(), jax.devices()[0])
            p, s = one, tx.init(one)
            step = make_step(tx)
            for _ in range(STEPS):
                p, s = step(p, s)
            reference[name] = (p, make_loop(tx)(one, tx.init(one))[0])
        except Exception as err:
            reference[name] = err

    for mesh_kind in MESHES:
        types = None if mesh_kind == "explicit" else (AxisType.Auto, AxisType.Auto)
        mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=types)
        expected_type = AxisType.Explicit if mesh_kind == "explicit" else AxisType.Auto
        assert all(t == expected_type for t in mesh.axis_types), mesh.axis_types
        with jax.set_mesh(mesh):
            shardings = {k: NamedSharding(mesh, P(*spec)) for k, spec in SPECS.items()}
            params = {k: jax.device_put(v, shardings[k]) for k, v in host_params().items()}
            for name, expr in OPTIMIZERS.items():
                fns = checks(mesh, params, eval(expr), reference[name])
                for check in CHECKS:
                    record(f"{mesh_kind}/{name}/{check}", fns[check])
                if mesh_kind == "explicit" and name in (*ORBAX, CONTROL):
                    record(f"{mesh_kind}/{name}/orbax", fns["orbax"])

    print("RESULTS " + json.dumps(results))


@pytest.fixture(scope="module")
def results() -> dict[str, str]:
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {tests_dir!r}); import test_sharding; test_sharding.child_main()"
    res = run_python(code, timeout=400, XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}")
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULTS ")]
    assert res.returncode == 0 and lines, f"the 8-device process failed:\n{res.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULTS "))


def verdict(results: dict[str, str], key: str) -> None:
    """Fail with the child's message for ``key``, and how optax.adam fared in the same check."""
    assert key in results, f"{key}: not run"
    if results[key] != "ok":
        mesh, check = key.split("/")[0], key.rsplit("/", 1)[1]
        control = results.get(f"{mesh}/{CONTROL}/{check}", "not run")
        pytest.fail(f"{key}: {results[key]}  [optax.adam in the same check: {control}]", pytrace=False)


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", TESTED)
@pytest.mark.parametrize("mesh", MESHES)
def test_sharded(results: dict[str, str], mesh: str, name: str, check: str) -> None:
    verdict(results, f"{mesh}/{name}/{check}")


@pytest.mark.parametrize("name", ORBAX)
def test_sharded_orbax_round_trip(results: dict[str, str], name: str) -> None:
    verdict(results, f"explicit/{name}/orbax")


def test_the_checks_pass_for_optax_adam(results: dict[str, str]) -> None:
    # The control: optax.adam passes every check. If it fails, the checks themselves (or jax) changed.
    want = {f"{m}/{CONTROL}/{c}": "ok" for m in MESHES for c in CHECKS}
    want[f"explicit/{CONTROL}/orbax"] = "ok"
    assert {k: results.get(k) for k in want} == want
