r"""Ready-made optimizers, each a direct chain of the public blocks around one step counter.

Every alias reads as its algorithm: ``adaptx.chain(scaling, [decay], learning rate)``, with no
arithmetic of its own. Where optax has the same optimizer the alias takes optax's positional arguments,
keyword names and defaults (a drop-in replacement); adaptx's own options are keyword-only. AdaX follows
its authors' code; the PyTorch defaults and rounding live in :mod:`adaptx.torch_compat`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

from adaptx.core.counting import chain
from adaptx.transforms.adaptive import EpsOn, MaxOf, scale_by_adam, scale_by_adax, scale_by_amsgrad
from adaptx.transforms.learning_rate import scale_by_learning_rate
from adaptx.transforms.weight_decay import add_decayed_weights, add_l2

Mask = Any | Callable[[Any], Any]


def adam(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    eps_on: EpsOn = "corrected",
    amsgrad: bool | MaxOf = False,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam (Kingma & Ba, 2015).

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with :math:`\hat m, \hat v` as in :func:`adaptx.scale_by_adam`. Arguments and defaults are
    ``optax.adam``'s (β1 = 0.9, β2 = 0.999, ε = 1e-8 on the corrected root, PyTorch's too).

    Args:
      learning_rate: γ: a number, a scalar array or an optax schedule.
      b1, b2, eps, eps_root, mu_dtype, nesterov: as in ``optax.adam`` (see :func:`adaptx.scale_by_adam`).
      eps_on, amsgrad, nu_dtype: adaptx's options, see :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax, jax.numpy as jnp
      >>> opt = adaptx.adam(1e-3)
      >>> params = {"w": jnp.zeros(3)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.ones(3)}, state, params)
      >>> params = optax.apply_updates(params, updates)
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, eps_on=eps_on, amsgrad=amsgrad,
                      nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: Any = 1e-4,
    mask: Mask = None,
    *,
    nesterov: bool = False,
    eps_on: EpsOn = "corrected",
    amsgrad: bool | MaxOf = False,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t\Bigl(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
        + \lambda_t \theta_{t-1}\Bigr)

    The decay is scaled by the learning rate, as in ``torch.optim.AdamW`` and ``optax.adamw``, whose
    arguments and defaults this takes (λ = 1e-4; PyTorch's is 1e-2: see
    :func:`adaptx.torch_compat.adamw`, which also rounds as PyTorch does).

    Args:
      learning_rate: γ: a number, a scalar array or an optax schedule.
      b1, b2, eps, eps_root, mu_dtype, nesterov: see :func:`adaptx.scale_by_adam`.
      weight_decay: λ ``>= 0``: a number, a scalar array or an optax schedule.
      mask: which parameters decay: a tree of booleans or a callable ``params -> tree``.
      eps_on, amsgrad, nu_dtype: adaptx's options, see :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.adamw(1e-3, weight_decay=1e-2, mask=lambda p: {"w": True, "b": False})
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, eps_on=eps_on, amsgrad=amsgrad,
                      nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )


def amsgrad(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    max_of: MaxOf = "raw",
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad (Reddi, Kale & Kumar, 2018): Adam dividing by the running maximum of the second moment.

    .. math::
        u_t = \max(u_{t-1}, v_t), \qquad
        \theta_t = \theta_{t-1} - \gamma_t \frac{\hat m_t}{\sqrt{u_t / (1-\beta_2^t)} + \epsilon}.

    The default ``max_of="raw"`` is PyTorch's (and labml's) rule; ``"corrected"`` is the paper's and
    ``optax.amsgrad``'s (maximum of :math:`\hat v_t`). They give different trajectories.

    Args:
      learning_rate: γ: a number, a scalar array or an optax schedule.
      b1, b2, eps, eps_root, mu_dtype: as in ``optax.amsgrad``.
      bias_correction_mu, bias_correction_nu: divide the moments by :math:`1-\beta^t` (``optax.amsgrad``'s
        switches).
      max_of: ``"raw"`` or ``"corrected"``.
      nu_dtype: see :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.amsgrad(1e-2, b2=0.99)
    """
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, max_of=max_of, debias_mu=bias_correction_mu,
                         debias_nu=bias_correction_nu, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def amsgradw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    weight_decay: Any = 1e-4,
    mask: Mask = None,
    *,
    max_of: MaxOf = "raw",
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad with decoupled weight decay: ``torch.optim.AdamW(amsgrad=True)``.

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t\Bigl(\frac{\hat m_t}{\sqrt{u_t/(1-\beta_2^t)} + \epsilon}
        + \lambda_t\theta_{t-1}\Bigr), \qquad u_t = \max(u_{t-1}, v_t).

    Args: as :func:`amsgrad` and :func:`adamw` (positional order of ``adamw``).

    Example:
      >>> import adaptx
      >>> opt = adaptx.amsgradw(1e-3, weight_decay=1e-2)
    """
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, max_of=max_of, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )


def adax(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 1e-4,
    eps: Any = 1e-12,
    weight_decay: Any = 0.0,
    mask: Mask = None,
    *,
    mu_dtype: Any = None,
    eps_on: EpsOn = "raw",
    amsgrad: bool | MaxOf = False,
    compensated: bool = True,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaX (Li et al., 2020): Adam with an exponential *long-term* memory of past gradients.

    .. math::
        g_t \leftarrow g_t + \lambda\theta_{t-1}, \quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = (1+\beta_2) v_{t-1} + \beta_2 g_t^2, \\
        \theta_t = \theta_{t-1} - \gamma_t \frac{\sqrt{B_t}\, m_t}{\sqrt{v_t} + \epsilon}, \quad
        B_t = (1+\beta_2)^t - 1.

    Defaults are the authors' (β1 = 0.9, β2 = 1e-4, ε = 1e-12 on the raw root), except the coupled L2
    decay λ: their class defaults to 5e-4, a CIFAR training choice rather than part of the algorithm,
    so here it is 0 as in ``adam`` (pass ``weight_decay=5e-4`` for the authors' setting;
    :mod:`adaptx.torch_compat` keeps their defaults). Computed in the overflow-free form of
    :func:`adaptx.scale_by_adax`.

    Args:
      learning_rate: γ: a number, a scalar array or an optax schedule (the authors use 1.5e-3).
      b1, b2, eps: see :func:`adaptx.scale_by_adax`.
      weight_decay: coupled L2 λ ``>= 0`` (number, scalar array or schedule).
      mask: which parameters get L2.
      mu_dtype, eps_on, amsgrad, compensated, nu_dtype: see :func:`adaptx.scale_by_adax`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.adax(1.5e-3, weight_decay=5e-4)
    """
    return chain(
        add_l2(weight_decay, mask=mask),
        scale_by_adax(b1, b2, eps, mu_dtype, eps_on=eps_on, amsgrad=amsgrad, compensated=compensated,
                      nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


def adaxw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 1e-4,
    eps: Any = 1e-12,
    weight_decay: Any = 5e-2,
    mask: Mask = None,
    *,
    mu_dtype: Any = None,
    eps_on: EpsOn = "raw",
    amsgrad: bool | MaxOf = False,
    compensated: bool = True,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaXW: AdaX with decoupled weight decay (the authors' ``AdaXW``).

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t\Bigl(\frac{\sqrt{B_t}\, m_t}{\sqrt{v_t} + \epsilon}
        + \lambda_t\theta_{t-1}\Bigr)

    Defaults are the authors' (β1 = 0.9, β2 = 1e-4, ε = 1e-12 on the raw root, λ = 5e-2 from their
    README, used with γ = 5e-3).

    Args:
      learning_rate: γ: a number, a scalar array or an optax schedule.
      b1, b2, eps: see :func:`adaptx.scale_by_adax`.
      weight_decay: decoupled λ ``>= 0`` (number, scalar array or schedule), scaled by γ.
      mask: which parameters decay.
      mu_dtype, eps_on, amsgrad, compensated, nu_dtype: see :func:`adaptx.scale_by_adax`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.adaxw(5e-3)
    """
    return chain(
        scale_by_adax(b1, b2, eps, mu_dtype, eps_on=eps_on, amsgrad=amsgrad, compensated=compensated,
                      nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask=mask),
        scale_by_learning_rate(learning_rate),
    )
