"""The one recipe every ready-made optimizer follows (the aliases and :mod:`adaptx.torch_compat`).

``[negate (maximize)] -> [coupled L2] -> scaling -> learning rate -> [decoupled decay] -> [finish]``,
around one shared step counter (:func:`adaptx.chain`). The aliases use optax's form of the decoupled decay
(``u - γλθ``); :mod:`adaptx.torch_compat` rounds θ the way PyTorch's in-place operations do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optax

from adaptx.core import hyperparams
from adaptx.core.counting import chain
from adaptx.transforms.learning_rate import scale_by_learning_rate
from adaptx.transforms.weight_decay import add_l2, decoupled_weight_decay


def is_off(value: Any) -> bool:
    """A Python number equal to 0: the block is left out (arrays and schedules always get one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def split_betas(value: Any) -> tuple[Any, Any]:
    """PyTorch's ``betas=(β1, β2)``, checked to be a pair."""
    try:
        b1, b2 = value
    except (TypeError, ValueError) as err:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {value!r}") from err
    return b1, b2


def assemble(
    scaling: Sequence[optax.GradientTransformation],
    lr: Any,
    *,
    maximize: bool = False,
    l2: Any = 0,
    decoupled: Any = 0,
    decay_lr: Any = "lr",
    as_factor: bool = True,
    decay_on: str = "previous",
    inplace: bool = True,
    mask: Any = None,
    lr_name: str = "lr",
    finish: Sequence[optax.GradientTransformation] = (),
) -> optax.GradientTransformationExtraArgs:
    """Chain the blocks of an optimizer (defaults: PyTorch's rounding of the decoupled decay).

    Args:
      scaling: the preconditioning blocks (built with ``shared_count=True``), in order.
      lr: the learning rate (number, array or schedule).
      maximize: negate the gradient first, before the L2 term is added (PyTorch's ``maximize``).
      l2: coupled weight decay λ added to the gradient (``g + λθ``).
      decoupled: decoupled weight decay λ.
      decay_lr: the γ scaling the decoupled decay: ``"lr"`` for the optimizer's, ``None`` for none
        (labml's absolute decay).
      as_factor, decay_on, inplace: see :func:`adaptx.decoupled_weight_decay` (``decay_on`` is its
        ``on``).
      mask: which parameters the weight decay (coupled or decoupled) applies to.
      lr_name: the learning rate's argument name in error messages (``"learning_rate"`` for the aliases).
      finish: blocks placed last (:func:`adaptx.transforms.inplace.apply_in_sequence`).
    """
    hyperparams.check_non_negative(lr_name, lr, schedule_ok=True)
    hyperparams.check_non_negative("weight_decay", l2, schedule_ok=True)
    hyperparams.check_non_negative("weight_decay", decoupled, schedule_ok=True)
    parts: list[optax.GradientTransformation] = []
    if maximize:
        parts.append(optax.scale(-1.0))  # exact: a sign flip
    if not is_off(l2):
        parts.append(add_l2(l2, mask=mask, shared_count=True))
    parts.extend(scaling)
    parts.append(scale_by_learning_rate(lr, shared_count=True))
    if not is_off(decoupled):
        parts.append(
            decoupled_weight_decay(
                decoupled, lr if decay_lr == "lr" else decay_lr, mask=mask, shared_count=True,
                as_factor=as_factor, on=decay_on, inplace=inplace,
            )
        )
    parts.extend(finish)
    return chain(*parts)
