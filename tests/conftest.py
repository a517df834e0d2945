"""pytest configuration for adaptx's tests.

The helpers shared by the test modules live in ``harness.py`` (the test problem, the jitted runner,
tolerances) and ``numpy_reference.py`` (the float64 specification); this directory is put on
``sys.path`` so that they import the same way however pytest is invoked.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Hypothesis profiles for the property-based tests (test_properties.py). "ci", the default, is small
# and derandomized so that every run draws the same examples; "long" explores. Select one with
# ADAPTX_HYPOTHESIS_PROFILE=long (or ci).
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,  # the first example of a test compiles; later ones reuse the compilation
    derandomize=True,
    database=None,
    # No shrinking: a failing example is reported as drawn (shrinking one can take minutes of
    # recompilation); the "long" profile shrinks.
    phases=[Phase.explicit, Phase.generate, Phase.target],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=500,
    deadline=None,
    database=None,
    print_blob=True,  # a failure prints the @reproduce_failure blob that replays it
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("ADAPTX_HYPOTHESIS_PROFILE", "ci"))
