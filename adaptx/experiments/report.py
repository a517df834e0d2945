"""Presenting sweep results: the summary table, CSV/JSON files, and a plot in the style of Figure 1.

Files are written whole or not at all: each is written under a temporary name in its folder and renamed
into place, and :func:`write_results` renames the files of one run together (:class:`StagedFiles`), so
that an interrupted or failed write leaves the previous complete set of files as it was.

Plotting needs matplotlib, an optional extra (``pip install 'adaptx[plot]'``); everything else here
uses only the standard library and NumPy.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from adaptx.experiments.contract import Result

PLOT_INSTALL_HINT = (
    "plotting needs matplotlib, which is not installed: pip install 'adaptx[plot]' "
    "(or: pip install matplotlib)"
)

_FLOAT_KEYS = ("learning_rate", "b1", "b2")


_SHORT = {"learning_rate": "lr", "b1": "β1", "b2": "β2"}


def _setting_label(result: Result, i: int) -> str:
    """The legend entry of setting ``i``: the optimizer, and the hyperparameters that vary in its grid."""
    varying = [k for k, v in result.grid.items() if np.unique(v).size > 1]
    parts = [f"{_SHORT.get(k, k)}={result.grid[k][i]:g}" for k in varying]
    return " ".join([result.label, *parts])


def summary_rows(results: Sequence[tuple[str, Result]]) -> list[dict[str, Any]]:
    """One row per (setting name, optimizer, hyperparameter setting) with the final statistics."""
    rows = []
    for setting, res in results:
        for i, row in enumerate(res.summary()):
            rows.append(
                {
                    "setting": setting,
                    "optimizer": res.label,
                    **{k: row.get(k) for k in _FLOAT_KEYS if k in row},
                    "steps": res.steps,
                    "seeds": int(res.seeds.size),
                    "x_T_mean": row["x_mean"],
                    "x_T_std": row["x_std"],
                    "R_T/T_mean": row["regret_mean"],
                    "R_T/T_std": row["regret_std"],
                    "frac_x_T_positive": row["frac_positive"],
                    "seconds": res.seconds,
                    "_index": i,
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as an aligned plain-text table (final x_T mean ± std, R_T/T, fraction at x_T > 0)."""
    show_hp = {k for k in _FLOAT_KEYS if len({r.get(k) for r in rows}) > 1}
    header = ["setting", "optimizer"]
    header += [k for k in _FLOAT_KEYS if k in show_hp]
    header += ["steps", "seeds", "x_T (mean ± std)", "R_T/T (mean ± std)", "x_T > 0", "time"]
    lines = [header]
    for r in rows:
        cells = [r["setting"], r["optimizer"]]
        cells += [f"{r[k]:g}" if r.get(k) is not None else "-" for k in _FLOAT_KEYS if k in show_hp]
        cells += [
            f"{r['steps']:,}",
            str(r["seeds"]),
            f"{r['x_T_mean']:+.3f} ± {r['x_T_std']:.3f}",
            f"{r['R_T/T_mean']:.4f} ± {r['R_T/T_std']:.4f}",
            f"{100 * r['frac_x_T_positive']:.0f}%",
            f"{r['seconds']:.1f}s",
        ]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for j, line in enumerate(lines):
        pairs = enumerate(zip(line, widths, strict=True))
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _curves(res: Result, i: int) -> dict[str, np.ndarray]:
    x, r = res.x[i], res.avg_regret[i]
    return {
        "x_mean": x.mean(0),
        "x_std": x.std(0),
        "x_min": x.min(0),
        "x_max": x.max(0),
        "regret_mean": r.mean(0),
        "regret_std": r.std(0),
        "regret_min": r.min(0),
        "regret_max": r.max(0),
    }


#: The files a run of ``adaptx reddi`` may write into its folder (and replaces together).
RESULT_FILES = ("summary.csv", "curves.csv", "results.json", "reddi.png")


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) until the block is done, then deliver it (``KeyboardInterrupt``).
    Only the main thread can do this; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple] = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(*caught[0])  # Python's default handler raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


