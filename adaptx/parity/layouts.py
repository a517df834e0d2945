r"""PyTorch ``state_dict`` ↔ JAX parameter trees (Flax NNX, Flax linen, Haiku): names and axis orders.

PyTorch and the JAX libraries store the same layers with different axis orders:

=============================  ===========================  ==========================================
layer                          PyTorch                      Flax NNX / linen, Haiku
=============================  ===========================  ==========================================
``Linear`` weight              ``(out, in)``                ``kernel`` / ``w``: ``(in, out)``
``Conv2d`` weight              ``(O, I, kH, kW)`` (OIHW)     ``kernel`` / ``w``: ``(kH, kW, I, O)`` (HWIO)
``Linear`` after a flatten     rows in (C, H, W) order      rows in (H, W, C) order (NHWC images)
bias, norm scale               as is                        ``bias`` / ``b``, ``scale``
=============================  ===========================  ==========================================

A :class:`Layout` converts one tensor each way; a :class:`ParamMapping` is a list of
``(torch name, JAX path, layout)`` entries that converts a whole ``state_dict`` to a nested dict and back;
:func:`mapping_by_name` builds one from the names, optionally checked against the JAX model's own tree::

    >>> import numpy as np
    >>> from adaptx.parity import layouts
    >>> sd = {"fc.weight": np.zeros((3, 5), np.float32), "fc.bias": np.zeros(3, np.float32)}
    >>> m = layouts.mapping_by_name(sd, style="nnx")
    >>> tree = m.to_jax(sd)
    >>> tree["fc"]["kernel"].shape, sorted(m.to_torch(tree))
    ((5, 3), ['fc.bias', 'fc.weight'])

Nothing here imports PyTorch or a JAX library: tensors are converted with ``.detach().cpu().numpy()`` when
they have it, and trees are read by key (a Flax ``nnx.State`` works as well as a dict).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

Path = tuple[Any, ...]


def _numpy(value: Any) -> np.ndarray:
    """A NumPy array from a torch tensor, a JAX array, an NNX variable or an array-like."""
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "get_value"):  # flax.nnx.Variable
        value = value.get_value()
    elif hasattr(value, "value") and not isinstance(value, np.ndarray):
        value = value.value
    return np.asarray(value)


def linear_to_kernel(weight: Any) -> np.ndarray:
    r"""A ``torch.nn.Linear`` weight ``(out, in)`` as a Flax ``kernel`` / Haiku ``w`` ``(in, out)``.

    torch computes :math:`y = x W^\top + b`, Flax and Haiku :math:`y = x K + b`, so :math:`K = W^\top`.

    Args:
      weight: shape ``(out, in)`` (NumPy, torch or JAX).

    Example:
      >>> import numpy as np
      >>> linear_to_kernel(np.arange(6.0).reshape(2, 3)).shape
      (3, 2)
    """
    w = _numpy(weight)
    if w.ndim != 2:
        raise ValueError(f"a Linear weight is 2-d (out, in); got shape {w.shape}")
    return np.ascontiguousarray(w.T)


def kernel_to_linear(kernel: Any) -> np.ndarray:
    """A Flax ``kernel`` / Haiku ``w`` ``(in, out)`` as a ``torch.nn.Linear`` weight ``(out, in)``.

    The inverse of :func:`linear_to_kernel`.

    Example:
      >>> import numpy as np
      >>> k = np.arange(6.0).reshape(3, 2)
      >>> bool(np.array_equal(linear_to_kernel(kernel_to_linear(k)), k))
      True
    """
    k = _numpy(kernel)
    if k.ndim != 2:
        raise ValueError(f"a dense kernel is 2-d (in, out); got shape {k.shape}")
    return np.ascontiguousarray(k.T)


def conv_to_hwio(weight: Any) -> np.ndarray:
    r"""A torch convolution weight ``(O, I, *spatial)`` as a Flax/Haiku kernel ``(*spatial, I, O)``.

    For ``Conv2d``: OIHW :math:`(O, I, k_H, k_W)` → HWIO :math:`(k_H, k_W, I, O)`, i.e.
    :math:`K[h, w, i, o] = W[o, i, h, w]`. Both libraries compute a cross-correlation (no kernel flip),
    so no spatial axis is reversed. ``Conv1d`` and ``Conv3d`` weights work the same way.

    Args:
      weight: shape ``(O, I, *spatial)`` with 1 to 3 spatial axes.

    Example:
      >>> import numpy as np
      >>> conv_to_hwio(np.zeros((8, 1, 3, 3))).shape
      (3, 3, 1, 8)
    """
    w = _numpy(weight)
    if not 3 <= w.ndim <= 5:
        raise ValueError(f"a convolution weight is (O, I, *spatial) with 1-3 spatial axes; got {w.shape}")
    spatial = tuple(range(2, w.ndim))
    return np.ascontiguousarray(w.transpose(*spatial, 1, 0))


def hwio_to_conv(kernel: Any) -> np.ndarray:
    """A Flax/Haiku convolution kernel ``(*spatial, I, O)`` as a torch weight ``(O, I, *spatial)``.

    The inverse of :func:`conv_to_hwio`.

    Example:
      >>> import numpy as np
      >>> w = np.random.default_rng(0).standard_normal((8, 2, 3, 3))
      >>> bool(np.array_equal(hwio_to_conv(conv_to_hwio(w)), w))
      True
    """
    k = _numpy(kernel)
    if not 3 <= k.ndim <= 5:
        raise ValueError(f"a convolution kernel is (*spatial, I, O) with 1-3 spatial axes; got {k.shape}")
    n = k.ndim
    return np.ascontiguousarray(k.transpose(n - 1, n - 2, *range(n - 2)))


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one tensor's axes map between PyTorch and JAX: two inverse functions and a name.

    Attributes:
      name: shown in error messages and reports.
      to_jax: torch array → JAX array (NumPy in, NumPy out).
      to_torch: the inverse.
    """

    name: str
    to_jax: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


