r"""``torch.optim`` optimizers as optax transformations: same argument names, defaults and numbers.

Every function returns an ``optax.GradientTransformationExtraArgs``; apply its updates with
``optax.apply_updates``. ``lr`` (and ``weight_decay``) may be an optax schedule, evaluated at the number of
steps already taken — what a PyTorch LR scheduler stepped once after every ``optimizer.step()`` gives.
Parameter groups with different hyperparameters map to ``optax.partition`` with one optimizer per group.

Each optimizer is assembled from adaptx's blocks in PyTorch's order of operations:
``[maximize] -> [coupled L2] -> scaling -> [momentum] -> learning rate -> [decoupled decay]``.
Parity with ``torch.optim`` 2.13 (CPU, single-tensor path) is tested at 1e-5 of the parameter movement in
float32 and 1e-12 in float64 over 1000 steps (``tests/test_torch_parity.py``;
``python -m adaptx.parity`` prints the table).
"""

from __future__ import annotations

from typing import Any

import optax

from adaptx.core import hyperparams
from adaptx.moments.rectification import RAdamRectification
from adaptx.moments.second import InfinityNorm, RunningSum
from adaptx.torch_compat.assembly import split_betas, torch_chain
from adaptx.torch_compat.decay import stepped_decay
from adaptx.torch_compat.inplace import apply_in_sequence
from adaptx.torch_compat.pieces import (
    HostCentered,
    HostFirstAverage,
    HostSecondAverage,
    SplitNesterov,
)
from adaptx.transforms.adaptive import max_tracking, scale_by_moments
from adaptx.transforms.classic import scale_by_momentum
from adaptx.transforms.learning_rate import inverse_time_decay

Transform = optax.GradientTransformationExtraArgs


def _decay(weight_decay: Any, lr: Any, decoupled: bool) -> dict:
    """PyTorch's two weight decays: coupled L2, or θ·(1 − γλ) applied in place."""
    if decoupled:
        return {"decay": stepped_decay(weight_decay, lr, as_factor=True)}
    return {"l2": weight_decay}


def sgd(
    lr: Any = 1e-3,
    momentum: Any = 0.0,
    dampening: Any = 0.0,
    weight_decay: Any = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.SGD``.

    .. math::
        g \leftarrow \pm g + \lambda\theta; \quad b_1 = g_1,\; b_t = \mu b_{t-1} + (1-\tau) g_t; \quad
        \theta \leftarrow \theta - \gamma\,(b_t \text{ or } g_t + \mu b_t \text{ (Nesterov)}).

    Args:
      lr: γ (number or schedule). momentum: μ. dampening: τ. weight_decay: coupled λ.
      nesterov: Nesterov momentum (needs μ > 0, τ = 0). maximize: ascend instead.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.sgd(lr=0.1, momentum=0.9, nesterov=True)
    """
    scaling = [scale_by_momentum(momentum, dampening, nesterov)]  # always: the same state for any momentum
    return torch_chain(scaling, lr, maximize=maximize, l2=weight_decay)


def adam(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> Transform:
    r"""``torch.optim.Adam``.

    .. math::
        g \leftarrow \pm g + \lambda\theta; \quad m_t = \beta_1 m + (1-\beta_1) g, \;
        v_t = \beta_2 v + (1-\beta_2) g^2; \quad
        \theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{\tilde v_t}/\sqrt{1-\beta_2^t} + \epsilon},

    where :math:`\tilde v_t = v_t`, or with ``amsgrad`` the running maximum of the *raw* :math:`v_t`
    (``optax.amsgrad`` takes the maximum of the bias-corrected :math:`\hat v_t` and cannot reproduce this).
    ``decoupled_weight_decay=True`` is :func:`adamw`.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adam(lr=1e-3, weight_decay=1e-4, amsgrad=True)
    """
    b1, b2 = split_betas(betas)
    scaling = scale_by_moments(max_tracking(HostSecondAverage(b2), amsgrad), HostFirstAverage(b1), eps=eps)
    return torch_chain([scaling], lr, maximize=maximize, **_decay(weight_decay, lr, decoupled_weight_decay))


def adamw(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.AdamW``: :func:`adam` with decoupled decay applied as PyTorch applies it.

    .. math::
        \theta \leftarrow \theta_{t-1}\,\mathrm{fl}(1 - \gamma\lambda) - \text{Adam step}.

    The factor :math:`1 - \gamma\lambda` is rounded to float32 before it multiplies θ, as in PyTorch;
    ``optax.adamw`` subtracts :math:`\gamma\lambda\theta` instead, a difference of up to half an ulp of 1
    per step, always in the same direction (see :mod:`adaptx.torch_compat.decay`).

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adamw(lr=1e-3, weight_decay=1e-2)
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)


def rmsprop(
    lr: Any = 1e-2,
    alpha: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    momentum: Any = 0.0,
    centered: bool = False,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.RMSprop``.

    .. math::
        v_t = \alpha v + (1-\alpha) g^2, \quad d_t = \sqrt{v_t} + \epsilon
        \;(\text{centered: } \sqrt{v_t - \bar g_t^2} + \epsilon), \quad
        b_t = \mu b_{t-1} + g_t / d_t, \quad \theta \leftarrow \theta - \gamma b_t .

    Two differences from ``optax.rmsprop``: ε is added *outside* the root (optax: inside), and the
    momentum buffer holds :math:`g/d` *before* the learning rate (optax traces the lr-scaled update).

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.rmsprop(lr=1e-2, momentum=0.9, centered=True)
    """
    hyperparams.check_decay("alpha", alpha)
    second = HostCentered(alpha) if centered else HostSecondAverage(alpha, debias=False)
    # The momentum buffer is always kept (a Python 0 gives b_t = g_t), so the state has one structure.
    scaling = [scale_by_moments(second, None, eps=eps), scale_by_momentum(momentum)]
    return torch_chain(scaling, lr, maximize=maximize, l2=weight_decay)


