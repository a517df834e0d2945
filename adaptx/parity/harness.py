r"""Run a PyTorch optimizer and a JAX (adaptx or optax) transformation side by side and measure the gap.

Both sides start from the same parameters and see the same gradients:

* a **fixed gradient sequence** (``Problem.gradients``), fed identically to both; and/or
* a **convex loss** (:class:`LeastSquares`), whose gradient each side computes from *its own* parameters,
  so that deviations feed back the way they do in training.

The gradient at step t is ``gradients[t] + loss_gradient(θ_t)`` (a loss with ``weight=0`` contributes an
exact zero). The JAX side runs jitted under ``lax.scan`` (one compilation per transformation, reused for
every problem of the same shapes); the PyTorch side runs ``optimizer.step()`` in a Python loop.

The deviation after step k is measured against the *total movement* of the PyTorch run,

.. math::
    \text{abs}_k = \max_i |\theta^{torch}_{k,i} - \theta^{jax}_{k,i}|, \qquad
    \text{rel}_k = \text{abs}_k \,/\, \max_i |\theta^{torch}_{T,i} - \theta_{0,i}|,

so ``rel`` says which fraction of what the optimizer did is not reproduced. (A per-element relative error
would be dominated by the rounding of θ itself whenever the movement is small next to θ.)

Non-finite values. A NaN or an infinity on one side where the other side has a finite value (or a
different non-finite value) is a failure at that step, with an infinite deviation. Both sides NaN (or the
same infinity) in the same elements is agreement of a kind, but says nothing about parity: such a result
does not pass either, and is reported as such (:attr:`ParityResult.verdict` ``"NaN on both sides"``);
the deviation is then measured over the elements finite on both sides. The movement is measured over the
elements where the PyTorch run ends finite.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

#: Parameter shapes of the default problem: a scalar, a vector, a matrix and a 4-d tensor (52 values).
DEFAULT_SHAPES: dict[str, tuple[int, ...]] = {
    "scalar": (),
    "vector": (7,),
    "matrix": (5, 4),
    "tensor4": (2, 3, 2, 2),
}

#: Default tolerances on ``rel`` (see the module docstring), by dtype.
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


@dataclasses.dataclass(frozen=True)
class LeastSquares:
    r"""The loss :math:`\frac{w}{2n}\|A x - b\|^2` of the flattened parameters :math:`x`.

    Its gradient :math:`\frac{w}{n} A^\top (A x - b)` is computed by each side from its own parameters.
    ``weight=0`` turns it off exactly (the gradient is then an exact zero).
    """

    features: np.ndarray  # A, shape (n, N)
    targets: np.ndarray  # b, shape (n,)
    weight: float = 1.0

    def jax_grad(self, x: jax.Array, features: jax.Array, targets: jax.Array, weight: jax.Array):
        residual = features @ x - targets
        return (weight / features.shape[0]) * (features.T @ residual)

    def torch_grad(self, x, features, targets):
        residual = features @ x - targets
        return (self.weight / features.shape[0]) * (features.T @ residual)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Initial parameters and the gradients both sides will see.

    Attributes:
      params: name -> initial value (NumPy, any float dtype; cast to the run's dtype).
      gradients: name -> array of shape ``(steps, *shape)``, the fixed part of every gradient.
      loss: a :class:`LeastSquares` whose gradient is added (``weight=0``: none).
    """

    params: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]
    loss: LeastSquares

    @property
    def steps(self) -> int:
        return next(iter(self.gradients.values())).shape[0]

    @property
    def names(self) -> list[str]:
        return sorted(self.params)  # the order jax flattens a dict in

    @property
    def size(self) -> int:
        return int(sum(np.size(v) for v in self.params.values()))


