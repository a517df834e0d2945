"""The PyTorch reference optimizers the parity tests compare adaptx's reference formulations with.

They live in :mod:`adaptx.parity.reference_optimizers` (pure PyTorch, written from the rules in
docs/references.md and independent of adaptx's JAX code) so that ``python -m adaptx.parity`` can use
them too; this module only gives the tests a short name for them.
"""

from adaptx.parity.reference_optimizers import AdaX, HFAdamW, LabmlAdam

__all__ = ["AdaX", "HFAdamW", "LabmlAdam"]
