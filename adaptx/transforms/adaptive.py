r"""Adaptive scaling: Adam, AMSGrad and AdaX as one transform over interchangeable moment estimates.

All of them compute

.. math::
    u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon'},

and differ only in how :math:`\hat m` and :math:`\hat v` are estimated (the ``first`` and ``second``
pieces of :func:`scale_by_moments`) and in where ε sits: :math:`\epsilon' = \epsilon` added to the
corrected root (PyTorch), or ε added to the raw root :math:`\sqrt{v}` of the uncorrected accumulator
(HuggingFace, labml, the AdaX authors), which equals :math:`\epsilon' = \epsilon\sqrt{\hat v / v}`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptx.core import counting, hyperparams, numerics, trees
from adaptx.moments import first as first_moments
from adaptx.moments import second as second_moments
from adaptx.transforms.inplace import Parts

Array = jax.Array
EpsOn = Literal["corrected", "raw"]
MaxOf = Literal["raw", "corrected"]


class ScaleByMomentsState(NamedTuple):
    """State of :func:`scale_by_moments` and the ``scale_by_*`` transforms built on it.

    Attributes:
      count: the block's own step counter (int32), or ``None`` inside an :func:`adaptx.chain`.
      mu: first moments, a tree like the parameters (``None`` without a first moment).
      nu: second-moment accumulator states, a tree like the parameters whose leaves are the accumulator's
        per-parameter state (an array, or a :class:`adaptx.moments.MaxState` under AMSGrad).
    """

    count: Array | None
    mu: Any
    nu: Any


def _check_eps_on(eps_on: str) -> None:
    if eps_on not in ("corrected", "raw"):
        raise ValueError(f"eps_on must be 'corrected' or 'raw', got {eps_on!r}")


def _is_zero(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 0


def scale_by_moments(
    second: Any,
    first: Any = None,
    *,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    eps_on: EpsOn = "corrected",
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    shared_count: bool = False,
    rectifier: Any = None,
    split: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Scale updates by first- and second-moment estimates: the engine behind every adaptive block.

    .. math::
        u_t = \hat m_t \,/\, \bigl(\sqrt{\hat v_t + \epsilon_{root}} + \epsilon'\bigr), \qquad
        \epsilon' = \epsilon \text{ (eps\_on="corrected")} \text{ or }
        \epsilon \sqrt{\hat v_t / v_t} \text{ (eps\_on="raw")},

    with :math:`\hat m_t` from ``first`` (the gradient itself when ``first`` is ``None``) and
    :math:`\hat v_t` from ``second`` (no denominator at all when ``second`` is ``None``: plain momentum).
    With a ``rectifier`` (RAdam) the step is :math:`r_t u_t` on the steps it marks adaptive and the bare
    numerator :math:`\hat m_t` on the others.

    Args:
      second: a second-moment accumulator from :mod:`adaptx.moments` (``MovingAverage``,
        ``LongTermAverage``, ``RunningSum``, ``CenteredMovingAverage``, ``InfinityNorm``, any of them
        wrapped in ``MaxTracked``), or ``None``.
      first: a first-moment estimator from :mod:`adaptx.moments.first` (``MovingAverage``, ``Momentum``,
        ``NesterovMovingAverage``) or ``None``.
      eps: ε added to the root, ``>= 0``.
      eps_root: ε added inside the root (optax's ``eps_root``), ``>= 0``.
      eps_on: ``"corrected"`` adds ε to :math:`\sqrt{\hat v}` (PyTorch); ``"raw"`` adds it to the raw
        :math:`\sqrt{v}` of the uncorrected accumulator (HuggingFace, labml, AdaX's authors).
      mu_dtype, nu_dtype: storage dtypes of the moments (default: the parameter's dtype). Arithmetic is
        done in at least float32 whatever the storage.
      shared_count: read the step number from an enclosing :func:`adaptx.chain` instead of keeping a
        counter in this state.
      rectifier: ``None`` or an object whose ``scalars(t, dtype)`` returns ``(adaptive, factor)``
        (:class:`adaptx.moments.RAdamRectification`).
      split: emit each update as :class:`adaptx.transforms.inplace.Parts`, one part per term of the
        first-moment estimator's ``parts`` (NAdam: gradient term, momentum term), each divided by the
        denominator, for PyTorch's one-rounding-per-term application (see
        :mod:`adaptx.transforms.inplace`; end the chain with ``apply_in_sequence``).

    Example:
      >>> import adaptx
      >>> from adaptx import moments
      >>> adax_like = adaptx.scale_by_moments(
      ...     moments.LongTermAverage(1e-4), moments.first.MovingAverage(0.9, debias=False),
      ...     eps=1e-12, eps_on="raw")
    """
    hyperparams.check_non_negative("eps", eps)
    hyperparams.check_non_negative("eps_root", eps_root)
    _check_eps_on(eps_on)
    who = "adaptx.scale_by_moments"
    if split and not hasattr(first, "parts"):
        raise ValueError(f"{who}: split=True needs a first-moment estimator with parts(), got {first!r}")
    if split and (rectifier is not None or second is None):
        raise ValueError(f"{who}: split=True cannot be combined with a rectifier or without a denominator")

    def init_fn(params):
        def leaf_init(p):
            mu = None if first is None else first.init(p, mu_dtype or p.dtype)
            nu = None if second is None else second.init(p, nu_dtype or p.dtype)
            return mu, nu

        mu, nu = trees.unzip(jax.tree.map(leaf_init, params), params, 2)
        # An absent estimate is None, not a tree of Nones, in init as in update (lax.scan and
        # jax.lax.cond need the state's structure to stay the same from step to step).
        mu = None if first is None else mu
        nu = None if second is None else nu
        return ScaleByMomentsState(count=counting.init(shared_count), mu=mu, nu=nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params
        t, count = counting.next_step(shared_count, state.count, extra_args, who)
        per_dtype: dict[Any, tuple] = {}  # per-step scalars, computed once per compute dtype

        def step_scalars(dtype):
            if dtype not in per_dtype:
                c1 = None if first is None else first.correction(t, dtype)
                sc = None if second is None else second.scalars(t, dtype)
                rect = None if rectifier is None else rectifier.scalars(t, dtype)
                per_dtype[dtype] = (c1, sc, rect)
            return per_dtype[dtype]

        def cast(tree, dtype):
            return jax.tree.map(lambda x: numerics.cast_state(x, dtype), tree)

        def recast(new, old):
            return jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)

        def leaf_update(g, mu, nu):
            # The state's per-parameter arrays are its largest leaves (a state may also hold scalars,
            # like NAdam's product of momenta); the first of them sets the shape check and the dtype.
            state_leaves = jax.tree.leaves((nu, mu))
            like = max(state_leaves, key=lambda x: x.ndim) if state_leaves else g
            trees.check_shape(who, g, like)
            c = numerics.compute_dtype(g.dtype, like.dtype)
            c1, sc, rect = step_scalars(c)
            gc = g.astype(c)
            if first is None:
                m_hat, new_mu = gc, None
            else:
                new_mu = recast(first.update(cast(mu, c), gc, t), mu)
                # The step reads the moments as stored (a no-op unless they are stored narrower, e.g.
                # bf16): then no kernel needs the old moment once the new one is written in place.
                m = cast(new_mu, c)
                m_hat = first.numerator(m, gc, t, c1)  # subclasses of moments.first.Estimator
            if second is None:
                return m_hat.astype(g.dtype), new_mu, None
            new_nu = recast(second.update(cast(nu, c), gc, sc), nu)
            nu_c = cast(new_nu, c)  # as stored, like the first moment above
            if _is_zero(eps_root):
                root = second.sqrt_estimate(nu_c, sc)
            else:
                root = jnp.sqrt(second.estimate(nu_c, sc) + jnp.asarray(eps_root, c))
            eps_c = jnp.asarray(eps, c)
            if eps_on == "raw" and sc.eps_div is not None:
                eps_c = eps_c / sc.eps_div
            den = root + eps_c
            # den is 0 only where no gradient signal was ever recorded (v = 0) and ε' is 0 (ε = 0, or
            # AdaX's ε/√B_t underflowed): the step there is 0, not 0/0 = NaN.
            if split:
                parts = first.parts(m, gc, t, c1)
                u = Parts(tuple(jnp.where(den > 0, q / den, jnp.zeros_like(q)).astype(g.dtype)
                                for q in parts))
                return u, new_mu, new_nu
            u = jnp.where(den > 0, m_hat / den, jnp.zeros_like(m_hat))
            if rect is not None:
                u = jnp.where(rect.adaptive, rect.factor * u, m_hat)
            return u.astype(g.dtype), new_mu, new_nu

        mu_in = state.mu if first is not None else jax.tree.map(lambda _: None, updates)
        nu_in = state.nu if second is not None else jax.tree.map(lambda _: None, updates)
        out = trees.map_leaves(who, leaf_update, updates, mu_in, nu_in)
        new_updates, mu, nu = trees.unzip(out, updates, 3)
        if first is None:
            mu = None
        if second is None:
            nu = None
        return new_updates, ScaleByMomentsState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _max_tracking(accumulator: Any, amsgrad: bool | MaxOf) -> Any:
    """``accumulator`` wrapped in AMSGrad's max-tracking, or as it is."""
    if amsgrad is False:
        return accumulator
    over = "raw" if amsgrad is True else amsgrad
    if over not in ("raw", "corrected"):
        raise ValueError(f"amsgrad must be False, True, 'raw' or 'corrected', got {amsgrad!r}")
    return second_moments.MaxTracked(accumulator, over=over)


