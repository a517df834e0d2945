"""The AMSGrad paper's synthetic experiments (Reddi, Kale & Kumar, ICLR 2018), for any optax optimizer.

* :mod:`~adaptx.experiments.problems`: the online (period 101, and Theorem 1's period 3) and stochastic
  (p = 0.01) linear problems on [-1, 1].
* :func:`sweep` / :func:`run`: optimizers x hyperparameters x seeds as one compiled program, chunked so
  that 10M steps are routine, split over several devices if asked (:func:`run_devices`);
  :class:`Result` holds x_t and R_t/t at logged steps.
* :func:`~adaptx.experiments.reference.reference_sweep`: the same sweep as a short, plain runner over any
  :class:`~adaptx.experiments.problems.Problem` (the specification, and the default off CPU);
  :mod:`~adaptx.experiments.fast`: the CPU fast path, tested to give the reference's numbers;
  :mod:`~adaptx.experiments.contract`: the checked inputs and the :class:`Result` both runners share.
* :mod:`~adaptx.experiments.sampling`: the exact Bernoulli(p) big steps, drawn as geometric gaps.
* :mod:`~adaptx.experiments.optimizers`: Adam, AMSGrad, AdaX by name; :mod:`~adaptx.experiments.report`:
  tables, CSV/JSON and the Figure-1-style plot used by ``adaptx reddi``.

Example:
  >>> import adaptx
  >>> from adaptx.experiments import Stochastic, run
  >>> res = run(adaptx.adam(1e-2, b2=0.99), Stochastic(), steps=100_000, seeds=8)
  >>> bool(res.final_x().mean() > 0.5)  # Adam ends near the worst point, +1
  True
"""

from adaptx.experiments import contract, fast, optimizers, problems, sampling
from adaptx.experiments.contract import GridError, Result, check_grid, log_times, product_grid
from adaptx.experiments.fast import run_devices
from adaptx.experiments.problems import (
    X_STAR,
    Online,
    Problem,
    Stochastic,
    StochasticTheorem,
    theorem1,
    theorem1_betas,
)
from adaptx.experiments.reference import reference_sweep
from adaptx.experiments.sweep import RUNNERS, run, sweep

__all__ = [
    "RUNNERS",
    "X_STAR",
    "GridError",
    "Online",
    "Problem",
    "Result",
    "Stochastic",
    "StochasticTheorem",
    "check_grid",
    "contract",
    "fast",
    "log_times",
    "optimizers",
    "problems",
    "product_grid",
    "reference_sweep",
    "run",
    "run_devices",
    "sampling",
    "sweep",
    "theorem1",
    "theorem1_betas",
]
