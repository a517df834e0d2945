r"""Momentum, RMSprop, Adagrad, Adamax, NAdam and RAdam as assemblies of :func:`scale_by_moments`.

Each constructor here only picks moment estimates from :mod:`adaptx.moments` and hands them to the one
engine, :func:`adaptx.scale_by_moments`; none has arithmetic of its own. The learning rate, weight decay
and sign are separate blocks (see :mod:`adaptx.torch_compat` for complete optimizers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optax

from adaptx.core import hyperparams
from adaptx.moments import first as first_moments
from adaptx.moments import second as second_moments
from adaptx.moments.rectification import RAdamRectification
from adaptx.transforms.adaptive import scale_by_moments


def scale_by_momentum(
    momentum: Any = 0.9,
    dampening: Any = 0.0,
    nesterov: bool = False,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Heavy-ball momentum with PyTorch's buffer semantics.

    .. math::
        b_1 = u_1, \qquad b_t = \mu b_{t-1} + (1-\tau) u_t, \qquad
        u_t \leftarrow b_t \;\text{ or (Nesterov) }\; u_t + \mu b_t .

    Placed before the learning rate it is ``torch.optim.SGD``'s momentum; placed after an RMSprop
    scaling (and before the learning rate) it is ``torch.optim.RMSprop(momentum=μ)``, whose buffer holds
    :math:`g/d` *before* the learning rate. (``optax.rmsprop`` instead applies momentum to the
    learning-rate-scaled update, which differs as soon as the learning rate changes.)

    Args:
      momentum: μ ``>= 0``.
      dampening: τ (PyTorch's ``dampening``), applied from the second step on.
      nesterov: use :math:`u_t + \mu b_t`.
      mu_dtype: storage dtype of the buffer (default: the parameter's).

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_momentum(0.9, nesterov=True), optax.scale(-1e-2))
    """
    hyperparams.check_non_negative("momentum", momentum)
    hyperparams.check_range("dampening", dampening)
    concrete = not (hyperparams.is_traced(momentum) or hyperparams.is_traced(dampening))
    valid = np.all(np.asarray(momentum) > 0) and np.all(np.asarray(dampening) == 0) if concrete else True
    if nesterov and not valid:
        raise ValueError(
            f"nesterov momentum needs momentum > 0 and dampening == 0, got momentum={momentum!r}, "
            f"dampening={dampening!r}"
        )
    return scale_by_moments(None, first_moments.Momentum(momentum, dampening, nesterov), mu_dtype=mu_dtype)


def scale_by_rmsprop(
    alpha: Any = 0.99,
    eps: Any = 1e-8,
    *,
    centered: bool = False,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSprop's scaling with ε outside the root and no bias correction (PyTorch's convention).

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2, \qquad
        u_t = \frac{g_t}{\sqrt{v_t} + \epsilon} \;\text{ or, centered, }\;
        \frac{g_t}{\sqrt{v_t - \bar g_t^2} + \epsilon}, \quad \bar g_t = \alpha\bar g_{t-1} + (1-\alpha) g_t .

    ``optax.scale_by_rms`` puts ε inside the root (:math:`g/\sqrt{v + \epsilon}`): with gradients of
    size 1e-4, ε = 1e-8 is then as large as :math:`v` itself.

    Args:
      alpha: α in ``[0, 1)``.
      eps: ε ``>= 0`` added to the root.
      centered: divide by the root of the variance estimate instead of the second moment.
      nu_dtype: as in :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_rmsprop(0.99, centered=True), optax.scale(-1e-2))
    """
    hyperparams.check_decay("alpha", alpha)
    second = (
        second_moments.CenteredMovingAverage(alpha)
        if centered
        else second_moments.MovingAverage(alpha, debias=False)
    )
    return scale_by_moments(second, None, eps=eps, nu_dtype=nu_dtype)


def scale_by_adagrad(
    initial_accumulator_value: Any = 0.0,
    eps: Any = 1e-10,
    *,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adagrad's scaling (Duchi et al., 2011) with ε outside the root (PyTorch's convention).

    .. math::
        s_t = s_{t-1} + g_t^2, \quad s_0 = s_{init}, \qquad u_t = \frac{g_t}{\sqrt{s_t} + \epsilon}.

    PyTorch's defaults are :math:`s_{init} = 0`, ε = 1e-10 outside the root; ``optax.adagrad`` starts at
    0.1 and puts ε = 1e-7 inside the root, so with small gradients its first steps are ~√0.1/|g| times
    smaller.

    Args:
      initial_accumulator_value: :math:`s_{init} \ge 0`.
      eps: ε ``>= 0``.
      nu_dtype: as in :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_adagrad(), optax.scale(-1e-2))
    """
    hyperparams.check_non_negative("initial_accumulator_value", initial_accumulator_value)
    accumulator = second_moments.RunningSum(initial_accumulator_value)
    return scale_by_moments(accumulator, None, eps=eps, nu_dtype=nu_dtype)


