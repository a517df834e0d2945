"""pytest configuration for adaptx's tests.

The helpers shared by the test modules live in ``harness.py`` (the test problem, the jitted runner,
tolerances) and ``numpy_reference.py`` (the float64 specification); this directory is put on
``sys.path`` so that they import the same way however pytest is invoked.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request) -> str:
    """Both precisions a trajectory test runs at: float32 (default jax) and float64 (x64 enabled)."""
    return request.param
