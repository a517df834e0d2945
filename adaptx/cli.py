"""The ``adaptx`` command.

``adaptx reddi``: reproduce the AMSGrad paper's synthetic experiments (Reddi, Kale & Kumar, ICLR 2018):
Adam drifts to the worst point of [-1, 1] while AMSGrad and AdaX find the optimum -1. Runs every
optimizer x hyperparameter x seed as one compiled program (:mod:`adaptx.experiments`), prints a summary
table, writes CSV/JSON results and a PNG figure in the style of the paper's Figure 1.

``adaptx parity``: the PyTorch parity table (the same as ``python -m adaptx.parity``).

Examples::

    adaptx reddi                                    # Adam vs AMSGrad vs AdaX, online and stochastic
    adaptx reddi --steps 10000000 --seeds 256       # the paper's 10M steps
    adaptx reddi --setting stochastic --lr 1e-2,1e-3 --b2 0.99,0.999 --schedule inv-sqrt
    adaptx reddi --setting theorem1 --C 3           # Theorem 1: period 3, beta1 = 0, beta2 = 1/(1+C^2)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence

SETTINGS = ("online", "stochastic", "theorem1")


def _floats(text: str) -> list[float]:
    """``"1e-2,1e-3"`` -> ``[0.01, 0.001]`` (argparse type; errors become a clear usage message)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        msg = f"expected a number or comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _names(choices: Sequence[str], what: str):
    def parse(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        if names == ["all"]:
            return list(choices)
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(choices)} (or all)"
            )
        return names

    return parse


def _reddi_parser(sub) -> argparse.ArgumentParser:
    from adaptx.experiments.optimizers import OPTIMIZERS, SCHEDULES

    p = sub.add_parser(
        "reddi",
        help="the AMSGrad paper's synthetic experiments (Adam vs AMSGrad vs AdaX)",
        description=(
            "Reproduce Reddi, Kale & Kumar (ICLR 2018), Section 3: linear losses on [-1, 1] where Adam "
            "converges to the worst point +1. Settings: online (gradient 1010 every 101st step, else -10), "
            "stochastic (1010 with probability p, else -10), theorem1 (C every 3rd step, else -1). "
            "Lists are comma-separated; a list of hyperparameters runs their full grid as one program."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--setting", type=_names(SETTINGS, "setting"), default=["online", "stochastic"],
                   help=f"problems to run: {', '.join(SETTINGS)} or all")
    p.add_argument("--optimizers", type=_names(list(OPTIMIZERS), "optimizer"),
                   default=["adam", "amsgrad", "adax"], help=f"from: {', '.join(OPTIMIZERS)}")
    p.add_argument("--steps", type=_positive_int, default=1_000_000, help="steps T per run")
    p.add_argument("--seeds", type=_positive_int, default=64,
                   help="seeds of the stochastic problem (online problems are deterministic: 1 run)")
    p.add_argument("--seed-start", type=int, default=0, help="first seed (seeds are consecutive ints)")
    p.add_argument("--lr", type=_floats, default=[1e-2], help="step size(s) γ (α for inv-sqrt)")
    p.add_argument("--schedule", choices=list(SCHEDULES), default="constant",
                   help="constant γ, or the theory's α/√t")
    p.add_argument("--b1", type=_floats, default=None, help="β1 (default 0.9; theorem1: 0)")
    p.add_argument("--b2", type=_floats, default=None,
                   help="β2 of Adam/AMSGrad (default 0.99; theorem1: 1/(1+C²))")
    p.add_argument("--adax-b2", type=_floats, default=[1e-4], help="AdaX's β2 (its authors' 1e-4)")
    p.add_argument("--p", type=float, default=0.01, help="stochastic: probability of the big gradient")
    p.add_argument("--C", type=float, default=3.0, help="theorem1: the constant C > 2")
    p.add_argument("--x0", type=float, default=None, help="starting point (default 0; theorem1: 1)")
    p.add_argument("--log-points", type=_positive_int, default=200, help="logged steps per run")
    p.add_argument("--spacing", choices=["log", "linear"], default="log", help="spacing of logged steps")
    p.add_argument("--chunk", type=_positive_int, default=8192, help="steps per compiled call")
    p.add_argument("--devices", type=_positive_int, default=1,
                   help="split the runs over this many devices; with only a CPU, the CPU is split into "
                   "that many jax devices, so that the runs use that many cores (default 1)")
    p.add_argument("--out", default="reddi-results", help="output folder")
    p.add_argument("--format", choices=["csv", "json", "both"], default="both", help="result files")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG figure")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_reddi)
    return p


class _Progress:
    """Progress of the long runs on stderr: one line, rewritten in place on a terminal."""

    def __init__(self, name: str, quiet: bool):
        self.name, self.quiet = name, quiet
        self.start = time.perf_counter()
        self.last = self.start
        self.tty = sys.stderr.isatty()
        self.shown = False
        self.first: tuple[float, int] | None = None  # (time, steps) at the first report: after compiling

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, done)
        if self.quiet or (now - self.last < (0.5 if self.tty else 5.0) and done < total):
            return
        if done >= total and not self.shown:
            return  # short runs print nothing
        self.last = now
        self.shown = True
        elapsed = now - self.start
        t1, d1 = self.first
        rate = (done - d1) / (now - t1) if now > t1 and done > d1 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        line = (
            f"  {self.name}: {100 * done / total:5.1f}%  {done:,}/{total:,} steps  "
            f"{elapsed:5.1f}s  ETA {eta:5.1f}s"
        )
        end = "\r" if self.tty and done < total else "\n"
        print(line.ljust(78), end=end, file=sys.stderr, flush=True)


