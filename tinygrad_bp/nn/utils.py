"""Gradient clipping, as PyTorch's `torch.nn.utils`."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

import tinygrad_bp as tg

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _with_grads(parameters: Iterable[tg.Tensor] | tg.Tensor) -> list[tg.Tensor]:
    """The tensors (one Tensor or an iterable of them) that have a `.grad`."""
    params = [parameters] if isinstance(parameters, tg.Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[tg.Tensor] | tg.Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale all gradients together so their joint norm is at most `max_norm`.

    total = ‖(‖g_1‖, ‖g_2‖, ...)‖ (p-norms, p = norm_type, may be inf); when
    coef = max_norm / (total + 1e-6) < 1 every `.grad` becomes coef * grad (a new
    Tensor). Returns total, the norm before clipping.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn.utils import clip_grad_norm_
    >>> w = tg.zeros(2, requires_grad=True)
    >>> w.grad = tg.tensor([3.0, 4.0])
    >>> clip_grad_norm_([w], max_norm=1.0)
    5.0
    >>> [round(g, 4) for g in w.grad.tolist()]
    [0.6, 0.8]
    """
    if not max_norm >= 0:
        raise ValueError(
            f"clip_grad_norm_: max_norm must be non-negative, got {max_norm!r}"
        )
    if not norm_type > 0:
        raise ValueError(
            f"clip_grad_norm_: norm_type must be positive, got {norm_type!r}"
        )
    params = _with_grads(parameters)
    if not params:
        return 0.0
    norms = [np.linalg.norm(p.grad.data.ravel(), ord=norm_type) for p in params]
    # The decisions below read the norm as an array, not as the float returned, so
    # that a compiled step (tinygrad_bp.compile) recomputes them at every call.
    norm = np.linalg.norm(np.asarray(norms, dtype=np.float64), ord=norm_type)
    total = float(norm)
    if error_if_nonfinite and not np.isfinite(norm):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"{total}; pass error_if_nonfinite=False to clip anyway"
        )
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        # New tensors, not writes into grad.data: a gradient array may be shared
        # with another tensor or read-only.
        with tg.no_grad():
            for p in params:
                p.grad = p.grad * coef.astype(p.grad.dtype)
    return total


def clip_grad_value_(
    parameters: Iterable[tg.Tensor] | tg.Tensor, clip_value: float
) -> None:
    """Clip every gradient elementwise to [-clip_value, clip_value] (new `.grad` Tensors).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn.utils import clip_grad_value_
    >>> w = tg.zeros(3, requires_grad=True)
    >>> w.grad = tg.tensor([-5.0, 0.5, 5.0])
    >>> clip_grad_value_(w, 1.0); w.grad
    Tensor([-1. ,  0.5,  1. ])
    """
    if not clip_value >= 0:
        raise ValueError(
            f"clip_grad_value_: clip_value must be non-negative, got {clip_value!r}"
        )
    with tg.no_grad():
        for p in _with_grads(parameters):
            p.grad = p.grad.clip(-clip_value, clip_value)
