"""Stochastic gradient descent with optional momentum, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_bp.optim.optimizer import Optimizer, _check_non_negative


class SGD(Optimizer):
    """Stochastic gradient descent, step for step as ``torch.optim.SGD``.

    With gradient g_t of parameter θ, learning rate γ, weight decay λ, momentum μ,
    dampening τ::

        if λ != 0:  g_t = g_t + λ θ_{t-1}
        if μ != 0:
            b_t = g_t                          if t == 1
            b_t = μ b_{t-1} + (1 - τ) g_t      otherwise
            g_t = g_t + μ b_t                  if nesterov
            g_t = b_t                          otherwise
        θ_t = θ_{t-1} - γ g_t

    State per parameter: ``momentum_buffer`` (only when μ != 0).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import SGD
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     w.grad = tg.tensor([1.0])
    ...     opt.step()
    >>> print(w.numpy().round(4))  # 1 - 0.1*1 - 0.1*(0.9*1 + 1)
    [0.71]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0,
        dampening: float = 0,
        nesterov: bool = False,
        weight_decay: float = 0,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        for name in ("momentum", "dampening", "weight_decay"):
            _check_non_negative(name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        momentum = group["momentum"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data
            if weight_decay != 0:
                g = g + weight_decay * p.data
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    # A copy: the gradient array may be shared with other tensors.
                    buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype)
                else:
                    buf *= momentum
                    buf += (1 - group["dampening"]) * g
                g = g + momentum * buf if group["nesterov"] else buf
            p.data -= lr * g