def adagrad(
    lr: Any = 1e-2,
    lr_decay: Any = 0.0,
    weight_decay: Any = 0.0,
    initial_accumulator_value: Any = 0.0,
    eps: Any = 1e-10,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.Adagrad``.

    .. math::
        s_t = s_{t-1} + g_t^2, \quad
        \theta \leftarrow \theta - \frac{\gamma}{1 + (t-1)\,d}\,\frac{g_t}{\sqrt{s_t} + \epsilon}.

    ``lr_decay`` d becomes a schedule (:func:`adaptx.transforms.learning_rate.inverse_time_decay`),
    composed with ``lr`` if that is a schedule too. ``optax.adagrad`` differs in its defaults
    (initial accumulator 0.1, ε = 1e-7 inside the root).

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adagrad(lr=1e-2, lr_decay=1e-3)
    """
    hyperparams.check_non_negative("initial_accumulator_value", initial_accumulator_value)
    scaling = scale_by_moments(RunningSum(initial_accumulator_value), None, eps=eps)
    return torch_chain([scaling], inverse_time_decay(lr, lr_decay), maximize=maximize, l2=weight_decay)


def adamax(
    lr: Any = 2e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.Adamax``.

    .. math::
        m_t = \beta_1 m + (1-\beta_1) g, \quad u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \quad
        \theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\frac{m_t}{u_t}.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.adamax(lr=2e-3)
    """
    b1, b2 = split_betas(betas)
    hyperparams.check_non_negative("eps", eps)
    scaling = scale_by_moments(InfinityNorm(b2, eps), HostFirstAverage(b1), eps=0.0)
    return torch_chain([scaling], lr, maximize=maximize, l2=weight_decay)


def nadam(
    lr: Any = 2e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    momentum_decay: Any = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.NAdam``.

    .. math::
        \theta \leftarrow \theta - \gamma\Bigl(\frac{1-\mu_t}{1-\Pi_t} g_t
        + \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}} m_t\Bigr)
        \Big/ \Bigl(\sqrt{\tfrac{v_t}{1-\beta_2^t}} + \epsilon\Bigr),
        \quad \mu_t = \beta_1(1 - \tfrac12 0.96^{t\psi}),\; \Pi_t = \textstyle\prod_{s\le t}\mu_s .

    ``decoupled_weight_decay=True`` multiplies θ by :math:`1 - \gamma\lambda` first (NAdamW).

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.nadam(lr=2e-3, momentum_decay=4e-3)
    """
    b1, b2 = split_betas(betas)
    hyperparams.check_non_negative("momentum_decay", momentum_decay)
    # torch keeps the product of momenta in its default dtype, float32, and adds the gradient and the
    # momentum terms to θ with two addcdiv_ (two roundings): SplitNesterov returns them as two Parts.
    first = SplitNesterov(b1, momentum_decay)
    scaling = scale_by_moments(HostSecondAverage(b2), first, eps=eps)
    return torch_chain(
        [scaling], lr, maximize=maximize, **_decay(weight_decay, lr, decoupled_weight_decay),
        finish=[apply_in_sequence()],
    )


def radam(
    lr: Any = 1e-3,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> Transform:
    r"""``torch.optim.RAdam``.

    .. math::
        \theta \leftarrow \theta - \gamma\,\frac{m_t}{1-\beta_1^t}
        \begin{cases} r_t \sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon) & \rho_t > 5 \\
        1 & \text{else}\end{cases}

    (:func:`adaptx.transforms.classic.scale_by_radam`). ``decoupled_weight_decay=True`` multiplies θ by
    :math:`1 - \gamma\lambda` first.

    Example:
      >>> from adaptx import torch_compat
      >>> opt = torch_compat.radam(lr=1e-3)
    """
    b1, b2 = split_betas(betas)
    scaling = scale_by_moments(
        HostSecondAverage(b2), HostFirstAverage(b1), eps=eps, eps_on="raw", rectifier=RAdamRectification(b2)
    )
    return torch_chain([scaling], lr, maximize=maximize, **_decay(weight_decay, lr, decoupled_weight_decay))
