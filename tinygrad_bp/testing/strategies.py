"""Hypothesis strategies for property-based gradient checks in your own test suite.

A thin layer over `hypothesis.extra.numpy` that draws shapes and `Tensor`s. This is
the only module of tinygrad_bp that imports Hypothesis; import it from tests only.

>>> import tinygrad_bp as tg
>>> from hypothesis import given, settings
>>> from tinygrad_bp.testing import gradcheck
>>> from tinygrad_bp.testing.strategies import broadcastable_shapes, tensors
>>> @settings(max_examples=10, derandomize=True, deadline=None)
... @given(tensors(shape=(2, 3)), tensors(shape=broadcastable_shapes((2, 3))))
... def test_mul_broadcasts(x, y):
...     assert gradcheck(lambda x, y: x * y, [x, y])
>>> test_mul_broadcasts()
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra.numpy import arrays

import tinygrad_bp as tg

__all__ = ["arrays", "broadcastable_shapes", "shapes", "tensors"]

Shape = tuple[int, ...]


def shapes(
    min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 6
) -> st.SearchStrategy[Shape]:
    """Array shapes with `min_dims` to `max_dims` axes of `min_side` to `max_side` each.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20, derandomize=True)
    ... @given(shapes(max_dims=2, max_side=3))
    ... def test_shape(shape):
    ...     assert len(shape) <= 2 and all(1 <= n <= 3 for n in shape)
    >>> test_shape()
    """
    _check_range("min_dims", min_dims, "max_dims", max_dims)
    _check_range("min_side", min_side, "max_side", max_side)
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_shapes(
    shape: Shape,
    min_dims: int = 0,
    max_dims: int | None = None,
    min_side: int = 1,
    max_side: int | None = None,
) -> st.SearchStrategy[Shape]:
    """Shapes that broadcast with `shape` under NumPy's rules.

    The broadcast result may be larger than `shape` (sides of 1 and extra leading
    axes get stretched); `min_side` and `max_side` bound the sides not aligned with
    `shape` (`max_side` defaults to 2 plus its largest side), `max_dims` defaults to
    ``max(len(shape), min_dims) + 2``.

    >>> import numpy as np
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20, derandomize=True)
    ... @given(broadcastable_shapes((3, 1, 4)))
    ... def test_broadcast(other):
    ...     result = np.broadcast_shapes((3, 1, 4), other)  # raises if incompatible
    ...     assert result[-3] == 3 and result[-1] == 4
    >>> test_broadcast()
    """
    shape = _as_shape(shape)
    if max_dims is not None:
        _check_range("min_dims", min_dims, "max_dims", max_dims)
    if max_side is not None:
        _check_range("min_side", min_side, "max_side", max_side)
    return hnp.broadcastable_shapes(
        shape,
        min_dims=min_dims,
        max_dims=max_dims,
        min_side=min_side,
        max_side=max_side,
    )


def tensors(
    shape: int | Shape | st.SearchStrategy[Shape] | None = None,
    dtype: Any = np.float64,
    elements: st.SearchStrategy[Any] | None = None,
    requires_grad: bool = True,
) -> st.SearchStrategy[tg.Tensor]:
    """Tensors of `dtype` with the given `shape` (or one drawn from `shapes()`).

    `shape` is a shape or a strategy for one; `elements` defaults, for floating
    dtypes, to the finite floats in [-10, 10], a range where gradient checks of the
    usual ops are well conditioned.

    >>> from hypothesis import given, settings
    >>> from tinygrad_bp.testing import gradcheck
    >>> @settings(max_examples=10, derandomize=True, deadline=None)
    ... @given(tensors(shape=shapes(max_dims=2)))
    ... def test_tanh(x):
    ...     assert x.dtype == np.float64 and x.requires_grad
    ...     assert gradcheck(lambda t: t.tanh(), [x])
    >>> test_tanh()
    """
    dtype = np.dtype(dtype)
    if requires_grad and dtype.kind != "f":
        raise TypeError(
            f"tensors: requires_grad=True needs a floating dtype, got dtype={dtype}"
        )
    if shape is None:
        shape = shapes()
    if elements is None and dtype.kind == "f":
        # Hypothesis draws floats of at most 64 bits; wider dtypes hold them exactly.
        elements = st.floats(-10, 10, width=min(8 * dtype.itemsize, 64))
    return arrays(dtype, shape, elements=elements).map(
        lambda a: tg.Tensor(a, requires_grad=requires_grad)
    )


def _as_shape(shape: Any) -> Shape:
    try:
        sides = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(
            f"shape must be a tuple of ints, got {type(shape).__name__}: {shape!r}"
        ) from None
    if any(n < 0 for n in sides):
        raise ValueError(f"shape must not have negative sides, got shape={shape!r}")
    return sides


def _check_range(low_name: str, low: int, high_name: str, high: int) -> None:
    if low < 0:
        raise ValueError(f"{low_name} must be non-negative, got {low_name}={low}")
    if high < low:
        raise ValueError(
            f"{high_name} must be at least {low_name}, got {low_name}={low}, "
            f"{high_name}={high}"
        )
