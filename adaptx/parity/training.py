r"""Cross-check a whole training run: PyTorch model and optimizer against JAX loss and optax transformation.

The question a port raises — *I trained this in PyTorch; will my JAX rewrite give the same loss curve, and
if not, where does it part?* — is answered by running both in lockstep from the same weights on the same
batches and comparing the parameters after every step:

1. torch's initial parameters are copied into the JAX tree through a
   :class:`~adaptx.parity.layouts.ParamMapping` (transposes included), so both sides start equal;
2. each step, torch runs ``zero_grad → loss(model(x), y).backward() → optimizer.step() → scheduler.step()``
   and the JAX side a jitted ``value_and_grad(loss_fn) → tx.update → optax.apply_updates`` on the same
   ``(x, y)``;
3. each parameter tensor :math:`p` is compared in torch's layout:

.. math::
    \mathrm{rel}_{t,p} = \frac{\max_i |\theta^{jax}_{t,p,i} - \theta^{torch}_{t,p,i}|}
                              {\max_{s \le t} \max_i |\theta^{torch}_{s,p,i} - \theta^{torch}_{0,p,i}|},

the deviation as a fraction of the largest distance the parameter has moved so far (0 when both are
unmoved and equal, infinite when torch's has not moved but the two differ). The run *parts* at the
first step where some :math:`\mathrm{rel}_{t,p}` exceeds the tolerance, or where a loss or a parameter on
either side is NaN or infinite: a non-finite value is always a failure, never a pass.

Parity of a whole run is bounded by more than the optimizer: the two frameworks' matmuls, convolutions,
``exp`` and reductions round differently (a few ulp), and training feeds those differences back. The
optional *rounding floor* (``rounding_floor=True``) measures how much this run amplifies rounding: torch
against itself with the rows of every batch in another order — the same mean loss, its sums taken in
another order. A JAX run whose deviation sits at that floor reproduces torch as well as torch reproduces
itself. The floor is a sample, not a bound: it changes sums, not per-sample operations such as ``exp``.

PyTorch is needed to run a comparison, not to import this module; without it a
:class:`MissingDependencyError` names the extra to install.

Example (a linear model; the demonstration on scikit-learn's digits is :func:`digits_run`):

    >>> import numpy as np, torch, jax.numpy as jnp
    >>> from adaptx import torch_compat
    >>> from adaptx.parity import layouts, training
    >>> model = torch.nn.Sequential(torch.nn.Linear(5, 3))
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    >>> mapping = layouts.mapping_by_name(dict(model.named_parameters()), "nnx", rename={"0": "fc"})
    >>> def loss_fn(params, batch):
    ...     x, y = batch
    ...     return training.cross_entropy(x @ params["fc"]["kernel"] + params["fc"]["bias"], y)
    >>> rng = np.random.default_rng(0)
    >>> batches = [(rng.standard_normal((8, 5), dtype=np.float32), rng.integers(0, 3, 8)) for _ in range(50)]
    >>> res = training.compare_training(model, opt, loss_fn, torch_compat.adam(lr=1e-2), mapping, batches)
    >>> res.passed, res.first_parting, bool(res.max_rel < 1e-4)
    (True, None, True)
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptx.parity.layouts import ParamMapping, flattened_linear, mapping_by_name

#: Default bound on the deviation relative to the movement (float32, whole training runs).
TOLERANCE = 1e-4

#: What to install for the PyTorch side (the package extra that brings ``torch``).
TORCH_EXTRA = "adaptx[parity]"


class MissingDependencyError(ImportError):
    """An optional dependency of this module is missing; the message says what to install."""


def require_torch() -> Any:
    """Import and return ``torch``, or raise :class:`MissingDependencyError` with a one-line message.

    Example:
      >>> require_torch().__name__
      'torch'
    """
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            f"PyTorch is not installed; the training cross-check needs it: pip install '{TORCH_EXTRA}'"
        ) from None
    return torch


def _require_demo() -> None:
    missing = []
    for module, package in (("flax.nnx", "flax"), ("sklearn", "scikit-learn")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise MissingDependencyError(
            f"the digits demonstration needs {' and '.join(missing)}: pip install {' '.join(missing)}"
        )


# ----------------------------------------------------------------------------------------------------------
# Result


@dataclasses.dataclass(frozen=True)
class Parting:
    """Where a JAX run first parts from the PyTorch run.

    Attributes:
      step: 1-based optimizer step.
      parameter: the torch name of the parameter (the worst one at that step), or ``"loss"``.
      rel: its deviation relative to its movement (``nan``/``inf`` for a non-finite value).
      reason: in words, e.g. ``"deviation 3.1e-04 of the movement > 1e-04"`` or
        ``"non-finite loss on the JAX side"``.
    """

    step: int
    parameter: str
    rel: float
    reason: str


@dataclasses.dataclass(frozen=True)
class TrainingParity:
    """One JAX (or reference) run against the PyTorch run, step by step.

    Attributes:
      label: the name the run was given.
      names: the torch parameter names, the columns of the arrays below.
      steps: the 1-based steps at which parameters were compared, shape ``(K,)`` (every step by default).
      torch_loss, other_loss: the training loss of every step, shape ``(T,)``, each side on its own
        parameters before the step's update.
      max_abs: ``(K, P)``: :math:`\\max_i |\\theta^{jax} - \\theta^{torch}|` per parameter.
      movement: ``(K, P)``: the largest :math:`\\max_i |\\theta^{torch}_s - \\theta^{torch}_0|` so far.
      tolerance: the bound on :attr:`rel`.
      first_parting: a :class:`Parting`, or ``None`` when the run stays within the tolerance throughout.
    """

    label: str
    names: tuple[str, ...]
    steps: np.ndarray
    torch_loss: np.ndarray
    other_loss: np.ndarray
    max_abs: np.ndarray
    movement: np.ndarray
    tolerance: float
    first_parting: Parting | None

    @property
    def rel(self) -> np.ndarray:
        """``(K, P)``: ``max_abs / movement`` (0 where both are 0, ``inf`` where only the movement is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = self.max_abs / self.movement
        rel = np.where((self.movement == 0) & (self.max_abs == 0), 0.0, rel)
        return np.where((self.movement == 0) & (self.max_abs > 0), np.inf, rel)

    @property
    def worst(self) -> np.ndarray:
        """``(K,)``: the largest :attr:`rel` over the parameters at each compared step (NaN propagates)."""
        return np.max(self.rel, axis=1)

    @property
    def max_rel(self) -> float:
        """The largest :attr:`rel` of the run; ``nan`` if anything was non-finite."""
        finite = np.all(np.isfinite(self.rel)) and np.all(np.isfinite(self.torch_loss))
        finite = finite and np.all(np.isfinite(self.other_loss))
        return float(np.max(self.rel)) if finite else float("nan")

    @property
    def worst_at(self) -> tuple[int, str]:
        """The step and parameter of :attr:`max_rel` (the first non-finite one if there is one)."""
        rel = np.where(np.isnan(self.rel), np.inf, self.rel)
        k, p = np.unravel_index(int(np.argmax(rel)), rel.shape)
        return int(self.steps[k]), self.names[p]

    @property
    def passed(self) -> bool:
        """Within the tolerance at every compared step, and everything finite."""
        return self.first_parting is None and bool(np.isfinite(self.max_rel))

    @property
    def final(self) -> dict[str, float]:
        """``{name: rel}`` at the last compared step."""
        return {n: float(r) for n, r in zip(self.names, self.rel[-1], strict=True)}

    @property
    def loss_gap(self) -> np.ndarray:
        """``(T,)``: :math:`|L^{jax}_t - L^{torch}_t|`."""
        return np.abs(self.other_loss - self.torch_loss)

    def first_beyond(self, tolerance: float) -> Parting | None:
        """Where this run parts at another tolerance (from the recorded deviations; non-finite values first).

        Example:
          >>> r = TrainingParity("x", ("w",), np.array([1, 2]), np.zeros(2), np.zeros(2),
          ...                    np.array([[1e-7], [3e-7]]), np.array([[1e-2], [2e-2]]), 1e-4, None)
          >>> r.first_beyond(1.2e-5).step, r.first_beyond(1e-4)
          (2, None)
        """
        steps = self.steps
        for k, step in enumerate(steps):
            losses_ok = bool(np.all(np.isfinite(self.torch_loss[:step])))
            other_ok = bool(np.all(np.isfinite(self.other_loss[:step])))
            finite = {
                "loss on the torch side": losses_ok,
                f"loss on the {self.label} side": other_ok,
                "parameters": bool(np.all(np.isfinite(self.max_abs[k]))),
            }
            parting = _parting(int(step), self.names, self.max_abs[k], self.movement[k], tolerance, finite)
            if parting is not None:
                return parting
        return None

    def per_parameter(self) -> list[dict]:
        """One dict per parameter: ``name``, final ``movement``, ``max_rel`` and its ``step``, ``final_rel``.

        Example:
          >>> r = TrainingParity("x", ("w",), np.array([1, 2]), np.zeros(2), np.zeros(2),
          ...                    np.array([[1e-7], [3e-7]]), np.array([[1e-2], [2e-2]]), 1e-4, None)
          >>> r.per_parameter()[0]["step"], round(r.per_parameter()[0]["max_rel"], 9)
          (2, 1.5e-05)
        """
        rel = self.rel
        rows = []
        for j, name in enumerate(self.names):
            col = np.where(np.isnan(rel[:, j]), np.inf, rel[:, j])
            k = int(np.argmax(col))
            rows.append(
                {
                    "name": name,
                    "movement": float(self.movement[-1, j]),
                    "max_rel": float(rel[k, j]),
                    "step": int(self.steps[k]),
                    "final_rel": float(rel[-1, j]),
                }
            )
        return rows

    def summary(self) -> str:
        """A few lines: verdict, first parting, worst deviation, final losses, and the per-parameter table.

        Example:
          >>> r = TrainingParity("adaptx", ("w",), np.array([1]), np.array([2.0]), np.array([2.0]),
          ...                    np.array([[1e-7]]), np.array([[1e-2]]), 1e-4, None)
          >>> print(r.summary().splitlines()[0])
          adaptx: within 1e-04 of the movement over 1 steps (worst 1.0e-05, step 1, w)
        """
        step, name = self.worst_at
        if self.passed:
            head = (
                f"{self.label}: within {self.tolerance:.0e} of the movement over {int(self.steps[-1])} "
                f"steps (worst {self.max_rel:.1e}, step {step}, {name})"
            )
        else:
            p = self.first_parting
            assert p is not None
            head = (
                f"{self.label}: parts at step {p.step} on {p.parameter}: {p.reason}; worst "
                f"{np.nanmax(self.rel):.1e} (step {step}, {name})"
            )
        lines = [
            head,
            f"  final loss: torch {self.torch_loss[-1]:.6g}, {self.label} {self.other_loss[-1]:.6g}",
        ]
        for row in self.per_parameter():
            lines.append(
                f"  {row['name']:<24} movement {row['movement']:.3g}  max rel {row['max_rel']:.1e} "
                f"(step {row['step']})  final {row['final_rel']:.1e}"
            )
        return "\n".join(lines)


def _parting(
    step: int,
    names: tuple[str, ...],
    max_abs: np.ndarray,
    movement: np.ndarray,
    tolerance: float,
    finite: dict[str, bool],
) -> Parting | None:
    """The parting at one compared step, if any (non-finite values first)."""
    for what, ok in finite.items():
        if not ok:
            return Parting(
                step, "loss" if "loss" in what else "parameters", float("nan"), f"non-finite {what}"
            )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(movement == 0, np.where(max_abs == 0, 0.0, np.inf), max_abs / movement)
    bad = ~(rel <= tolerance)
    if not np.any(bad):
        return None
    j = int(np.argmax(np.where(np.isnan(rel), np.inf, rel)))
    return Parting(step, names[j], float(rel[j]), f"deviation {rel[j]:.1e} of the movement > {tolerance:.0e}")


# ----------------------------------------------------------------------------------------------------------
# The runs


class _Tracker:
    """Accumulates the per-step comparison of one run against torch."""

    def __init__(self, label: str, names: tuple[str, ...], tolerance: float):
        self.label, self.names, self.tolerance = label, names, tolerance
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.max_abs: list[np.ndarray] = []
        self.movement: list[np.ndarray] = []
        self.parting: Parting | None = None

    def compare(
        self,
        step: int,
        torch_params: Mapping[str, np.ndarray],
        movement: np.ndarray,
        other: Mapping[str, np.ndarray],
        finite: dict[str, bool],
    ) -> None:
        max_abs = np.array(
            [
                np.max(np.abs(np.asarray(other[n], np.float64) - torch_params[n]), initial=0.0)
                for n in self.names
            ]
        )
        self.steps.append(step)
        self.max_abs.append(max_abs)
        self.movement.append(movement.copy())
        if self.parting is None:
            self.parting = _parting(step, self.names, max_abs, movement, self.tolerance, finite)

    def result(self, torch_loss: np.ndarray) -> TrainingParity:
        return TrainingParity(
            label=self.label,
            names=self.names,
            steps=np.asarray(self.steps, np.int64),
            torch_loss=torch_loss,
            other_loss=np.asarray(self.losses, np.float64),
            max_abs=np.asarray(self.max_abs).reshape(len(self.steps), len(self.names)),
            movement=np.asarray(self.movement).reshape(len(self.steps), len(self.names)),
            tolerance=self.tolerance,
            first_parting=self.parting,
        )


def _jax_step(loss_fn: Callable, transform: optax.GradientTransformation) -> Callable:
    """``(params, state, batch) -> (params, state, loss)``, jitted once."""

    def step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return jax.jit(step)


def _finite_tree(tree: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree))


