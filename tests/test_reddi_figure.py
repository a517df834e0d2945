"""The figure of ``adaptx reddi``: its R_t/t axis follows the curves past their first steps, its legend
and titles stay out of the data and inside the figure, and ``--schedule inv-sqrt`` gives the picture of
the paper's Figure 1. References: synthetic results with known curves, and the paper's outcome."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt  # in the test extra: a missing matplotlib fails, not skips
import numpy as np
import pytest

from adaptx.cli import main
from adaptx.experiments import Online, Result, Stochastic
from adaptx.experiments.report import figure, regret_limits


@pytest.fixture(autouse=True)
def _no_compile_cache(monkeypatch):
    monkeypatch.setenv("ADAPTX_COMPILE_CACHE", "0")


def synthetic(label: str, problem=None, settings: int = 1, seeds: int = 4, late: float = 0.3) -> Result:
    """R_t/t with a spike of 1e4 at t = 1 and values near ``late`` later; x_t going to -1."""
    t = np.unique(np.geomspace(1, 10_000, 60).round().astype(np.int64))
    regret = np.broadcast_to(late + 0.05 * np.sin(t / 50.0), (settings, seeds, t.size)).copy()
    regret[..., 0] = 1e4
    regret += np.linspace(-0.01, 0.01, seeds)[None, :, None]
    x = np.broadcast_to(-np.tanh(t / 2000.0), (settings, seeds, t.size)).copy()
    grid = {}
    if settings > 1:
        grid = {"learning_rate": np.geomspace(1e-3, 1e-1, settings), "b2": np.full(settings, 0.99)}
    return Result(problem or Stochastic(), t, x, regret, np.arange(seeds), grid, label=label)


def test_the_regret_axis_follows_the_curves_past_their_first_steps():
    """A spike of 1e4 at t = 1 used to set the axis (or one band of the spread over seeds did): the axis
    now spans the mean curves over the last 90% of the steps, and 0."""
    lo, hi = regret_limits([synthetic("Adam", late=0.3), synthetic("AMSGrad", late=0.2)])
    assert -0.05 < lo < 0 and 0.35 < hi < 0.45
    lo, hi = regret_limits([synthetic("Adam", late=-0.5)])
    assert -0.65 < lo < -0.55 and 0 < hi < 0.1


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize(
    "results, entries",
    [
        ([("stochastic", synthetic("Adam"))], 1),
        ([("online", synthetic("Adam", Online())), ("stochastic", synthetic("Adam")),
          ("theorem1", synthetic("AdaX", Online()))], 2),  # one entry per line style, not per column
        ([("online", synthetic("Adam", Online(), settings=12)),
          ("stochastic", synthetic("AMSGrad", settings=12))], 24),
    ],
    ids=["one-column", "three-columns", "24-lines"],
)
def test_legend_and_titles_stay_out_of_the_data_and_in_the_figure(results, entries):
    long_title = "stochastic: 1010 with probability 0.01, else -10, for a rather long title indeed"
    fig = figure(results, titles={"stochastic": long_title})
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        axes = [ax.get_window_extent(renderer) for ax in fig.axes]
        (legend,) = fig.legends
        legend_box = legend.get_window_extent(renderer)
        assert not any(overlaps(legend_box, a) for a in axes)
        assert box.x0 <= legend_box.x0 and legend_box.x1 <= box.x1 and box.y0 <= legend_box.y0
        labels = [text.get_text() for text in legend.get_texts()]
        assert len(labels) == len(set(labels)) == entries
        for ax in fig.axes:
            title = ax.title.get_window_extent(renderer)
            assert box.x0 <= title.x0 and title.x1 <= box.x1
        suptitle = fig._suptitle.get_window_extent(renderer)
        assert box.x0 <= suptitle.x0 and suptitle.x1 <= box.x1 and suptitle.y1 <= box.y1
        lines = [line for line in fig.axes[0].get_lines() if line.get_label() in labels]
        rgba = plt.matplotlib.colors.to_rgba
        colors = {tuple(np.round(rgba(line.get_color()), 3)) for line in lines}
        assert len(colors) == len(lines)  # no two lines of a column share a color
    finally:
        plt.close(fig)


def test_inv_sqrt_gives_the_papers_figure_1(tmp_path, capsys):
    """``--schedule inv-sqrt`` alone takes α = 0.5: on the online problem AMSGrad goes to the optimum -1
    with R_t/t falling, Adam to the worst point +1."""
    argv = ["reddi", "--setting", "online", "--optimizers", "adam,amsgrad", "--schedule", "inv-sqrt",
            "--steps", "3e4", "--format", "json", "--no-plot", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["config"]["lr"] == [0.5]
    runs = {r["optimizer"]: r for r in payload["runs"]}
    t = np.asarray(runs["AMSGrad"]["t"])
    at = np.searchsorted(t, 10_000)
    adam_x, ams_x = runs["Adam"]["x"][0][0], runs["AMSGrad"]["x"][0][0]
    ams_regret = runs["AMSGrad"]["avg_regret"][0][0]
    assert adam_x[-1] > 0.9 and ams_x[-1] < -0.9
    assert ams_regret[-1] < 0.6 * ams_regret[at]  # on its way to 0
    assert ams_regret[-1] < 0.6 * runs["Adam"]["avg_regret"][0][0][-1]


def test_the_iterate_panel_follows_the_problem_domain_and_optimum():
    """The x_t panel used to assume x* = -1 on [-1, 1]: a problem on [0, 2] with x* = 0 gets its own
    axis, dotted optimum and title."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Shifted(Online):
        x_star: float = 0.0
        domain: tuple = (0.0, 2.0)

    fig = figure([("shifted", synthetic("Adam", Shifted()))])
    try:
        bottom = fig.axes[1]
        lo, hi = bottom.get_ylim()
        assert -0.1 < lo < 0 and 2 < hi < 2.1
        dotted = [ln for ln in bottom.get_lines() if ln.get_linestyle() == ":"]
        assert [tuple(ln.get_ydata()) for ln in dotted] == [(0.0, 0.0)]
        assert "x* = 0 " in fig.get_suptitle()
    finally:
        plt.close(fig)
