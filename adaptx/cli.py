"""The ``adaptx`` command (also ``python -m adaptx``).

``adaptx reddi``: reproduce the AMSGrad paper's synthetic experiments (Reddi, Kale & Kumar, ICLR 2018):
Adam drifts to the worst point of [-1, 1] while AMSGrad and AdaX find the optimum -1. Runs every
optimizer x hyperparameter x seed as one compiled program (:mod:`adaptx.experiments`), prints a summary
table, writes CSV/JSON results and a PNG figure in the style of the paper's Figure 1.

``adaptx parity``: the PyTorch parity table (the same as ``python -m adaptx.parity``).

Everything the command line is given is checked before anything is computed: numbers and sizes,
hyperparameters (with the checks of the optimizers' constructors, :func:`adaptx.experiments.check_grid`),
and the output folder (creatable, writable, not a file, and without the results of an earlier run unless
``--force``). A bad argument ends the command at once with one line on stderr and exit status 2.

Results go to the folder ``--out`` (default ``reddi-results``), printed at the start and at the end. The
files of a run (:data:`adaptx.experiments.report.RESULT_FILES`) are written under temporary names and
renamed into place together, so an interrupted or failed run leaves the folder's earlier results whole.

Compilation cache: the compiled programs are kept in jax's persistent compilation cache, in
``$XDG_CACHE_HOME/adaptx/jax`` (by default ``~/.cache/adaptx/jax``; ``ADAPTX_CACHE_DIR`` names another
folder), so that a second run with the same sizes starts at once. ``--no-compile-cache`` or
``ADAPTX_COMPILE_CACHE=0`` turns it off; a cache folder set for jax itself (``JAX_COMPILATION_CACHE_DIR``)
is used as it is.

Examples::

    adaptx reddi                                    # Adam vs AMSGrad vs AdaX, online and stochastic
    adaptx reddi --steps 1e7 --seeds 256 --force    # the paper's 10M steps, replacing earlier results
    adaptx reddi --setting stochastic --lr 1e-2,1e-3 --b2 0.99,0.999 --schedule inv-sqrt
    adaptx reddi --setting theorem1 --C 3           # Theorem 1: period 3, beta1 = 0, beta2 = 1/(1+C^2)
    adaptx reddi --schedule inv-sqrt                # the paper's Figure 1: alpha/sqrt(t), alpha = 0.5
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from adaptx.argtypes import finite, floats, integer, names

#: The default output folder of ``adaptx reddi``.
RESULTS_DIR = "reddi-results"

#: The default α of ``--schedule inv-sqrt`` (α/√t): with it, 10^6 steps give the picture of the paper's
#: Figure 1 (online: AMSGrad's x_t reaches -1 and R_t/t falls towards 0 while Adam's x_t goes to +1).
FIGURE1_ALPHA = 0.5

# Bounds on sizes, so that an absurd value is refused at once rather than failing after minutes or
# allocating tens of GB: seeds per stochastic sweep, settings per optimizer's grid, logged values (runs x
# logged points, summed over the sweeps: each is kept in memory and written to results.json), devices.
MAX_SEEDS = 2**20
MAX_SETTINGS = 2**16
MAX_LOGGED = 2**24
MAX_DEVICES = 1024

#: Environment variables of the compilation cache (see the module docstring).
CACHE_ENV, CACHE_DIR_ENV = "ADAPTX_COMPILE_CACHE", "ADAPTX_CACHE_DIR"


class UsageError(Exception):
    """A bad command line: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``PROG: error: MESSAGE (see PROG --help)``, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default once, as one would type it, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or isinstance(default, bool)
            or default is argparse.SUPPRESS
            or "default" in text
        ):
            return text
        return f"{text} (default: %(default)s)"


# ----------------------------------------------------------------------------------------- parsers


