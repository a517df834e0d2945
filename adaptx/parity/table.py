"""The parity table: every :mod:`adaptx.torch_compat` optimizer against PyTorch, with optax beside it.

Each row runs one PyTorch optimizer once and compares two JAX transformations with it on the same
gradient sequence: the adaptx one and optax's nearest alias, given the same hyperparameters wherever
optax has an argument of the same meaning (learning rate, betas/decay, ε, momentum, weight decay,
initial accumulator), so that what remains of the gap is semantics, not settings.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optax

from adaptx import torch_compat as tc
from adaptx.parity.harness import TOLERANCE, Problem, deviation, make_problem, run_jax, run_torch

#: About 1000 parameters: a matrix, a vector, a 4-d tensor and a scalar.
TABLE_SHAPES = {"matrix": (31, 31), "vector": (30,), "tensor4": (2, 2, 1, 2), "scalar": ()}


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    torch_factory: Callable[[dict], Any]
    adaptx: optax.GradientTransformation
    optax_name: str | None = None
    optax: optax.GradientTransformation | None = None


def rows() -> list[Row]:
    """The optimizers of the table (PyTorch defaults unless a row says otherwise)."""
    import torch

    from adaptx.parity import reference_optimizers as ref

    t = torch.optim
    return [
        Row("sgd(momentum=0.9)", lambda p: t.SGD(p.values(), lr=1.0, momentum=0.9),
            tc.sgd(lr=1.0, momentum=0.9), "optax.sgd", optax.sgd(1.0, momentum=0.9)),
        Row("adam", lambda p: t.Adam(p.values()), tc.adam(), "optax.adam", optax.adam(1e-3)),
        Row("adam(amsgrad=True)", lambda p: t.Adam(p.values(), amsgrad=True), tc.adam(amsgrad=True),
            "optax.amsgrad", optax.amsgrad(1e-3)),
        Row("adamw", lambda p: t.AdamW(p.values()), tc.adamw(), "optax.adamw",
            optax.adamw(1e-3, weight_decay=1e-2)),
        Row("rmsprop", lambda p: t.RMSprop(p.values()), tc.rmsprop(), "optax.rmsprop",
            optax.rmsprop(1e-2, decay=0.99, eps=1e-8)),
        Row("rmsprop(momentum=0.9), cosine lr",
            lambda p: _scheduled(t.RMSprop(p.values(), momentum=0.9)),
            tc.rmsprop(lr=_cosine(1e-2), momentum=0.9), "optax.rmsprop",
            optax.rmsprop(_cosine(1e-2), decay=0.99, eps=1e-8, momentum=0.9)),
        Row("adagrad", lambda p: t.Adagrad(p.values()), tc.adagrad(), "optax.adagrad",
            optax.adagrad(1e-2, initial_accumulator_value=0.0, eps=1e-10)),
        Row("adamax", lambda p: t.Adamax(p.values()), tc.adamax(), "optax.adamax",
            optax.adamax(2e-3, eps=1e-8)),
        Row("nadam", lambda p: t.NAdam(p.values()), tc.nadam(), "optax.nadam", optax.nadam(2e-3)),
        Row("radam", lambda p: t.RAdam(p.values()), tc.radam(), "optax.radam", optax.radam(1e-3)),
        Row("adax (authors')", lambda p: ref.AdaX(p.values()), tc.adax()),
        Row("adaxw (authors')", lambda p: ref.AdaX(p.values(), lr=5e-3, weight_decay=5e-2,
                                                   decoupled=True), tc.adaxw()),
        Row("hf_adamw(weight_decay=0.01)", lambda p: ref.HFAdamW(p.values(), weight_decay=1e-2),
            tc.hf_adamw(weight_decay=1e-2), "optax.adamw",
            optax.adamw(1e-3, eps=1e-6, weight_decay=1e-2)),
        Row("labml_adam(weight_decay=0.01)", lambda p: ref.LabmlAdam(p.values(), weight_decay=1e-2),
            tc.labml_adam(weight_decay=1e-2), "optax.adamw",
            optax.adamw(1e-3, eps=1e-16, weight_decay=1e-2)),
        Row("labml_amsgrad", lambda p: ref.LabmlAdam(p.values(), amsgrad=True), tc.labml_amsgrad(),
            "optax.amsgrad", optax.amsgrad(1e-3, eps=1e-16)),
    ]


STEPS_FOR_SCHEDULE = 1000


def _cosine(lr: float):
    return optax.cosine_decay_schedule(lr, STEPS_FOR_SCHEDULE)


def _scheduled(opt):
    import torch

    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS_FOR_SCHEDULE)


def measure(problem: Problem, dtype: str = "float32") -> list[dict]:
    """Run every row on ``problem``; one dict per row (see :func:`format_table` for the columns)."""
    tol = TOLERANCE[dtype]
    out = []
    for row in rows():
        torch_traj = run_torch(row.torch_factory, problem, dtype)
        res = deviation(torch_traj, run_jax(row.adaptx, problem, dtype), problem, tol)
        entry = {
            "optimizer": row.name, "steps": problem.steps, "movement": res.movement,
            "adaptx_max_rel": res.max_rel_deviation, "adaptx_max_abs": float(np.max(res.max_abs)),
            "adaptx_pass": bool(res.passed), "optax_alias": row.optax_name,
        }
        if row.optax is not None:
            ores = deviation(torch_traj, run_jax(row.optax, problem, dtype), problem, tol)
            entry.update(optax_max_rel=ores.max_rel_deviation, optax_max_abs=float(np.max(ores.max_abs)),
                         optax_pass=bool(ores.passed))
        out.append(entry)
    return out


def format_table(entries: list[dict], tolerance: float) -> str:
    """A markdown table of :func:`measure`'s entries."""
    lines = [
        f"| optimizer | steps | movement | adaptx max rel. dev. | ≤ {tolerance:g} | optax alias "
        "| optax max rel. dev. | optax max abs. dev. |",
        "|---|---:|---:|---:|:---:|---|---:|---:|",
    ]
    for e in entries:
        if e["optax_alias"] is None:
            optax_cols = "— | — | —"
        else:
            optax_cols = (f"`{e['optax_alias']}` | {e['optax_max_rel']:.1e} | {e['optax_max_abs']:.1e}")
        lines.append(
            f"| `{e['optimizer']}` | {e['steps']} | {e['movement']:.2g} | {e['adaptx_max_rel']:.1e} | "
            f"{'pass' if e['adaptx_pass'] else 'FAIL'} | {optax_cols} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m adaptx.parity",
        description="Compare every adaptx.torch_compat optimizer (and optax's nearest alias) with PyTorch.",
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=1e-4, help="gradient scale (default 1e-4)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    problem = make_problem("random", steps=args.steps, scale=args.scale, shapes=TABLE_SHAPES,
                           param_scale=0.1, seed=args.seed)
    entries = measure(problem, args.dtype)
    tol = TOLERANCE[args.dtype]
    print(f"{problem.size} parameters (shapes {TABLE_SHAPES}), random gradients of scale {args.scale:g}, "
          f"{args.steps} steps, {args.dtype}; deviation = max|θ_torch − θ_jax| / max|θ_T − θ_0|")
    print(format_table(entries, tol))
    print(f"({time.perf_counter() - start:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "scale": args.scale, "dtype": args.dtype, "seed": args.seed,
                       "parameters": problem.size, "tolerance": tol, "rows": entries}, f, indent=2)
    return 0 if all(e["adaptx_pass"] for e in entries) else 1
