"""adaptx: composable, torch-exact, overflow-free Adam-family gradient transformations for JAX.

Blocks (each an ``optax.GradientTransformationExtraArgs``): :func:`scale_by_adam`,
:func:`scale_by_amsgrad`, :func:`scale_by_adax`, :func:`scale_by_moments`, :func:`add_l2`,
:func:`add_decayed_weights`, :func:`decoupled_weight_decay`, :func:`scale_by_learning_rate`, and
:func:`chain` (``optax.chain`` with one shared step counter). Aliases: :func:`adam`, :func:`adamw`,
:func:`amsgrad`, :func:`amsgradw`, :func:`adax`, :func:`adaxw`. Moment estimates to assemble new
optimizers from: :mod:`adaptx.moments`.
Running an optimizer on stacked (shape, dtype) groups of parameters: :mod:`adaptx.engine`.
PyTorch's optimizers with PyTorch's numbers: :mod:`adaptx.torch_compat` (momentum, RMSprop, Adagrad,
Adamax, NAdam and RAdam blocks in :mod:`adaptx.transforms`); comparing any of them with PyTorch:
:mod:`adaptx.parity`.
"""

from adaptx import engine, moments, torch_compat
from adaptx.aliases import adam, adamw, adax, adaxw, amsgrad, amsgradw
from adaptx.core.counting import ChainState, chain
from adaptx.transforms import (
    MomentsState,
    add_decayed_weights,
    add_l2,
    decoupled_weight_decay,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adamax,
    scale_by_adax,
    scale_by_amsgrad,
    scale_by_learning_rate,
    scale_by_moments,
    scale_by_momentum,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rmsprop,
)

__version__ = "0.1.0"

__all__ = [
    "ChainState",
    "MomentsState",
    "adam",
    "adamw",
    "adax",
    "adaxw",
    "add_decayed_weights",
    "add_l2",
    "amsgrad",
    "amsgradw",
    "chain",
    "decoupled_weight_decay",
    "engine",
    "moments",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_moments",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
    "torch_compat",
]
