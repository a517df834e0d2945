"""PyTorch-exact optimizers for JAX: ``torch.optim``'s names, defaults and numbers as optax transforms.

``torch.optim``: :func:`sgd`, :func:`adam`, :func:`adamw`, :func:`rmsprop`, :func:`adagrad`,
:func:`adamax`, :func:`nadam`, :func:`radam`. Reference formulations outside ``torch.optim``:
:func:`adax`, :func:`adaxw` (the AdaX authors'), :func:`hf_adamw` (HuggingFace's legacy AdamW),
:func:`labml_adam`, :func:`labml_amsgrad` (labml.ai). See :mod:`adaptx.parity` to compare any of them
with PyTorch on your own problem.

Example:
  >>> import optax, jax.numpy as jnp
  >>> from adaptx import torch_compat
  >>> opt = torch_compat.adamw(lr=1e-3, weight_decay=1e-2)      # torch.optim.AdamW(params, ...)
  >>> params = {"w": jnp.ones(3)}
  >>> state = opt.init(params)
  >>> updates, state = opt.update({"w": jnp.ones(3)}, state, params)
  >>> params = optax.apply_updates(params, updates)
"""

from adaptx.torch_compat.optimizers import adagrad, adam, adamax, adamw, nadam, radam, rmsprop, sgd
from adaptx.torch_compat.references import adax, adaxw, hf_adamw, labml_adam, labml_amsgrad

__all__ = [
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "adax",
    "adaxw",
    "hf_adamw",
    "labml_adam",
    "labml_amsgrad",
    "nadam",
    "radam",
    "rmsprop",
    "sgd",
]
