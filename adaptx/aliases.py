r"""Ready-made optimizers, each a chain of the public blocks around one shared step counter.

Every alias is ``adaptx.chain(pre-processing, scaling, learning rate, decoupled decay)`` and contains no
arithmetic of its own. Defaults follow optax where optax has the same optimizer (so an alias is a drop-in
replacement) and the AdaX authors' code for AdaX; the torch defaults live in :mod:`adaptx.torch_compat`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

from adaptx.transforms.adaptive import EpsOn, MaxOf, scale_by_adam, scale_by_adax, scale_by_amsgrad
from adaptx.transforms.assembly import assemble

Mask = Any | Callable[[Any], Any]


def _assemble(
    scaling: optax.GradientTransformation,
    learning_rate: Any,
    *,
    l2: Any = 0.0,
    decoupled: Any = 0.0,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    """[L2] -> scaling -> -learning rate -> [decoupled decay u - γλθ, optax's form]."""
    return assemble(
        [scaling], learning_rate, l2=l2, decoupled=decoupled, mask=mask, as_factor=False, inplace=False,
        lr_name="learning_rate",
    )


def adam(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    *,
    eps_on: EpsOn = "corrected",
    amsgrad: bool | MaxOf = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam (Kingma & Ba, 2015).

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    with :math:`\hat m, \hat v` as in :func:`adaptx.scale_by_adam`. Defaults are optax's and PyTorch's
    (β1 = 0.9, β2 = 0.999, ε = 1e-8 on the corrected root).

    Args:
      learning_rate: γ: a number, an array or an optax schedule.
      b1, b2, eps, eps_root, eps_on, amsgrad, mu_dtype, nu_dtype: see :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax, jax.numpy as jnp
      >>> opt = adaptx.adam(1e-3)
      >>> params = {"w": jnp.zeros(3)}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.ones(3)}, state, params)
      >>> params = optax.apply_updates(params, updates)
    """
    scaling = scale_by_adam(
        b1, b2, eps, eps_root, eps_on=eps_on, amsgrad=amsgrad, mu_dtype=mu_dtype,
        nu_dtype=nu_dtype, shared_count=True,
    )
    return _assemble(scaling, learning_rate)


def adamw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    weight_decay: Any = 1e-4,
    *,
    mask: Mask = None,
    eps_on: EpsOn = "corrected",
    amsgrad: bool | MaxOf = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019), PyTorch's semantics.

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t\Bigl(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
        + \lambda_t \theta_{t-1}\Bigr)

    The decay is scaled by the learning rate, as in ``torch.optim.AdamW`` and ``optax.adamw``. The
    default λ = 1e-4 is optax's (PyTorch's is 1e-2: see :func:`adaptx.torch_compat.adamw`).

    Args:
      learning_rate: γ: a number, an array or an optax schedule.
      weight_decay: λ ``>= 0``: a number, an array or an optax schedule.
      mask: which parameters decay: a tree of booleans or a callable ``params -> tree``.
      b1, b2, eps, eps_root, eps_on, amsgrad, mu_dtype, nu_dtype: see :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.adamw(1e-3, weight_decay=1e-2, mask=lambda p: {"w": True, "b": False})
    """
    scaling = scale_by_adam(
        b1, b2, eps, eps_root, eps_on=eps_on, amsgrad=amsgrad, mu_dtype=mu_dtype,
        nu_dtype=nu_dtype, shared_count=True,
    )
    return _assemble(scaling, learning_rate, decoupled=weight_decay, mask=mask)


