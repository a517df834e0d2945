r"""Adaptive scaling: Adam, AMSGrad and AdaX as one transform over interchangeable moment estimates.

All of them compute

.. math::
    u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon'},

and differ only in how :math:`\hat m` and :math:`\hat v` are estimated (the ``first`` and ``second``
pieces of :func:`scale_by_moments`) and in where ε sits: :math:`\epsilon' = \epsilon` added to the
corrected root (PyTorch, optax), or ε added to the raw root :math:`\sqrt{v}` of the uncorrected
accumulator (HuggingFace, labml, the AdaX authors), which equals
:math:`\epsilon' = \epsilon\sqrt{\hat v / v}`.

Non-finite values: a NaN or infinite gradient gives a NaN or infinite update for that element (and the
moments keep it), as in optax and PyTorch; skip such steps with ``optax.apply_if_finite``. A zero
denominator (:math:`\hat v = 0` with :math:`\epsilon' = 0`) gives a zero step: it happens where every
gradient so far was zero or so small that its square underflowed, and the gradient and state are finite.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.core import counting, hyperparams, numerics, trees
from adaptx.moments import first as first_moments
from adaptx.moments import second as second_moments
from adaptx.moments.base import FirstMoment, SecondMoment
from adaptx.transforms.state import state_class

Array = jax.Array
EpsOn = Literal["corrected", "raw"]
MaxOf = Literal["raw", "corrected"]

# update function of a stepped moment block -> whether its arithmetic is elementwise (adaptx.engine).
ELEMENTWISE: weakref.WeakKeyDictionary[Callable, bool] = weakref.WeakKeyDictionary()


def _check_eps_on(eps_on: str) -> None:
    if eps_on not in ("corrected", "raw"):
        raise ValueError(f"eps_on must be 'corrected' or 'raw', got {eps_on!r}")


def safe_divide(numerator: Array, den: Array) -> Array:
    """``numerator / den``, and 0 where ``den`` is exactly 0 (never where it is NaN)."""
    quotient = numerator / den
    return jax.lax.select(den == 0, jnp.zeros_like(quotient), quotient)


def _split_fields(tree_of_dicts: Any, like: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``{name: tree like `like` of the per-leaf dicts' entries}``."""
    treedef = jax.tree.structure(like)
    per_leaf = treedef.flatten_up_to(tree_of_dicts)
    return {n: treedef.unflatten([d[n] for d in per_leaf]) for n in names}