def _reddi_parser(sub: Any, prog: str) -> argparse.ArgumentParser:
    import textwrap

    from adaptx.experiments.contract import MAX_LOG_POINTS, MAX_STEPS
    from adaptx.experiments.optimizers import OPTIMIZERS, SCHEDULES
    from adaptx.experiments.settings import SETTINGS

    listed = "; ".join(f"{s.name} ({s.summary})" for s in SETTINGS.values())
    settings_text = "\n".join(textwrap.wrap(f"Settings: {listed}.", 96))
    theorems = " and ".join(s.name for s in SETTINGS.values() if s.theorem)

    p = sub.add_parser(
        "reddi",
        prog=f"{prog} reddi",
        help="the AMSGrad paper's synthetic experiments (Adam vs AMSGrad vs AdaX)",
        description=(
            "Reproduce Reddi, Kale & Kumar (ICLR 2018), Section 3: linear losses on [-1, 1] where Adam\n"
            f"converges to the worst point +1.\n{settings_text}\n"
            "Lists are comma-separated; a list of hyperparameters runs their full grid as one program.\n\n"
            f"Results (summary.csv, curves.csv, results.json, reddi.png) go to --out, by default\n"
            f"./{RESULTS_DIR}; a folder holding an earlier run's results is replaced only with --force.\n"
            "Counts accept 1e6 and 1_000_000.\n\n"
            "The paper's Figure 1 (AMSGrad's R_t/t going to 0 and x_t to -1, Adam's x_t to +1):\n"
            f"--schedule inv-sqrt, the theory's step size alpha/sqrt(t) with alpha = {FIGURE1_ALPHA:g}. The\n"
            "default constant step size 1e-2 shows the same ordering, with average regrets that level\n"
            "off instead of going to 0."
        ),
        epilog=(
            "examples:\n"
            f"  {prog} reddi --steps 1e5 --seeds 16\n"
            f"  {prog} reddi --schedule inv-sqrt            # the paper's Figure 1\n"
            f"  {prog} reddi --steps 1e7 --seeds 256 --force\n"
            f"  {prog} reddi --setting stochastic --lr 1e-2,1e-3 --b2 0.99,0.999 --schedule inv-sqrt\n"
            f"  {prog} reddi --setting theorem1 --C 3 --schedule inv-sqrt --lr 0.5\n"
            "compiled programs are cached in ~/.cache/adaptx/jax ($XDG_CACHE_HOME, or $ADAPTX_CACHE_DIR);\n"
            "--no-compile-cache or ADAPTX_COMPILE_CACHE=0 turns that off."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--setting", type=names(list(SETTINGS), "setting"), default="online,stochastic",
                   metavar="NAMES", help=f"problems to run: {', '.join(SETTINGS)} or all")
    p.add_argument("--optimizers", type=names(list(OPTIMIZERS), "optimizer"), default="adam,amsgrad,adax",
                   metavar="NAMES", help=f"optimizers to compare: {', '.join(OPTIMIZERS)} or all")
    p.add_argument("--steps", type=integer(1, MAX_STEPS), default="1e6", metavar="T",
                   help=f"steps T of every run (at most {MAX_STEPS:,})")
    p.add_argument("--seeds", type=integer(1, MAX_SEEDS), default="64", metavar="N",
                   help="seeds of the stochastic problem (the online ones are deterministic: one run each)")
    p.add_argument("--seed-start", type=integer(0, 2**64 - 1), default="0", metavar="S",
                   help="first seed; the seeds are S, S+1, ..., each below 2**64")
    p.add_argument("--lr", type=floats, default=None, metavar="LIST",
                   help="step size(s): γ, or α of the inv-sqrt schedule (default: 1e-2; with --schedule "
                   f"inv-sqrt: {FIGURE1_ALPHA:g}, the paper's Figure 1)")
    p.add_argument("--schedule", choices=list(SCHEDULES), default="constant",
                   help="constant step size γ, or the theory's α/√t (the paper's Figure 1)")
    p.add_argument("--b1", type=floats, default=None, metavar="LIST",
                   help=f"β1 (default: 0.9; for {theorems}: 0)")
    p.add_argument("--b2", type=floats, default=None, metavar="LIST",
                   help=f"β2 of Adam and AMSGrad (default: 0.99; for {theorems}: 1/(1+C²))")
    p.add_argument("--adax-b2", type=floats, default="1e-4", metavar="LIST",
                   help="AdaX's β2, its growth rate (its authors' value)")
    p.add_argument("--p", type=finite, default="0.01", help="stochastic: probability of the big gradient")
    p.add_argument("--C", type=finite, default="3",
                   help="theorem1: the constant C > 2; theorem3: the constant C > 1")
    p.add_argument("--delta", type=finite, default="0.1",
                   help="theorem3: the expected gradient δ in (0, C - 1)")
    p.add_argument("--x0", type=finite, default=None,
                   help=f"starting point (default: 0; for {theorems}: 1)")
    p.add_argument("--log-points", type=integer(1, MAX_LOG_POINTS), default="200", metavar="N",
                   help="logged steps per run (at most the number of steps)")
    p.add_argument("--spacing", choices=["log", "linear"], default="log", help="spacing of the logged steps")
    p.add_argument("--chunk", type=integer(1, MAX_STEPS), default="8192", metavar="N",
                   help="steps per compiled call; changes memory, not results (lowered to what the steps "
                   "and seeds need)")
    p.add_argument("--devices", type=integer(1, MAX_DEVICES), default="1", metavar="N",
                   help="split the runs over N devices (at most the number of runs); with only a CPU, the "
                   "CPU is split into N jax devices, so that the runs use N cores")
    p.add_argument("--out", default=RESULTS_DIR, metavar="FOLDER", help="output folder")
    p.add_argument("--force", action="store_true",
                   help="replace the results of an earlier run in the output folder")
    p.add_argument("--format", choices=["csv", "json", "both"], default="both", help="result files")
    p.add_argument("--no-plot", action="store_true", help="do not write the figure reddi.png")
    p.add_argument("--no-compile-cache", action="store_true",
                   help="do not use the persistent compilation cache (see below)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_reddi)
    return p


def build_parser(prog: str = "adaptx") -> argparse.ArgumentParser:
    """The ``adaptx`` argument parser with its subcommands (``prog``: the program name in messages)."""
    from adaptx import __version__

    parser = Parser(
        prog=prog,
        description="adaptx: composable Adam-family gradient transformations for JAX.",
        epilog=f"see '{prog} reddi --help', '{prog} parity --help' and '{prog} parity-run --help'",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"adaptx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{reddi,parity,parity-run}")
    _reddi_parser(sub, prog)
    sub.add_parser("parity", help="the PyTorch parity table (as python -m adaptx.parity)", add_help=False)
    from adaptx.parity import training_cli  # imports torch only when run

    training_cli.register(sub)
    return parser


# ------------------------------------------------------------------------------------- reddi: checks


def _constants(args: argparse.Namespace) -> Any:
    from adaptx.experiments.settings import Constants

    return Constants(p=args.p, C=args.C, delta=args.delta)


def _problem_runs(args: argparse.Namespace) -> dict[str, Any]:
    """The problems of the chosen settings (their constructors check --p, --C and --delta)."""
    from adaptx.experiments.settings import SETTINGS

    constants = _constants(args)
    return {setting: SETTINGS[setting].problem(constants) for setting in args.setting}


def _grids(args: argparse.Namespace) -> list[tuple[str, str, dict[str, list[float]], float]]:
    """``(setting, optimizer, hyperparameter lists, x0)`` of every sweep, in the order they run."""
    from adaptx.experiments.settings import SETTINGS

    constants, out = _constants(args), []
    for setting in args.setting:
        for name in args.optimizers:
            b1_default, b2_default, x0_default = SETTINGS[setting].defaults(name, constants)
            b2 = args.adax_b2 if name == "adax" else (args.b2 or [b2_default])
            lists = {"learning_rate": args.lr, "b1": args.b1 or [b1_default], "b2": b2}
            out.append((setting, name, lists, x0_default if args.x0 is None else args.x0))
    return out


def _check_hyperparameters(args: argparse.Namespace, grids: list, problems: dict[str, Any]) -> None:
    """Every value of --lr, --b1, --b2 and --adax-b2, with the checks of the optimizers' constructors
    (:func:`adaptx.experiments.check_grid`), one flag at a time so that the error names the flag; and
    --x0 against each problem's ``domain``."""
    from adaptx.experiments import check_grid
    from adaptx.experiments.optimizers import factory
    from adaptx.experiments.settings import SETTINGS

    flags, constants = {"learning_rate": "--lr", "b1": "--b1"}, _constants(args)
    for setting, name, lists, x0 in grids:
        low, high = problems[setting].domain
        if not low <= x0 <= high:
            raise UsageError(f"--x0 {x0:g}: x0 must lie in [{low:g}, {high:g}]")
        make = factory(name, args.schedule)
        b1_default, b2_default, _ = SETTINGS[setting].defaults(name, constants)
        base = {"learning_rate": 1e-2, "b1": b1_default, "b2": b2_default}
        for key, values in lists.items():
            flag = flags.get(key) or ("--adax-b2" if name == "adax" else "--b2")
            for value in values:
                try:
                    check_grid(make, {**base, key: [value]})
                except ValueError as err:
                    raise UsageError(f"{flag} {value:g}: {getattr(err, 'reason', err)}") from None
        try:
            check_grid(make, _product(lists))
        except ValueError as err:
            raise UsageError(f"{setting} {name}: {err}") from None


def _product(lists: dict[str, list[float]]) -> dict[str, Any]:
    from adaptx.experiments import product_grid

    return product_grid(**lists)


def _check_sizes(args: argparse.Namespace, problems: dict, grids: list) -> tuple[int, Any]:
    """Check the sizes of the whole job; returns the number of devices to use (clipped to what the job
    needs) and the seeds. (The sweep lowers a chunk past what the steps and seeds need itself.)"""
    import numpy as np

    from adaptx.experiments import log_times

    if args.seed_start + args.seeds > 2**64:
        raise UsageError(f"--seed-start {args.seed_start} --seeds {args.seeds}: seeds must stay below 2**64")
    dtype = np.int64 if args.seed_start + args.seeds <= 2**63 else np.uint64
    seeds = np.arange(args.seed_start, args.seed_start + args.seeds, dtype=dtype)
    points = log_times(args.steps, args.log_points, args.spacing).size
    logged, most_runs = 0, 1
    for setting, _, lists, _ in grids:
        settings = math.prod(len(v) for v in lists.values())
        if settings > MAX_SETTINGS:
            raise UsageError(f"{setting}: a grid of {settings:,} settings, more than {MAX_SETTINGS:,}")
        stochastic = problems[setting].stochastic
        logged += settings * (args.seeds if stochastic else 1) * points
        most_runs = max(most_runs, args.seeds if stochastic else settings)
    if logged > MAX_LOGGED:
        raise UsageError(
            f"this job would log {logged:,} values of x_t and of R_t/t (runs x {points:,} logged points), "
            f"more than {MAX_LOGGED:,}; lower --log-points, --seeds or the grid"
        )
    return min(args.devices, most_runs), seeds


def _prepare_out(path: str, force: bool) -> tuple[str, list[str]]:
    """Check the output folder before any computation and create it: not a file, creatable, writable,
    and holding no earlier results unless ``force``. Returns its absolute path and the folders created
    (removed again, if still empty, when the command fails)."""
    from adaptx.experiments.report import RESULT_FILES

    folder = os.path.abspath(path)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"--out {path}: exists and is not a folder")
    if os.path.isdir(folder) and not force:
        present = [n for n in RESULT_FILES if os.path.exists(os.path.join(folder, n))]
        if present:
            raise UsageError(
                f"--out {path} holds the results of an earlier run ({', '.join(present)}); add --force to "
                "replace them, or choose another --out"
            )
    missing, parent = [], folder
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        missing.append(parent)
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"--out {path}: {parent} is not a folder")
    created: list[str] = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        _remove_empty(created)
        raise UsageError(f"--out {path}: cannot write there ({err.strerror or err})") from None
    return folder, created


