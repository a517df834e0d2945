"""How long one optimizer step takes, against optax, torch and the memory-bandwidth floor.

An Adam step reads θ, g, m, v and writes θ, m, v: it is memory bound. This script measures, in one process
and interleaving the contenders (round-robin, so that a slow period of a shared machine hits all alike):

* adaptx ``adam``, ``adamw``, ``amsgrad``, ``adax``, ``adaxw`` (per-leaf, the aliases as shipped);
* the same run by :func:`adaptx.engine.grouped` (stacked (shape, dtype) groups), and ``adamw`` with
  bfloat16 moments (``mu_dtype=nu_dtype=bfloat16``);
* ``carried-*``: the same aliases on parameters carried grouped (:func:`adaptx.engine.group`), so that
  the step takes and returns one array per (shape, dtype) group: the gradient comes grouped, as
  ``jax.grad`` with respect to the groups returns it;
* optax ``adam``, ``adamw``, ``amsgrad`` with the same hyperparameters;
* a *floor*: one jitted, donated kernel over flat buffers holding the same number of parameters that
  reads four arrays and writes three (what an ideal float32 Adam step must move), and the same kernel
  run leaf by leaf over the tree (``floor-per-leaf``: the least a step that returns a pytree can cost
  when the backend runs one kernel per leaf);
* ``pass-through``: a jitted, donated step with the signature of an Adam step over the tree
  (``(params, adam_state, grads) -> (params, adam_state)``) that returns its inputs and computes
  nothing: what the JAX runtime alone costs per call for that many array arguments and results;
* torch ``AdamW`` (``foreach=True`` and ``fused=True``, CPU) for scale.

Every JAX contender is a jitted ``step(params, state, grads) -> (params, state)`` (update, then
``optax.apply_updates``) with params and state donated. Figures per (tree, contender): median and
min-max ms per step, effective GB/s (bytes the algorithm must move / median time), ratio to the floor
and to optax's same algorithm (same process), first-call compile time (``lower().compile()``, timed
apart from execution), and the compiled program's temporary memory and donated (aliased) bytes from its
memory analysis.

Run (from the repository root)::

    .venv/bin/python -m benchmarks.step --quick              # development: ~1-2 min on 2 cores
    .venv/bin/python -m benchmarks.step                      # README figures: ~1 hour on 2 cores
    .venv/bin/python -m benchmarks.step --trees 4.2M/16 --contenders adaptx-adamw,optax-adamw

It prints a table and writes JSON (``--out``, default ``benchmarks/results/step.json``).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptx
from adaptx import engine
from benchmarks import common

LR, B1, B2, EPS, WD = 1e-3, 0.9, 0.999, 1e-8, 1e-4


# ----------------------------------------------------------------------------------------------- trees
def _even(total: int, leaves: int) -> list[tuple[int, ...]]:
    """``leaves`` equal square-ish matrices holding ``total`` parameters in all."""
    n = total // leaves
    rows = 2 ** (int(math.log2(n)) // 2)
    return [(rows, n // rows)] * leaves


def _transformer(layers: int, d: int, vocab: int) -> list[tuple[int, ...]]:
    """The leaves of a GPT-style decoder: embeddings, per layer two LayerNorms, attention and MLP."""
    shapes: list[tuple[int, ...]] = [(vocab, d), (1024, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]  # ln1, qkv, attention out
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln2, MLP
    shapes += [(d,), (d,)]  # final LayerNorm
    return shapes


TREES: dict[str, Callable[[], list[tuple[int, ...]]]] = {
    "16.8M/64": lambda: _even(2**24, 64),
    "4.2M/16": lambda: _even(2**22, 16),
    "4.2M/1024": lambda: _even(2**22, 1024),
    "4.2M/8192": lambda: _even(2**22, 8192),
    "gpt-12x384": lambda: _transformer(12, 384, 8192),
    "gpt-84x64": lambda: _transformer(84, 64, 8192),  # 4.8M parameters in 1012 leaves of 9 shapes
    # smaller trees for --quick
    "4.2M/256": lambda: _even(2**22, 256),
    "gpt-4x256": lambda: _transformer(4, 256, 8192),
}
FULL_TREES = ["16.8M/64", "4.2M/16", "4.2M/1024", "4.2M/8192", "gpt-12x384"]
QUICK_TREES = ["4.2M/16", "4.2M/256", "gpt-4x256"]


def _tree(shapes: list[tuple[int, ...]], seed: int, scale: float) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {
        f"p{i:05d}": jnp.asarray(rng.standard_normal(s, dtype=np.float32) * scale)
        for i, s in enumerate(shapes)
    }


# ------------------------------------------------------------------------------------------ contenders
bf16 = jnp.bfloat16
OPTIMIZERS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "adaptx-adam": lambda: adaptx.adam(LR, B1, B2, EPS),
    "adaptx-adamw": lambda: adaptx.adamw(LR, B1, B2, EPS, weight_decay=WD),
    # optax's amsgrad takes the maximum of the corrected v-hat: compare the same algorithm.
    "adaptx-amsgrad": lambda: adaptx.amsgrad(LR, B1, B2, EPS, max_of="corrected"),
    "adaptx-adax": lambda: adaptx.adax(LR),
    "adaptx-adaxw": lambda: adaptx.adaxw(LR),
    "grouped-adam": lambda: engine.grouped(adaptx.adam(LR, B1, B2, EPS)),
    "grouped-adamw": lambda: engine.grouped(adaptx.adamw(LR, B1, B2, EPS, weight_decay=WD)),
    "grouped-amsgrad": lambda: engine.grouped(adaptx.amsgrad(LR, B1, B2, EPS, max_of="corrected")),
    "grouped-adax": lambda: engine.grouped(adaptx.adax(LR)),
    "grouped-adaxw": lambda: engine.grouped(adaptx.adaxw(LR)),
    "adaptx-adamw-bf16": lambda: adaptx.adamw(
        LR, B1, B2, EPS, weight_decay=WD, mu_dtype=bf16, nu_dtype=bf16
    ),
    "optax-adam": lambda: optax.adam(LR, B1, B2, EPS),
    "optax-adamw": lambda: optax.adamw(LR, B1, B2, EPS, weight_decay=WD),
    "optax-amsgrad": lambda: optax.amsgrad(LR, B1, B2, EPS),
}
# The aliases as shipped, on parameters (and gradients) carried as engine.group(...) buffers.
OPTIMIZERS.update({
    f"carried-{a}": OPTIMIZERS[f"adaptx-{a}"] for a in ("adam", "adamw", "amsgrad", "adax", "adaxw")
})
# Which optax contender runs the same algorithm (for the "vs optax" ratio).
SAME_AS_OPTAX = {
    "adam": "optax-adam", "adamw": "optax-adamw", "amsgrad": "optax-amsgrad", "adamw-bf16": "optax-adamw",
}
TORCH = ["torch-adamw-foreach", "torch-adamw-fused"]
FLOORS = ["floor", "floor-per-leaf", "pass-through"]
# The full run leaves out grouped-* other than grouped-adamw: each compiles ~10 min at 8192 leaves on
# 2 cores (select them with --contenders).
FULL_CONTENDERS = [
    *FLOORS, *(k for k in OPTIMIZERS if not k.startswith("grouped-") or k == "grouped-adamw"), *TORCH,
]
QUICK_CONTENDERS = [
    *FLOORS, "adaptx-adam", "adaptx-adamw", "adaptx-adax", "grouped-adamw", "carried-adamw",
    "adaptx-adamw-bf16", "optax-adam", "optax-adamw", "torch-adamw-fused",
]


def _nbytes(tree: Any) -> int:
    """Bytes of the floating-point arrays of a tree (moments, parameters; not step counters), complex
    ones included."""
    return sum(
        x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)
    )


class Case:
    """One contender on one tree: its compiled step, live buffers and the figures measured for it."""

    def __init__(self, name: str):
        self.name = name
        self.info: dict[str, Any] = {"contender": name}

    def __call__(self) -> None:
        raise NotImplementedError

    def _compile(self, jitted: Any, *args: Any) -> None:
        """Lower and compile ``jitted`` for ``args``; record the time it took and the program's memory."""
        t = time.perf_counter()
        self.compiled = jitted.lower(*args).compile()
        self.info["compile_s"] = time.perf_counter() - t
        self.info.update(_memory(self.compiled))


