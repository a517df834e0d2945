"""The example scripts in ``examples/`` run and learn.

Each example trains an MLP on scikit-learn's digits with an adaptx optimizer (Flax NNX, Haiku) and its
``main(steps=...)`` returns the test accuracy. A short run must reach well above chance (10 classes:
0.1): 60 full-batch steps give about 0.97, so the threshold of 0.9 fails for an optimizer that does not
train (or trains badly) while leaving room for a different jax version's rounding. The scripts are
imported by path: ``examples/`` is not a package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEPS = 60


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"no example {name}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["nnx_digits", "haiku_digits"])
def test_example_trains(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    accuracy = load(name).main(steps=STEPS, log_every=STEPS // 2)
    assert 0.9 < accuracy <= 1.0, f"{name}: test accuracy {accuracy:.3f} after {STEPS} steps"
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith(f"step {STEPS:4d}") and "test acc" in lines[-1], lines