class StagedFiles:
    """Files written into ``folder`` under temporary names, renamed into place together by
    :meth:`commit`.

    :meth:`path` gives the temporary path to write ``name`` to (a hidden file in the same folder, with
    the same extension). :meth:`commit` renames every file written into place, with Ctrl-C held back
    while it does (a few renames), and removes the files of ``owned`` that this set does not replace, so
    that the folder never mixes the files of two runs. Leaving the ``with`` block with an exception
    deletes the temporary files: the folder keeps its previous files, complete.

    Example:
      >>> import os, tempfile
      >>> from adaptx.experiments.report import StagedFiles
      >>> folder = tempfile.mkdtemp()
      >>> with StagedFiles(folder) as files:
      ...     with open(files.path("a.txt"), "w") as f:
      ...         _ = f.write("new")
      ...     written = files.commit()
      >>> sorted(os.listdir(folder))
      ['a.txt']
    """

    def __init__(self, folder: str, owned: Sequence[str] = ()):
        self.folder = folder
        self.owned = tuple(owned)
        self._temp: dict[str, str] = {}

    def path(self, name: str) -> str:
        """The temporary path to write the file ``name`` (a file name, no folder) to."""
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise ValueError(f"expected a file name without a folder, got {name!r}")
        if name not in self._temp:
            stem, ext = os.path.splitext(name)
            self._temp[name] = os.path.join(self.folder, f".{stem}.partial-{os.getpid()}{ext}")
        return self._temp[name]

    def commit(self) -> list[str]:
        """Rename the files into place (and remove the stale ones of ``owned``); returns their paths."""
        missing = [n for n, tmp in self._temp.items() if not os.path.exists(tmp)]
        if missing:
            raise FileNotFoundError(f"nothing was written to {', '.join(missing)}")
        final = []
        with _interrupts_deferred():
            for name, tmp in self._temp.items():
                os.replace(tmp, os.path.join(self.folder, name))
                final.append(os.path.join(self.folder, name))
            for name in self.owned:
                if name not in self._temp:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(self.folder, name))
            self._temp.clear()
        return final

    def discard(self) -> None:
        """Delete the temporary files written so far."""
        for tmp in self._temp.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        self._temp.clear()

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def _write_summary_csv(path: str, results: Sequence[tuple[str, Result]]) -> None:
    rows = summary_rows(results)
    keys = [k for k in rows[0] if not k.startswith("_")]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_csv(folder: str, results: Sequence[tuple[str, Result]]) -> list[str]:
    """``summary.csv`` (one row per run) and ``curves.csv`` (mean, std, min, max over seeds at each
    logged t, long format), replaced together. Returns the paths written."""
    os.makedirs(folder, exist_ok=True)
    with StagedFiles(folder) as files:
        _write_summary_csv(files.path("summary.csv"), results)
        _write_curves_csv(files.path("curves.csv"), results)
        return files.commit()


