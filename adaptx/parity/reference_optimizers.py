"""PyTorch implementations of the reference formulations that are not in ``torch.optim``.

``AdaX`` (the AdaX authors' ``AdaX``/``AdaXW``), ``HFAdamW`` (HuggingFace's legacy ``AdamW``) and
``LabmlAdam`` (labml.ai's ``Adam``/``AMSGrad``), as ``torch.optim.Optimizer`` subclasses, so that
:mod:`adaptx.parity` can compare :mod:`adaptx.torch_compat.references` with them without installing
those projects. Written from the published update rules (written out in ``docs/references.md``), in plain
tensor operations in the order those codes use, independently of adaptx's JAX code: they are the PyTorch
side of the parity tests. Hyperparameters are Python floats; every scalar that depends only on the step
is computed in Python float64, as the original codes do. Importing this module needs PyTorch.
"""

from __future__ import annotations

import math

import torch


class _Base(torch.optim.Optimizer):
    """Shared skeleton: per-parameter state with a Python step counter; ``maximize`` negates g first."""

    def _grad(self, p, group):
        g = p.grad
        return -g if group.get("maximize", False) else g

    def _state(self, p, **zeros):
        state = self.state[p]
        if not state:
            state["step"] = 0
            for name, fill in zeros.items():
                state[name] = torch.full_like(p, fill)
        return state


class AdaX(_Base):
    """The AdaX authors' ``AdaX`` (coupled L2) and, with ``decoupled=True``, ``AdaXW``.

    m ← β1 m + (1−β1) g;  v ← (1+β2) v + β2 g²;  θ ← θ − γ √B_t · m / (√v + ε),  B_t = (1+β2)^t − 1.
    AdaX adds λθ to g; AdaXW subtracts γλθ_{t−1} from θ.
    """

    def __init__(self, params, lr=1.5e-3, betas=(0.9, 1e-4), eps=1e-12, weight_decay=5e-4,
                 decoupled=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled=decoupled, maximize=maximize))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                g = self._grad(p, group)
                st = self._state(p, m=0.0, v=0.0)
                st["step"] += 1
                t = st["step"]
                if wd != 0:
                    if group["decoupled"]:
                        p.add_(p, alpha=-lr * wd)
                    else:
                        g = g.add(p, alpha=wd)
                st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(1 + b2).addcmul_(g, g, value=b2)
                denom = st["v"].sqrt().add_(group["eps"])
                step_size = lr * math.sqrt((1 + b2) ** t - 1)
                p.addcdiv_(st["m"], denom, value=-step_size)


class HFAdamW(_Base):
    """HuggingFace's legacy ``AdamW``: ε on the raw root, decay after the step on the updated θ."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0,
                 correct_bias=True, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      correct_bias=correct_bias, maximize=maximize))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                g = self._grad(p, group)
                st = self._state(p, m=0.0, v=0.0)
                st["step"] += 1
                t = st["step"]
                st["m"].mul_(b1).add_(g, alpha=1.0 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1.0 - b2)
                denom = st["v"].sqrt().add_(group["eps"])
                step_size = lr
                if group["correct_bias"]:
                    step_size = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
                p.addcdiv_(st["m"], denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-lr * group["weight_decay"])


class LabmlAdam(_Base):
    """labml.ai's ``Adam``/``AMSGrad`` with its ``WeightDecay`` (decoupled, absolute or coupled)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0,
                 weight_decouple=True, absolute=False, optimized_update=True, amsgrad=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      weight_decouple=weight_decouple, absolute=absolute,
                                      optimized_update=optimized_update, amsgrad=amsgrad,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                g = self._grad(p, group)
                st = self._state(p, m=0.0, v=0.0, v_max=0.0)
                st["step"] += 1
                t = st["step"]
                if group["weight_decouple"]:
                    p.mul_(1.0 - wd if group["absolute"] else 1.0 - lr * wd)
                elif wd != 0:
                    g = g.add(p, alpha=wd)
                st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                v = st["v"]
                if group["amsgrad"]:
                    torch.maximum(st["v_max"], v, out=st["v_max"])
                    v = st["v_max"]
                bc1, bc2 = 1 - b1**t, 1 - b2**t
                if group["optimized_update"]:
                    denom = v.sqrt().add_(group["eps"])
                    p.addcdiv_(st["m"], denom, value=-lr * math.sqrt(bc2) / bc1)
                else:
                    denom = (v.sqrt() / math.sqrt(bc2)).add_(group["eps"])
                    p.addcdiv_(st["m"], denom, value=-lr / bc1)
