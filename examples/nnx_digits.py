"""Train a small MLP on scikit-learn's digits with Flax NNX and an adaptx optimizer.

The digits dataset (1797 8x8 images of handwritten digits, bundled with scikit-learn: no download) is
split into 80% for training and 20% for testing. The model is a two-layer MLP; the optimizer is
``adaptx.adamw`` driven by ``nnx.Optimizer``, exactly as an optax optimizer would be. Each step is one
full-batch gradient step inside ``nnx.jit``.

Run it with ``python examples/nnx_digits.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
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


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, hidden: int = 64):
        self.hidden = nnx.Linear(64, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x)))


def loss_fn(model: MLP, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


@nnx.jit
def train_step(
    model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One full-batch step; returns the loss and the training accuracy before the step."""
    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
    optimizer.update(model, grads)
    return loss, jnp.mean(jnp.argmax(logits, axis=-1) == y)


@nnx.jit
def accuracy(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(model(x), axis=-1) == y)


def main(steps: int = 300, log_every: int = 50) -> float:
    """Train for ``steps`` steps, printing the loss and accuracies; return the final test accuracy."""
    x_train, y_train, x_test, y_test = load()
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, adaptx.adamw(1e-2, weight_decay=1e-4), wrt=nnx.Param)
    for step in range(1, steps + 1):
        loss, train_acc = train_step(model, optimizer, x_train, y_train)
        if step % log_every == 0 or step == steps:
            test_acc = accuracy(model, x_test, y_test)
            print(f"step {step:4d}  loss {loss:.4f}  train acc {train_acc:.3f}  test acc {test_acc:.3f}")
    return float(accuracy(model, x_test, y_test))


if __name__ == "__main__":
    main()
