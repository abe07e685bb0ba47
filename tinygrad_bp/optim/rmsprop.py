"""RMSprop: divide the gradient by a running root mean square of its recent values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_bp.optim.optimizer import (
    Optimizer,
    _check_non_negative,
    _check_unit_interval,
    _state_buffer,
)


class RMSprop(Optimizer):
    """RMSprop (Hinton), step for step as ``torch.optim.RMSprop``.

    With gradient g_t of parameter θ, learning rate γ, smoothing α, weight decay λ,
    momentum μ, and v_0 = b_0 = g^ave_0 = 0::

        if λ != 0:  g_t = g_t + λ θ_{t-1}
        v_t = α v_{t-1} + (1 - α) g_t²
        ṽ_t = v_t
        if centered:
            g^ave_t = α g^ave_{t-1} + (1 - α) g_t
            ṽ_t = ṽ_t - (g^ave_t)²
        if μ > 0:
            b_t = μ b_{t-1} + g_t / (sqrt(ṽ_t) + ε)
            θ_t = θ_{t-1} - γ b_t
        else:
            θ_t = θ_{t-1} - γ g_t / (sqrt(ṽ_t) + ε)

    State per parameter: ``step``, ``square_avg`` (v), ``momentum_buffer`` (b, when
    μ > 0) and ``grad_avg`` (g^ave, when centered).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import RMSprop
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> w.grad = tg.tensor([2.0])
    >>> RMSprop([w], lr=0.01, alpha=0.75).step()
    >>> print(w.numpy().round(4))  # 1 - 0.01 * 2 / sqrt(0.25 * 4)
    [0.98]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        _check_unit_interval("alpha", group["alpha"], closed=True)
        for name in ("eps", "weight_decay", "momentum"):
            _check_non_negative(name, group[name])

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        alpha = group["alpha"]
        weight_decay = group["weight_decay"]
        momentum = group["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data
            if weight_decay != 0:
                g = g + weight_decay * p.data
            state = self.state.setdefault(p, {"step": 0})
            state["step"] += 1
            v = _state_buffer(state, "square_avg", p)
            v *= alpha
            v += (1 - alpha) * np.square(g)
            if group["centered"]:
                g_avg = _state_buffer(state, "grad_avg", p)
                g_avg *= alpha
                g_avg += (1 - alpha) * g
                denom = np.sqrt(v - np.square(g_avg))
            else:
                denom = np.sqrt(v)
            denom += group["eps"]
            if momentum > 0:
                buf = _state_buffer(state, "momentum_buffer", p)
                buf *= momentum
                buf += g / denom
                p.data -= lr * buf
            else:
                p.data -= lr * (g / denom)