def _torch_snapshot(params: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {n: params[n].detach().cpu().numpy().astype(np.float64) for n in names}


def _torch_loop(
    torch: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    torch_loss: Callable,
    batches: Iterable,
    steps: int | None,
    permute: Any = None,
) -> Iterable[tuple[int, Any, float]]:
    """Train in place; yields ``(step, batch, loss)`` after each ``optimizer.step()``."""
    model.train()
    for t, batch in enumerate(itertools.islice(batches, steps), start=1):
        x, y = batch
        if permute is not None:  # the same mean loss, summed in another order
            order = permute.permutation(len(x))
            x, y = np.asarray(x)[order], np.asarray(y)[order]
        optimizer.zero_grad(set_to_none=True)
        loss = torch_loss(model(torch.as_tensor(np.asarray(x))), torch.as_tensor(np.asarray(y)))
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        yield t, batch, float(loss.detach())


def compare_training_many(
    model: Any,
    optimizer: Any,
    loss_fn: Callable[[Any, Any], jax.Array],
    transforms: Mapping[str, optax.GradientTransformation],
    mapping: ParamMapping,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    scheduler: Any = None,
    torch_loss: Callable[[Any, Any], Any] | None = None,
    steps: int | None = None,
    tolerance: float = TOLERANCE,
    every: int = 1,
    rounding_floor: bool = False,
    floor_seed: int = 0,
    torch_threads: int | None = None,
) -> dict[str, TrainingParity]:
    r"""Train ``model`` with ``optimizer`` and every JAX transformation side by side; compare each step.

    One PyTorch run serves all ``transforms`` (e.g. adaptx's and optax's), each of which gets its own
    jitted step (compiled once) and starts from torch's initial weights mapped by ``mapping``. The
    deviation :math:`\mathrm{rel}_{t,p}` is defined in the module docstring.

    Args:
      model: a ``torch.nn.Module`` in float32; trained in place (in ``train()`` mode). Its parameters
        must all be covered by ``mapping``. No dropout or batch statistics: both sides must compute the
        same function of the parameters and the batch.
      optimizer: a fresh ``torch.optim.Optimizer`` over ``model.parameters()``.
      loss_fn: the JAX loss, ``loss_fn(params, (x, y)) -> scalar``, of the tree ``mapping.to_jax`` builds
        (for Flax NNX see :func:`nnx_loss`).
      transforms: label → optax transformation (its updates are applied with ``optax.apply_updates``).
      mapping: torch ``state_dict`` names ↔ JAX tree paths (see :mod:`adaptx.parity.layouts`).
      batches: ``(x, y)`` NumPy arrays; torch receives ``torch.as_tensor(x)``, JAX ``jnp.asarray(x)``.
      scheduler: a ``torch.optim.lr_scheduler`` stepped once after every ``optimizer.step()``.
      torch_loss: ``torch_loss(model(x), y)``; default ``torch.nn.functional.cross_entropy`` (mean).
      steps: stop after this many batches (default: all of them).
      tolerance: the bound on :math:`\mathrm{rel}` (default :data:`TOLERANCE`).
      every: compare parameters every ``every`` steps (and at the last); losses are kept for every step.
      rounding_floor: also report ``"torch, rows permuted"``: torch against itself with the samples of
        every batch in a random order (valid for any loss that is a mean or sum over samples) — how far
        rounding alone carries this run. It trains the model twice (restoring the initial model,
        optimizer and scheduler state with their ``load_state_dict`` in between) and needs ``batches``
        twice, so they are held in memory.
      floor_seed: the seed of the permutations.
      torch_threads: ``torch.set_num_threads`` for the run, restored afterwards (default: leave it).
        Small models train much faster on one thread, above all on a busy machine.

    Returns:
      label → :class:`TrainingParity` (with ``"torch, rows permuted"`` last when ``rounding_floor``).

    Example:
      >>> import numpy as np, optax, torch
      >>> from adaptx import torch_compat
      >>> from adaptx.parity import layouts
      >>> model = torch.nn.Linear(4, 2)
      >>> opt = torch.optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
      >>> mapping = layouts.mapping_by_name(model.state_dict(), "haiku", rename={"": "linear"})
      >>> loss_fn = lambda p, b: cross_entropy(b[0] @ p["linear"]["w"] + p["linear"]["b"], b[1])
      >>> data = [(np.eye(4, dtype=np.float32), np.array([0, 1, 0, 1]))] * 30
      >>> txs = {"adaptx": torch_compat.adam(lr=1e-2, amsgrad=True), "optax": optax.amsgrad(1e-2)}
      >>> res = compare_training_many(model, opt, loss_fn, txs, mapping, data)
      >>> res["adaptx"].passed, res["optax"].first_parting.step  # the same first step, then optax parts
      (True, 2)
    """
    torch = require_torch()
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        return _compare(
            torch,
            model,
            optimizer,
            loss_fn,
            transforms,
            mapping,
            batches,
            scheduler,
            torch_loss,
            steps,
            tolerance,
            every,
            rounding_floor,
            floor_seed,
        )
    finally:
        torch.set_num_threads(threads)


def _compare(
    torch: Any,
    model: Any,
    optimizer: Any,
    loss_fn: Callable,
    transforms: Mapping[str, Any],
    mapping: ParamMapping,
    batches: Iterable,
    scheduler: Any,
    torch_loss: Callable | None,
    steps: int | None,
    tolerance: float,
    every: int,
    rounding_floor: bool,
    floor_seed: int,
) -> dict[str, TrainingParity]:
    torch_loss = torch.nn.functional.cross_entropy if torch_loss is None else torch_loss
    names = mapping.torch_names
    params = dict(model.named_parameters())
    unmapped = [n for n, p in params.items() if p.requires_grad and n not in names]
    if unmapped:
        raise ValueError(f"trainable parameters missing from the mapping: {unmapped}")
    not_params = [n for n in names if n not in params]
    if not_params:
        raise ValueError(f"the mapping lists names that are not parameters of the model: {not_params}")
    theta0 = _torch_snapshot(params, names)
    # Copies: torch trains the tensors in place, and an identity layout would return a view of them.
    start = jax.tree.map(
        jnp.asarray, mapping.to_jax({n: params[n].detach().cpu().numpy().copy() for n in names})
    )

    floor_traj: dict[int, dict[str, np.ndarray]] = {}
    floor_losses: list[float] = []
    if rounding_floor:
        batches = list(itertools.islice(batches, steps))
        last = len(batches)
        saved = [copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())]
        if scheduler is not None:
            saved.append(copy.deepcopy(scheduler.state_dict()))
        gen = np.random.default_rng(floor_seed)
        for t, _, loss in _torch_loop(torch, model, optimizer, scheduler, torch_loss, batches, steps, gen):
            floor_losses.append(loss)
            if t % every == 0 or t == last:
                floor_traj[t] = _torch_snapshot(params, names)
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        if scheduler is not None:
            scheduler.load_state_dict(saved[2])

    sides = {label: [_jax_step(loss_fn, tx), start, tx.init(start)] for label, tx in transforms.items()}
    trackers = {label: _Tracker(label, names, tolerance) for label in transforms}
    floor = _Tracker("torch, rows permuted", names, tolerance) if rounding_floor else None
    torch_losses: list[float] = []
    movement = np.zeros(len(names))
    last_checked = 0

    def all_finite(values: Iterable[Any]) -> bool:
        return all(bool(np.all(np.isfinite(v))) for v in values)

    def check(t: int) -> None:
        """Compare every side with torch after step t (losses: every step since the last check)."""
        nonlocal last_checked, movement
        since = slice(last_checked, t)
        last_checked = t
        current = _torch_snapshot(params, names)
        torch_finite = {
            "loss on the torch side": all_finite(torch_losses[since]),
            "parameters on the torch side": all_finite(current.values()),
        }
        moved = np.array([np.max(np.abs(current[n] - theta0[n]), initial=0.0) for n in names])
        movement = np.fmax(movement, moved) if torch_finite["parameters on the torch side"] else moved
        for label, (_, p, _) in sides.items():
            tracker = trackers[label]
            finite = {
                **torch_finite,
                "loss on the JAX side": all_finite(tracker.losses[since]),
                "parameters on the JAX side": _finite_tree(p),
            }
            tracker.compare(t, current, movement, mapping.to_torch(jax.device_get(p)), finite)
        if floor is not None:
            ftheta = floor_traj[t]
            finite = {
                **torch_finite,
                "loss on the permuted torch side": all_finite(floor.losses[since]),
                "parameters on the permuted torch side": all_finite(ftheta.values()),
            }
            floor.compare(t, current, movement, ftheta, finite)

    t = 0
    for t, (x, y), loss in _torch_loop(torch, model, optimizer, scheduler, torch_loss, batches, steps):
        torch_losses.append(loss)
        batch = (jnp.asarray(np.asarray(x)), jnp.asarray(np.asarray(y)))
        for label, side in sides.items():
            side[1], side[2], jloss = side[0](side[1], side[2], batch)
            trackers[label].losses.append(float(jloss))
        if floor is not None:
            floor.losses.append(floor_losses[t - 1])
        if t % every == 0 or t == steps:
            check(t)
    if t == 0:
        raise ValueError("no batches: nothing was trained")
    if last_checked != t:
        check(t)
    torch_loss_arr = np.asarray(torch_losses, np.float64)
    out = {label: tr.result(torch_loss_arr) for label, tr in trackers.items()}
    if floor is not None:
        out[floor.label] = floor.result(torch_loss_arr)
    return out