def _stepped_moments(
    second: SecondMoment | None,
    first: FirstMoment | None,
    *,
    eps: Any,
    eps_root: Any,
    eps_on: EpsOn,
    mu_dtype: Any,
    nu_dtype: Any,
    rectifier: Any,
    who: str,
) -> optax.GradientTransformationExtraArgs:
    """The moment block reading the step number from its chain (see :func:`scale_by_moments`)."""
    pieces = [p for p in (first, second) if p is not None]
    leaf_fields = tuple(f for p in pieces for f in p.fields)
    step_fields = tuple(f for p in pieces for f in p.step_fields)
    cls = state_class(leaf_fields + step_fields)
    shaped_fields = tuple(f for p in pieces if p.elementwise for f in p.fields)
    requested = {id(first): mu_dtype, id(second): nu_dtype}

    def init_fn(params):
        leaves = jax.tree.leaves(params)

        def leaf_init(p):
            out = {}
            for piece in pieces:
                out.update(piece.init(p, piece.storage_dtype(p.dtype, requested[id(piece)])))
            return out

        fields = _split_fields(jax.tree.map(leaf_init, params), params, leaf_fields)
        widest = numerics.compute_dtype(*[x.dtype for x in leaves]) if leaves else jnp.float32
        for piece in pieces:
            fields.update(piece.init_step(widest))
        return cls(**fields)

    def update_fn(updates, state, params=None, **extra_args):
        t = counting.step_of(extra_args, who)
        g_leaves, treedef = jax.tree.flatten(updates)
        widest = numerics.compute_dtype(*[g.dtype for g in g_leaves]) if g_leaves else jnp.float32
        step_state = {}
        for piece in pieces:
            step_state.update(piece.advance({f: getattr(state, f) for f in piece.step_fields}, t, widest))
        per_dtype: dict[Any, tuple] = {}  # per-step scalars, computed once per compute dtype

        def step_scalars(dtype):
            if dtype not in per_dtype:
                own = {id(p): p.scalars(t, dtype, {f: step_state[f] for f in p.step_fields}) for p in pieces}
                rect = None if rectifier is None else rectifier.scalars(t, dtype)
                per_dtype[dtype] = (own, rect)
            return per_dtype[dtype]

        field_leaves = {f: trees.leaves_like(who, updates, getattr(state, f)) for f in leaf_fields}
        p_leaves = (
            [None] * len(g_leaves) if params is None
            else trees.leaves_like(who, updates, params, "parameters")
        )

        def leaf_update(i, g, p):
            old = {f: field_leaves[f][i] for f in leaf_fields}
            for f in shaped_fields:  # a piece that is not elementwise may keep statistics of other shapes
                trees.check_shape(who, g, old[f])
            c = numerics.compute_dtype(g.dtype, *[x.dtype for x in old.values()])
            scalars, rect = step_scalars(c)
            gc = numerics.cast_state(g, c)
            new: dict[str, Array] = {}

            def advance(piece):
                mine = {f: numerics.cast_state(old[f], c) for f in piece.fields}
                out = piece.update(mine, gc, scalars[id(piece)])
                stored = {f: out[f].astype(old[f].dtype) for f in piece.fields}
                new.update(stored)
                # Read the estimate back as stored: then no kernel needs the old moment once the new one
                # is written in place, and a narrow storage dtype rounds the same way every step.
                return {f: numerics.cast_state(stored[f], c) for f in piece.fields}

            if first is None:
                m_hat = gc
            else:
                m_hat = first.numerator(advance(first), gc, scalars[id(first)])
            out_dtype = g.dtype if p is None else p.dtype
            if second is None:
                return jax.tree.map(lambda x: x.astype(out_dtype), m_hat), new
            sc = scalars[id(second)]
            nu = advance(second)
            if isinstance(eps_root, (int, float)) and eps_root == 0:
                root = second.sqrt_estimate(nu, sc)
            else:
                root = jnp.sqrt(second.estimate(nu, sc) + jnp.asarray(eps_root, c))
            eps_c = jnp.asarray(eps, c)
            ratio = second.raw_ratio(sc) if eps_on == "raw" else None
            den = root + (eps_c if ratio is None else eps_c / ratio)
            if ratio is None and isinstance(eps, (int, float)) and np.asarray(eps, c) > 0:
                u = jax.tree.map(lambda q: q / den, m_hat)  # den >= ε > 0 or NaN: no zero to guard
            else:
                u = jax.tree.map(lambda q: safe_divide(q, den), m_hat)
            if rect is not None:
                u = jnp.where(rect.adaptive, rect.factor * u, m_hat)
            return jax.tree.map(lambda x: x.astype(out_dtype), u), new

        results = [leaf_update(i, g, p) for i, (g, p) in enumerate(zip(g_leaves, p_leaves, strict=True))]
        new_updates = treedef.unflatten([r[0] for r in results])
        fields = {f: treedef.unflatten([r[1][f] for r in results]) for f in leaf_fields}
        return new_updates, cls(**fields, **step_state)

    transform = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    ELEMENTWISE[update_fn] = all(p.elementwise for p in pieces)
    return transform