def _reddi(args: argparse.Namespace) -> int:
    import numpy as np

    from adaptx.experiments import (
        Online,
        Stochastic,
        product_grid,
        report,
        run_devices,
        sweep,
        theorem1,
        theorem1_betas,
    )
    from adaptx.experiments.optimizers import DISPLAY, factory

    try:
        devices = run_devices(args.devices) if args.devices > 1 else None
    except ValueError as err:
        print(f"adaptx reddi: --devices {args.devices}: {err}", file=sys.stderr)
        return 2

    problems = {
        "online": Online(),
        "stochastic": Stochastic(p=args.p),
        "theorem1": theorem1(args.C) if "theorem1" in args.setting else None,
    }
    titles = {
        "online": "online: 1010 if t mod 101 = 1, else -10",
        "stochastic": f"stochastic: 1010 w.p. {args.p:g}, else -10",
        "theorem1": f"Theorem 1: {args.C:g} if t mod 3 = 1, else -1",
    }
    seeds = np.arange(args.seed_start, args.seed_start + args.seeds)
    results = []
    print(
        f"adaptx reddi: {', '.join(args.setting)} x {', '.join(args.optimizers)}; {args.steps:,} steps, "
        f"{args.seeds} seeds (stochastic), {args.schedule} step size",
        file=sys.stderr,
    )
    for setting in args.setting:
        problem = problems[setting]
        b1_default, b2_default = (0.9, 0.99)
        if setting == "theorem1":
            b1_default, b2_default = theorem1_betas(args.C)
        x0 = args.x0 if args.x0 is not None else (1.0 if setting == "theorem1" else 0.0)
        for name in args.optimizers:
            b1 = args.b1 or [b1_default]
            b2 = args.adax_b2 if name == "adax" else (args.b2 or [b2_default])
            grid = product_grid(learning_rate=args.lr, b1=b1, b2=b2)
            label = DISPLAY.get(name, name)
            res = sweep(
                factory(name, args.schedule),
                problem,
                steps=args.steps,
                seeds=seeds if problem.stochastic else seeds[:1],
                grid=grid,
                x0=x0,
                log_points=args.log_points,
                spacing=args.spacing,
                chunk=args.chunk,
                devices=devices,
                label=label,
                progress=_Progress(f"{setting} {label}", args.quiet),
            )
            results.append((setting, res))

    rows = report.summary_rows(results)
    print()
    print(report.format_table(rows))
    print()
    os.makedirs(args.out, exist_ok=True)
    written = []
    if args.format in ("csv", "both"):
        written += report.write_csv(args.out, results)
    if args.format in ("json", "both"):
        config = {k: v for k, v in vars(args).items() if k != "func"}
        written.append(report.write_json(args.out, results, config))
    status = 0
    if not args.no_plot:
        try:
            written.append(
                report.plot(results, os.path.join(args.out, "reddi.png"), log_t=args.spacing == "log",
                            titles=titles)
            )
        except ImportError as err:
            print(f"adaptx reddi: {err}; the figure was not written", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return status


def _parity(args: argparse.Namespace) -> int:
    """``adaptx parity ...`` runs ``python -m adaptx.parity ...`` (:func:`adaptx.parity.table.main`)."""
    try:
        from adaptx.parity.table import main as parity_main
    except ImportError as err:
        print(f"adaptx parity: unavailable ({err})", file=sys.stderr)
        return 2
    try:
        return parity_main(list(args.rest))
    except SystemExit as exit_:  # its argparse: --help or a usage error
        return exit_.code if isinstance(exit_.code, int) else 2


def build_parser() -> argparse.ArgumentParser:
    """The ``adaptx`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="adaptx",
        description="adaptx: composable Adam-family gradient transformations for JAX. Commands: reddi "
        "(the AMSGrad paper's synthetic experiments; see adaptx reddi --help) and parity (the PyTorch "
        "parity table, as python -m adaptx.parity).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{reddi,parity}")
    _reddi_parser(sub)
    par = sub.add_parser("parity", help="PyTorch parity table (python -m adaptx.parity)", add_help=False)
    par.add_argument("rest", nargs=argparse.REMAINDER)
    par.set_defaults(func=_parity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adaptx`` console script. Returns the exit status (0 on success, 2 on bad
    arguments, as argparse does).

    Example:
      >>> from adaptx.cli import main
      >>> main(["reddi", "--steps", "1000", "--seeds", "2", "--out", "/tmp/r", "--no-plot", "--quiet"])
      ... # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["parity"]:  # hand every remaining argument, --help included, to the parity table
        return _parity(argparse.Namespace(command="parity", rest=argv[1:]))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), message already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ValueError as err:  # invalid values caught by the library (e.g. C <= 2, x0 outside [-1, 1])
        print(f"adaptx {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"adaptx {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