def compare_training(
    model: Any,
    optimizer: Any,
    loss_fn: Callable[[Any, Any], jax.Array],
    transform: optax.GradientTransformation,
    mapping: ParamMapping,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    **options: Any,
) -> TrainingParity:
    """:func:`compare_training_many` with one JAX transformation; its :class:`TrainingParity`.

    ``options`` are :func:`compare_training_many`'s keyword arguments except ``rounding_floor``.

    Example:
      >>> import numpy as np, torch
      >>> from adaptx import torch_compat
      >>> from adaptx.parity import layouts
      >>> model = torch.nn.Linear(3, 2)
      >>> opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
      >>> mapping = layouts.mapping_by_name(model.state_dict(), "nnx", rename={"": "fc"})
      >>> loss_fn = lambda p, b: cross_entropy(b[0] @ p["fc"]["kernel"] + p["fc"]["bias"], b[1])
      >>> data = [(np.eye(3, dtype=np.float32), np.array([0, 1, 1]))] * 20
      >>> compare_training(model, opt, loss_fn, torch_compat.adamw(lr=2e-2), mapping, data).first_parting.step
      1
    """
    if options.get("rounding_floor"):
        raise ValueError("use compare_training_many for rounding_floor=True")
    return compare_training_many(model, optimizer, loss_fn, {"jax": transform}, mapping, batches, **options)[
        "jax"
    ]


