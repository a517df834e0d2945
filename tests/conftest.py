"""pytest configuration for adaptx's tests.

The helpers shared by the test modules live in ``harness.py`` (the test problem, the jitted runner,
tolerances) and ``numpy_reference.py`` (the float64 specification); this directory is put on
``sys.path`` so that they import the same way however pytest is invoked.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
