r"""Reference formulations that are not in ``torch.optim``, under documented names.

* :func:`adax`, :func:`adaxw`: the AdaX authors' PyTorch classes ``AdaX`` and ``AdaXW`` (Li et al., 2020).
* :func:`hf_adamw`: HuggingFace ``transformers``' legacy ``AdamW`` (``correct_bias``; decay applied after
  the step).
* :func:`labml_adam`, :func:`labml_amsgrad`: labml.ai's annotated ``Adam``/``AMSGrad``
  (``optimized_update``, decoupled/absolute/coupled weight decay).

Each is built from the same blocks as :mod:`adaptx.torch_compat.optimizers`; the update rules are written
out in ``docs/references.md`` and tested against PyTorch implementations of them
(:mod:`adaptx.parity.reference_optimizers`).
"""

from __future__ import annotations

from typing import Any

import optax

from adaptx.torch_compat.assembly import split_betas, torch_chain
from adaptx.torch_compat.decay import stepped_decay
from adaptx.torch_compat.pieces import HostFirstAverage, HostSecondAverage
from adaptx.transforms.adaptive import max_tracking, scale_by_adax, scale_by_moments

Transform = optax.GradientTransformationExtraArgs


def adax(
    lr: Any = 1.5e-3,
    betas: tuple[Any, Any] = (0.9, 1e-4),
    eps: Any = 1e-12,
    weight_decay: Any = 5e-4,
    *,
    maximize: bool = False,
) -> Transform:
    r"""The AdaX authors' ``AdaX`` (coupled L2), with their defaults.

    .. math::
        g \leftarrow g + \lambda\theta, \quad m_t = \beta_1 m + (1-\beta_1) g, \quad
        v_t = (1+\beta_2) v + \beta_2 g^2, \quad
        \theta \leftarrow \theta - \gamma\,\frac{\sqrt{B_t}\, m_t}{\sqrt{v_t} + \epsilon},\;
        B_t = (1+\beta_2)^t - 1 .

    Computed in adaptx's overflow-free form (:func:`adaptx.scale_by_adax`): the authors' code returns
    NaN from step ~887,000 in float32, this never does.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adax()
    """
    b1, b2 = split_betas(betas)
    return torch_chain([scale_by_adax(b1, b2, eps, eps_on="raw")], lr, maximize=maximize, l2=weight_decay)


def adaxw(
    lr: Any = 5e-3,
    betas: tuple[Any, Any] = (0.9, 1e-4),
    eps: Any = 1e-12,
    weight_decay: Any = 5e-2,
    *,
    maximize: bool = False,
) -> Transform:
    r"""The AdaX authors' ``AdaXW``: AdaX with decoupled decay, subtracted from θ.

    .. math::
        \theta_t = \theta_{t-1} - \gamma\lambda\theta_{t-1}
        - \gamma\,\frac{\sqrt{B_t}\, m_t}{\sqrt{v_t} + \epsilon}.

    Defaults from the authors' README (γ = 5e-3, λ = 5e-2). The decay is subtracted (``θ - γλθ``, as
    their code writes it), not applied as a rounded factor.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adaxw()
    """
    b1, b2 = split_betas(betas)
    return torch_chain(
        [scale_by_adax(b1, b2, eps, eps_on="raw")], lr, maximize=maximize,
        decay=stepped_decay(weight_decay, lr, as_factor=False),
    )


def hf_adamw(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-6,
    weight_decay: Any = 0.0,
    correct_bias: bool = True,
    *,
    maximize: bool = False,
) -> Transform:
    r"""HuggingFace ``transformers``' legacy ``AdamW`` (``transformers.optimization.AdamW``).

    .. math::
        \theta' = \theta - s\,\frac{m_t}{\sqrt{v_t} + \epsilon}, \quad
        s = \gamma\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \text{ (or } \gamma \text{ without correct\_bias)},
        \quad \theta_t = \theta' - \gamma\lambda\theta' .

    ε is added to the raw :math:`\sqrt{v_t}`, and the decay shrinks the *already updated* parameters.
    ``correct_bias=False`` (BERT's setting) drops both bias corrections. ``maximize`` is an adaptx
    addition (negates the gradient first).

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.hf_adamw(lr=5e-5, weight_decay=0.01, correct_bias=False)
    """
    b1, b2 = split_betas(betas)
    scaling = scale_by_moments(
        HostSecondAverage(b2, debias=correct_bias), HostFirstAverage(b1, debias=correct_bias), eps=eps,
        eps_on="raw",
    )
    return torch_chain(
        [scaling], lr, maximize=maximize, decay=stepped_decay(weight_decay, lr, as_factor=False, on="updated")
    )


def labml_adam(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-16,
    weight_decay: Any = 0.0,
    weight_decouple: bool = True,
    absolute: bool = False,
    optimized_update: bool = True,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> Transform:
    r"""labml.ai's annotated ``Adam`` (``labml_nn.optimizers.adam.Adam`` with its ``WeightDecay``).

    .. math::
        \theta \leftarrow \theta(1-\gamma\lambda) \;[\text{absolute: } \theta(1-\lambda);\;
        \text{coupled: } g \leftarrow g + \lambda\theta], \qquad
        \theta \leftarrow \theta
        - \gamma\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\frac{m_t}{\sqrt{v_t} + \epsilon}

    with ``optimized_update`` (ε on the raw root); otherwise PyTorch's Adam step (ε on the corrected root).
    ``amsgrad`` takes the maximum of the raw :math:`v_t` (labml's ``AMSGrad``). ``maximize`` is an adaptx
    addition.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.labml_adam(weight_decay=1e-2, absolute=True)
    """
    b1, b2 = split_betas(betas)
    scaling = scale_by_moments(
        max_tracking(HostSecondAverage(b2), amsgrad), HostFirstAverage(b1), eps=eps,
        eps_on="raw" if optimized_update else "corrected",
    )
    if not weight_decouple:
        return torch_chain([scaling], lr, maximize=maximize, l2=weight_decay)
    decay = stepped_decay(weight_decay, None if absolute else lr, as_factor=True)
    return torch_chain([scaling], lr, maximize=maximize, decay=decay)


def labml_amsgrad(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-16,
    weight_decay: Any = 0.0,
    weight_decouple: bool = True,
    absolute: bool = False,
    optimized_update: bool = True,
    amsgrad: bool = True,
    *,
    maximize: bool = False,
) -> Transform:
    r"""labml.ai's ``AMSGrad``: :func:`labml_adam` with ``amsgrad=True`` by default.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.labml_amsgrad(lr=1e-2)
    """
    return labml_adam(
        lr, betas, eps, weight_decay, weight_decouple, absolute, optimized_update, amsgrad,
        maximize=maximize,
    )