# ----------------------------------------------------------------------------------------------------------
# JAX-side helpers


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Mean cross-entropy of integer labels, as ``torch.nn.functional.cross_entropy`` (``reduction="mean"``).

    .. math:: L = -\frac1N \sum_n \log \operatorname{softmax}(z_n)_{y_n}

    computed as torch does: ``log_softmax`` (with the row maximum subtracted) and the mean of the picked
    entries.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 6)  # log 4
      1.386294
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1))


def nnx_loss(
    model: Any, loss: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy
) -> tuple[Callable[[Any, Any], jax.Array], dict]:
    """A loss of a pure parameter dict for a Flax NNX model, and that dict (the template for the mapping).

    ``loss_fn(params, (x, y)) = loss(nnx.merge(graphdef, params, rest)(x), y)``, with
    ``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``; ``params`` is
    ``nnx.to_pure_dict`` of the parameters (nested dicts, list indices as ints). Non-parameter state
    (``rest``) is held fixed.

    Args:
      model: an ``nnx.Module`` called as ``model(x)``.
      loss: ``loss(outputs, y)`` (default :func:`cross_entropy`).

    Returns:
      ``(loss_fn, template)``; pass ``template`` to :func:`~adaptx.parity.layouts.mapping_by_name`.

    Example:
      >>> from flax import nnx
      >>> loss_fn, template = nnx_loss(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
      >>> {k: v.shape for k, v in template.items()}
      {'bias': (2,), 'kernel': (3, 2)}
    """
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    template = nnx.to_pure_dict(params)

    def loss_fn(p: Any, batch: Any) -> jax.Array:
        x, y = batch
        return loss(nnx.merge(graphdef, p, rest)(x), y)

    return loss_fn, template


