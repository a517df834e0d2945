"""The devices a fast-path sweep splits its runs over, and :func:`run_devices`, the one place adaptx may
set ``XLA_FLAGS`` (only when asked for several devices)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

_HOST_DEVICES = "--xla_force_host_platform_device_count"


def as_devices(devices: Sequence[Any] | int | None) -> tuple | None:
    """A sweep's ``devices`` argument as a tuple of distinct jax devices, or ``None`` for jax's default
    device alone (also when the tuple would be that device alone); an int n means the first n of
    ``jax.devices()``. Raises ``ValueError`` naming the argument."""
    if devices is None:
        return None
    available = jax.devices()
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices must be between 1 and {len(available)} (jax.devices()), got {devices}")
        devices = available[:devices]
    try:
        devices = tuple(devices)
    except TypeError:
        raise ValueError(
            f"devices must be an int, a sequence of jax devices or None, got {devices!r}"
        ) from None
    if not devices or not all(isinstance(d, jax.Device) for d in devices) or len(set(devices)) < len(devices):
        raise ValueError(f"devices must be distinct jax devices, got {devices!r}")
    if len(devices) == 1:
        return None if devices[0] == available[0] else devices
    return devices


def run_devices(n: int) -> list:
    """``n`` jax devices to split a sweep's runs over (:func:`adaptx.experiments.sweep`'s ``devices``).

    jax shows a CPU as one device whatever its number of cores, and a sweep on one device runs on one
    core. XLA can present the CPU as several devices (the flag ``--xla_force_host_platform_device_count``
    in ``XLA_FLAGS``), but reads the flag only when jax starts its backends, at the first computation.
    So if jax has not started yet and ``XLA_FLAGS`` does not set that flag, this adds it with ``n``; an
    accelerator's devices are not affected (on a machine with GPUs, ``jax.devices()`` lists the GPUs).
    Then it returns the first ``n`` of ``jax.devices()``. This is the only place adaptx changes
    ``XLA_FLAGS``, and only when called with ``n > 1`` (``adaptx reddi --devices N``); the runners set no
    XLA flag, and compiler options only for the fast path's own program on a CPU
    (:mod:`adaptx.experiments.fast.options`).

    Raises:
      ValueError: if ``n`` is not a positive int, or fewer than ``n`` devices are available (for a CPU,
        because jax started before the call: call this first thing, or set ``XLA_FLAGS`` yourself).

    Example:
      >>> from adaptx.experiments import run_devices
      >>> devices = run_devices(1)  # doctest: +SKIP
      >>> len(devices)  # doctest: +SKIP
      1
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    flags = os.environ.get("XLA_FLAGS", "")
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # pragma: no cover - a jax without the private helper
        started = True
    if n > 1 and not started and _HOST_DEVICES not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_HOST_DEVICES}={int(n)}".strip()
    available = jax.devices()
    if len(available) < n:
        why = " (jax had already started, so the CPU could not be split)" if started else ""
        raise ValueError(f"{n} devices asked for, {len(available)} available{why}")
    return list(available[:n])
