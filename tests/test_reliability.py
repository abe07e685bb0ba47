"""Regression tests for the wrong answers an outside differential fuzzer found (issue 12).

One section per finding: each test is the reported repro (or its family) with the value
PyTorch gives, so the bug cannot come back unnoticed.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.testing import gradcheck


@pytest.fixture
def float64():
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    yield
    tg.set_default_dtype(previous)


# ------------------------------------------------- 1. no_grad and ops that change nothing
NO_OPS = {
    "reshape": lambda t: t.reshape(t.shape),
    "reshape -1": lambda t: t.reshape(-1),
    "expand": lambda t: t.expand(*t.shape),
    "expand -1": lambda t: t.expand(-1),
    "squeeze": lambda t: t.squeeze(),
    "flatten": lambda t: t.flatten(),
    "sum_to": lambda t: t.sum_to(t.shape),
    "astype": lambda t: t.astype(t.dtype),
    "pos": lambda t: +t,
    "sum over no axis": lambda t: t.sum(axis=()),
}


@pytest.mark.parametrize("op", NO_OPS.values(), ids=NO_OPS.keys())
def test_no_grad_op_that_changes_nothing_is_a_new_tensor_out_of_the_graph(op):
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    with tg.no_grad():
        t = op(y)
    assert t is not y
    assert not t.requires_grad and t.grad_fn is None
    (y * t).sum().backward()
    np.testing.assert_allclose(x.grad.data, [4.0, -8.0, 12.0])  # t is a constant


def test_recorded_reshape_to_the_same_shape_is_its_own_node_for_hooks():
    # A hook on the reshaped tensor sees its gradient only, as in PyTorch.
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    t = x.reshape(2)
    seen = []
    t.register_hook(lambda g: seen.append(g.data.copy()))
    (t * 3 + x).sum().backward()
    np.testing.assert_allclose(seen[0], [3.0, 3.0])
    np.testing.assert_allclose(x.grad.data, [4.0, 4.0])


# ------------------------------------------------------------------- 2. ** at a zero base
def test_pow_zero_exponent_has_zero_gradient_at_zero(float64):
    x = tg.tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


@pytest.mark.parametrize(
    ("power", "order", "expected"),
    [
        (1, 2, [0.0, 0.0]),  # d²x/dx² = 0
        (2, 3, [0.0, 0.0]),  # d³x²/dx³ = 0
        (3, 3, [6.0, 6.0]),  # d³x³/dx³ = 6
        (2, 2, [2.0, 2.0]),
        (3, 2, [0.0, 12.0]),  # 6x
    ],
)
def test_integer_powers_differentiate_as_polynomials_at_zero(
    float64, power, order, expected
):
    x = tg.tensor([0.0, 2.0], requires_grad=True)
    g = (x**power).sum()
    for _ in range(order):
        (g,) = tg.grad(g.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.data, expected)


def test_pow_exponent_gradient_is_zero_at_a_zero_base(float64):
    a = tg.tensor([0.0, 3.0])
    b = tg.tensor([2.0, 0.5], requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_allclose(b.grad.data, [0.0, 3**0.5 * np.log(3)])


def test_relu_to_the_zeroth_power_does_not_spread_nan(float64):
    v = tg.tensor([-1.0, 2.0, 0.0], requires_grad=True)
    w = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ((v.relu() ** 0) * w + v).sum().backward()
    np.testing.assert_array_equal(v.grad.data, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(w.grad.data, [1.0, 1.0, 1.0])


def test_pow_with_zero_base_and_zero_exponent_both_requiring_grad(float64):
    a = tg.tensor([0.0, 0.0], requires_grad=True)
    b = tg.tensor([0.0, 1.0], requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [0.0, 1.0])  # as torch
    np.testing.assert_array_equal(b.grad.data, [0.0, 0.0])


@given(
    st.lists(st.sampled_from([0.0, 0.5, -1.25, 2.0]), min_size=1, max_size=4),
    st.sampled_from([0, 1, 2, 3]),
)
def test_pow_gradients_are_finite_with_zeros(values, power):
    x = tg.tensor(values, requires_grad=True, dtype=np.float64)
    (gx,) = tg.grad((x**power).sum(), x, create_graph=True)
    (ggx,) = tg.grad(gx.sum(), x, allow_unused=True)
    assert np.isfinite(gx.data).all()
    assert ggx is None or np.isfinite(ggx.data).all()
    np.testing.assert_allclose(gx.data, power * np.asarray(values) ** max(power - 1, 0))


def test_pow_still_passes_gradcheck_away_from_zero(float64):
    a = tg.tensor([[0.5, 1.5], [2.0, 0.25]], requires_grad=True)
    b = tg.tensor([0.0, 1.5], requires_grad=True)
    assert gradcheck(lambda a, b: a**b, (a, b))


# ----------------------------------------- 3. .grad never is the `gradient` passed in
def test_backward_gradient_requiring_grad_is_copied_without_create_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    g = tg.ones(2, requires_grad=True)
    y = x + 0.0  # Add passes the gradient through unchanged
    y.retain_grad()
    y.backward(g)
    for grad in (x.grad, y.grad):
        assert grad is not g
        assert not grad.requires_grad
        np.testing.assert_array_equal(grad.data, [1.0, 1.0])
    assert g.grad is None


def test_grad_outputs_requiring_grad_are_copied_without_create_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    g = tg.ones(2, requires_grad=True)
    (dx,) = tg.grad(x * 1.0, x, grad_outputs=g)
    assert dx is not g and not dx.requires_grad


def test_create_graph_keeps_the_gradient_in_the_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    g = tg.tensor([3.0, 4.0], requires_grad=True)
    (dx,) = tg.grad(x * x, x, grad_outputs=g, create_graph=True)
    dx.sum().backward()
    np.testing.assert_allclose(g.grad.data, [2.0, 4.0])  # d(2xg)/dg = 2x


# ------------------------------------------------------------------- 4. expand with -1
def test_expand_minus_one_keeps_the_axis():
    x = tg.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    y = x.expand(2, -1, 4)
    assert y.shape == (2, 3, 4)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[8.0], [8.0], [8.0]])
    assert tg.ones(3).expand(3, -1).shape == (3, 3)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((-1, 2, 3), "new leading"), ((3,), "fewer axes"), ((2, 5), "Expand on")],
)
def test_expand_bad_shapes_name_the_problem(shape, match):
    x = tg.ones(2, 3)
    with pytest.raises(ValueError, match=match):
        x.expand(*shape)


# -------------------------------------------- 5. writes to arrays saved for backward
def test_in_place_write_to_a_saved_intermediate_is_refused():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    h = x.exp()
    y = (h * w).sum()
    with pytest.raises(ValueError, match="read-only"):
        h.data[...] = 0
    with pytest.raises(ValueError, match="read-only"):
        h.data -= 1
    with pytest.raises(ValueError, match="read-only"):
        h.detach().numpy()[0] = 5
    y.backward()  # the gradients are the right ones
    np.testing.assert_allclose(w.grad.data, np.exp([1.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, np.exp([1.0, 2.0]) * [3, 4], rtol=1e-6)


VIEWS_OF_A_LEAF = {
    "T": lambda w: w.T,
    "reshape": lambda w: w.reshape(4, 1),
    "getitem": lambda w: w[0],
    "expand": lambda w: w.expand(3, 2, 2),
    "flip": lambda w: w.flip(0),
    "windows": lambda w: w.windows(1),
}


@pytest.mark.parametrize("view", VIEWS_OF_A_LEAF.values(), ids=VIEWS_OF_A_LEAF.keys())
def test_a_leaf_read_through_a_view_is_locked_too(view):
    # The view's node reads no values, but later nodes read the view, which shows
    # any write into the leaf: an optimizer step before backward must be refused.
    w = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x = tg.tensor(2.0, requires_grad=True)
    y = (view(w) * x).sum()
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 0
    y.backward()
    assert x.grad.item() == float(view(w).sum())  # from the unchanged values
    assert w.data.sum() == 10.0


def test_replacing_an_intermediate_data_is_refused_at_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    h = x.exp()
    y = (h * w).sum()
    h.data = np.zeros(2, dtype=np.float32)
    with pytest.raises(RuntimeError, match="Exp .*replaced after the forward"):
        y.backward()
    assert w.grad is None and x.grad is None  # refused before any gradient was written


def test_saved_arrays_are_writable_again_after_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    y = (h * h).sum()
    y.backward()
    h.data[...] = 0  # the graph is released
    x.data[...] = 0
    assert h.data.flags.writeable and x.data.flags.writeable


def test_saved_arrays_are_writable_again_when_the_graph_is_dropped():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    y = (h * h).sum()
    kept = h.data
    assert not kept.flags.writeable
    del h, y
    gc.collect()
    kept[...] = 1
    assert x.data.flags.writeable


def test_retain_graph_keeps_intermediates_locked_until_released():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x.tanh()
    y = h.sum()
    y.backward(retain_graph=True)
    with pytest.raises(ValueError, match="read-only"):
        h.data[0] = 0
    y.backward()
    h.data[0] = 0


def test_training_loop_writes_parameters_and_results_freely():
    layer = tg.nn.Linear(3, 2)
    opt = tg.optim.SGD(layer.parameters(), lr=0.1)
    x = tg.ones(4, 3)
    for _ in range(2):
        opt.zero_grad()
        out = layer(x)
        loss = (out * out).mean()
        loss.backward()
        opt.step()
        out.data[...] = 0  # after backward: writable


# ----------------------------------------------- 6. reductions with an axis on 0-d
REDUCTIONS = ["sum", "mean", "var", "max", "min", "logsumexp"]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, -1, None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_accept_axis_0_and_minus_1_on_0d(float64, name, axis, keepdims):
    x = tg.tensor(1.5, requires_grad=True)
    y = getattr(x, name)(axis=axis, keepdims=keepdims)
    assert y.shape == ()  # a 0-d array has no axis to keep
    np.testing.assert_allclose(y.data, 0.0 if name == "var" else 1.5)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 0.0 if name == "var" else 1.0)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_on_0d(float64, name, axis):
    x = tg.tensor(1.5, requires_grad=True)
    y = getattr(x, name)(axis=axis)
    np.testing.assert_allclose(y.data, 1.0 if name == "softmax" else 0.0)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 0.0)


@pytest.mark.parametrize("name", REDUCTIONS + ["softmax", "log_softmax"])
def test_reduction_axis_errors_name_the_axis(name):
    with pytest.raises(ValueError, match="axis 1 is out of range for 0 dimensions"):
        getattr(tg.tensor(1.5), name)(axis=1)
    with pytest.raises(ValueError, match="axis 2 is out of range for 2 dimensions"):
        getattr(tg.ones(2, 3), name)(axis=2)


def test_reduction_repeated_axis_is_an_error():
    with pytest.raises(ValueError, match="same axis twice"):
        tg.ones(2, 3).sum(axis=(1, -1))


# ------------------------------------------------------------------- 7. dtype mixing
INTEGER_OPERANDS = {
    "int64 array": np.arange(3),
    "int32 array": np.arange(3, dtype=np.int32),
    "uint8 array": np.arange(3, dtype=np.uint8),
    "int64 tensor": tg.tensor([0, 1, 2]),
    "numpy int": np.int64(2),
    "bool array": np.array([True, False, True]),
}


@pytest.mark.parametrize(
    "other", INTEGER_OPERANDS.values(), ids=INTEGER_OPERANDS.keys()
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_operands_never_widen_a_float_tensor(other, dtype):
    x = tg.ones(3, dtype=dtype, requires_grad=True)
    for y in (x * other, other * x, x + other, x - other, x / (other + 1), x**other):
        assert y.dtype == dtype
    y = tg.where(x > 0, x, other)
    assert y.dtype == dtype
    (x * other).sum().backward()
    assert x.grad.dtype == dtype


def test_floats_of_two_widths_give_the_wider():
    x = tg.ones(3, dtype=np.float32)
    assert (x * np.ones(3)).dtype == np.float64
    assert (x * tg.ones(3, dtype=np.float64)).dtype == np.float64
    assert (tg.tensor([1, 2, 3]) * np.ones(3, dtype=np.float32)).dtype == np.float32


def test_integer_tensors_keep_numpy_rules():
    assert (tg.tensor([1, 2]) * np.int32(3)).dtype == np.int64
    assert (tg.tensor([1, 2], dtype=np.int32) + tg.tensor([1, 2])).dtype == np.int64