def _remove_empty(folders: list[str]) -> None:
    for d in reversed(folders):
        try:
            os.rmdir(d)
        except OSError:
            return


def use_compile_cache(enabled: bool = True) -> str | None:
    """Turn on jax's persistent compilation cache for this process, in ``$ADAPTX_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/adaptx/jax`` (``~/.cache/adaptx/jax``), and return its folder; ``None`` when
    turned off (``enabled`` false, or ``ADAPTX_COMPILE_CACHE=0``) or when the folder cannot be made.
    A cache folder already set for jax (``JAX_COMPILATION_CACHE_DIR``) is kept. Only the ``adaptx``
    command calls this: importing adaptx changes no jax setting."""
    if not enabled or os.environ.get(CACHE_ENV, "").strip().lower() in ("0", "off", "no", "false"):
        return None
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.environ.get(CACHE_DIR_ENV) or os.path.join(base, "adaptx", "jax")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    # the sweeps' programs compile in 0.3-5 s; the small ones are not worth a file
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_compilation_cache_max_size", 512 * 2**20)  # least recently used go first
    return folder


# ----------------------------------------------------------------------------------- reddi: progress


def tqdm_class() -> Any:
    """tqdm's progress bar class, or ``None`` without tqdm (progress then comes as one line per finished
    sweep or row, as on a log file)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def bar_width(stream: Any) -> dict[str, Any]:
    """tqdm's size options for ``stream``: follow the terminal's size, or take 80 x 24 when the terminal
    reports none (a pseudo-terminal of size 0 x 0, where tqdm would hide its bar: empty lines)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        size = os.terminal_size((0, 0))
    return {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else {"ncols": 80, "nrows": 24}


class Progress:
    """Progress of the sweeps on stderr.

    On a terminal: a tqdm bar per sweep, named "compiling ..." while its program compiles, then with the
    steps done, their rate and the time left. Elsewhere (a log file, a pipe): one line per finished
    sweep. ``quiet``: nothing.
    """

    def __init__(self, quiet: bool, total: int, stream: Any = None):
        self.stream = sys.stderr if stream is None else stream
        self.quiet, self.total, self.count = quiet, total, 0
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) and tqdm_class() is not None

    def sweep(self, name: str, runs: str) -> Callable[[int, int], None]:
        """The ``progress`` callback of one sweep (:func:`adaptx.experiments.sweep`)."""
        self.count += 1
        label = f"[{self.count}/{self.total}] {name}"
        state: dict[str, Any] = {"bar": None, "start": None, "compiled": None}

        def report(done: int, steps: int) -> None:
            if self.quiet:
                return
            now = time.perf_counter()
            bar = state["bar"]
            if state["start"] is None:
                state["start"] = now
                if self.tty:
                    tqdm = tqdm_class()
                    state["bar"] = tqdm(total=steps, desc=f"{label}: compiling", unit="step", unit_scale=True,
                                        file=self.stream, leave=True, **bar_width(self.stream))
                return
            if state["compiled"] is None:
                state["compiled"] = now - state["start"]
                if bar is not None:
                    bar.set_description_str(label)
                    bar.reset(total=steps)  # the rate and the time left count the steps, not compiling
                    bar.set_postfix_str(f"compiled in {state['compiled']:.1f}s", refresh=False)
            if bar is not None:
                bar.update(done - bar.n)
                if done >= steps:
                    bar.close()
            elif done >= steps:
                seconds = now - state["start"]
                print(f"{label}: {steps:,} steps x {runs} in {seconds:.1f}s "
                      f"(compiling {state['compiled']:.1f}s)", file=self.stream, flush=True)

        return report