def make_problem(
    kind: str = "random",
    *,
    steps: int = 1000,
    scale: float = 1.0,
    param_scale: float = 1.0,
    shapes: dict[str, tuple[int, ...]] | None = None,
    seed: int = 0,
) -> Problem:
    r"""A reproducible test problem.

    ``kind="random"``: gradients :math:`g_t = s\, e^{z_t/2} (d + n_t)` with a fixed direction
    :math:`d`, white noise :math:`n_t` and a log-normal per-step magnitude :math:`e^{z_t/2}` (so that
    AMSGrad's maximum and Adamax's norm have something to track), of overall scale ``scale``.
    ``kind="least_squares"``: no fixed gradients; the loss :math:`\frac{s}{2n}\|Ax - b\|^2` with an
    overdetermined :math:`A` (n = 2N) whose columns are orthogonal with curvatures in [1/4, 4], a
    residual that does not vanish at the optimum, and an optimum 3 to ~6 units (× ``param_scale``) away
    from the start in every coordinate.
    Initial parameters are :math:`\mathcal N(0, 1)` times ``param_scale``. Both kinds have the same array
    shapes, so one compiled JAX run serves both.
    """
    shapes = DEFAULT_SHAPES if shapes is None else shapes
    if kind not in ("random", "least_squares"):
        raise ValueError(f"kind must be 'random' or 'least_squares', got {kind!r}")
    rng = np.random.default_rng(seed)
    names = sorted(shapes)
    params = {k: param_scale * rng.standard_normal(shapes[k]) for k in names}
    n_params = int(sum(int(np.prod(shapes[k])) for k in names))
    n_data = 2 * n_params
    if kind == "random":  # no loss; zero data of the loss's shapes, so one compilation serves both kinds
        magnitude = np.exp(0.5 * rng.standard_normal(steps))
        grads = {}
        for k in names:
            direction = rng.standard_normal(shapes[k])
            noise = rng.standard_normal((steps, *shapes[k]))
            mag = magnitude.reshape((steps,) + (1,) * len(shapes[k]))
            grads[k] = scale * mag * (direction + noise)
        loss = LeastSquares(np.zeros((n_data, n_params)), np.zeros(n_data), weight=0.0)
        return Problem(params=params, gradients=grads, loss=loss)
    # A = √n Q diag(s): orthonormal columns Q, curvatures s² in [1/4, 4]. Each coordinate's gradient
    # then vanishes only at its own optimum, which is placed 3 to ~6 units (× param_scale) away from
    # the start, farther than 1000 steps of any optimizer in the tests travel. Adaptive methods that
    # reach a stationary point oscillate around it in a way that amplifies rounding exponentially
    # (sign-like steps; measured for RMSprop even in float64), which says nothing about parity.
    q, _ = np.linalg.qr(rng.standard_normal((n_data, n_params)))
    curvature = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_params))
    features = np.sqrt(n_data) * q * curvature
    x0 = np.concatenate([np.ravel(params[k]) for k in names])
    offset = np.sign(rng.standard_normal(n_params)) * (3.0 + np.abs(rng.standard_normal(n_params)))
    x_star = x0 + param_scale * offset
    targets = features @ x_star + 0.1 * param_scale * rng.standard_normal(n_data)
    grads = {k: np.zeros((steps, *shapes[k])) for k in names}
    return Problem(params=params, gradients=grads, loss=LeastSquares(features, targets, weight=scale))