def _memory(compiled: Any) -> dict[str, Any]:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return {}
    return {
        "temp_mib": m.temp_size_in_bytes / 2**20,
        "aliased_mib": m.alias_size_in_bytes / 2**20,
        "argument_mib": m.argument_size_in_bytes / 2**20,
    }


class JaxCase(Case):
    def __init__(self, name: str, opt: optax.GradientTransformation, params, grads):
        super().__init__(name)

        def step(p, s, g):
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        self.params = jax.tree.map(jnp.copy, params)
        self.state = opt.init(self.params)
        self.grads = grads
        self._compile(jax.jit(step, donate_argnums=(0, 1)), self.params, self.state, grads)
        state_bytes = _nbytes(self.state)
        self.info["state_mib"] = state_bytes / 2**20
        # read θ, g and the state; write θ and the state
        self.info["bytes"] = 2 * _nbytes(params) + _nbytes(grads) + 2 * state_bytes

    def __call__(self) -> None:
        self.params, self.state = self.compiled(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))


class FloorCase(Case):
    """Read four flat float32 buffers, write three: the bytes of an Adam step, nothing per leaf."""

    def __init__(self, n: int):
        super().__init__("floor")

        def kernel(p, m, v, g):
            m = m + g
            v = v + g * g
            return p - m * v, m, v

        self.bufs = [jnp.full((n,), x, jnp.float32) for x in (1.0, 0.0, 0.0)]
        self.g = jnp.full((n,), 1e-6, jnp.float32)
        self._compile(jax.jit(kernel, donate_argnums=(0, 1, 2)), *self.bufs, self.g)
        self.info["bytes"] = 7 * 4 * n
        self.info["state_mib"] = 2 * 4 * n / 2**20

    def __call__(self) -> None:
        self.bufs = list(self.compiled(*self.bufs, self.g))
        jax.block_until_ready(self.bufs)


