"""The one recipe every :mod:`adaptx.torch_compat` optimizer follows, in PyTorch's order of operations.

``[negate (maximize)] -> coupled L2 -> scaling -> learning rate -> [decoupled decay] -> [finish]``, around
one step counter (:func:`adaptx.chain`), with complex parameters stepped as pairs of real ones
(:func:`adaptx.torch_compat.complex.as_real_pairs`). The coupled L2 block is always there (a Python 0
skips its arithmetic), so the state has the same structure whatever the weight decay's value or type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optax

from adaptx.core import hyperparams
from adaptx.core.counting import chain
from adaptx.torch_compat.complex import as_real_pairs
from adaptx.transforms.learning_rate import stepped_learning_rate
from adaptx.transforms.weight_decay import add_l2


def split_betas(value: Any) -> tuple[Any, Any]:
    """PyTorch's ``betas=(β1, β2)``, checked to be a pair of valid decays (errors name ``betas``)."""
    try:
        b1, b2 = value
    except (TypeError, ValueError) as err:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {value!r}") from err
    hyperparams.check_decay("betas[0]", b1)
    hyperparams.check_decay("betas[1]", b2)
    return b1, b2


def torch_chain(
    scaling: Sequence[optax.GradientTransformation],
    lr: Any,
    *,
    maximize: bool = False,
    l2: Any = 0.0,
    decay: optax.GradientTransformation | None = None,
    finish: Sequence[optax.GradientTransformation] = (),
) -> optax.GradientTransformationExtraArgs:
    """Chain a PyTorch optimizer's blocks.

    Args:
      scaling: the preconditioning blocks, in order.
      lr: PyTorch's ``lr`` (number, scalar array or schedule); errors name it ``lr``.
      maximize: negate the gradient first, before the L2 term is added (PyTorch's ``maximize``).
      l2: coupled weight decay λ added to the gradient (``g + λθ``).
      decay: a decoupled-decay block (:func:`adaptx.torch_compat.decay.stepped_decay`), placed after
        the learning rate.
      finish: blocks placed last (:func:`adaptx.torch_compat.inplace.apply_in_sequence`).
    """
    parts: list[optax.GradientTransformation] = [optax.scale(-1.0)] if maximize else []
    parts += [add_l2(l2), *scaling, stepped_learning_rate(lr, name="lr")]
    if decay is not None:
        parts.append(decay)
    return as_real_pairs(chain(*parts, *finish))