# ----------------------------------------------------------------------------------------------------------
# Demonstration: scikit-learn's digits (8x8 images, 1797 samples, bundled; no download)

DIGITS_MODELS = ("mlp", "cnn")
DIGITS_OPTIMIZERS = ("adamw-cosine", "amsgrad", "rmsprop-momentum")
ACTIVATIONS = ("tanh", "relu")


def digits_batches(steps: int, batch_size: int = 64, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` shuffled mini-batches of scikit-learn's digits: ``x`` float32 ``(B, 64)`` in [0, 1], ``y``.

    Each epoch is a new permutation (NumPy generator ``seed``); a last partial batch is dropped.

    Example:
      >>> b = digits_batches(3, 16)
      >>> len(b), b[0][0].shape, b[0][0].dtype, b[0][1].dtype
      (3, (16, 64), dtype('float32'), dtype('int64'))
    """
    _require_demo()
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    while len(out) < steps:
        perm = rng.permutation(len(x))
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            out.append((x[idx], y[idx]))
            if len(out) == steps:
                break
    return out


@dataclasses.dataclass
class DigitsSetup:
    """A digits model in both frameworks: the torch module, the NNX module, the JAX loss and the mapping."""

    torch_model: Any
    jax_model: Any
    loss_fn: Callable[[Any, Any], jax.Array]
    mapping: ParamMapping


def digits_setup(
    model: str = "mlp", *, seed: int = 0, activation: str = "tanh", hidden: int = 32
) -> DigitsSetup:
    r"""The demonstration models, in PyTorch and Flax NNX, with torch's initial weights mapped.

    * ``"mlp"``: ``fc1: Linear(64, hidden) → activation → fc2: Linear(hidden, 10)``.
    * ``"cnn"``: the 8×8 image (NCHW in torch, NHWC in NNX) →
      ``conv1: Conv2d(1, 8, 3) → act → conv2: Conv2d(8, 16, 3) → act`` (valid padding, 4×4×16) → flatten
      (torch in C,H,W order, NNX in H,W,C order: :func:`~adaptx.parity.layouts.flattened_linear`) →
      ``fc: Linear(256, 10)``.

    torch initialises the weights (``torch.manual_seed(seed)``, its default init).

    Args:
      model: ``"mlp"`` or ``"cnn"``. seed: torch's seed. activation: ``"tanh"`` or ``"relu"``.
      hidden: the MLP's hidden width.

    Example:
      >>> s = digits_setup("cnn")
      >>> [e.layout.name for e in s.mapping][-2:]
      ['flattened_linear(C=16, H=4, W=4)', 'identity']
    """
    torch = require_torch()
    _require_demo()
    from flax import nnx

    if model not in DIGITS_MODELS:
        raise ValueError(f"model must be one of {DIGITS_MODELS}, got {model!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    t_act = torch.tanh if activation == "tanh" else torch.relu
    j_act = jnp.tanh if activation == "tanh" else jax.nn.relu
    torch.manual_seed(seed)
    rngs = nnx.Rngs(seed)
    # The NNX weights are overwritten with torch's: zeros avoid compiling flax's truncated-normal init
    # (several seconds per shape on a CPU).
    zeros = {"kernel_init": nnx.initializers.zeros_init(), "bias_init": nnx.initializers.zeros_init()}
    layouts = {}
    if model == "mlp":

        class TorchMLP(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = torch.nn.Linear(64, hidden)
                self.fc2 = torch.nn.Linear(hidden, 10)

            def forward(self, x):
                return self.fc2(t_act(self.fc1(x)))

        class NnxMLP(nnx.Module):
            def __init__(self, rngs):
                self.fc1 = nnx.Linear(64, hidden, rngs=rngs, **zeros)
                self.fc2 = nnx.Linear(hidden, 10, rngs=rngs, **zeros)

            def __call__(self, x):
                return self.fc2(j_act(self.fc1(x)))

        tm, jm = TorchMLP(), NnxMLP(rngs)
    else:

        class TorchCNN(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = torch.nn.Conv2d(1, 8, 3)
                self.conv2 = torch.nn.Conv2d(8, 16, 3)
                self.fc = torch.nn.Linear(16 * 4 * 4, 10)

            def forward(self, x):
                h = t_act(self.conv1(x.view(-1, 1, 8, 8)))
                h = t_act(self.conv2(h))
                return self.fc(h.flatten(1))

        class NnxCNN(nnx.Module):
            def __init__(self, rngs):
                self.conv1 = nnx.Conv(1, 8, (3, 3), padding="VALID", rngs=rngs, **zeros)
                self.conv2 = nnx.Conv(8, 16, (3, 3), padding="VALID", rngs=rngs, **zeros)
                self.fc = nnx.Linear(4 * 4 * 16, 10, rngs=rngs, **zeros)

            def __call__(self, x):
                h = j_act(self.conv1(x.reshape(-1, 8, 8, 1)))
                h = j_act(self.conv2(h))
                return self.fc(h.reshape(h.shape[0], -1))

        tm, jm = TorchCNN(), NnxCNN(rngs)
        layouts = {"fc.weight": flattened_linear(16, 4, 4)}
    loss_fn, template = nnx_loss(jm)
    mapping = mapping_by_name(dict(tm.named_parameters()), "nnx", template=template, layouts=layouts)
    return DigitsSetup(tm, jm, loss_fn, mapping)


@dataclasses.dataclass
class DigitsOptimizer:
    """A torch optimizer (and scheduler) with its ``torch_compat`` reproduction and optax's nearest alias."""

    label: str
    optimizer: Any
    scheduler: Any
    adaptx: optax.GradientTransformation
    optax_name: str
    optax: optax.GradientTransformation


def digits_optimizer(name: str, torch_model: Any, steps: int) -> DigitsOptimizer:
    r"""One of the demonstration's optimizer pairs, bound to ``torch_model``'s parameters.

    * ``"adamw-cosine"``: ``AdamW(lr=3e-3, weight_decay=1e-2)`` + ``CosineAnnealingLR(T_max=steps,
      eta_min=1e-4)`` ↔ ``torch_compat.adamw`` with ``optax.cosine_decay_schedule(3e-3, steps,
      alpha=1e-4 / 3e-3)``; optax: ``optax.adamw`` with the same schedule and decay.
      CosineAnnealingLR gives :math:`\eta_t = \eta_{min} + (\eta_0 - \eta_{min})(1 + \cos(\pi t/T))/2`
      after ``t`` scheduler steps; optax's schedule is :math:`\eta_0(\alpha + (1-\alpha)(1 + \cos(\pi
      \min(t, T)/T))/2)`, the same for :math:`\alpha = \eta_{min}/\eta_0` and :math:`t \le T` (torch's
      goes back up after ``T_max``, optax's stays at :math:`\eta_{min}`).
    * ``"amsgrad"``: ``Adam(lr=1e-3, amsgrad=True)`` ↔ ``torch_compat.adam(lr=1e-3, amsgrad=True)``;
      ``optax.amsgrad(1e-3)``.
    * ``"rmsprop-momentum"``: ``RMSprop(lr=1e-3, momentum=0.9)`` ↔ ``torch_compat.rmsprop(lr=1e-3,
      momentum=0.9)``; ``optax.rmsprop(1e-3, decay=0.99, eps=1e-8, momentum=0.9)``.

    Example:
      >>> import torch
      >>> o = digits_optimizer("amsgrad", torch.nn.Linear(2, 2), 300)
      >>> o.label, o.optax_name, type(o.optimizer).__name__
      ('Adam(amsgrad=True)', 'optax.amsgrad', 'Adam')
    """
    torch = require_torch()
    from adaptx import torch_compat as tc

    params = list(torch_model.parameters())
    if name == "adamw-cosine":
        lr, eta_min, wd = 3e-3, 1e-4, 1e-2
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=eta_min)
        schedule = optax.cosine_decay_schedule(lr, steps, alpha=eta_min / lr)
        return DigitsOptimizer(
            "AdamW + CosineAnnealingLR",
            opt,
            sched,
            tc.adamw(lr=schedule, weight_decay=wd),
            "optax.adamw",
            optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=wd),
        )
    if name == "amsgrad":
        opt = torch.optim.Adam(params, lr=1e-3, amsgrad=True)
        return DigitsOptimizer(
            "Adam(amsgrad=True)",
            opt,
            None,
            tc.adam(lr=1e-3, amsgrad=True),
            "optax.amsgrad",
            optax.amsgrad(1e-3, b1=0.9, b2=0.999, eps=1e-8),
        )
    if name == "rmsprop-momentum":
        opt = torch.optim.RMSprop(params, lr=1e-3, momentum=0.9)
        return DigitsOptimizer(
            "RMSprop(momentum=0.9)",
            opt,
            None,
            tc.rmsprop(lr=1e-3, momentum=0.9),
            "optax.rmsprop",
            optax.rmsprop(1e-3, decay=0.99, eps=1e-8, momentum=0.9),
        )
    raise ValueError(f"optimizer must be one of {DIGITS_OPTIMIZERS}, got {name!r}")


def digits_run(
    model: str = "mlp",
    optimizer: str = "adamw-cosine",
    *,
    steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    activation: str = "tanh",
    tolerance: float = TOLERANCE,
    rounding_floor: bool = False,
    with_optax: bool = True,
    extra: Mapping[str, optax.GradientTransformation] | None = None,
    torch_threads: int | None = None,
) -> tuple[DigitsOptimizer, dict[str, TrainingParity]]:
    """The demonstration: one model × optimizer on digits, torch against adaptx and optax (NNX, float32).

    Args:
      model: ``"mlp"`` or ``"cnn"`` (:func:`digits_setup`). optimizer: one of :data:`DIGITS_OPTIMIZERS`
      (:func:`digits_optimizer`). steps, batch_size, seed: the batches (:func:`digits_batches`; the same
      seed initialises torch). activation: ``"tanh"`` or ``"relu"``. tolerance: the bound on the
      deviation. rounding_floor: add the ``"torch, rows permuted"`` reference run. with_optax: add
      optax's alias. extra: more labelled JAX transformations to run beside them (the same torch run).
      torch_threads: see :func:`compare_training_many`.

    Returns:
      the optimizer pair and ``{"adaptx": ..., optax's name: ..., ["torch, rows permuted": ...]}``.

    Example:
      >>> pair, res = digits_run("mlp", "amsgrad", steps=20)
      >>> res["adaptx"].passed, res["optax.amsgrad"].first_parting.step <= 5
      (True, True)
    """
    setup = digits_setup(model, seed=seed, activation=activation)
    pair = digits_optimizer(optimizer, setup.torch_model, steps)
    transforms = {"adaptx": pair.adaptx}
    if with_optax:
        transforms[pair.optax_name] = pair.optax
    transforms.update(extra or {})
    results = compare_training_many(
        setup.torch_model,
        pair.optimizer,
        setup.loss_fn,
        transforms,
        setup.mapping,
        digits_batches(steps, batch_size, seed=seed),
        scheduler=pair.scheduler,
        tolerance=tolerance,
        rounding_floor=rounding_floor,
        floor_seed=seed,
        torch_threads=torch_threads,
    )
    return pair, results