class LeafFloorCase(Case):
    """The floor kernel applied leaf by leaf: the least any design with one kernel per leaf can cost.

    Every leaf's θ must leave the step as its own array, so per-leaf work cannot be avoided entirely;
    this measures what it costs on the backend (kernel dispatch, compile) with no optimizer arithmetic.
    """

    def __init__(self, shapes: list[tuple[int, ...]]):
        super().__init__("floor-per-leaf")

        def kernel(p, m, v, g):
            m = jax.tree.map(lambda m, g: m + g, m, g)
            v = jax.tree.map(lambda v, g: v + g * g, v, g)
            return jax.tree.map(lambda p, m, v: p - m * v, p, m, v), m, v

        self.bufs = [[jnp.full(s, x, jnp.float32) for s in shapes] for x in (1.0, 0.0, 0.0)]
        self.g = [jnp.full(s, 1e-6, jnp.float32) for s in shapes]
        self._compile(jax.jit(kernel, donate_argnums=(0, 1, 2)), *self.bufs, self.g)
        n = sum(math.prod(s) for s in shapes)
        self.info["bytes"] = 7 * 4 * n
        self.info["state_mib"] = 2 * 4 * n / 2**20

    def __call__(self) -> None:
        self.bufs = list(self.compiled(*self.bufs, self.g))
        jax.block_until_ready(self.bufs)


class PassCase(Case):
    """A step that moves no data: ``(params, state, grads) -> (params, state)`` returned as given.

    Its state is optax's Adam state for the tree (two moment trees and a counter), donated with the
    parameters, and the unused gradients are kept as arguments (``keep_unused=True``), so the compiled call
    takes and returns exactly the arrays a real Adam step does (4n+1 arguments, 3n+1 results for n
    leaves). What it costs is the runtime's work per argument and result (buffer bookkeeping, donation,
    one Python array object per result), which grows with the number of leaves and which no optimizer
    arithmetic can remove. It moves no bytes, so it reports no GB/s.
    """

    def __init__(self, shapes: list[tuple[int, ...]]):
        super().__init__("pass-through")
        self.params = [jnp.full(s, 1.0, jnp.float32) for s in shapes]
        self.state = optax.adam(LR).init(self.params)
        self.g = [jnp.full(s, 1e-6, jnp.float32) for s in shapes]
        step = jax.jit(lambda p, s, g: (p, s), donate_argnums=(0, 1), keep_unused=True)
        self._compile(step, self.params, self.state, self.g)
        n = sum(math.prod(s) for s in shapes)
        self.info["bytes"] = 0
        self.info["state_mib"] = 2 * 4 * n / 2**20

    def __call__(self) -> None:
        self.params, self.state = self.compiled(self.params, self.state, self.g)
        jax.block_until_ready((self.params, self.state))


class TorchCase(Case):
    def __init__(self, name: str, params, grads):
        import torch

        super().__init__(name)
        fused = name.endswith("fused")
        self.params = [torch.tensor(np.asarray(x)) for x in jax.tree.leaves(params)]
        for p, g in zip(self.params, jax.tree.leaves(grads), strict=True):
            p.grad = torch.tensor(np.asarray(g))
        kwargs = {"fused": True} if fused else {"foreach": True}
        self.opt = torch.optim.AdamW(self.params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, **kwargs)
        t = time.perf_counter()
        self.opt.step()  # creates the state
        self.info["compile_s"] = None
        self.info["first_step_s"] = time.perf_counter() - t
        n = sum(p.numel() for p in self.params)
        self.info["state_mib"] = 2 * 4 * n / 2**20
        self.info["bytes"] = 7 * 4 * n

    def __call__(self) -> None:
        self.opt.step()


