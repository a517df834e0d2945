"""Presenting sweep results: the summary table, CSV/JSON files, and a plot in the style of Figure 1.

Plotting needs matplotlib, an optional extra (``pip install 'adaptx[plot]'``); everything else here
uses only the standard library and NumPy.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptx.experiments.sweep import Result

PLOT_INSTALL_HINT = (
    "plotting needs matplotlib, which is not installed: pip install 'adaptx[plot]' "
    "(or: pip install matplotlib)"
)

_FLOAT_KEYS = ("learning_rate", "b1", "b2")


def _setting_label(result: Result, i: int) -> str:
    if result.num_settings == 1:
        return result.label
    parts = [f"{k}={v:g}" for k, v in result.setting(i).items()]
    return f"{result.label} ({', '.join(parts)})"


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


def write_csv(folder: str, results: Sequence[tuple[str, Result]]) -> list[str]:
    """``summary.csv`` (one row per run) and ``curves.csv`` (mean, std, min, max over seeds at each
    logged t, long format). Returns the paths written."""
    os.makedirs(folder, exist_ok=True)
    rows = summary_rows(results)
    summary_path = os.path.join(folder, "summary.csv")
    keys = [k for k in rows[0] if not k.startswith("_")]
    with open(summary_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    curves_path = os.path.join(folder, "curves.csv")
    with open(curves_path, "w", newline="") as f:
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
    return [summary_path, curves_path]


def write_json(folder: str, results: Sequence[tuple[str, Result]], config: dict[str, Any]) -> str:
    """``results.json``: the configuration, the summary, and every seed's logged x_t and R_t/t."""
    os.makedirs(folder, exist_ok=True)
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
    path = os.path.join(folder, "results.json")
    with open(path, "w") as f:
        json.dump(payload, f)
    return path


def plot(
    results: Sequence[tuple[str, Result]],
    path: str,
    *,
    log_t: bool = True,
    titles: dict[str, str] | None = None,
) -> str:
    """A figure in the style of the paper's Figure 1: for each setting (a column), :math:`R_t/t` (top)
    and :math:`x_t` (bottom) against t, one line per optimizer (the mean over seeds) with a band of
    ± one standard deviation over seeds. Raises ``ImportError`` with an install hint without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(PLOT_INSTALL_HINT) from err

    settings = list(dict.fromkeys(s for s, _ in results))
    fig, axes = plt.subplots(
        2, len(settings), figsize=(5.2 * len(settings), 6.4), squeeze=False, sharex="col"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = list(dict.fromkeys(_setting_label(r, i) for _, r in results for i in range(r.num_settings)))
    color_of = {lab: colors[j % len(colors)] for j, lab in enumerate(labels)}
    for col, setting in enumerate(settings):
        top, bottom = axes[0, col], axes[1, col]
        seen = []  # R_t/t values in the last 90% of the run scale the axis (early values are huge)
        for s, res in results:
            if s != setting:
                continue
            for i in range(res.num_settings):
                lab = _setting_label(res, i)
                cur = _curves(res, i)
                c = color_of[lab]
                for ax, key in ((top, "regret"), (bottom, "x")):
                    mean, std = cur[f"{key}_mean"], cur[f"{key}_std"]
                    ax.plot(res.t, mean, color=c, lw=1.6, label=lab)
                    if res.seeds.size > 1 and np.any(std > 0):
                        lo, hi = mean - std, mean + std
                        if key == "x":
                            lo, hi = np.maximum(lo, -1), np.minimum(hi, 1)
                        ax.fill_between(res.t, lo, hi, color=c, alpha=0.2, lw=0)
                    if key == "regret":
                        late = res.t >= res.steps / 10
                        seen += [(mean - std)[late].min(), (mean + std)[late].max()]
        title = (titles or {}).get(setting, setting)
        top.set_title(title, fontsize=10)
        top.set_ylabel(r"average regret $R_t/t$")
        bottom.set_ylabel(r"iterate $x_t$")
        bottom.set_xlabel("iteration t")
        bottom.set_ylim(-1.08, 1.08)
        bottom.axhline(-1, color="0.5", lw=0.8, ls=":")
        for ax in (top, bottom):
            if log_t:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        if seen:
            lo, hi = min(seen), max(seen)
            pad = 0.1 * (hi - lo) + 1e-3
            top.set_ylim(lo - pad, hi + pad)
        top.legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "Reddi et al. (2018) synthetic problems: optimum x* = -1 (dotted); band = ±1 std over seeds",
        fontsize=10,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
