"""The XLA compiler options of the fast path's program: chosen per program, on a CPU only.

Both sets are passed to ``jax.jit(..., compiler_options=...)`` for the sweep's own program; no other
program and no process-wide flag is affected. On any other platform the program gets XLA's defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import numpy as np

# The loop over the settings reads the old iterates for the regret and overwrites them with the new ones
# in place; XLA's default copy insertion cannot tell which comes first and copies the iterates and the
# loop index in every iteration. The region-based analysis sees the order and drops both copies in the
# online loop (online sweep 1.27x faster at 1024 settings, interleaved, with the same bits); in the
# stochastic loop it drops the index's copy only (1.01-1.02x); x's copy goes with the regret-first
# ordering of `program._regret_first`.
#: The XLA:CPU options of every fast-path program.
CPU_OPTIONS: Mapping[str, object] = {"xla_cpu_copy_insertion_use_region_analysis": True}

# XLA:CPU's classic code generator instead of its MLIR fusion emitters. Measured on 2 cores (jax
# 0.10.2), the stochastic piece compiled in 0.9-1.0 s instead of 4-5 s and the online one in 0.3 s
# instead of 0.9-1.2 s, with the same bits in every case tried (tests: test_sweep_compile.py), while the
# compiled loop ran 1.5-2.8x (stochastic) and 2-7x (online grids) slower. So it pays below ~2**25
# seed-steps (`FAST_COMPILE_WORK`), where the slower loop costs well under a second.
#: Added to :data:`CPU_OPTIONS` for a program compiled for a fast start (a short sweep).
FAST_COMPILE_OPTIONS: Mapping[str, object] = {"xla_cpu_use_fusion_emitters": False}

#: ``fast_compile=None`` compiles for a fast start when steps x runs (padded) is at most this.
FAST_COMPILE_WORK = 2**25


def supported(options: Mapping[str, object]) -> dict[str, object]:
    """``options`` if this jax and XLA compile a tiny CPU program with them, else ``{}`` (XLA's defaults):
    an XLA that has renamed or dropped an option then compiles the sweep with its defaults instead of
    failing. Checked once per set of options.

    Example:
      >>> from adaptx.experiments.fast import options
      >>> options.supported({"xla_cpu_no_such_option": True})
      {}
    """
    return dict(_supported(tuple(sorted(options.items()))))


@functools.cache
def _supported(items: tuple) -> tuple:
    try:
        cpu = jax.devices("cpu")[0]
        program = jax.jit(lambda a: a + 1, compiler_options=dict(items))
        program.lower(jax.device_put(np.float32(0), cpu)).compile()
    except RuntimeError:  # XLA: "No such compile option" or an invalid value (a JaxRuntimeError)
        return ()
    except TypeError:  # a jax.jit without the compiler_options keyword
        return ()
    return items


def compiler_options(platform: str, fast_compile: bool) -> dict[str, object] | None:
    """The options of a fast-path program on ``platform``: on ``"cpu"``, :data:`CPU_OPTIONS`, plus
    :data:`FAST_COMPILE_OPTIONS` when ``fast_compile``, each kept only if :func:`supported`; ``None``
    (XLA's defaults) elsewhere or when none is supported.

    Example:
      >>> from adaptx.experiments.fast.options import compiler_options
      >>> compiler_options("gpu", fast_compile=True) is None
      True
    """
    if platform != "cpu":
        return None
    options = supported(CPU_OPTIONS)
    if fast_compile:
        options.update(supported(FAST_COMPILE_OPTIONS))
    return options or None