# ------------------------------------------------------------------------------------- reddi: the job


def _reddi(args: argparse.Namespace) -> int:
    if args.lr is None:  # recorded in results.json as used
        args.lr = [FIGURE1_ALPHA if args.schedule == "inv-sqrt" else 1e-2]
    problems = _problem_runs(args)
    grids = _grids(args)
    devices_n, seeds = _check_sizes(args, problems, grids)
    _check_hyperparameters(args, grids, problems)
    folder, created = _prepare_out(args.out, args.force)
    try:
        return _run_reddi(args, problems, grids, devices_n, seeds, folder)
    except BaseException:
        _remove_empty(created)
        raise


def _run_reddi(args, problems, grids, devices_n, seeds, folder) -> int:
    from adaptx.experiments import report, run_devices, sweep
    from adaptx.experiments.optimizers import DISPLAY, factory
    from adaptx.experiments.settings import SETTINGS

    err = sys.stderr
    if devices_n < args.devices:
        print(f"adaptx reddi: --devices {args.devices}: using {devices_n}, the most runs of any sweep",
              file=err)
    try:
        devices = run_devices(devices_n) if devices_n > 1 else None  # before jax starts: may split the CPU
    except ValueError as error:
        raise UsageError(f"--devices {args.devices}: {error}") from None
    use_compile_cache(not args.no_compile_cache)
    kinds = {s: problems[s].stochastic for s in args.setting}
    runs_text = []
    if any(kinds.values()):
        runs_text.append(f"{args.seeds:,} seed{'s' * (args.seeds > 1)} for "
                         + ", ".join(s for s, k in kinds.items() if k))
    if not all(kinds.values()):
        deterministic = ", ".join(s for s, k in kinds.items() if not k)
        runs_text.append(f"one run for {deterministic} (deterministic)")
    if not args.quiet:
        print(f"adaptx reddi: {', '.join(args.setting)} x {', '.join(args.optimizers)}; "
              f"{args.steps:,} steps; {'; '.join(runs_text)}; {args.schedule} step size", file=err)
        print(f"adaptx reddi: results will go to {folder}{os.sep}", file=err)
    titles = {setting: SETTINGS[setting].title(problem) for setting, problem in problems.items()}
    if not args.no_plot:
        report.preload_plotting()
    progress = Progress(args.quiet, len(grids))
    results = []
    for setting, name, lists, x0 in grids:
        problem = problems[setting]
        label = DISPLAY.get(name, name)
        settings = math.prod(len(v) for v in lists.values())
        runs = (f"{args.seeds:,} seeds" if problem.stochastic else "1 run") + (
            f" x {settings} settings" if settings > 1 else "")
        res = sweep(
            factory(name, args.schedule),
            problem,
            steps=args.steps,
            seeds=seeds if problem.stochastic else seeds[:1],
            grid=_product(lists),
            x0=x0,
            log_points=args.log_points,
            spacing=args.spacing,
            chunk=args.chunk,
            devices=devices,
            label=label,
            progress=progress.sweep(f"{setting} {label}", runs),
        )
        results.append((setting, res))

    rows = report.summary_rows(results)
    print()
    print(report.format_table(rows))
    print()
    config = {k: v for k, v in vars(args).items() if k != "func"}
    kw = dict(csv_files=args.format in ("csv", "both"), json_file=args.format in ("json", "both"),
              titles=titles, log_t=args.spacing == "log")
    try:
        written = report.write_results(folder, results, config, figure=not args.no_plot, **kw)
    except ImportError as err_:
        print(f"adaptx reddi: {err_}; the figure was not written", file=err)
        written = report.write_results(folder, results, config, figure=False, **kw)
    except OSError as err_:
        print(f"adaptx reddi: error: could not write the results to {folder}: {err_}", file=err)
        return 1
    names = ", ".join(os.path.basename(p) for p in written)
    print(f"results in {folder}{os.sep}: {names}")
    return 0


