"""Property-based gradient tests for your own code, with Hypothesis and tinygrad_bp.testing.

Two pieces of "user code" are tested: a custom op written as a `tinygrad_bp.Function`
(a smooth absolute value) and a composite function written with Tensor operations
(an RMS normalisation). Hypothesis draws the shapes and the values; `gradcheck` and
`gradgradcheck` compare backprop with finite differences on each draw, and two
properties that need no reference implementation are checked too.

    pytest examples/property_test.py
    python examples/property_test.py            # the same tests, without pytest
    TINYGRAD_BP_QUICK=1 python examples/property_test.py   # or --quick: fewer draws
"""

from __future__ import annotations

import os
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.testing import gradcheck, gradgradcheck
from tinygrad_bp.testing.strategies import broadcastable_shapes, shapes, tensors

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]
# Quick runs (CI) are also derandomized, so they are reproducible.
SETTINGS = settings(max_examples=10 if QUICK else 50, deadline=None, derandomize=QUICK)


class SmoothAbs(tg.Function):
    """y = sqrt(x^2 + c^2) - c; dy/dx = x / (y + c)"""

    def forward(self, x: np.ndarray, c: float = 1.0) -> np.ndarray:
        self.c = c
        return np.sqrt(x * x + c * c) - c

    def backward(self, grad: tg.Tensor, out: tg.Tensor) -> tg.Tensor:
        (x,) = self.inputs
        # Written with Tensor operations, so gradgradcheck can differentiate it again.
        return grad * x / (out + self.c)


def rms_norm(x: tg.Tensor, eps: float = 0.0) -> tg.Tensor:
    """x / sqrt(mean(x^2, last axis) + eps)."""
    return x / ((x * x).mean(axis=-1, keepdims=True) + eps).sqrt()


@SETTINGS
@given(tensors(shape=shapes(max_dims=3, max_side=4)), st.floats(0.1, 3.0))
def test_smooth_abs_gradients(x: tg.Tensor, c: float) -> None:
    def op(t: tg.Tensor) -> tg.Tensor:
        return SmoothAbs.apply(t, c=c)

    assert gradcheck(op, [x])
    assert gradgradcheck(op, [x])


@SETTINGS
@given(tensors(shape=(3, 4)), tensors(shape=broadcastable_shapes((3, 4), max_dims=2)))
def test_smooth_abs_in_a_broadcasting_expression(x: tg.Tensor, w: tg.Tensor) -> None:
    assert gradcheck(lambda x, w: SmoothAbs.apply(x * w) + w, [x, w])


# Rows whose entries all lie in [0.5, 3] keep the norm well away from zero.
away_from_zero = st.floats(0.5, 3.0) | st.floats(-3.0, -0.5)


@SETTINGS
@given(
    tensors(shape=shapes(min_dims=1, max_dims=3, max_side=4), elements=away_from_zero)
)
def test_rms_norm_gradients(x: tg.Tensor) -> None:
    assert gradcheck(rms_norm, [x])


@SETTINGS
@given(
    tensors(shape=(2, 5), elements=away_from_zero),
    st.floats(0.1, 10.0),
    tensors(shape=(2, 5), requires_grad=False),
)
def test_rms_norm_is_scale_invariant(x: tg.Tensor, scale: float, v: tg.Tensor) -> None:
    # f(s*x) = f(x), so by Euler's theorem the gradient of any sum(v * f(x)) is
    # orthogonal to x, row by row.
    np.testing.assert_allclose(
        rms_norm(x * scale).numpy(), rms_norm(x).numpy(), rtol=1e-12
    )
    (rms_norm(x) * v).sum().backward()
    row_dots = (x.grad.numpy() * x.numpy()).sum(axis=-1)
    np.testing.assert_allclose(row_dots, 0.0, atol=1e-10)


TESTS = (
    test_smooth_abs_gradients,
    test_smooth_abs_in_a_broadcasting_expression,
    test_rms_norm_gradients,
    test_rms_norm_is_scale_invariant,
)

if __name__ == "__main__":
    for test in TESTS:
        test()  # Hypothesis runs every draw; the first failure raises with its input
        print(f"passed: {test.__name__}")
    print(f"all {len(TESTS)} property tests passed")