def _write_curves_csv(path: str, results: Sequence[tuple[str, Result]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        stats = list(_curves(results[0][1], 0))
        w.writerow(["setting", "optimizer", *_FLOAT_KEYS, "t", *stats])
        for setting, res in results:
            for i in range(res.num_settings):
                hp = res.setting(i)
                cur = _curves(res, i)
                for k, t in enumerate(res.t.tolist()):
                    w.writerow(
                        [setting, res.label, *[hp.get(n, "") for n in _FLOAT_KEYS], t]
                        + [f"{cur[s][k]:.9g}" for s in stats]
                    )


def write_json(folder: str, results: Sequence[tuple[str, Result]], config: dict[str, Any]) -> str:
    """``results.json``: the configuration, the summary, and every seed's logged x_t and R_t/t."""
    os.makedirs(folder, exist_ok=True)
    with StagedFiles(folder) as files:
        _write_json(files.path("results.json"), results, config)
        return files.commit()[0]


def _write_json(path: str, results: Sequence[tuple[str, Result]], config: dict[str, Any]) -> None:
    payload = {"config": config, "summary": summary_rows(results), "runs": []}
    for row in payload["summary"]:
        row.pop("_index", None)
    for setting, res in results:
        payload["runs"].append(
            {
                "setting": setting,
                "problem": res.problem.describe(),
                "optimizer": res.label,
                "grid": {k: v.tolist() for k, v in res.grid.items()},
                "seeds": res.seeds.tolist(),
                "t": res.t.tolist(),
                "x": np.round(res.x, 7).tolist(),
                "avg_regret": np.round(res.avg_regret, 7).tolist(),
                "seconds": res.seconds,
            }
        )
    with open(path, "w") as f:
        json.dump(payload, f)


def write_results(
    folder: str,
    results: Sequence[tuple[str, Result]],
    config: dict[str, Any],
    *,
    csv_files: bool = True,
    json_file: bool = True,
    figure: bool = True,
    titles: dict[str, str] | None = None,
    log_t: bool = True,
) -> list[str]:
    """Every file of a run (:data:`RESULT_FILES`: the CSVs, ``results.json``, the figure
    ``reddi.png``), renamed into ``folder`` together (:class:`StagedFiles`): an interruption or an error
    before the renames leaves the folder's previous files as they were, and files of an earlier run that
    this one does not write (say, its figure) are removed with the renames. Returns the paths written.

    Raises ``ImportError`` (with :data:`PLOT_INSTALL_HINT`) when ``figure`` is asked for and matplotlib
    is missing, before anything is written; ``OSError`` when a file cannot be written.
    """
    if figure:
        _pyplot()  # before writing anything
    with StagedFiles(folder, owned=RESULT_FILES) as files:
        if csv_files:
            _write_summary_csv(files.path("summary.csv"), results)
            _write_curves_csv(files.path("curves.csv"), results)
        if json_file:
            _write_json(files.path("results.json"), results, config)
        if figure:
            _plot(results, files.path("reddi.png"), log_t=log_t, titles=titles)
        return files.commit()


def preload_plotting() -> threading.Thread:
    """Import matplotlib in a background thread, so that :func:`plot` at the end of a run does not wait
    for it (about a second; the sweeps meanwhile spend most of their time compiling and running outside
    Python). A missing matplotlib is reported by :func:`plot`, not here."""

    def load() -> None:
        with contextlib.suppress(ImportError):
            _pyplot()

    thread = threading.Thread(target=load, name="adaptx-import-matplotlib", daemon=True)
    thread.start()
    return thread


def _pyplot():
    """matplotlib's pyplot on the Agg backend; ``ImportError`` with an install hint without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(PLOT_INSTALL_HINT) from err
    return plt


def plot(
    results: Sequence[tuple[str, Result]],
    path: str,
    *,
    log_t: bool = True,
    titles: dict[str, str] | None = None,
) -> str:
    """A figure in the style of the paper's Figure 1: for each setting (a column), :math:`R_t/t` (top)
    and :math:`x_t` (bottom) against t, one line per optimizer (the mean over seeds) with a band of
    ± one standard deviation over seeds around :math:`x_t` and of ± one standard error of the mean
    around :math:`R_t/t` (single runs' average regrets spread over far more than the means differ).
    Raises ``ImportError`` with an install hint without matplotlib. The file is written whole or not at
    all.

    Readable whatever the run: the :math:`R_t/t` axis is scaled to the mean curves over the last 90% of
    the steps (their first steps, where one big gradient makes :math:`R_t/t` jump by up to
    1010 x 2 / t, and bands wider than the curves run off the axis rather than squeeze them) and always
    shows 0, where the paper's AMSGrad is headed; the legend sits under the panels, out of the data, in
    as many rows as it needs; titles wrap to their column.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with StagedFiles(folder) as files:
        _plot(results, files.path(os.path.basename(path)), log_t=log_t, titles=titles)
        files.commit()
    return path


def regret_limits(results: Sequence[Result], late: float = 0.1) -> tuple[float, float]:
    """The :math:`R_t/t` axis of :func:`plot`: the range of the mean curves (over seeds) at the logged
    steps ``t >= late * steps``, widened to include 0 and padded by 8% on each side."""
    values = [np.zeros(1)]
    for res in results:
        keep = res.t >= late * res.steps
        for i in range(res.num_settings):
            mean = res.avg_regret[i].mean(0)[keep]
            values.append(mean[np.isfinite(mean)])
    allv = np.concatenate(values)
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.08 * (hi - lo) or 0.05 * max(abs(hi), 1e-3)
    return lo - pad, hi + pad


def _plot(
    results: Sequence[tuple[str, Result]], path: str, *, log_t: bool, titles: dict[str, str] | None
) -> None:
    plt = _pyplot()
    fig = figure(results, log_t=log_t, titles=titles)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def figure(
    results: Sequence[tuple[str, Result]], *, log_t: bool = True, titles: dict[str, str] | None = None
) -> Any:
    """The matplotlib figure that :func:`plot` saves (the caller closes it)."""
    import textwrap

    plt = _pyplot()

    settings = list(dict.fromkeys(s for s, _ in results))
    labels = list(dict.fromkeys(_setting_label(r, i) for _, r in results for i in range(r.num_settings)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(labels) > len(colors):  # distinct colors for up to 20 lines, then a continuous map
        n = len(labels)
        colors = [plt.get_cmap("tab20")(j) for j in range(n)] if n <= 20 else [
            plt.get_cmap("viridis")(j / (n - 1)) for j in range(n)
        ]
    color_of = {lab: colors[j % len(colors)] for j, lab in enumerate(labels)}

    width = max(6.4, 4.6 * len(settings))
    entry = 0.45 + 0.065 * max(len(lab) for lab in labels)  # inches: the line, then ~0.065 per character
    ncol = max(1, min(len(labels), int((width - 0.4) // entry)))
    legend_rows = -(-len(labels) // ncol)
    legend_height = 0.25 * legend_rows + 0.2
    height = 6.2 + legend_height
    fig, axes = plt.subplots(2, len(settings), figsize=(width, height), squeeze=False, sharex="col")
    chars = int(4.6 * 13)  # title characters that fit a column at fontsize 10
    title_lines = 1
    handles = {}
    for col, setting in enumerate(settings):
        top, bottom = axes[0, col], axes[1, col]
        mine = [res for s, res in results if s == setting]
        low, high = mine[0].problem.domain  # a setting is one problem
        x_star = mine[0].problem.x_star
        for res in mine:
            for i in range(res.num_settings):
                lab = _setting_label(res, i)
                cur = _curves(res, i)
                c = color_of[lab]
                for ax, key in ((top, "regret"), (bottom, "x")):
                    mean, std = cur[f"{key}_mean"], cur[f"{key}_std"]
                    (line,) = ax.plot(res.t, mean, color=c, lw=1.5, label=lab)
                    handles.setdefault(lab, line)
                    if res.seeds.size > 1 and np.any(std > 0):
                        # x_t: where the runs are (±1 std); R_t/t: how sure the mean is (±1 standard
                        # error), since single runs' R_t/t spread over far more than the means differ
                        half = std if key == "x" else std / np.sqrt(res.seeds.size)
                        lo, hi = mean - half, mean + half
                        if key == "x":
                            lo, hi = np.maximum(lo, low), np.minimum(hi, high)
                        ax.fill_between(res.t, lo, hi, color=c, alpha=0.18, lw=0)
        title = textwrap.wrap((titles or {}).get(setting, setting), chars)
        title_lines = max(title_lines, len(title))
        top.set_title("\n".join(title), fontsize=10)
        top.set_ylabel(r"average regret $R_t/t$")
        top.set_ylim(*regret_limits(mine))
        top.axhline(0, color="0.5", lw=0.8, ls=":")
        bottom.set_ylabel(r"iterate $x_t$")
        bottom.set_xlabel("iteration t")
        pad = 0.04 * (high - low)
        bottom.set_ylim(low - pad, high + pad)
        bottom.axhline(x_star, color="0.5", lw=0.8, ls=":")
        for ax in (top, bottom):
            if log_t:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
    optima = {res.problem.x_star for _, res in results}
    optimum = f"x* = {optima.pop():g}" if len(optima) == 1 else "x*"
    suptitle = (
        f"Reddi et al. (2018), synthetic problems: the optimum is {optimum} (dotted); lines: mean over "
        "seeds; bands: ±1 std of $x_t$, ±1 standard error of the mean $R_t/t$"
    )
    suptitle_lines = textwrap.wrap(suptitle, int(width * 14))
    fig.suptitle("\n".join(suptitle_lines), fontsize=10, y=1 - 0.1 / height)
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8, frameon=False,
        bbox_to_anchor=(0.5, 0.02),
    )
    # Margins in inches, from the texts placed around the panels (matplotlib's tight_layout measures
    # them by drawing the figure: 1.5 s of a short run's start): the y labels and ticks on the left and
    # between columns, the titles on top, the x label, ticks and the legend at the bottom.
    top_in = 0.15 + 0.19 * len(suptitle_lines) + 0.18 * title_lines + 0.1
    bottom_in = legend_height + 0.55
    left_in, right_in, between_in = 0.8, 0.2, 0.85
    panel = (width - left_in - right_in - between_in * (len(settings) - 1)) / len(settings)
    fig.subplots_adjust(
        left=left_in / width, right=1 - right_in / width, top=1 - top_in / height, bottom=bottom_in / height,
        wspace=between_in / panel, hspace=0.1,
    )
    return fig