def scale_by_moments(
    second: SecondMoment | None,
    first: FirstMoment | None = None,
    *,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    eps_on: EpsOn = "corrected",
    mu_dtype: Any = None,
    nu_dtype: Any = None,
    rectifier: Any = None,
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

    The state is a :class:`adaptx.transforms.state.MomentsState` with one field per array the pieces
    declare (``mu``, ``nu``, ``nu_max``, ...), each a tree shaped like the parameters. Arithmetic is done
    in at least float32 whatever the storage dtypes; the update has the parameters' dtype (the
    gradient's when ``update`` is called without parameters).

    Args:
      second: a :class:`adaptx.moments.SecondMoment` (``MovingAverage``, ``LongTermAverage``,
        ``RunningSum``, ``CenteredMovingAverage``, ``InfinityNorm``, any of them wrapped in
        ``MaxTracked``), or ``None``.
      first: a :class:`adaptx.moments.FirstMoment` (``MovingAverage``, ``Momentum``,
        ``NesterovMovingAverage``) or ``None``.
      eps: ε added to the root, ``>= 0``.
      eps_root: ε added inside the root (optax's ``eps_root``), ``>= 0``.
      eps_on: ``"corrected"`` adds ε to :math:`\sqrt{\hat v}` (PyTorch); ``"raw"`` adds it to the raw
        :math:`\sqrt{v}` of the uncorrected accumulator (HuggingFace, labml, AdaX's authors).
      mu_dtype, nu_dtype: storage dtypes of the first and second moments (default: the parameter's;
        the second moment of complex parameters is real).
      rectifier: ``None`` or an object whose ``scalars(t, dtype)`` returns ``(adaptive, factor)``
        (:class:`adaptx.moments.RAdamRectification`).

    Example:
      >>> import adaptx
      >>> from adaptx import moments
      >>> adax_like = adaptx.scale_by_moments(
      ...     moments.LongTermAverage(1e-4), moments.first.MovingAverage(0.9, debias=False),
      ...     eps=1e-12, eps_on="raw")
    """
    who = "adaptx.scale_by_moments"
    hyperparams.check_non_negative("eps", eps)
    hyperparams.check_non_negative("eps_root", eps_root)
    _check_eps_on(eps_on)
    hyperparams.check_dtype("mu_dtype", mu_dtype)
    hyperparams.check_dtype("nu_dtype", nu_dtype)
    if second is not None and not isinstance(second, SecondMoment):
        raise ValueError(f"{who}: second must be a adaptx.moments.SecondMoment or None, got {second!r}")
    if first is not None and not isinstance(first, FirstMoment):
        raise ValueError(f"{who}: first must be a adaptx.moments.FirstMoment or None, got {first!r}")
    stepped = _stepped_moments(
        second, first, eps=eps, eps_root=eps_root, eps_on=eps_on, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
        rectifier=rectifier, who=who,
    )
    return _with_own_counter(stepped)


def _with_own_counter(
    stepped: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
    """The stepped block with a ``count`` field of its own in front of its fields (``state.count``,
    ``state.mu``, ``state.nu``, as in optax); :func:`adaptx.chain` takes the counter off again."""

    def init_fn(params):
        inner = stepped.init(params)
        return state_class(("count", *inner._fields))(numerics.init_count(), *inner)

    def update_fn(updates, state, params=None, **extra_args):
        count = numerics.increment(state.count)
        inner = state_class(state._fields[1:])(*state[1:])
        new_updates, new = stepped.update(updates, inner, params, **{**extra_args, "count": count})
        return new_updates, type(state)(count, *new)

    counting.register(update_fn, (stepped,))
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def max_tracking(accumulator: SecondMoment, amsgrad: bool | MaxOf) -> SecondMoment:
    """``accumulator`` wrapped in AMSGrad's max-tracking (``True``/``"raw"`` or ``"corrected"``), or as it
    is (``False``)."""
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
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    debias_mu: bool = True,
    debias_nu: bool = True,
    eps_on: EpsOn = "corrected",
    amsgrad: bool | MaxOf = False,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates by Adam's bias-corrected moment estimates.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t}, \quad
        u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}.

    The corrections are computed as ``-expm1(t * log1p(-b))``, accurate in float32 for every step.
    State fields: ``mu``, ``nu`` (and ``nu_max`` with ``amsgrad``).

    Args:
      b1: decay of the first moment, in ``[0, 1)``.
      b2: decay of the second moment, in ``[0, 1)``.
      eps: ε added to the root (see ``eps_on``), ``>= 0``. With ``eps_on="corrected"`` (default) this
        is PyTorch's and optax's convention; ``eps_on="raw"`` adds ε to :math:`\sqrt{v_t}` before
        correction (HuggingFace's AdamW, labml's optimized update).
      eps_root: ε inside the root (optax's ``eps_root``), ``>= 0``.
      mu_dtype: storage dtype of the first moment (default: the parameter's).
      nesterov: optax's Nesterov variant,
        :math:`\hat m_t = \beta_1 m_t / (1-\beta_1^{t+1}) + (1-\beta_1) g_t / (1-\beta_1^t)`.
      debias_mu, debias_nu: apply the bias correction of the first/second moment. BERT's
        ``correct_bias=False`` turns both off.
      amsgrad: ``False``; ``True`` or ``"raw"`` to divide by the running maximum of the raw :math:`v_t`
        corrected at the current step (PyTorch); ``"corrected"`` for the maximum of :math:`\hat v_t`
        (the AMSGrad paper, optax).
      nu_dtype: storage dtype of the second moment (default: the parameter's, real).

    Example:
      >>> import adaptx, optax, jax.numpy as jnp
      >>> opt = optax.chain(adaptx.scale_by_adam(b2=0.99), optax.scale(-1e-3))
      >>> params = {"w": jnp.ones(3)}
      >>> updates, state = opt.update({"w": jnp.full(3, 0.5)}, opt.init(params))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_decay("b2", b2)
    if nesterov and not debias_mu:
        raise ValueError("nesterov=True needs debias_mu=True (its read-out is written with the corrections)")
    return scale_by_moments(
        max_tracking(second_moments.MovingAverage(b2, debias=debias_nu), amsgrad),
        first_moments.MovingAverage(b1, debias=debias_mu, nesterov=nesterov),
        eps=eps, eps_root=eps_root, eps_on=eps_on, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
    )


def scale_by_amsgrad(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    mu_dtype: Any = None,
    *,
    max_of: MaxOf = "raw",
    debias_mu: bool = True,
    debias_nu: bool = True,
    eps_on: EpsOn = "corrected",
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates by AMSGrad's running maximum of Adam's second moment.

    ``max_of="raw"`` (default, PyTorch's and labml's rule):

    .. math::
        u_t \leftarrow \max(u_{t-1}, v_t), \qquad
        \text{update} = \frac{\hat m_t}{\sqrt{u_t / (1 - \beta_2^t)} + \epsilon};

    ``max_of="corrected"`` (the paper's and optax's rule): :math:`\hat u_t = \max(\hat u_{t-1}, \hat v_t)`
    and :math:`\text{update} = \hat m_t / (\sqrt{\hat u_t} + \epsilon)`. The two differ: the corrected
    :math:`\hat v_t` of early steps is inflated by :math:`1/(1-\beta_2^t)` and can stay the maximum for
    a long time. State fields: ``mu``, ``nu``, ``nu_max``.

    Args:
      b1, b2, eps, eps_root, mu_dtype, debias_mu, debias_nu, eps_on, nu_dtype: as in
        :func:`scale_by_adam`.
      max_of: ``"raw"`` or ``"corrected"``.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_amsgrad(max_of="corrected"), optax.scale(-1e-3))
    """
    if max_of not in ("raw", "corrected"):
        raise ValueError(f"max_of must be 'raw' or 'corrected', got {max_of!r}")
    return scale_by_adam(
        b1, b2, eps, eps_root, mu_dtype, amsgrad=max_of, debias_mu=debias_mu, debias_nu=debias_nu,
        eps_on=eps_on, nu_dtype=nu_dtype,
    )


def scale_by_adax(
    b1: Any = 0.9,
    b2: Any = 1e-4,
    eps: Any = 1e-12,
    mu_dtype: Any = None,
    *,
    eps_on: EpsOn = "raw",
    amsgrad: bool | MaxOf = False,
    compensated: bool = True,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescale updates by AdaX's long-term second moment (Li et al., 2020).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = (1+\beta_2) v_{t-1} + \beta_2 |g_t|^2, \quad
        B_t = (1+\beta_2)^t - 1, \\
        u_t = \frac{m_t}{\sqrt{v_t / B_t} + \epsilon'} \quad(\text{no first-moment correction}).

    With ``eps_on="raw"`` (default, the authors' code) :math:`\epsilon' = \epsilon / \sqrt{B_t}`, i.e.
    the step is :math:`\sqrt{B_t}\, m_t / (\sqrt{v_t} + \epsilon)`; ``"corrected"`` adds ε to
    :math:`\sqrt{v_t / B_t}` (one Keras port's choice).

    The textbook :math:`v_t` and :math:`B_t` overflow float32 at t ≈ 887,000 for β2 = 1e-4 (NaN from
    step 887,128). This transform stores :math:`v_t / B_t` instead (see
    :class:`adaptx.moments.LongTermAverage`) and stays finite and accurate for every step the int32
    counter can count. State fields: ``mu``, ``nu``, ``nu_residual`` (and ``nu_max`` with ``amsgrad``).

    Args:
      b1: decay of the first moment, in ``[0, 1)`` (authors' default 0.9).
      b2: AdaX's β2 ``> 0`` (authors' default 1e-4): the growth rate of the long-term memory.
      eps: ε, ``>= 0`` (authors' default 1e-12, on the raw root).
      mu_dtype: storage dtype of the first moment.
      eps_on: ``"raw"`` (authors) or ``"corrected"``.
      amsgrad: AMSGrad max-tracking around AdaX's accumulator: ``False``, ``True``/``"raw"`` or
        ``"corrected"`` (see :func:`scale_by_adam`).
      compensated: keep the float32 rounding residual of the long-term average (default): within
        1e-8 to 5e-8 of float64 instead of ~5e-5, for one more array per parameter.
      nu_dtype: storage dtype of the second moment.

    Example:
      >>> import adaptx, optax
      >>> opt = optax.chain(adaptx.scale_by_adax(), optax.scale(-1.5e-3))
    """
    hyperparams.check_decay("b1", b1)
    hyperparams.check_positive("b2", b2)
    return scale_by_moments(
        max_tracking(second_moments.LongTermAverage(b2, compensated=compensated), amsgrad),
        first_moments.MovingAverage(b1, debias=False),
        eps=eps, eps_on=eps_on, mu_dtype=mu_dtype, nu_dtype=nu_dtype,
    )
