"""The parity table: every :mod:`adaptx.torch_compat` optimizer against PyTorch, with optax beside it.

Each row runs one PyTorch optimizer once and compares two JAX transformations with it on the same
gradient sequence: the adaptx one and optax's nearest alias, given the same hyperparameters wherever
optax has an argument of the same meaning (learning rate, betas/decay, ε, momentum, weight decay,
initial accumulator), so that what remains of the gap is semantics, not settings.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
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


#: The most steps of the table: the gradients and both trajectories are held in memory (8 bytes x ~1000
#: parameters x steps each).
MAX_STEPS = 100_000


def measure(
    problem: Problem,
    dtype: str = "float32",
    progress: Callable[[str, str], None] | None = None,
) -> list[dict]:
    """Run every row on ``problem``; one dict per row (see :func:`format_table` for the columns).

    ``progress(row_name, phase)`` is called as each row starts its ``"torch"`` run, its ``"jax"`` runs
    (compilation included) and when it is ``"done"``.
    """
    tol = TOLERANCE[dtype]
    out = []
    note = progress if progress is not None else (lambda name, phase: None)
    for row in rows():
        note(row.name, "torch")
        torch_traj = run_torch(row.torch_factory, problem, dtype)
        note(row.name, "jax")
        res = deviation(torch_traj, run_jax(row.adaptx, problem, dtype), problem, tol)
        entry = {
            "optimizer": row.name, "steps": problem.steps, "movement": res.movement,
            "adaptx_max_rel": res.max_rel_deviation, "adaptx_max_abs": float(np.max(res.max_abs)),
            "adaptx_pass": bool(res.passed), "adaptx_verdict": res.verdict, "optax_alias": row.optax_name,
        }
        if row.optax is not None:
            ores = deviation(torch_traj, run_jax(row.optax, problem, dtype), problem, tol)
            entry.update(optax_max_rel=ores.max_rel_deviation, optax_max_abs=float(np.max(ores.max_abs)),
                         optax_pass=bool(ores.passed), optax_verdict=ores.verdict)
        out.append(entry)
        note(row.name, "done")
    return out


def format_table(entries: list[dict], tolerance: float) -> str:
    """A markdown table of :func:`measure`'s entries. The verdict column says ``pass``, ``FAIL`` or
    ``NaN on both sides`` (see :attr:`adaptx.parity.ParityResult.verdict`)."""
    lines = [
        f"| optimizer | steps | movement | adaptx max rel. dev. | ≤ {tolerance:g} | optax alias "
        "| optax max rel. dev. | optax max abs. dev. |",
        "|---|---:|---:|---:|:---:|---|---:|---:|",
    ]
    for e in entries:
        if e["optax_alias"] is None:
            optax_cols = "— | — | —"
        else:
            rel = f"{e['optax_max_rel']:.1e}"
            if e.get("optax_verdict") == "NaN on both sides":
                rel = "NaN on both sides"
            optax_cols = f"`{e['optax_alias']}` | {rel} | {e['optax_max_abs']:.1e}"
        verdict = e.get("adaptx_verdict") or ("pass" if e["adaptx_pass"] else "FAIL")
        lines.append(
            f"| `{e['optimizer']}` | {e['steps']} | {e['movement']:.2g} | {e['adaptx_max_rel']:.1e} | "
            f"{verdict} | {optax_cols} |"
        )
    return "\n".join(lines)


def _json_target(path: str) -> str:
    """Check ``--json PATH`` before anything runs: not a folder, in an existing folder we can write to.
    Returns the absolute path; raises ``ValueError`` with what is wrong."""
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise ValueError(f"--json {path}: is a folder")
    if not os.path.isdir(folder):
        raise ValueError(f"--json {path}: the folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"--json {path}: cannot write there ({err.strerror or err})") from None
    return target


def _write_json(target: str, payload: dict) -> None:
    """``payload`` to ``target`` whole or not at all (a temporary file renamed into place)."""
    import json

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.",
                               suffix=".partial")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class _RowProgress:
    """Progress of the table on stderr: a tqdm bar over the rows on a terminal (the row and its phase,
    the rate and the time left), one line per finished row elsewhere, nothing when ``quiet``."""

    def __init__(self, total: int, quiet: bool, stream: Any = None):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.quiet, self.done = total, quiet, 0
        isatty = getattr(self.stream, "isatty", None)
        self.bar = None
        from adaptx.cli import bar_width, tqdm_class

        tqdm = tqdm_class()
        if not quiet and isatty and isatty() and tqdm is not None:
            self.bar = tqdm(total=total, unit="row", file=self.stream, leave=False, mininterval=0,
                            **bar_width(self.stream))  # rows take seconds: show every change
        self.start = time.perf_counter()

    def __call__(self, name: str, phase: str) -> None:
        if self.quiet:
            return
        if phase != "done":
            what = "PyTorch" if phase == "torch" else "JAX (compiling and running)"
            if self.bar is not None:
                self.bar.set_description_str(f"{name}: {what}")
            return
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        else:
            seconds = time.perf_counter() - self.start
            print(f"[{self.done}/{self.total}] {name} ({seconds:.1f}s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None, prog: str = "python -m adaptx.parity") -> int:
    """The parity table's command line (``python -m adaptx.parity``, ``adaptx parity``; ``prog`` is the
    name in its messages). Returns 0 when every adaptx row passes, 1 otherwise, 2 on a bad command line
    (one line on stderr, before anything runs), 130 when interrupted."""
    from adaptx.cli import HelpFormatter, Parser, integer

    parser = Parser(
        prog=prog,
        description="Compare every adaptx.torch_compat optimizer (and optax's nearest alias) with PyTorch "
        "on the same random gradients: the deviation is max|θ_torch − θ_jax| / max|θ_T − θ_0|, and a row "
        "passes when it stays within the dtype's tolerance at every step.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--steps", type=integer(1, MAX_STEPS), default="1000", metavar="T",
                        help=f"optimizer steps per row (at most {MAX_STEPS:,}; 1e3 and 1_000 are accepted)")
    parser.add_argument("--scale", type=float, default="1e-4",
                        help="scale of the random gradients (nan or inf: how non-finite runs are reported)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="precision of both sides (the tolerance: float32 1e-5, float64 1e-12)")
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default="0", metavar="S",
                        help="seed of the random problem (initial parameters and gradients)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        target = _json_target(args.json) if args.json else None
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    problem = make_problem("random", steps=args.steps, scale=args.scale, shapes=TABLE_SHAPES,
                           param_scale=0.1, seed=args.seed)
    progress = _RowProgress(len(rows()), args.quiet)
    try:
        entries = measure(problem, args.dtype, progress)
    except KeyboardInterrupt:
        progress.close()
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    progress.close()
    tol = TOLERANCE[args.dtype]
    print(f"{problem.size} parameters (shapes {TABLE_SHAPES}), random gradients of scale {args.scale:g}, "
          f"{args.steps} steps, {args.dtype}; deviation = max|θ_torch − θ_jax| / max|θ_T − θ_0|")
    print(format_table(entries, tol))
    print(f"({time.perf_counter() - start:.1f} s)")
    if target:
        payload = {"steps": args.steps, "scale": args.scale, "dtype": args.dtype, "seed": args.seed,
                   "parameters": problem.size, "tolerance": tol, "rows": entries}
        try:
            _write_json(target, payload)
        except OSError as err:
            print(f"{prog}: error: could not write {target}: {err}", file=sys.stderr)
            return 1
        print(f"wrote {target}")
    return 0 if all(e["adaptx_pass"] for e in entries) else 1