#: Same shape and axis order (biases, norm scales, embeddings).
IDENTITY = Layout("identity", lambda a: np.asarray(a), lambda a: np.asarray(a))
#: ``Linear`` weight ``(out, in)`` ↔ ``kernel`` / ``w`` ``(in, out)``.
LINEAR = Layout("linear", linear_to_kernel, kernel_to_linear)
#: Convolution weight ``(O, I, *spatial)`` ↔ ``(*spatial, I, O)``.
CONV = Layout("conv", conv_to_hwio, hwio_to_conv)


def flattened_linear(channels: int, height: int, width: int) -> Layout:
    r"""The layout of a ``Linear`` that follows a flatten of image features.

    torch flattens NCHW activations in (C, H, W) order, a Flax/Haiku model flattens NHWC ones in
    (H, W, C) order, so the dense layer's input rows are permuted as well as transposed:

    .. math::
        K[(h W + w) C + c,\; o] = W_{torch}[o,\; (c H + h) W + w].

    Args:
      channels, height, width: the shape (C, H, W) of the feature map that is flattened.

    Example:
      >>> import numpy as np
      >>> lay = flattened_linear(2, 1, 3)          # 6 inputs: torch order c0w0 c0w1 c0w2 c1w0 ...
      >>> w = np.arange(6.0).reshape(1, 6)         # one output
      >>> lay.to_jax(w)[:, 0].tolist()             # JAX order w0c0 w0c1 w1c0 ...
      [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
      >>> bool(np.array_equal(lay.to_torch(lay.to_jax(w)), w))
      True
    """
    c, h, w = int(channels), int(height), int(width)

    def to_jax(weight: np.ndarray) -> np.ndarray:
        weight = _numpy(weight)
        if weight.ndim != 2 or weight.shape[1] != c * h * w:
            raise ValueError(f"expected a Linear weight (out, {c * h * w}); got shape {weight.shape}")
        out = weight.shape[0]
        return np.ascontiguousarray(
            weight.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out)
        )

    def to_torch(kernel: np.ndarray) -> np.ndarray:
        kernel = _numpy(kernel)
        if kernel.ndim != 2 or kernel.shape[0] != c * h * w:
            raise ValueError(f"expected a dense kernel ({c * h * w}, out); got shape {kernel.shape}")
        out = kernel.shape[1]
        return np.ascontiguousarray(
            kernel.reshape(h, w, c, out).transpose(3, 2, 0, 1).reshape(out, c * h * w)
        )

    return Layout(f"flattened_linear(C={c}, H={h}, W={w})", to_jax, to_torch)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One parameter: its ``state_dict`` name, its path in the JAX tree and its :class:`Layout`."""

    torch_name: str
    path: Path
    layout: Layout = IDENTITY


def _get(tree: Any, path: Path) -> Any:
    node = tree
    for key in path:
        node = node[key]
    return node


def _path_str(path: Path) -> str:
    return "/".join(str(k) for k in path)


@dataclasses.dataclass(frozen=True)
class ParamMapping:
    """A whole-model mapping: ``state_dict`` (name → tensor) ↔ nested dict (path → array).

    Build one with :func:`mapping_by_name`, or list the entries yourself.

    Example:
      >>> import numpy as np
      >>> m = ParamMapping((Entry("0.weight", ("dense", "w"), LINEAR), Entry("0.bias", ("dense", "b"))))
      >>> tree = m.to_jax({"0.weight": np.ones((2, 3)), "0.bias": np.zeros(2)})
      >>> tree["dense"]["w"].shape
      (3, 2)
    """

    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        names = [e.torch_name for e in self.entries]
        paths = [e.path for e in self.entries]
        if len(set(names)) != len(names):
            raise ValueError(f"a torch name appears twice in the mapping: {names}")
        if len(set(paths)) != len(paths):
            raise ValueError(f"a JAX path appears twice in the mapping: {[_path_str(p) for p in paths]}")

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def torch_names(self) -> tuple[str, ...]:
        """The ``state_dict`` names, in the mapping's order."""
        return tuple(e.torch_name for e in self.entries)

    def to_jax(self, state_dict: Mapping[str, Any]) -> dict:
        """The nested dict ``{path[0]: {path[1]: ... array}}`` of the mapped entries (dtypes kept).

        Names of ``state_dict`` that the mapping does not list are ignored (buffers, for instance); a
        listed name that is missing raises ``KeyError``.

        Example:
          >>> import numpy as np
          >>> m = ParamMapping((Entry("b", ("layer", "bias")),))
          >>> m.to_jax({"b": np.zeros(2), "running_mean": np.zeros(2)})
          {'layer': {'bias': array([0., 0.])}}
        """
        tree: dict = {}
        for e in self.entries:
            if e.torch_name not in state_dict:
                raise KeyError(f"{e.torch_name!r} is not in the state_dict (it has {sorted(state_dict)})")
            node = tree
            for key in e.path[:-1]:
                node = node.setdefault(key, {})
            node[e.path[-1]] = e.layout.to_jax(_numpy(state_dict[e.torch_name]))
        return tree

    def to_torch(self, tree: Any) -> dict[str, np.ndarray]:
        """``{torch name: NumPy array in torch's layout}`` read from a JAX tree (dict, ``nnx.State``, ...).

        Example:
          >>> import numpy as np
          >>> m = ParamMapping((Entry("fc.weight", ("fc", "kernel"), LINEAR),))
          >>> m.to_torch({"fc": {"kernel": np.zeros((4, 3))}})["fc.weight"].shape
          (3, 4)
        """
        out = {}
        for e in self.entries:
            try:
                leaf = _get(tree, e.path)
            except (KeyError, IndexError, TypeError) as err:
                raise KeyError(f"the JAX tree has no {_path_str(e.path)!r} (for {e.torch_name!r})") from err
            out[e.torch_name] = e.layout.to_torch(_numpy(leaf))
        return out