def amsgrad(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    *,
    max_of: MaxOf = "raw",
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad (Reddi, Kale & Kumar, 2018): Adam dividing by the running maximum of the second moment.

    .. math::
        u_t = \max(u_{t-1}, v_t), \qquad
        \theta_t = \theta_{t-1} - \gamma_t \frac{\hat m_t}{\sqrt{u_t / (1-\beta_2^t)} + \epsilon}.

    The default ``max_of="raw"`` is PyTorch's (and labml's) rule; ``"corrected"`` is the paper's and
    ``optax.amsgrad``'s (maximum of :math:`\hat v_t`). They give different trajectories.

    Args:
      learning_rate: γ: a number, an array or an optax schedule.
      max_of: ``"raw"`` or ``"corrected"``.
      b1, b2, eps, eps_root, mu_dtype, nu_dtype: see :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.amsgrad(1e-2, b2=0.99)
    """
    scaling = scale_by_amsgrad(
        b1, b2, eps, eps_root, max_of=max_of, mu_dtype=mu_dtype, nu_dtype=nu_dtype, shared_count=True
    )
    return _assemble(scaling, learning_rate)


def amsgradw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    weight_decay: Any = 1e-4,
    *,
    mask: Mask = None,
    max_of: MaxOf = "raw",
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AMSGrad with decoupled weight decay: ``torch.optim.AdamW(amsgrad=True)``.

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t\Bigl(\frac{\hat m_t}{\sqrt{u_t/(1-\beta_2^t)} + \epsilon}
        + \lambda_t\theta_{t-1}\Bigr), \qquad u_t = \max(u_{t-1}, v_t).

    Args: as :func:`amsgrad` and :func:`adamw`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.amsgradw(1e-3, weight_decay=1e-2)
    """
    scaling = scale_by_amsgrad(
        b1, b2, eps, eps_root, max_of=max_of, mu_dtype=mu_dtype, nu_dtype=nu_dtype, shared_count=True
    )
    return _assemble(scaling, learning_rate, decoupled=weight_decay, mask=mask)


def adax(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 1e-4,
    eps: Any = 1e-12,
    weight_decay: Any = 0.0,
    *,
    mask: Mask = None,
    eps_on: EpsOn = "raw",
    amsgrad: bool | MaxOf = False,
    compensated: bool = True,
    mu_dtype: Any = None,
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
      learning_rate: γ: a number, an array or an optax schedule (the authors use 1.5e-3).
      weight_decay: coupled L2 λ ``>= 0`` (number, array or schedule).
      mask: which parameters get L2.
      b1, b2, eps, eps_on, amsgrad, compensated, mu_dtype, nu_dtype: see :func:`adaptx.scale_by_adax`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.adax(1.5e-3, weight_decay=5e-4)
    """
    scaling = scale_by_adax(
        b1, b2, eps, eps_on=eps_on, amsgrad=amsgrad, compensated=compensated, mu_dtype=mu_dtype,
        nu_dtype=nu_dtype, shared_count=True,
    )
    return _assemble(scaling, learning_rate, l2=weight_decay, mask=mask)


def adaxw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 1e-4,
    eps: Any = 1e-12,
    weight_decay: Any = 5e-2,
    *,
    mask: Mask = None,
    eps_on: EpsOn = "raw",
    amsgrad: bool | MaxOf = False,
    compensated: bool = True,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaXW: AdaX with decoupled weight decay (the authors' ``AdaXW``).

    .. math::
        \theta_t = \theta_{t-1} - \gamma_t\Bigl(\frac{\sqrt{B_t}\, m_t}{\sqrt{v_t} + \epsilon}
        + \lambda_t\theta_{t-1}\Bigr)

    Defaults are the authors' (β1 = 0.9, β2 = 1e-4, ε = 1e-12 on the raw root, λ = 5e-2 from their
    README, used with γ = 5e-3).

    Args:
      learning_rate: γ: a number, an array or an optax schedule.
      weight_decay: decoupled λ ``>= 0`` (number, array or schedule), scaled by γ.
      mask: which parameters decay.
      b1, b2, eps, eps_on, amsgrad, compensated, mu_dtype, nu_dtype: see :func:`adaptx.scale_by_adax`.

    Example:
      >>> import adaptx
      >>> opt = adaptx.adaxw(5e-3)
    """
    scaling = scale_by_adax(
        b1, b2, eps, eps_on=eps_on, amsgrad=amsgrad, compensated=compensated, mu_dtype=mu_dtype,
        nu_dtype=nu_dtype, shared_count=True,
    )
    return _assemble(scaling, learning_rate, decoupled=weight_decay, mask=mask)