def scale_by_adam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    *,
    debias_mu: bool = True,
    debias_nu: bool = True,
    eps_on: EpsOn = "corrected",
    amsgrad: bool | MaxOf = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    shared_count: bool = False,
    host_constants: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates by Adam's bias-corrected moment estimates.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t}, \quad
        u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}.

    The corrections are computed as ``-expm1(t * log1p(-b))``, accurate in float32 for every step.

    Args:
      b1: decay of the first moment, in ``[0, 1)``.
      b2: decay of the second moment, in ``[0, 1)``.
      eps: ε added to the root (see ``eps_on``), ``>= 0``. With ``eps_on="corrected"`` (default) this
        is PyTorch's convention; ``eps_on="raw"`` adds ε to :math:`\sqrt{v_t}` before correction
        (HuggingFace's AdamW, labml's optimized update).
      eps_root: ε inside the root (optax's ``eps_root``; d2l's formula), ``>= 0``.
      debias_mu, debias_nu: apply the bias correction of the first/second moment. BERT's
        ``correct_bias=False`` turns both off.
      amsgrad: ``False``; ``True`` or ``"raw"`` to divide by the running maximum of the raw :math:`v_t`
        corrected at the current step (PyTorch); ``"corrected"`` for the maximum of :math:`\hat v_t`
        (the AMSGrad paper, optax).
      mu_dtype, nu_dtype: storage dtypes of the moments (default: the parameter's dtype).
      shared_count: use the step counter of an enclosing :func:`adaptx.chain`.
      host_constants: form :math:`1-\beta` and :math:`1-\beta^t` from the Python floats in float64, as
        PyTorch does, instead of from the rounded β (see :mod:`adaptx.moments.constants`).

    Example:
      >>> import adaptx, optax, jax.numpy as jnp
      >>> opt = optax.chain(adaptx.scale_by_adam(b2=0.99), optax.scale(-1e-3))
      >>> params = {"w": jnp.ones(3)}
      >>> updates, state = opt.update({"w": jnp.full(3, 0.5)}, opt.init(params))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_decay("b2", b2)
    return scale_by_moments(
        _max_tracking(
            second_moments.MovingAverage(b2, debias=debias_nu, host_constants=host_constants), amsgrad
        ),
        first_moments.MovingAverage(b1, debias=debias_mu, host_constants=host_constants),
        eps=eps,
        eps_root=eps_root,
        eps_on=eps_on,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
        shared_count=shared_count,
    )


def scale_by_amsgrad(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    *,
    max_of: MaxOf = "raw",
    eps_on: EpsOn = "corrected",
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    shared_count: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates by AMSGrad's running maximum of Adam's second moment.

    ``max_of="raw"`` (default, PyTorch's and labml's rule):

    .. math::
        u_t \leftarrow \max(u_{t-1}, v_t), \qquad
        \text{update} = \frac{\hat m_t}{\sqrt{u_t / (1 - \beta_2^t)} + \epsilon};

    ``max_of="corrected"`` (the paper's and optax's rule): :math:`\hat u_t = \max(\hat u_{t-1}, \hat v_t)`
    and :math:`\text{update} = \hat m_t / (\sqrt{\hat u_t} + \epsilon)`. The two differ: the corrected
    :math:`\hat v_t` of early steps is inflated by :math:`1/(1-\beta_2^t)` and can stay the maximum for
    a long time.

    Args:
      b1, b2, eps, eps_root, eps_on, mu_dtype, nu_dtype, shared_count: as in :func:`scale_by_adam`.
      max_of: ``"raw"`` or ``"corrected"``.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_amsgrad(max_of="corrected"), optax.scale(-1e-3))
    """
    if max_of not in ("raw", "corrected"):
        raise ValueError(f"max_of must be 'raw' or 'corrected', got {max_of!r}")
    return scale_by_adam(
        b1, b2, eps, eps_root, amsgrad=max_of, eps_on=eps_on, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
        shared_count=shared_count,
    )


def scale_by_adax(
    b1: Any = 0.9,
    b2: Any = 1e-4,
    eps: Any = 1e-12,
    *,
    eps_on: EpsOn = "raw",
    amsgrad: bool | MaxOf = False,
    compensated: bool = True,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    shared_count: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates by AdaX's long-term second moment (Li et al., 2020).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = (1+\beta_2) v_{t-1} + \beta_2 g_t^2, \quad
        B_t = (1+\beta_2)^t - 1, \\
        u_t = \frac{m_t}{\sqrt{v_t / B_t} + \epsilon'} \quad(\text{no first-moment correction}).

    With ``eps_on="raw"`` (default, the authors' code) :math:`\epsilon' = \epsilon / \sqrt{B_t}`, i.e.
    the step is :math:`\sqrt{B_t}\, m_t / (\sqrt{v_t} + \epsilon)`; ``"corrected"`` adds ε to
    :math:`\sqrt{v_t / B_t}` (one Keras port's choice).

    The textbook :math:`v_t` and :math:`B_t` overflow float32 at t ≈ 887,000 for β2 = 1e-4 (NaN from
    step 887,128). This transform stores :math:`v_t / B_t` instead (see
    :class:`adaptx.moments.LongTermAverage`) and stays finite and accurate for every step the int32
    counter can count.

    Args:
      b1: decay of the first moment, in ``[0, 1)`` (authors' default 0.9).
      b2: AdaX's β2 ``> 0`` (authors' default 1e-4): the growth rate of the long-term memory.
      eps: ε, ``>= 0`` (authors' default 1e-12, on the raw root).
      eps_on: ``"raw"`` (authors) or ``"corrected"``.
      amsgrad: AMSGrad max-tracking around AdaX's accumulator: ``False``, ``True``/``"raw"`` or
        ``"corrected"`` (see :func:`scale_by_adam`).
      compensated: keep the float32 rounding residual of the long-term average (default): within
        1e-8 to 5e-8 of float64 instead of ~5e-5, for one more float32 per parameter of state (the
        average and its residual are stored as one complex64 array, updated by one kernel; see
        :class:`adaptx.moments.LongTermAverage`).
      mu_dtype, nu_dtype, shared_count: as in :func:`scale_by_adam`.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_adax(), optax.scale(-1.5e-3))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_positive("b2", b2)
    return scale_by_moments(
        _max_tracking(second_moments.LongTermAverage(b2, compensated=compensated), amsgrad),
        first_moments.MovingAverage(b1, debias=False),
        eps=eps,
        eps_on=eps_on,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
        shared_count=shared_count,
    )
