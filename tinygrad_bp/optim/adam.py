"""Adam and AdamW: adaptive moment estimation, with coupled or decoupled weight decay."""

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


class Adam(Optimizer):
    """Adam (Kingma & Ba), step for step as ``torch.optim.Adam``.

    With gradient g_t of parameter θ, learning rate γ, betas (β1, β2), weight
    decay λ, and m_0 = v_0 = v_0^max = 0::

        if λ != 0:  g_t = g_t + λ θ_{t-1}
        m_t = β1 m_{t-1} + (1 - β1) g_t
        v_t = β2 v_{t-1} + (1 - β2) g_t²
        m̂_t = m_t / (1 - β1^t)
        if amsgrad:
            v_t^max = max(v_{t-1}^max, v_t)
            v̂_t = v_t^max / (1 - β2^t)
        else:
            v̂_t = v_t / (1 - β2^t)
        θ_t = θ_{t-1} - γ m̂_t / (sqrt(v̂_t) + ε)

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with
    amsgrad, ``max_exp_avg_sq`` (v^max).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import Adam
    >>> w = tg.tensor([1.0, -1.0], requires_grad=True)
    >>> w.grad = tg.tensor([3.0, -0.5])
    >>> Adam([w], lr=0.1).step()
    >>> print(w.numpy().round(4))  # the first step moves by about lr * sign(g)
    [ 0.9 -0.9]
    """

    # AdamW differs only here: weight decay shrinks θ directly, not through g.
    _decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        _check_non_negative("eps", group["eps"])
        _check_non_negative("weight_decay", group["weight_decay"])
        betas = group["betas"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__"):
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check_unit_interval("betas[0]", betas[0])
        _check_unit_interval("betas[1]", betas[1])

    def _update_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data
            if weight_decay != 0:
                if self._decoupled_weight_decay:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            state = self.state.setdefault(p, {"step": 0})
            state["step"] += 1
            t = state["step"]
            m = _state_buffer(state, "exp_avg", p)
            v = _state_buffer(state, "exp_avg_sq", p)
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * np.square(g)
            if group["amsgrad"]:
                v_max = _state_buffer(state, "max_exp_avg_sq", p)
                np.maximum(v_max, v, out=v_max)
                v = v_max
            denom = np.sqrt(v)
            # ** 0.5, not math.sqrt: a compiled step (tinygrad_bp.compile) follows
            # Python arithmetic on the step count, but not math's C functions
            denom /= (1 - beta2**t) ** 0.5
            denom += eps
            p.data -= (lr / (1 - beta1**t)) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    The same as :class:`Adam` except that weight decay shrinks the parameter
    instead of entering the gradient::

        θ_{t-1} = θ_{t-1} - γ λ θ_{t-1}
        m_t = β1 m_{t-1} + (1 - β1) g_t
        v_t = β2 v_{t-1} + (1 - β2) g_t²
        m̂_t = m_t / (1 - β1^t)
        v̂_t = v_t^max / (1 - β2^t)  with v_t^max = max(v_{t-1}^max, v_t)  if amsgrad
        v̂_t = v_t / (1 - β2^t)                                            otherwise
        θ_t = θ_{t-1} - γ m̂_t / (sqrt(v̂_t) + ε)

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import AdamW
    >>> w = tg.tensor([2.0], requires_grad=True)
    >>> w.grad = tg.tensor([0.0])
    >>> AdamW([w], lr=0.1, weight_decay=0.5).step()
    >>> print(w.numpy().round(4))  # 2 * (1 - 0.1 * 0.5); a zero gradient moves nothing
    [1.9]
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