# ------------------------------------------------------------------------------------------- main


def _parity(rest: list[str], prog: str) -> int:
    """``adaptx parity ...``: :func:`adaptx.parity.table.main` with the remaining arguments."""
    if not any(a in ("-h", "--help") for a in rest):
        try:
            import torch  # noqa: F401  (the table runs PyTorch beside adaptx)
        except ImportError:
            print(f"{prog} parity: error: PyTorch is not installed; the parity table needs it: "
                  "pip install 'adaptx[parity]'", file=sys.stderr)
            return 2
    try:
        from adaptx.parity.table import main as parity_main
    except ImportError as err:
        print(f"{prog} parity: unavailable ({err})", file=sys.stderr)
        return 2
    try:
        return parity_main(rest, prog=f"{prog} parity")
    except SystemExit as exit_:  # its argparse: --help or a usage error
        return exit_.code if isinstance(exit_.code, int) else 2


def main(argv: Sequence[str] | None = None, prog: str = "adaptx") -> int:
    """Entry point of the ``adaptx`` console script (and of ``python -m adaptx``). Returns the exit
    status: 0 on success, 2 on a bad command line (one line on stderr, before any computation), 1 when
    the results cannot be written, 130 when interrupted.

    Example:
      >>> from adaptx.cli import main
      >>> main(["reddi", "--steps", "1000", "--seeds", "2", "--out", "/tmp/r", "--no-plot", "--quiet"])
      ... # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["parity"]:  # hand every remaining argument, --help included, to the parity table
        return _parity(argv[1:], prog)
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help or --version (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    where = f"{prog} {args.command}"
    try:
        return args.func(args)
    except UsageError as err:
        print(f"{where}: error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # invalid values caught by the library (e.g. C <= 2, p outside (0, 1))
        print(f"{where}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{where}: interrupted; no results written (earlier results, if any, are as they were)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