#: JAX leaf names per torch leaf name and number of dimensions, per style; the first that the template
#: has wins (without a template, the first).
_LEAVES: dict[str, dict[str, list[tuple[str, Layout]]]] = {
    "flax": {
        "weight/1": [("scale", IDENTITY)],
        "weight/2": [("kernel", LINEAR), ("embedding", IDENTITY)],
        "weight/conv": [("kernel", CONV)],
        "bias": [("bias", IDENTITY)],
    },
    "haiku": {
        "weight/1": [("scale", IDENTITY)],
        "weight/2": [("w", LINEAR), ("embeddings", IDENTITY)],
        "weight/conv": [("w", CONV)],
        "bias": [("b", IDENTITY), ("offset", IDENTITY)],
    },
}

STYLES = ("nnx", "linen", "haiku")


def _leaf_paths(tree: Any, prefix: Path = ()) -> dict[Path, tuple[int, ...]]:
    """Every leaf of a nested mapping (dict or ``nnx.State``) with its shape."""
    if isinstance(tree, Mapping) or (hasattr(tree, "keys") and hasattr(tree, "__getitem__")):
        out: dict[Path, tuple[int, ...]] = {}
        for key in tree.keys():
            out.update(_leaf_paths(tree[key], (*prefix, key)))
        return out
    return {prefix: tuple(np.shape(_numpy(tree)))}


