"""Train a small MLP on scikit-learn's digits with Haiku and an adaptx optimizer.

The digits dataset (1797 8x8 images of handwritten digits, bundled with scikit-learn: no download) is
split into 80% for training and 20% for testing. The model is a two-layer ``hk.nets.MLP`` under
``hk.transform``; the optimizer is ``adaptx.amsgrad`` (PyTorch's AMSGrad rule), used through the plain
optax interface: ``init`` once, then ``update`` and ``optax.apply_updates`` in a jitted step.

Run it with ``python examples/haiku_digits.py``.
"""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import adaptx


def load(seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Digits as float32 pixels in [0, 1] and int32 labels, shuffled and split 80/20."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
    n_train = int(0.8 * len(x))
    x, y = jnp.asarray(x), jnp.asarray(y)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


# hk.transform turns the function into a pure (init, apply) pair; no randomness is used in apply.
model = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP([64, 10])(x)))
optimizer = adaptx.amsgrad(1e-2)


def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model.apply(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


@jax.jit
def train_step(
    params: Any, opt_state: Any, x: jax.Array, y: jax.Array
) -> tuple[Any, Any, jax.Array, jax.Array]:
    """One full-batch step; returns the new parameters and state, the loss and the training accuracy
    before the step."""
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    train_acc = jnp.mean(jnp.argmax(logits, axis=-1) == y)
    return optax.apply_updates(params, updates), opt_state, loss, train_acc


@jax.jit
def accuracy(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(model.apply(params, x), axis=-1) == y)


def main(steps: int = 300, log_every: int = 50) -> float:
    """Train for ``steps`` steps, printing the loss and accuracies; return the final test accuracy."""
    x_train, y_train, x_test, y_test = load()
    params = model.init(jax.random.key(0), x_train)
    opt_state = optimizer.init(params)
    for step in range(1, steps + 1):
        params, opt_state, loss, train_acc = train_step(params, opt_state, x_train, y_train)
        if step % log_every == 0 or step == steps:
            test_acc = accuracy(params, x_test, y_test)
            print(f"step {step:4d}  loss {loss:.4f}  train acc {train_acc:.3f}  test acc {test_acc:.3f}")
    return float(accuracy(params, x_test, y_test))


if __name__ == "__main__":
    main()
