r"""The CPU fast path of a sweep: the reference algorithm, staged and compiled for XLA:CPU.

:func:`adaptx.experiments.sweep` runs this on a CPU (and whenever runs are split over ``devices``); on
every other backend it runs :mod:`adaptx.experiments.reference`, the plain algorithm this path is tested
to match (tests/test_reference_runner.py). Everything that exists for XLA:CPU's sake lives in this
package:

* :mod:`~adaptx.experiments.fast.runner`: the :class:`Plan` (padding the batch to whole 64-lane vectors,
  devices, compile mode) and the host loop over compiled pieces;
* :mod:`~adaptx.experiments.fast.program`: the compiled piece: which optimizer state the settings share
  (:func:`settings_axes`), the shared part of a step run ahead for a stage of 256 steps, the per-setting
  loop with the regret ordered before the iterate's update, the blocked Kahan regret, the split over
  devices;
* :mod:`~adaptx.experiments.fast.staging`: the jaxpr interpreter that cuts a step into its shared and
  per-setting parts;
* :mod:`~adaptx.experiments.fast.windows`: the big steps of a window of steps, drawn ahead for all
  seeds as a bit mask;
* :mod:`~adaptx.experiments.fast.options`: the XLA:CPU compiler options, per program;
* :mod:`~adaptx.experiments.fast.devices`: the ``devices`` argument and :func:`run_devices`.

Why a CPU needs this. A step of the paper's problem is a handful of scalar operations per run; XLA:CPU
launches a kernel per fused operation, and a launch costs more than the arithmetic of a few thousand
runs. The fast path cuts the kernels per step (and the copies XLA:CPU would insert); docs/speed.md
measures it against straightforward ``lax.scan`` baselines. On a GPU or TPU
the premises differ (a 256-step stage is launch-bound there), so those backends get the reference.

Example:
  >>> import adaptx
  >>> from adaptx.experiments import Online, sweep
  >>> res = sweep(lambda learning_rate: adaptx.adam(learning_rate, b2=0.99), Online(),
  ...             steps=2000, grid={"learning_rate": [1e-2, 1e-3]}, log_points=4, runner="fast")
  >>> res.plan.shape  # two settings, padded to 64 lanes
  (64,)
"""

from adaptx.experiments.fast.devices import run_devices
from adaptx.experiments.fast.options import (
    CPU_OPTIONS,
    FAST_COMPILE_OPTIONS,
    FAST_COMPILE_WORK,
    compiler_options,
    supported,
)
from adaptx.experiments.fast.program import settings_axes
from adaptx.experiments.fast.runner import LANES, Plan, make_plan, run_fast

__all__ = [
    "CPU_OPTIONS",
    "FAST_COMPILE_OPTIONS",
    "FAST_COMPILE_WORK",
    "LANES",
    "Plan",
    "compiler_options",
    "make_plan",
    "run_devices",
    "run_fast",
    "settings_axes",
    "supported",
]
