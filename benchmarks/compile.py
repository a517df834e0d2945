"""Compile time of a jitted, donated optimizer step over many leaves: adaptx against optax.

For each algorithm both libraries' steps ``(params, state, grads) -> (params, state)`` are lowered and
compiled from scratch, alternately, ``--repeats`` times; the table gives the minimum of each (compile time
is noisy on a shared machine and only grows with interference) and their ratio.

Run (from the repository root)::

    .venv/bin/python -m benchmarks.compile --leaves 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import adaptx

SCHEDULE = optax.cosine_decay_schedule(1e-3, 1000)
PAIRS = {
    "adam": (lambda: adaptx.adam(1e-3), lambda: optax.adam(1e-3)),
    "adam + cosine schedule": (lambda: adaptx.adam(SCHEDULE), lambda: optax.adam(SCHEDULE)),
    "adamw": (lambda: adaptx.adamw(1e-3), lambda: optax.adamw(1e-3)),
    "amsgrad": (lambda: adaptx.amsgrad(1e-3), lambda: optax.amsgrad(1e-3)),
}


def compile_seconds(tx: optax.GradientTransformation, params: dict) -> float:
    """Seconds to lower and compile one donated step of ``tx`` over ``params``."""
    state = tx.init(params)

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    start = time.perf_counter()
    jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=1024, help="number of parameter leaves (64 floats each)")
    ap.add_argument("--repeats", type=int, default=3, help="compilations per library and algorithm")
    args = ap.parse_args()
    params = {f"p{i}": jnp.zeros((64,), jnp.float32) for i in range(args.leaves)}
    print(f"{'algorithm':<24} {'adaptx s':>9} {'optax s':>8} {'ratio':>6}")
    for name, (ours, theirs) in PAIRS.items():
        a, o = [], []
        for _ in range(args.repeats):
            a.append(compile_seconds(ours(), params))
            o.append(compile_seconds(theirs(), params))
        print(f"{name:<24} {min(a):9.2f} {min(o):8.2f} {min(a) / min(o):6.2f}", flush=True)


if __name__ == "__main__":
    main()