# ---------------------------------------------------------------------------------------------- driver
def run_tree(tree: str, contenders: list[str], repeats: int, verbose: bool) -> list[dict[str, Any]]:
    shapes = TREES[tree]()
    n = sum(math.prod(s) for s in shapes)
    params = _tree(shapes, 0, 1.0)
    grads = _tree(shapes, 1, 1e-3)
    cases: dict[str, Case] = {}
    for name in contenders:
        print(f"[{tree}] building {name} ...", file=sys.stderr, flush=True)
        if name == "floor":
            case: Case = FloorCase(n)
        elif name == "floor-per-leaf":
            case = LeafFloorCase(shapes)
        elif name == "pass-through":
            case = PassCase(shapes)
        elif name.startswith("torch"):
            case = TorchCase(name, params, grads)
        elif name.startswith("carried-"):  # what a step over parameters kept grouped takes and returns
            grouped_params = engine.group(params)
            grouped_grads = engine.group(grads, like=grouped_params)
            case = JaxCase(name, OPTIMIZERS[name](), grouped_params, grouped_grads)
        else:
            case = JaxCase(name, OPTIMIZERS[name](), params, grads)
        c = case.info.get("compile_s")
        took = "-" if c is None else f"{c:.2f}"
        print(f"[{tree}] {name}: compiled in {took} s", file=sys.stderr, flush=True)
        cases[name] = case
    times = common.interleaved(cases, repeats=repeats, warmup=2, verbose=verbose)
    rows = []
    for name, case in cases.items():
        st = common.stats(times[name])
        row = dict(case.info)
        row.update(
            tree=tree, params=n, leaves=len(shapes), ms=st["median_s"] * 1e3,
            ms_min=st["min_s"] * 1e3, ms_max=st["max_s"] * 1e3, repeats=st["repeats"],
            gbps=case.info["bytes"] / st["median_s"] / 1e9 if case.info["bytes"] else None,
        )
        rows.append(row)
    by = {r["contender"]: r for r in rows}
    for r in rows:
        if "floor" in by:
            r["x_floor"] = r["ms"] / by["floor"]["ms"]
        algo = r["contender"].split("-", 1)[-1]
        ref = SAME_AS_OPTAX.get(algo)
        if r["contender"].startswith(("adaptx-", "grouped-", "carried-")) and ref in by:
            r["x_optax"] = r["ms"] / by[ref]["ms"]
        r["range"] = f"{r['ms_min']:.1f}-{r['ms_max']:.1f}"
    del cases
    gc.collect()
    return rows


COLUMNS = [
    ("tree", "tree", "s"),
    ("contender", "contender", "s"),
    ("ms", "ms/step", ".2f"),
    ("range", "min-max", "s"),
    ("gbps", "GB/s", ".1f"),
    ("x_floor", "x floor", ".2f"),
    ("x_optax", "x optax", ".2f"),
    ("compile_s", "compile s", ".2f"),
    ("temp_mib", "temp MiB", ".1f"),
    ("aliased_mib", "donated MiB", ".1f"),
    ("state_mib", "state MiB", ".1f"),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small trees, fewer contenders and repeats")
    ap.add_argument("--trees", help=f"comma-separated, from {', '.join(TREES)}")
    names = ", ".join([*FLOORS, *OPTIMIZERS, *TORCH])
    ap.add_argument("--contenders", help=f"comma-separated, from {names}")
    ap.add_argument("--repeats", type=int, help="timed steps per contender (interleaved)")
    ap.add_argument("--out", default="benchmarks/results/step.json")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    trees = args.trees.split(",") if args.trees else (QUICK_TREES if args.quick else FULL_TREES)
    default = QUICK_CONTENDERS if args.quick else FULL_CONTENDERS
    contenders = args.contenders.split(",") if args.contenders else default
    unknown = [c for c in contenders if c not in OPTIMIZERS and c not in (*FLOORS, *TORCH)]
    unknown += [t for t in trees if t not in TREES]
    if unknown:
        ap.error(f"unknown: {unknown}")
    repeats = args.repeats or (10 if args.quick else 30)
    rows = []
    started = time.perf_counter()
    for tree in trees:
        rows += run_tree(tree, contenders, repeats, verbose=not args.quiet)
    payload = {
        "machine": common.machine(),
        "command": " ".join(sys.argv),
        "repeats": repeats,
        "wall_s": time.perf_counter() - started,
        "hyperparameters": {"lr": LR, "b1": B1, "b2": B2, "eps": EPS, "weight_decay": WD},
        "rows": rows,
    }
    print(common.table(rows, COLUMNS))
    print(f"\n{payload['machine'].get('cpu', '?')}, {payload['machine'].get('cpu_count')} cores, "
          f"jax {payload['machine'].get('jax')}; wall {payload['wall_s']:.0f} s")
    common.write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