@dataclasses.dataclass
class ParityResult:
    """Per-step deviation between a PyTorch run and a JAX run.

    Attributes:
      max_abs: shape ``(steps,)``, :math:`\\max_i |\\theta^{torch} - \\theta^{jax}|` after each step.
      max_rel: ``max_abs`` divided by ``movement``.
      movement: :math:`\\max_i |\\theta^{torch}_T - \\theta_0|`, the total movement of the PyTorch run.
      tolerance: the bound on ``max_rel`` checked by :attr:`first_failure`.
      first_failure: the first step (1-based) whose ``max_rel`` exceeds ``tolerance`` (a NaN or infinity
        on one side only counts as infinite), or ``None``.
      torch_final, jax_final: the final flattened parameters of both sides.
      first_both_nonfinite: the first step (1-based) where both sides hold the same NaN or infinity in
        some element, or ``None``.
    """

    max_abs: np.ndarray
    max_rel: np.ndarray
    movement: float
    tolerance: float
    first_failure: int | None
    torch_final: np.ndarray
    jax_final: np.ndarray
    first_both_nonfinite: int | None = None

    @property
    def steps(self) -> int:
        return int(self.max_abs.shape[0])

    @property
    def max_rel_deviation(self) -> float:
        """The largest ``max_rel`` over all steps: ``inf`` if one side went non-finite alone, NaN if both
        sides went NaN together (nothing to compare)."""
        worst = float(np.max(self.max_rel)) if self.max_rel.size else 0.0
        if math.isinf(worst) or self.first_both_nonfinite is None:
            return worst
        return float("nan")

    @property
    def passed(self) -> bool:
        """Every step within the tolerance, and no NaN or infinity on either side."""
        return bool(
            self.first_failure is None
            and self.first_both_nonfinite is None
            and np.isfinite(self.max_rel_deviation)
        )

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"FAIL"`` (a step over the tolerance, or a NaN or infinity on one side only), or
        ``"NaN on both sides"`` (both runs non-finite in the same elements: no verdict on parity)."""
        if self.first_failure is not None:
            return "FAIL"
        if self.first_both_nonfinite is not None or not np.isfinite(self.max_rel_deviation):
            return "NaN on both sides"
        return "pass"


def _np_dtype(dtype: str):
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return np.float32 if dtype == "float32" else np.float64


def run_torch(torch_factory: Callable[[dict], Any], problem: Problem, dtype: str = "float32") -> np.ndarray:
    """The PyTorch trajectory: flattened parameters after every step, shape ``(steps, N)``, float64.

    ``torch_factory`` receives a dict name -> ``torch.Tensor`` (leaf tensors holding the initial values)
    and returns an optimizer, or a pair ``(optimizer, lr_scheduler)`` whose scheduler is stepped once
    after every ``optimizer.step()``.
    """
    import torch  # imported here: adaptx does not depend on torch

    np_dtype = _np_dtype(dtype)
    t_dtype = torch.float32 if dtype == "float32" else torch.float64
    names = problem.names
    params = {k: torch.tensor(np.asarray(problem.params[k], np_dtype)) for k in names}
    made = torch_factory(params)
    optimizer, scheduler = made if isinstance(made, tuple) else (made, None)
    grads = {k: torch.from_numpy(np.asarray(problem.gradients[k], np_dtype)) for k in names}
    loss = problem.loss
    use_loss = loss.weight != 0
    if use_loss:
        feats = torch.tensor(loss.features, dtype=t_dtype)
        targs = torch.tensor(loss.targets, dtype=t_dtype)
        sizes = [params[k].numel() for k in names]
    out = torch.empty((problem.steps, problem.size), dtype=t_dtype)
    flat_params = [params[k].detach().reshape(-1) for k in names]  # views, updated in place
    for t in range(problem.steps):
        if use_loss:
            x = torch.cat(flat_params)
            gl = loss.torch_grad(x, feats, targs).split(sizes)
            for k, part in zip(names, gl, strict=True):
                params[k].grad = grads[k][t] + part.reshape(params[k].shape)
        else:
            for k in names:
                params[k].grad = grads[k][t].clone()  # a fresh tensor: optimizers may write into it
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        torch.cat(flat_params, out=out[t])
    return out.double().numpy()


@functools.lru_cache(maxsize=64)
def _jax_runner(
    transform: optax.GradientTransformation, loss_type: type, compiler_options: tuple | None = None
) -> Callable:
    """One jitted scan per (transformation, loss type); jax caches its compilations by shapes."""

    def run(params, grads, features, targets, weight):
        names = sorted(params)
        shapes = [params[k].shape for k in names]
        sizes = [int(np.prod(s)) for s in shapes]
        splits = np.cumsum(sizes)[:-1].tolist()

        def flat(p):
            return jnp.concatenate([jnp.ravel(p[k]) for k in names])

        def step(carry, g_fixed):
            theta, state = carry
            x = flat(theta)
            # Only one branch runs: a problem without a loss (weight 0) skips the matrix products.
            gl = jax.lax.cond(
                weight != 0,
                lambda: loss_type.jax_grad(None, x, features, targets, weight),
                lambda: jnp.zeros_like(x),
            )
            parts = jnp.split(gl, splits)
            g = {k: g_fixed[k] + parts[i].reshape(shapes[i]) for i, k in enumerate(names)}
            updates, state = transform.update(g, state, theta)
            theta = optax.apply_updates(theta, updates)
            return (theta, state), flat(theta)

        state = transform.init(params)
        _, traj = jax.lax.scan(step, (params, state), grads)
        return traj

    return jax.jit(run, compiler_options=None if compiler_options is None else dict(compiler_options))


def run_jax(
    transform: optax.GradientTransformation,
    problem: Problem,
    dtype: str = "float32",
    compiler_options: dict | None = None,
) -> np.ndarray:
    """The JAX trajectory: flattened parameters after every step, shape ``(steps, N)``, float64.

    Runs under ``jax.enable_x64`` when ``dtype="float64"``. ``compiler_options`` go to ``jax.jit``
    (default: none, the compilation users get).
    """
    np_dtype = _np_dtype(dtype)

    def go():
        params = {k: jnp.asarray(np.asarray(v, np_dtype)) for k, v in problem.params.items()}
        grads = {k: jnp.asarray(np.asarray(v, np_dtype)) for k, v in problem.gradients.items()}
        loss = problem.loss
        options = None if compiler_options is None else tuple(sorted(compiler_options.items()))
        runner = _jax_runner(transform, type(loss), options)
        traj = runner(
            params, grads, jnp.asarray(np.asarray(loss.features, np_dtype)),
            jnp.asarray(np.asarray(loss.targets, np_dtype)), jnp.asarray(loss.weight, np_dtype),
        )
        return np.asarray(traj, np.float64)

    if dtype == "float64":
        with jax.enable_x64(True):
            return go()
    return go()


def deviation(
    torch_traj: np.ndarray, jax_traj: np.ndarray, problem: Problem, tolerance: float
) -> ParityResult:
    """Per-step deviation of two trajectories of the same problem (see the module docstring, also for
    NaN and infinities)."""
    torch_traj, jax_traj = np.asarray(torch_traj, np.float64), np.asarray(jax_traj, np.float64)
    if torch_traj.shape != jax_traj.shape or torch_traj.ndim != 2:
        raise ValueError(f"trajectories of different shapes: {torch_traj.shape} and {jax_traj.shape}")
    theta0 = np.concatenate([np.ravel(problem.params[k]) for k in problem.names]).astype(np.float64)
    t_finite, j_finite = np.isfinite(torch_traj), np.isfinite(jax_traj)
    both = t_finite & j_finite
    # the same non-finite value on both sides: both NaN, or the same infinity
    same = (np.isnan(torch_traj) & np.isnan(jax_traj)) | (~t_finite & ~j_finite & (torch_traj == jax_traj))
    one_sided = ~both & ~same  # finite on one side only, or two different non-finite values
    end = t_finite[-1]
    movement = float(np.max(np.abs(torch_traj[-1][end] - theta0[end]))) if end.any() else 0.0
    diff = np.where(both, np.abs(torch_traj - jax_traj), 0.0)
    max_abs = np.where(one_sided.any(axis=1), np.inf, np.max(diff, axis=1, initial=0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        max_rel = max_abs / movement if movement > 0 else np.where(max_abs > 0, np.inf, 0.0)
    bad = np.nonzero(~(max_rel <= tolerance))[0]
    both_bad = np.nonzero(same.any(axis=1))[0]
    return ParityResult(
        max_abs=max_abs,
        max_rel=max_rel,
        movement=movement,
        tolerance=tolerance,
        first_failure=int(bad[0]) + 1 if bad.size else None,
        torch_final=torch_traj[-1],
        jax_final=jax_traj[-1],
        first_both_nonfinite=int(both_bad[0]) + 1 if both_bad.size else None,
    )


def compare(
    torch_factory: Callable[[dict], Any],
    transform: optax.GradientTransformation,
    problem: Problem | None = None,
    *,
    dtype: str = "float32",
    tolerance: float | None = None,
    compiler_options: dict | None = None,
) -> ParityResult:
    r"""Compare a PyTorch optimizer with a JAX transformation on the same problem.

    Args:
      torch_factory: ``params_dict -> optimizer`` or ``-> (optimizer, lr_scheduler)`` (see
        :func:`run_torch`); e.g. ``lambda p: torch.optim.AdamW(p.values(), lr=1e-3)``.
      transform: any optax transformation (adaptx's included); its updates are applied with
        ``optax.apply_updates`` and it receives the parameters as ``update``'s third argument.
      problem: from :func:`make_problem` (default: random gradients, the default shapes, 1000 steps).
      dtype: ``"float32"`` or ``"float64"`` (the JAX side then runs under ``jax.enable_x64``).
      tolerance: the bound on the relative deviation (default :data:`TOLERANCE` of the dtype).
      compiler_options: passed to ``jax.jit`` for the JAX side (default: none).

    Returns:
      a :class:`ParityResult`: per-step max absolute and relative deviation, the first failing step.

    Example:
      >>> import torch
      >>> from adaptx import parity, torch_compat
      >>> res = parity.compare(lambda p: torch.optim.AdamW(p.values(), lr=1e-3),
      ...                      torch_compat.adamw(lr=1e-3), parity.make_problem(steps=100))
      >>> res.passed
      True
    """
    problem = make_problem() if problem is None else problem
    tolerance = TOLERANCE[dtype] if tolerance is None else tolerance
    torch_traj = run_torch(torch_factory, problem, dtype)
    jax_traj = run_jax(transform, problem, dtype, compiler_options)
    return deviation(torch_traj, jax_traj, problem, tolerance)