def scale_by_adamax(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adamax's scaling (Kingma & Ba, 2015): Adam with an infinity norm in the denominator.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \quad
        \text{update} = \frac{m_t}{(1-\beta_1^t)\, u_t}.

    ε sits inside the maximum, as in PyTorch (``optax.scale_by_adamax`` adds it to :math:`u_t` after the
    maximum).

    Args:
      b1, b2: decays in ``[0, 1)``.
      eps: ε ``>= 0``.
      mu_dtype, nu_dtype: as in :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_adamax(), optax.scale(-2e-3))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_decay("b2", b2)
    hyperparams.check_non_negative("eps", eps)
    return scale_by_moments(
        second_moments.InfinityNorm(b2, eps),
        first_moments.MovingAverage(b1),
        eps=0.0, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
    )


def scale_by_nadam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    momentum_decay: Any = 4e-3,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""NAdam's scaling (Dozat, 2016) with PyTorch's momentum schedule.

    .. math::
        \text{update} = \frac{\hat m_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}, \qquad
        \hat m_t = \frac{1 - \mu_t}{1 - \Pi_t} g_t + \frac{\mu_{t+1}}{1 - \Pi_t\mu_{t+1}} m_t,

    with :math:`\mu_t = \beta_1(1 - 0.96^{t\psi}/2)` and :math:`\Pi_t = \prod_{s \le t}\mu_s`
    (:class:`adaptx.moments.first.NesterovMovingAverage`). ``optax.nadam`` uses a constant
    :math:`\mu = \beta_1` instead (no momentum schedule).

    Args:
      b1, b2: decays in ``[0, 1)``.
      eps: ε ``>= 0`` on the corrected root.
      momentum_decay: ψ ``>= 0``.
      mu_dtype, nu_dtype: as in :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_nadam(), optax.scale(-2e-3))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_decay("b2", b2)
    hyperparams.check_non_negative("momentum_decay", momentum_decay)
    return scale_by_moments(
        second_moments.MovingAverage(b2),
        first_moments.NesterovMovingAverage(b1, momentum_decay),
        eps=eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
    )


def scale_by_radam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    threshold: float = 5.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RAdam's scaling (Liu et al., 2020), PyTorch's formulation.

    .. math::
        \text{update} = \begin{cases}
            r_t\, \hat m_t \sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon) & \rho_t > 5 \\
            \hat m_t & \text{otherwise}
        \end{cases}

    with :math:`\rho_t, r_t` from :class:`adaptx.moments.RAdamRectification`. ε is added to the
    *uncorrected* root :math:`\sqrt{v_t}` (``eps_on="raw"``), unlike PyTorch's Adam.

    Args:
      b1, b2: decays in ``[0, 1)`` (b2 > 0).
      eps: ε ``>= 0``.
      threshold: the :math:`\rho_t` above which the adaptive step is used (PyTorch: 5).
      mu_dtype, nu_dtype: as in :func:`adaptx.scale_by_adam`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_radam(), optax.scale(-1e-3))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_decay("b2", b2)
    return scale_by_moments(
        second_moments.MovingAverage(b2),
        first_moments.MovingAverage(b1),
        eps=eps, eps_on="raw", mu_dtype=mu_dtype, nu_dtype=nu_dtype,
        rectifier=RAdamRectification(b2, threshold),
    )
