"""Timing helpers shared by the benchmark scripts: interleaved repeats, medians, min-max, JSON.

Timings on a shared machine drift (other processes, frequency scaling, caches). Two habits make them
comparable anyway:

* **interleave**: run case A, then B, then C, then A again, ... so that a slow period of the machine hits
  every case alike, instead of timing all repeats of A first and all of B later;
* **report the median** of the repeats (robust to a few disturbed runs) with the min-max range, and
  ratios against a baseline measured *in the same process*.

Each case is a zero-argument callable that does the work and returns only when it is finished (call
``jax.block_until_ready`` on its outputs). Warm-up calls (compilation) are not timed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def interleaved(
    cases: Mapping[str, Callable[[], Any]], repeats: int = 5, warmup: int = 1, verbose: bool = True
) -> dict[str, list[float]]:
    """Time every case ``repeats`` times, round-robin, after ``warmup`` untimed calls each.

    Returns ``name -> list of seconds`` (one per repeat).
    """
    for name, fn in cases.items():
        for _ in range(warmup):
            t = time.perf_counter()
            fn()
            if verbose:
                print(f"  warm-up {name}: {time.perf_counter() - t:.2f} s", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
        if verbose:
            done = ", ".join(f"{n} {v[-1]:.3f}s" for n, v in times.items())
            print(f"  repeat {r + 1}/{repeats}: {done}", file=sys.stderr, flush=True)
    return times


def stats(seconds: Sequence[float], work: float = 1.0) -> dict[str, float]:
    """Median, min and max of the times, and the throughput ``work / time`` at each of them."""
    med = statistics.median(seconds)
    return {
        "median_s": med,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "rate_median": work / med,
        "rate_min": work / max(seconds),
        "rate_max": work / min(seconds),
        "repeats": len(seconds),
    }


def machine() -> dict[str, Any]:
    """A description of the machine and software the numbers were measured with."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    for mod in ("jax", "jaxlib", "optax", "numpy", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional packages
            pass
    try:
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
    except Exception:  # noqa: BLE001
        pass
    return info


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table. ``columns`` are ``(key, header, format)``, e.g. ``("rate", "steps/s", ",.0f")``."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append(
            [format(row[k], f) if row.get(k) is not None else "-" for k, _, f in columns]
        )
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for j, r in enumerate(cells):
        pairs = enumerate(zip(r, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(padded))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` (plus nothing else) as indented JSON, creating the folder if needed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")
