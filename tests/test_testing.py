"""tinygrad_bp.testing: gradcheck, gradgradcheck and the Hypothesis strategies."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.testing import GradcheckError, gradcheck, gradgradcheck
from tinygrad_bp.testing.strategies import (
    broadcastable_shapes,
    shapes,
    tensors,
)

SMALL = shapes(max_dims=3, max_side=4)


def leaf(values, requires_grad: bool = True) -> tg.Tensor:
    return tg.tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)


# ----------------------------------------------------------------- custom ops
class Square(tg.Function):
    """y = x^2; dy/dx = scale * 2x (scale=1 is right)"""

    def forward(self, x, scale=1.0):
        self.scale = scale
        return x * x

    def backward(self, grad, out):
        (x,) = self.inputs
        return grad * 2 * x * self.scale


class HalfSquare(tg.Function):
    """y = x^2 with a wrong backward: grad * x instead of 2 * x * grad"""

    def forward(self, x):
        return x * x

    def backward(self, grad, out):
        (x,) = self.inputs
        return grad * x


class FrozenSquare(tg.Function):
    """y = x^2 with a right first derivative built from a constant: 2x is not recorded"""

    def forward(self, x):
        return x * x

    def backward(self, grad, out):
        (x,) = self.inputs
        return grad * tg.Tensor(2 * x.data)


class TripleIgnoringGrad(tg.Function):
    """y = 3x with a backward right only for an all-ones upstream gradient"""

    def forward(self, x):
        return 3 * x

    def backward(self, grad, out):
        return tg.ones_like(grad) * 3


# ------------------------------------------------------------------ gradcheck
BINARY_OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "maximum": lambda x, y: tg.maximum(x, y * 0.5 + 20.0),
    "mul_tanh": lambda x, y: (x * y).tanh(),
}


@pytest.mark.parametrize("name", BINARY_OPS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_gradcheck_passes_on_correct_broadcasting_ops(name, data):
    x = data.draw(tensors(shape=SMALL), label="x")
    y_shape = data.draw(broadcastable_shapes(x.shape, max_dims=3, max_side=4))
    # keep the divisor away from zero; the others like any value in range
    y = data.draw(tensors(shape=y_shape, elements=st.floats(0.5, 3.0)), label="y")
    assert gradcheck(BINARY_OPS[name], [x, y]) is True


@settings(max_examples=10, deadline=None)
@given(tensors(shape=SMALL))
def test_gradcheck_passes_on_unary_ops_and_reductions(x):
    assert gradcheck(lambda t: t.exp().sum(axis=-1) if t.ndim else t.exp(), [x])
    assert gradcheck(lambda t: t.sin() * t.sigmoid(), [x])
    assert gradcheck(lambda t: Square.apply(t).mean(), [x])


def test_gradcheck_multiple_outputs_passthrough_args_and_frozen_inputs():
    x = leaf([[0.3, -1.2, 2.0]])
    frozen = leaf([[1.5], [-0.5]], requires_grad=False)
    assert gradcheck(lambda x, c, k: (x * c, x**k), [x, frozen, 3])


def test_gradcheck_on_a_zero_dim_input():
    assert gradcheck(lambda x: x * x.exp(), [leaf(0.7)])


def test_unused_input_gets_a_zero_gradient():
    x, unused = leaf([1.0, 2.0]), leaf([3.0])
    assert gradcheck(lambda x, u: x * 2.0, [x, unused])


def test_constant_output_is_checked_as_zero_gradient():
    x = leaf([1.0, 2.0])
    assert gradcheck(lambda x: tg.tensor(np.array([5.0])), [x])
    # a constant whose value does depend on x is caught by the finite differences
    assert not gradcheck(lambda x: tg.tensor(x.data * 2), [x], raise_exception=False)


def test_same_tensor_passed_twice_is_one_variable():
    x = leaf([0.5, -2.0])
    assert gradcheck(lambda a, b: a * b, [x, x])
    assert gradgradcheck(lambda a, b: a * b.sin(), [x, x])


def test_a_single_tensor_is_accepted_as_inputs():
    assert gradcheck(lambda x: x.tanh(), leaf([0.1, 0.2]))


def test_wrong_backward_is_caught_with_a_precise_message():
    a = leaf([[0.5, 1.0], [-2.0, 3.0]])
    x = leaf([[1.0, -2.0, 0.5], [3.0, 1.5, -1.0]])
    with pytest.raises(GradcheckError) as caught:
        gradcheck(lambda a, x: a.sum() + HalfSquare.apply(x), [a, x])
    message = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    assert "input 1" in message
    # every element is wrong, so the first one is reported
    assert "element index (0, 0)" in message
    number = r"(-?[\d.]+(?:e[+-]?\d+)?)"
    found = re.search(
        rf"analytic {number}, numerical {number}, difference {number}", message
    )
    assert found, message
    analytic, numerical, difference = (float(g) for g in found.groups())
    # backward gives v*x where the truth is 2*v*x, v being the random cotangent
    assert numerical == pytest.approx(2 * analytic, rel=1e-6)
    assert abs(analytic) >= 0.5 * abs(x.data[0, 0])
    assert difference == pytest.approx(analytic - numerical)


def test_raise_exception_false_returns_false():
    x = leaf([1.0, 2.0])
    assert gradcheck(HalfSquare.apply, [x], raise_exception=False) is False
    assert gradcheck(Square.apply, [x], raise_exception=False) is True


def test_random_cotangent_catches_a_backward_right_only_for_ones():
    x = leaf([1.0, -1.0, 2.0])
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(TripleIgnoringGrad.apply, [x])


def test_tolerances_follow_atol_plus_rtol_times_numerical():
    x = leaf([1.0, 2.0, 3.0])
    # analytic = 1.0005 * numerical: a relative error of 5e-4
    assert gradcheck(lambda x: Square.apply(x, scale=1.0005), [x], atol=0, rtol=1e-3)
    assert not gradcheck(
        lambda x: Square.apply(x, scale=1.0005),
        [x],
        atol=0,
        rtol=1e-4,
        raise_exception=False,
    )
    # the same error at x = 1 (size 1e-3 * |v|) is within a large enough atol
    one = leaf([1.0])
    assert gradcheck(lambda x: Square.apply(x, scale=1.0005), [one], atol=2e-3, rtol=0)


def test_nan_gradient_is_a_failure():
    x = leaf([1.0, 2.0])
    with pytest.raises(GradcheckError, match="nan"):
        gradcheck(lambda x: Square.apply(x, scale=float("nan")), [x])


def test_float32_input_warns_and_float64_does_not():
    x32 = tg.tensor(np.array([0.5, 1.5], dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="input 0 has dtype float32"):
        gradcheck(lambda x: x * 2.0, [x32], atol=1e-3, rtol=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradcheck(lambda x: x * 2.0, [leaf([0.5, 1.5])])


def test_user_arrays_and_grads_are_untouched():
    x = leaf([[0.5, -1.0], [2.0, 3.0]])
    w = leaf([0.25, 4.0])
    data_x, data_w = x.data, w.data
    before_x, before_w = x.data.copy(), w.data.copy()
    gradcheck(lambda x, w: (x * w).sin(), [x, w])
    gradgradcheck(lambda x, w: (x * w).sin(), [x, w])
    assert x.data is data_x and w.data is data_w
    np.testing.assert_array_equal(x.data, before_x)
    np.testing.assert_array_equal(w.data, before_w)
    assert x.grad is None and w.grad is None


def test_user_arrays_untouched_when_fn_raises_midway():
    x = leaf([0.5, -1.0, 2.0])
    before = x.data.copy()
    calls = []

    def flaky(t):
        calls.append(1)
        if len(calls) == 3:  # inside the finite differences
            raise RuntimeError("boom")
        return t * t

    with pytest.raises(RuntimeError, match="boom"):
        gradcheck(flaky, [x])
    np.testing.assert_array_equal(x.data, before)
    assert tg.is_grad_enabled()


def test_gradcheck_does_not_move_any_global_rng():
    tg.manual_seed(7)
    expected = tg.rand(4).numpy()
    numpy_state = np.random.get_state()[1].copy()
    tg.manual_seed(7)
    gradcheck(lambda x: x.tanh(), [leaf([0.1, 0.2])])
    gradgradcheck(lambda x: x.tanh(), [leaf([0.1, 0.2])])
    np.testing.assert_array_equal(tg.rand(4).numpy(), expected)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


# -------------------------------------------------------------- gradgradcheck
SMOOTH_OPS = {
    "tanh": lambda x, y: (x * y).tanh(),
    "x_sin_x": lambda x, y: x * x.sin() + y,
    "exp_div": lambda x, y: x.exp() / y,
    "sigmoid_sum": lambda x, y: (x.sigmoid() * y).sum(axis=0),
}


@pytest.mark.parametrize("name", SMOOTH_OPS)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_gradgradcheck_passes_on_smooth_ops(name, data):
    x = data.draw(tensors(shape=shapes(min_dims=1, max_dims=2, max_side=3)), "x")
    y_shape = data.draw(broadcastable_shapes(x.shape, max_dims=2, max_side=3))
    y = data.draw(tensors(shape=y_shape, elements=st.floats(0.5, 3.0)), "y")
    assert gradgradcheck(SMOOTH_OPS[name], [x, y]) is True


def test_gradgradcheck_catches_a_backward_that_records_no_graph():
    x = leaf([[0.5, -1.0, 2.0]])
    # the first derivative is right ...
    assert gradcheck(FrozenSquare.apply, [x])
    # ... but d(2x)/dx is lost, so the second derivative is 0 instead of 2v
    with pytest.raises(GradcheckError) as caught:
        gradgradcheck(FrozenSquare.apply, [x])
    message = str(caught.value)
    assert message.startswith("gradgradcheck: gradient mismatch for input 0 at")
    assert "element index (0, 0)" in message
    assert "inputs 1 and up are the grad_outputs v" in message
    assert gradgradcheck(Square.apply, [x])


def test_gradgradcheck_with_given_grad_outputs():
    x = leaf([0.3, -0.8])
    v = leaf([1.5, -0.5])
    assert gradgradcheck(lambda x: x.tanh(), [x], grad_outputs=[v])
    assert gradgradcheck(lambda x: x.tanh(), [x], grad_outputs=v)
    assert not gradgradcheck(
        FrozenSquare.apply, [x], grad_outputs=[v], raise_exception=False
    )


def test_gradgradcheck_rejects_bad_grad_outputs():
    x = leaf([0.3, -0.8])
    with pytest.raises(ValueError, match=r"grad_outputs\[0\] has shape \(3,\).*\(2,\)"):
        gradgradcheck(lambda x: x.tanh(), [x], grad_outputs=[leaf([1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match="2 grad_outputs for 1"):
        gradgradcheck(lambda x: x.tanh(), [x], grad_outputs=[x, x])
    with pytest.raises(TypeError, match=r"grad_outputs\[0\] is a ndarray"):
        gradgradcheck(lambda x: x.tanh(), [x], grad_outputs=[np.ones(2)])


# ------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("check", [gradcheck, gradgradcheck])
def test_bad_arguments_raise_clear_errors(check):
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match="no input requires grad"):
        check(lambda t: t * 2, [leaf([1.0], requires_grad=False), 3.0])
    with pytest.raises(ValueError, match="eps must be positive, got eps=0"):
        check(lambda t: t * 2, [x], eps=0)
    with pytest.raises(ValueError, match="atol=-1"):
        check(lambda t: t * 2, [x], atol=-1)
    with pytest.raises(TypeError, match="inputs must be a Tensor or a sequence"):
        check(lambda t: t * 2, np.ones(2))
    with pytest.raises(TypeError, match="output 1 is a float"):
        check(lambda t: (t * 2, 3.0), [x])


# ------------------------------------------------------------------ strategies
@settings(max_examples=50, deadline=None)
@given(st.data())
def test_shapes_respect_their_bounds(data):
    min_dims = data.draw(st.integers(0, 3))
    max_dims = data.draw(st.integers(min_dims, 5))
    min_side = data.draw(st.integers(0, 3))
    max_side = data.draw(st.integers(min_side, 6))
    shape = data.draw(shapes(min_dims, max_dims, min_side, max_side))
    assert isinstance(shape, tuple)
    assert min_dims <= len(shape) <= max_dims
    assert all(min_side <= n <= max_side for n in shape)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_broadcastable_shapes_broadcast(data):
    shape = data.draw(shapes())
    other = data.draw(broadcastable_shapes(shape, max_dims=6))
    np.broadcast_shapes(shape, other)  # raises ValueError if they do not broadcast
    assert len(other) <= 6 and all(n >= 1 for n in other)


@settings(max_examples=30, deadline=None)
@given(tensors())
def test_tensors_defaults(x):
    assert isinstance(x, tg.Tensor)
    assert x.dtype == np.float64
    assert x.requires_grad and x.is_leaf
    assert x.ndim <= 4 and all(1 <= n <= 6 for n in x.shape)
    assert np.all(np.isfinite(x.data)) and np.all(np.abs(x.data) <= 10)


@settings(max_examples=20, deadline=None)
@given(
    tensors(shape=(2, 3), dtype=np.float32, requires_grad=False),
    tensors(shape=4, elements=st.floats(1.0, 2.0)),
    tensors(shape=st.just((3,)), dtype=np.int64, requires_grad=False),
)
def test_tensors_options(a, b, c):
    assert a.shape == (2, 3) and a.dtype == np.float32 and not a.requires_grad
    assert b.shape == (4,) and np.all((b.data >= 1.0) & (b.data <= 2.0))
    assert c.shape == (3,) and c.dtype == np.int64


def test_strategy_arguments_are_validated():
    with pytest.raises(TypeError, match="requires_grad=True needs a floating dtype"):
        tensors(dtype=np.int64)
    with pytest.raises(ValueError, match="max_dims must be at least min_dims"):
        shapes(min_dims=3, max_dims=2)
    with pytest.raises(ValueError, match="min_side must be non-negative"):
        shapes(min_side=-1)
    with pytest.raises(ValueError, match="max_side must be at least min_side"):
        broadcastable_shapes((2, 3), min_side=4, max_side=2)
    with pytest.raises(TypeError, match="shape must be a tuple of ints"):
        broadcastable_shapes(3)
    with pytest.raises(ValueError, match="negative sides"):
        broadcastable_shapes((2, -1))


def test_core_and_testing_do_not_import_hypothesis():
    code = (
        "import sys, tinygrad_bp, tinygrad_bp.testing; "
        "assert 'hypothesis' not in sys.modules, 'hypothesis was imported'"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