def _module_path(prefix: str, style: str, rename: Mapping[str, str]) -> Path:
    """The JAX module path of a torch module prefix ("layers.0" → ("layers", 0) for NNX)."""
    for torch_prefix in sorted(rename, key=len, reverse=True):  # the longest matching prefix wins
        if prefix == torch_prefix or prefix.startswith(torch_prefix + "."):
            prefix = rename[torch_prefix] + prefix[len(torch_prefix) :]
            break
    if style == "haiku":  # Haiku's params are {"module/name": {"w": ..., "b": ...}}
        return (prefix,) if prefix else ()
    parts = [p for p in prefix.split(".") if p]
    if style == "linen":  # linen names list elements "layers_0"
        joined: list[str] = []
        for p in parts:
            if p.isdigit() and joined:
                joined[-1] = f"{joined[-1]}_{p}"
            else:
                joined.append(p)
        return tuple(joined)
    return tuple(int(p) if p.isdigit() else p for p in parts)  # NNX keeps list indices as ints


def mapping_by_name(
    state_dict: Mapping[str, Any],
    style: str = "nnx",
    *,
    template: Any = None,
    rename: Mapping[str, str] | None = None,
    layouts: Mapping[str, Layout] | None = None,
    skip: Sequence[str] = (),
) -> ParamMapping:
    r"""Map a ``state_dict`` to a Flax NNX, Flax linen or Haiku parameter tree by name.

    A torch name ``"<module>.<leaf>"`` becomes the path ``(*module path, jax leaf)``:

    * ``weight`` of a ``Linear`` (2-d) → ``kernel`` (NNX/linen) or ``w`` (Haiku), transposed
      (:data:`LINEAR`); of a convolution (3- to 5-d) → the same names, OIHW → HWIO (:data:`CONV`); 1-d
      (a norm layer) → ``scale``; a 2-d ``weight`` whose template leaf is ``embedding(s)`` is kept as is;
    * ``bias`` → ``bias`` (NNX/linen) or ``b`` (Haiku; ``offset`` for a Haiku norm layer);
    * the module path: NNX splits at dots and keeps list indices as ints (``"layers.0"`` →
      ``("layers", 0)``); linen joins list indices (``"layers_0"``); Haiku uses the module name as one key.
      ``rename`` replaces a torch module prefix first (longest match wins), e.g. ``{"0": "linear"}`` or,
      for Haiku, ``{"net.0": "mlp/~/linear_0"}``.

    Args:
      state_dict: name → tensor (a ``state_dict()``, ``dict(model.named_parameters())``, or NumPy arrays).
      style: ``"nnx"``, ``"linen"`` or ``"haiku"``.
      template: the JAX model's parameter tree (``nnx.to_pure_dict(nnx.state(model, nnx.Param))``,
        linen's ``variables["params"]``, Haiku's ``params``). When given, every mapped tensor must land on
        one of its leaves with the right shape after the layout, and every leaf must be covered;
        otherwise a ``ValueError`` lists what does not match.
      rename: torch module prefix → JAX module prefix (dotted for NNX/linen, a module name for Haiku).
      layouts: torch name → :class:`Layout`, overriding the rule (e.g. :func:`flattened_linear` for the
        dense layer after a conv stack flattened in NHWC order).
      skip: torch names to leave out (buffers such as ``running_mean`` are not parameters).

    Returns:
      a :class:`ParamMapping`, whose ``to_jax``/``to_torch`` convert whole trees.

    Example:
      >>> import numpy as np
      >>> sd = {"0.weight": np.zeros((32, 64)), "0.bias": np.zeros(32),
      ...       "2.weight": np.zeros((10, 32)), "2.bias": np.zeros(10)}
      >>> m = mapping_by_name(sd, "haiku", rename={"0": "linear", "2": "linear_1"})
      >>> [(e.torch_name, e.path, e.layout.name) for e in m][:2]
      [('0.weight', ('linear', 'w'), 'linear'), ('0.bias', ('linear', 'b'), 'identity')]
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    rename = dict(rename or {})
    layouts = dict(layouts or {})
    rules = _LEAVES["haiku" if style == "haiku" else "flax"]
    leaves = None if template is None else _leaf_paths(template)
    entries = []
    for name, value in state_dict.items():
        if name in skip:
            continue
        module, _, leaf = name.rpartition(".")
        ndim = np.ndim(_numpy(value))
        if leaf == "weight":
            key = "weight/1" if ndim == 1 else "weight/2" if ndim == 2 else "weight/conv"
        elif leaf == "bias":
            key = "bias"
        elif name in layouts:
            key = None
        else:
            raise ValueError(
                f"no rule for {name!r} (only 'weight' and 'bias' are mapped by name); pass it in skip=, "
                "or build the ParamMapping with an explicit Entry"
            )
        base = _module_path(module, style, rename)
        candidates = (
            [(base + (leaf,), IDENTITY)] if key is None else [(base + (j,), lay) for j, lay in rules[key]]
        )
        if leaves is not None:
            present = [c for c in candidates if c[0] in leaves]
            if not present:
                wanted = " or ".join(_path_str(c[0]) for c in candidates)
                have = sorted(_path_str(p) for p in leaves)
                raise ValueError(
                    f"{name!r} maps to {wanted}, which the template does not have; its leaves are {have} "
                    "(use rename=)"
                )
            candidates = present
        path, layout = candidates[0]
        layout = layouts.get(name, layout)
        entries.append(Entry(name, path, layout))
        if leaves is not None:
            got = tuple(np.shape(layout.to_jax(_numpy(value))))
            if got != leaves[path]:
                raise ValueError(
                    f"{name!r} {tuple(np.shape(_numpy(value)))} becomes {got} with layout {layout.name}, "
                    f"but the template's {_path_str(path)!r} is {leaves[path]}"
                )
    mapping = ParamMapping(tuple(entries))
    if leaves is not None:
        missing = set(leaves) - {e.path for e in entries}
        if missing:
            raise ValueError(
                f"no torch tensor maps to the template's {sorted(_path_str(p) for p in missing)}"
            )
    return mapping
