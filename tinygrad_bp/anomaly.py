"""detect_anomaly: find the operation that first produced a NaN or an infinity.

Inside the context every recorded op's forward output is checked, and so is every
gradient its backward returns. The first non-finite value raises `FloatingPointError`
naming the op, the pass and the op's input shapes; a backward error also shows where
in the user's code the op was created. Outside the context nothing is checked: the
context swaps the one recording point, `Tensor._apply`, for a checking version and
puts the plain one back on exit, so normal runs pay nothing per op.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np

from .tensor import Tensor

_plain_apply = Tensor._apply


class _Pass:
    # >0 while a checked backward runs: its own ops are reported as backward errors
    backward_depth = 0


def _describe(inputs: Any) -> str:
    return ", ".join(str(np.shape(x)) for x in inputs)


def _non_finite(array: np.ndarray) -> str | None:
    if array.dtype.kind not in "fc" or np.isfinite(array).all():
        return None
    return "NaN" if np.isnan(array).any() else "infinity"


def _checked_apply(op: type, *args: Any, **params: Any) -> Tensor:
    created_at = "".join(traceback.format_stack()[:-1])
    with np.errstate(all="ignore"):  # the check below reports it, with context
        out = _plain_apply(op, *args, **params)
    found = _non_finite(out._data)
    inputs_finite = all(_non_finite(np.asarray(a)) is None for a in args)
    if found and inputs_finite and not _Pass.backward_depth:
        raise FloatingPointError(
            f"{op.__name__} produced {found} in the forward pass "
            f"(input shapes {_describe(args)})"
        )
    fn = out.grad_fn
    if fn is not None:
        fn.backward = _checked_backward(fn, fn.backward, _describe(args), created_at)
    return out


def _checked_backward(fn: Any, backward: Any, shapes: str, created_at: str) -> Any:
    def checked(grad: Tensor, out: Tensor) -> Any:
        _Pass.backward_depth += 1
        try:
            with np.errstate(all="ignore"):
                grads = backward(grad, out)
        finally:
            _Pass.backward_depth -= 1
        for i, g in enumerate(grads if isinstance(grads, tuple) else (grads,)):
            found = None if g is None else _non_finite(g._data)
            if found:
                raise FloatingPointError(
                    f"{fn.name} returned {found} in the gradient of its input {i} in "
                    f"the backward pass (forward input shapes {shapes}). The op was "
                    f"created here:\n{created_at}"
                )
        return grads

    return checked


class detect_anomaly:
    """Raise `FloatingPointError` at the first op that makes a NaN or infinity.

    >>> import tinygrad_bp as tg
    >>> x = tg.tensor([0.0], requires_grad=True)
    >>> with tg.detect_anomaly():
    ...     y = x.sqrt()          # fine: sqrt(0) = 0
    ...     y.sum().backward()    # d sqrt(x)/dx = 1/(2 sqrt(x)) is infinite at 0
    Traceback (most recent call last):
    ...
    FloatingPointError: Sqrt returned infinity in the gradient of its input 0 ...
    """

    _depth = 0  # nested contexts share one swap

    def __enter__(self) -> detect_anomaly:
        if detect_anomaly._depth == 0:
            Tensor._apply = staticmethod(_checked_apply)
        detect_anomaly._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        detect_anomaly._depth -= 1
        if detect_anomaly._depth == 0:
            Tensor._apply = staticmethod(_plain_apply)
