"""``adaptx parity-run``: cross-check whole training runs on scikit-learn's digits against PyTorch.

Trains an MLP and/or a small conv net with ``torch.optim`` (AdamW + CosineAnnealingLR, Adam(amsgrad=True),
RMSprop(momentum=0.9)) and, from the same weights on the same batches, the same model in Flax NNX with
``adaptx.torch_compat`` and with optax's nearest alias (:func:`adaptx.parity.training.digits_run`); prints
a table of the deviations and writes a figure of both loss curves and the deviation per step.

Wiring (the main ``adaptx`` command hooks it in; ``python -m adaptx.parity.training_cli`` runs it alone)::

    sub = parser.add_subparsers()
    training_cli.register(sub)            # adds "parity-run", with func=training_cli.run
    args = parser.parse_args(["parity-run", "--model", "mlp"])
    sys.exit(args.func(args))

Exit status: 0 when every adaptx run stays within the tolerance, 1 when one parts, 2 when a dependency is
missing (one line on stderr naming what to install).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from adaptx.argtypes import integer, names, positive

NAME = "parity-run"


_count = integer(1, 2**31 - 1)  # steps, batch size, threads
_seed = integer(0, 2**64 - 1)  # what both torch.manual_seed and numpy's default_rng take


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``parity-run``'s options to ``parser`` (used by :func:`register` and :func:`main`).

    Example:
      >>> import argparse
      >>> p = add_arguments(argparse.ArgumentParser())
      >>> a = p.parse_args(["--model", "cnn", "--optimizer", "amsgrad,rmsprop-momentum", "--steps", "50"])
      >>> a.model, a.optimizer, a.steps, a.out
      (['cnn'], ['amsgrad', 'rmsprop-momentum'], 50, 'parity-run.png')
    """
    models = ("mlp", "cnn")
    optimizers = ("adamw-cosine", "amsgrad", "rmsprop-momentum")
    parser.add_argument(
        "--model",
        type=names(models, "model"),
        default=list(models),
        metavar="mlp|cnn|all",
        help="which model(s): the 64-32-10 MLP, the conv net (two 3x3 convs, 8 and 16 channels, "
        "then a dense layer), or all (default: all; a comma-separated list works)",
    )
    parser.add_argument(
        "--optimizer",
        type=names(optimizers, "optimizer"),
        default=list(optimizers),
        metavar="|".join(optimizers) + "|all",
        help="torch optimizer(s): AdamW(lr=3e-3, weight_decay=1e-2) + CosineAnnealingLR("
        "T_max=steps, eta_min=1e-4), Adam(lr=1e-3, amsgrad=True), RMSprop(lr=1e-3, "
        "momentum=0.9); default: all",
    )
    parser.add_argument(
        "--steps",
        type=_count,
        default=300,
        help="optimizer steps, one mini-batch each (default: 300, about 11 epochs)",
    )
    parser.add_argument("--batch-size", type=_count, default=64, help="mini-batch size (default: 64)")
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of torch's initial weights and of the batch order (default: 0)",
    )
    parser.add_argument(
        "--activation",
        choices=("tanh", "relu"),
        default="tanh",
        help="hidden activation (default: tanh; relu runs part at the rounding level, see docs/parity.md)",
    )
    parser.add_argument(
        "--tolerance",
        type=positive,
        default=1e-4,
        help="bound on max|θ_jax − θ_torch| / movement, per parameter (default: 1e-4)",
    )
    parser.add_argument(
        "--no-optax",
        dest="optax",
        action="store_false",
        help="do not run optax's nearest alias beside adaptx",
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="do not run the rounding floor (torch against itself with the rows of each batch permuted)",
    )
    parser.add_argument(
        "--torch-threads",
        type=_count,
        default=1,
        help="torch.set_num_threads during the runs (default: 1; tiny models train faster "
        "on one thread, much faster on a busy machine)",
    )
    parser.add_argument(
        "--out",
        default="parity-run.png",
        metavar="PNG",
        help="figure path (loss curves and deviation per step; default: parity-run.png)",
    )
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="write no figure")
    parser.add_argument("--json", metavar="PATH", help="also write the per-step results as JSON")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    return parser


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``parity-run`` subcommand to an ``argparse`` subparsers object; its ``func`` is :func:`run`.

    Example:
      >>> import argparse
      >>> parser = argparse.ArgumentParser(prog="adaptx")
      >>> _ = register(parser.add_subparsers(dest="command"))
      >>> args = parser.parse_args(["parity-run", "--model", "mlp", "--steps", "300"])
      >>> args.command, args.model, args.func is run
      ('parity-run', ['mlp'], True)
    """
    parser = subparsers.add_parser(
        NAME,
        help="cross-check whole training runs against PyTorch (digits: MLP and conv net, Flax NNX)",
        description=(
            "Train on scikit-learn's digits with torch.optim and, from the same weights on the same batches, "
            "the same model in Flax NNX with adaptx.torch_compat and optax's nearest alias; report per-step "
            "losses, the per-parameter deviation relative to its movement, the first step where a run "
            "parts beyond the tolerance, and write a figure. Needs torch, flax, scikit-learn and matplotlib."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _fmt_parting(res: Any) -> str:
    p = res.first_parting
    if p is None:
        return "—"
    return f"step {p.step} ({p.parameter})"


def table(entries: list[dict], tolerance: float) -> str:
    """A markdown table of :func:`measure`'s entries.

    Example:
      >>> print(table([], 1e-4).splitlines()[0][:40])
      | model | torch optimizer | steps | adap
    """
    lines = [
        f"| model | torch optimizer | steps | adaptx worst rel. dev. (step, parameter) | ≤ {tolerance:g} "
        "| optax alias | optax worst rel. dev. | optax parts at | floor (rows permuted) "
        "| final loss torch / adaptx / optax |",
        "|---|---|---:|---|:---:|---|---:|---|---:|---|",
    ]
    for e in entries:
        a = e["adaptx"]
        o = e.get("optax")
        f = e.get("floor")
        step, name = a.worst_at
        optax_cols = (
            "— | — | —" if o is None else (f"`{e['optax_name']}` | {o.max_rel:.1e} | {_fmt_parting(o)}")
        )
        losses = f"{a.torch_loss[-1]:.4f} / {a.other_loss[-1]:.4f}" + (
            "" if o is None else f" / {o.other_loss[-1]:.4f}"
        )
        lines.append(
            f"| {e['model']} | {e['label']} | {int(a.steps[-1])} | {a.max_rel:.1e} ({step}, {name}) | "
            f"{'pass' if a.passed else 'FAIL at ' + _fmt_parting(a)} | {optax_cols} | "
            f"{'—' if f is None else f'{f.max_rel:.1e}'} | {losses} |"
        )
    return "\n".join(lines)


def measure(args: argparse.Namespace, log: Any = None) -> list[dict]:
    """Run every model × optimizer that ``args`` selects; one dict per run (the results and their labels).

    Example:
      >>> a = add_arguments(argparse.ArgumentParser()).parse_args(
      ...     ["--model", "mlp", "--optimizer", "amsgrad", "--steps", "10", "--no-optax", "--no-floor"])
      >>> [e["adaptx"].passed for e in measure(a)]
      [True]
    """
    from adaptx.parity import training

    entries = []
    for model in args.model:
        for opt in args.optimizer:
            start = time.perf_counter()
            pair, res = training.digits_run(
                model,
                opt,
                steps=args.steps,
                batch_size=args.batch_size,
                seed=args.seed,
                activation=args.activation,
                tolerance=args.tolerance,
                rounding_floor=args.floor,
                with_optax=args.optax,
                torch_threads=args.torch_threads,
            )
            entry = {
                "model": model,
                "optimizer": opt,
                "label": pair.label,
                "adaptx": res["adaptx"],
                "optax_name": pair.optax_name,
                "optax": res.get(pair.optax_name),
                "floor": res.get("torch, rows permuted"),
                "seconds": time.perf_counter() - start,
            }
            entries.append(entry)
            if log is not None:
                log(f"{model} {pair.label} ({entry['seconds']:.1f} s)")
                for r in res.values():
                    log("  " + r.summary().replace("\n", "\n  "))
    return entries


def plot(entries: list[dict], path: str, tolerance: float, title: str = "") -> None:
    """Write the figure: per model, a row of loss curves and a row of the worst deviation per step.

    Columns are the optimizers. Loss: torch (solid), adaptx (dashed), optax (dotted). Deviation: the
    largest relative deviation over the parameters at each step, log scale, with the tolerance.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(e["model"] for e in entries))
    opts = list(dict.fromkeys(e["optimizer"] for e in entries))
    fig, axes = plt.subplots(
        2 * len(models),
        len(opts),
        figsize=(5.2 * len(opts), 3.3 * 2 * len(models)),
        squeeze=False,
        constrained_layout=True,
    )
    names = {"mlp": "MLP 64-32-10", "cnn": "conv net (3x3x8, 3x3x16, dense)"}
    for e in entries:
        i, j = models.index(e["model"]), opts.index(e["optimizer"])
        a, o, f = e["adaptx"], e.get("optax"), e.get("floor")
        steps = np.arange(1, a.torch_loss.size + 1)
        ax = axes[2 * i, j]
        ax.plot(steps, a.torch_loss, color="0.6", lw=3.2, label="torch.optim")
        ax.plot(steps, a.other_loss, color="C0", lw=1.3, ls="--", label="adaptx.torch_compat (NNX)")
        if o is not None:
            ax.plot(steps, o.other_loss, color="C3", lw=1.3, ls=":", label=f"{e['optax_name']} (NNX)")
        ax.set_yscale("log")
        ax.set_title(f"{names.get(e['model'], e['model'])}\n{e['label']}", fontsize=10)
        ax.set_ylabel("training loss (batch)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        ax = axes[2 * i + 1, j]
        if f is not None:
            ax.plot(
                f.steps,
                np.maximum(f.worst, 1e-12),
                color="0.55",
                lw=1.0,
                label="torch, rows permuted, vs torch",
            )
        ax.plot(a.steps, np.maximum(a.worst, 1e-12), color="C0", lw=1.3, label="adaptx vs torch")
        if o is not None:
            ax.plot(
                o.steps, np.maximum(o.worst, 1e-12), color="C3", lw=1.3, label=f"{e['optax_name']} vs torch"
            )
            if o.first_parting is not None:
                ax.axvline(o.first_parting.step, color="C3", lw=0.8, ls=":")
                ax.annotate(
                    f"parts at step {o.first_parting.step}",
                    (o.first_parting.step, tolerance),
                    xytext=(6, 6),
                    textcoords="offset points",
                    color="C3",
                    fontsize=8,
                )
        ax.axhline(tolerance, color="k", lw=0.9, ls="--", label=f"tolerance {tolerance:g}")
        ax.set_yscale("log")
        ax.set_ylim(1e-8, 3.0)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("max over parameters of\nmax|θ_jax − θ_torch| / movement", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7.5, loc="center right", framealpha=0.92)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _versions() -> str:
    import jax
    import optax

    from adaptx.parity import training

    torch = training.require_torch()
    parts = [f"torch {torch.__version__}", f"jax {jax.__version__}", f"optax {optax.__version__}"]
    try:
        import flax

        parts.append(f"flax {flax.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run ``parity-run``; the exit status: 0 pass, 1 an adaptx run parts, 2 a dependency is missing.

    Example:
      >>> import argparse
      >>> a = add_arguments(argparse.ArgumentParser()).parse_args(
      ...     ["--model", "mlp", "--optimizer", "amsgrad", "--steps", "5", "--no-plot", "--quiet",
      ...      "--no-floor", "--no-optax"])
      >>> run(a)  # doctest: +ELLIPSIS
      | model | torch optimizer | steps | ...
      0
    """
    from adaptx.parity import training

    log = None if args.quiet else (lambda s: print(s, flush=True))
    start = time.perf_counter()
    try:
        training.require_torch()
        training._require_demo()
        if args.plot:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise training.MissingDependencyError(
                    "the figure needs matplotlib: pip install 'adaptx[plot]' (or pass --no-plot)"
                ) from None
        entries = measure(args, log)
    except training.MissingDependencyError as err:
        print(f"adaptx {NAME}: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    header = (
        f"digits, batches of {args.batch_size}, {args.steps} steps, float32, {args.activation}, seed "
        f"{args.seed}; {_versions()}; {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{args.torch_threads}; {datetime.date.today().isoformat()}"
    )
    if log is not None:
        print()
        print(header)
    print(table(entries, args.tolerance))
    if log is not None:
        print(f"({elapsed:.1f} s)")
    if args.plot:
        title = f"PyTorch vs JAX (Flax NNX), digits, {args.steps} steps, float32, {args.activation}"
        plot(entries, args.out, args.tolerance, title)
        if log is not None:
            print(f"figure: {args.out}")
    if args.json:
        _write_json(args, entries, header)
    return 0 if all(e["adaptx"].passed for e in entries) else 1


def _write_json(args: argparse.Namespace, entries: list[dict], header: str) -> None:
    def res(r: Any) -> dict | None:
        if r is None:
            return None
        p = r.first_parting
        return {
            "max_rel": r.max_rel,
            "worst_at": list(r.worst_at),
            "passed": r.passed,
            "first_parting": None
            if p is None
            else {"step": p.step, "parameter": p.parameter, "rel": p.rel, "reason": p.reason},
            "worst_per_step": r.worst.tolist(),
            "loss": r.other_loss.tolist(),
            "per_parameter": r.per_parameter(),
        }

    out = {
        "header": header,
        "tolerance": args.tolerance,
        "runs": [
            {
                "model": e["model"],
                "optimizer": e["optimizer"],
                "label": e["label"],
                "torch_loss": e["adaptx"].torch_loss.tolist(),
                "adaptx": res(e["adaptx"]),
                "optax_alias": e["optax_name"],
                "optax": res(e["optax"]),
                "floor": res(e["floor"]),
            }
            for e in entries
        ],
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1, allow_nan=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adaptx.parity.training_cli [options]``: :func:`run` without the main command.

    Example:
      >>> main(["--model", "resnet"])  # an argparse error: usage on stderr, exit status 2
      Traceback (most recent call last):
      SystemExit: 2
    """
    parser = add_arguments(
        argparse.ArgumentParser(prog=f"adaptx {NAME}", description=__doc__.splitlines()[0])
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
