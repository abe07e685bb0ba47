"""tinygrad_bp.func: each transform against finite differences and closed forms,
their compositions, nesting without perturbation confusion, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_bp as tg
from tinygrad_bp.func import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp

EPS = 1e-6
small_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)
few = settings(max_examples=15, deadline=None)


def values(shape):
    return hnp.arrays(np.float64, shape, elements=st.floats(-2, 2))


def t64(a):
    return tg.tensor(np.asarray(a, dtype=np.float64))


def numeric_jacobian(f, args, argnum):
    """Central differences of f(*args) w.r.t. args[argnum]: out.shape + in.shape."""
    args = [np.array(a, dtype=np.float64) for a in args]
    out_shape = np.shape(f(*map(t64, args)).numpy())
    x = args[argnum]
    columns = []
    for i in range(x.size):
        shifted = []
        for step in (EPS, -EPS):
            moved = [a.copy() for a in args]
            moved[argnum].reshape(-1)[i] += step
            shifted.append(f(*map(t64, moved)).numpy())
        columns.append((shifted[0] - shifted[1]) / (2 * EPS))
    return np.stack(columns, axis=-1).reshape(out_shape + x.shape)


def smooth(x, y):
    """A non-scalar function of two arguments whose Jacobians are all dense."""
    return (x.sin() * y.sum()) + (x * x).tanh() * y.mean()


def scalar(x, y):
    return (smooth(x, y) ** 2).sum()


# ------------------------------------------------------------------- against finite differences
@few
@given(small_shapes.flatmap(lambda s: st.tuples(values(s), values(s))))
def test_grad_matches_finite_differences(xy):
    x, y = xy
    dx, dy = grad(scalar, argnums=(0, 1))(t64(x), t64(y))
    np.testing.assert_allclose(
        dx.numpy(), numeric_jacobian(scalar, [x, y], 0), atol=1e-6
    )
    np.testing.assert_allclose(
        dy.numpy(), numeric_jacobian(scalar, [x, y], 1), atol=1e-6
    )


@few
@given(small_shapes.flatmap(lambda s: st.tuples(values(s), values(s), values(s))))
def test_vjp_matches_finite_differences_and_repeats(xyv):
    x, y, v = xyv
    out, vjp_fn = vjp(smooth, t64(x), t64(y))
    np.testing.assert_allclose(out.numpy(), smooth(t64(x), t64(y)).numpy())
    first = vjp_fn(t64(v))
    again = vjp_fn(t64(v))
    for i in range(2):
        expected = np.tensordot(v, numeric_jacobian(smooth, [x, y], i), axes=v.ndim)
        np.testing.assert_allclose(first[i].numpy(), expected, atol=1e-6)
        np.testing.assert_array_equal(again[i].numpy(), first[i].numpy())


@few
@given(small_shapes.flatmap(lambda s: st.tuples(*[values(s)] * 4)))
def test_jvp_matches_finite_differences_and_jacobian(xytt):
    x, y, tx, ty = xytt
    out, tangent_out = jvp(smooth, (t64(x), t64(y)), (t64(tx), t64(ty)))
    step = 1e-6
    ahead = smooth(t64(x + step * tx), t64(y + step * ty)).numpy()
    behind = smooth(t64(x - step * tx), t64(y - step * ty)).numpy()
    np.testing.assert_allclose(
        tangent_out.numpy(), (ahead - behind) / (2 * step), atol=1e-6
    )
    jx, jy = jacobian(smooth, argnums=(0, 1))(t64(x), t64(y))
    by_jacobian = np.tensordot(jx.numpy(), tx, axes=x.ndim) + np.tensordot(
        jy.numpy(), ty, axes=y.ndim
    )
    np.testing.assert_allclose(tangent_out.numpy(), by_jacobian, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), smooth(t64(x), t64(y)).numpy())


@few
@given(
    hnp.array_shapes(min_dims=1, max_dims=2, max_side=3).flatmap(
        lambda s: st.tuples(values(s), values((2, *s)))
    )
)
def test_jacobian_shape_and_values(xw):
    x, w = xw

    def f(x):
        return (t64(w) * x.exp()).sum(axis=-1)

    j = jacobian(f)(t64(x))
    expected = numeric_jacobian(f, [x], 0)
    assert j.shape == f(t64(x)).shape + x.shape
    np.testing.assert_allclose(j.numpy(), expected, atol=1e-6)


@few
@given(
    hnp.array_shapes(min_dims=1, max_dims=1, max_side=4).flatmap(lambda s: values(s))
)
def test_hessian_matches_finite_differences_of_the_gradient(x):
    def f(x):
        return (x.sin() * x.sum()).sum()

    h = hessian(f)(t64(x))
    np.testing.assert_allclose(h.numpy(), numeric_jacobian(grad(f), [x], 0), atol=1e-6)


# --------------------------------------------------------------------------- closed forms
def test_hessian_of_a_quadratic_form_is_a_plus_a_transpose():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    # (x @ A * x).sum() rather than x @ A @ x: the core's 1-D @ 1-D backward fails
    h = hessian(lambda x: (x @ t64(a) * x).sum())(t64(rng.standard_normal(4)))
    np.testing.assert_allclose(h.numpy(), a + a.T, atol=1e-12)


def test_jacobian_of_a_matrix_product_is_the_matrix():
    a = np.random.default_rng(1).standard_normal((3, 5))
    j = jacobian(lambda x: t64(a) @ x)(t64(np.ones(5)))
    np.testing.assert_allclose(j.numpy(), a)


def test_jacobian_of_sin_is_diag_cos():
    x = np.array([0.1, -0.7, 2.0])
    j = jacobian(lambda x: x.sin())(t64(x))
    np.testing.assert_allclose(j.numpy(), np.diag(np.cos(x)), atol=1e-15)


def test_hessian_with_tuple_argnums_is_nested():
    x, y = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    h = hessian(lambda x, y: (x * x * y).sum(), argnums=(0, 1))(t64(x), t64(y))
    expected = [[np.diag(2 * y), np.diag(2 * x)], [np.diag(2 * x), np.zeros((2, 2))]]
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(h[i][j].numpy(), expected[i][j])


def test_hessian_of_a_vector_function_has_the_output_axes_in_front():
    x = np.array([0.5, -1.0, 2.0])
    h = hessian(lambda x: x**3)(t64(x))
    expected = np.zeros((3, 3, 3))
    for k in range(3):
        expected[k, k, k] = 6 * x[k]
    np.testing.assert_allclose(h.numpy(), expected)


def test_value_and_grad_returns_both():
    x = np.array([1.0, -2.0, 0.5])
    value, dx = value_and_grad(lambda x: (x**3).sum())(t64(x))
    assert value.item() == pytest.approx(np.sum(x**3))
    np.testing.assert_allclose(dx.numpy(), 3 * x**2)


def test_hvp_equals_hessian_times_vector():
    rng = np.random.default_rng(2)
    x, y, vx, vy = (rng.standard_normal(3) for _ in range(4))
    value, (hx, hy) = hvp(scalar, (t64(x), t64(y)), (t64(vx), t64(vy)))
    h = hessian(scalar, argnums=(0, 1))(t64(x), t64(y))
    np.testing.assert_allclose(hx.numpy(), h[0][0].numpy() @ vx + h[0][1].numpy() @ vy)
    np.testing.assert_allclose(hy.numpy(), h[1][0].numpy() @ vx + h[1][1].numpy() @ vy)
    assert value.item() == pytest.approx(scalar(t64(x), t64(y)).item())


# --------------------------------------------------------------------------- composition
def third_derivative_of_sin_x_cubed(x):
    s, c = np.sin(x), np.cos(x)
    return 6 * s + 18 * x * c - 9 * x**2 * s - x**3 * c


@pytest.mark.parametrize("x", [-1.3, 0.4, 2.5])
def test_third_order_grad(x):
    f = grad(grad(grad(lambda x: x.sin() * x**3)))
    assert f(t64(x)).item() == pytest.approx(third_derivative_of_sin_x_cubed(x))


def test_third_order_through_jacobian_and_hessian():
    x = np.array([0.3, -1.1])

    def f(x):
        return (x.sin() * x**3).sum()

    third = jacobian(hessian(f))(t64(x)).numpy()
    expected = np.zeros((2, 2, 2))
    for k in range(2):
        expected[k, k, k] = third_derivative_of_sin_x_cubed(x[k])
    np.testing.assert_allclose(third, expected, atol=1e-12)


@few
@given(
    hnp.array_shapes(min_dims=1, max_dims=1, max_side=4).flatmap(lambda s: values(s))
)
def test_jacobian_of_grad_is_the_hessian(x):
    def f(x):
        return (x.tanh() * x.sum() + x.exp()).sum()

    np.testing.assert_allclose(
        jacobian(grad(f))(t64(x)).numpy(), hessian(f)(t64(x)).numpy(), atol=1e-12
    )


def test_jvp_of_grad_is_hvp_and_grad_of_jvp_differentiates_the_tangent():
    x, v = np.array([0.2, -0.4, 1.5]), np.array([1.0, 2.0, -1.0])

    def f(x):
        return (x.sin() * x.sum()).sum()

    _, forward_over_reverse = jvp(grad(f), (t64(x),), (t64(v),))
    _, (reverse_over_reverse,) = hvp(f, (t64(x),), (t64(v),))
    np.testing.assert_allclose(
        forward_over_reverse.numpy(), reverse_over_reverse.numpy(), atol=1e-12
    )
    # J t is linear in t: d/dt Σ (J t) = Jᵀ 1, the vjp with a cotangent of ones
    d_tangent = grad(lambda t: jvp(lambda x: x.sin() * x, (t64(x),), (t,))[1].sum())
    (expected,) = vjp(lambda x: x.sin() * x, t64(x))[1](t64(np.ones(3)))
    np.testing.assert_allclose(d_tangent(t64(v)).numpy(), expected.numpy())


def test_vjp_inside_grad():
    x = np.array([0.5, 1.5])

    def pulled_back(x):
        _, vjp_fn = vjp(lambda x: x**3, x)
        return vjp_fn(t64(np.ones(2)))[0].sum()  # Σ 3x²

    np.testing.assert_allclose(grad(pulled_back)(t64(x)).numpy(), 6 * x)


# ------------------------------------------------------------------ nesting and the graph
def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1, not 2
    assert grad(lambda x: x * grad(lambda y: x + y)(x))(t64(3.0)).item() == 1.0
    # Siskind and Pearlmutter: d/dx [x * d/dy (x * y)] = d/dx [x²] = 2x
    assert grad(lambda x: x * grad(lambda y: x * y)(t64(2.0)))(t64(1.5)).item() == 3.0
    assert grad(lambda x: x * grad(lambda y: x * y)(x))(t64(1.5)).item() == 3.0


def test_the_same_tensor_at_two_positions_gets_two_gradients():
    x = t64([1.0, 2.0])
    dx, dy = grad(lambda a, b: (a * a * b).sum(), argnums=(0, 1))(x, x)
    np.testing.assert_allclose(dx.numpy(), [2.0, 8.0])
    np.testing.assert_allclose(dy.numpy(), [1.0, 4.0])


def test_top_level_results_are_detached():
    x = t64([1.0, 2.0])
    value, dx = value_and_grad(lambda x: (x**3).sum())(x)
    assert not value.requires_grad and not dx.requires_grad
    out, tangent = jvp(lambda x: x**3, (x,), (x,))
    assert not out.requires_grad and not tangent.requires_grad
    assert not hessian(lambda x: (x**3).sum())(x).requires_grad
    assert not jacobian(lambda x: x**3)(x).requires_grad


def test_results_stay_in_the_graph_of_tensors_that_require_grad():
    w = tg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    x = t64([0.5, 3.0])
    # a gradient penalty: d/dw |∂f/∂x|² with f = Σ sin(x) w²
    dx = grad(lambda x: (x.sin() * w * w).sum())(x)
    assert dx.requires_grad
    (dx * dx).sum().backward()
    np.testing.assert_allclose(
        w.grad.numpy(), 4 * np.cos(x.numpy()) ** 2 * w.numpy() ** 3
    )
    assert x.grad is None


def test_inputs_that_require_grad_get_no_grad_and_stay_differentiable():
    x = tg.tensor(np.array([0.5, -1.0]), requires_grad=True)
    dx = grad(lambda x: (x**3).sum())(x)
    assert x.grad is None
    dx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_transforms_work_under_no_grad_and_return_no_graph():
    w = tg.tensor(np.array([2.0]), requires_grad=True)
    with tg.no_grad():
        dx = grad(lambda x: (x * x * w).sum())(t64([3.0]))
    assert dx.item() == 12.0 and not dx.requires_grad


def test_unused_arguments_and_constant_functions_give_zeros():
    x, y = t64([1.0, 2.0]), t64([3.0])
    dx, dy = grad(lambda x, y: (x * x).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(dx.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(dy.numpy(), [0.0])
    np.testing.assert_array_equal(grad(lambda x: t64(5.0))(x).numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(
        jacobian(lambda x: t64([1.0, 2.0, 3.0]))(x).numpy(), np.zeros((3, 2))
    )
    _, tangent = jvp(lambda x: t64([7.0]), (x,), (x,))
    np.testing.assert_array_equal(tangent.numpy(), [0.0])
    (vx,) = vjp(lambda x: t64([7.0]), x)[1](t64([1.0]))
    np.testing.assert_array_equal(vx.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(
        hessian(lambda x: x.sum())(x).numpy(), np.zeros((2, 2))
    )


def test_negative_argnums_and_keyword_arguments():
    def f(x, y, scale=1.0):
        return (x * y).sum() * scale

    dy = grad(f, argnums=-1)(t64([1.0, 2.0]), t64([3.0, 4.0]), scale=10.0)
    np.testing.assert_allclose(dy.numpy(), [10.0, 20.0])


# ---------------------------------------------------------------- non-Tensor arguments
def test_numbers_lists_and_arrays_become_float_tensors():
    assert grad(lambda x: x * x)(3.0).item() == 6.0
    d_int = grad(lambda x: x * x)(3)
    assert d_int.item() == 6.0 and d_int.dtype == tg.get_default_dtype()
    assert grad(lambda x: (x * x).sum())([1, 2]).tolist() == [2.0, 4.0]
    d_array = grad(lambda x: (x * x).sum())(np.array([1.5]))
    assert d_array.dtype == np.float64 and d_array.tolist() == [3.0]
    out, tangent = jvp(lambda x: x * x, (2.0,), (1.0,))
    assert (out.item(), tangent.item()) == (4.0, 4.0)


@pytest.mark.parametrize("bad", ["abc", None, object(), [[1.0], [2.0, 3.0]]])
def test_non_numeric_differentiated_argument_raises_type_error(bad):
    with pytest.raises(TypeError, match="grad: argument 1 is a"):
        grad(lambda x, y: x, argnums=1)(t64(1.0), bad)


def test_integer_tensor_argument_raises_type_error():
    with pytest.raises(TypeError, match=r"argument 0 is a Tensor of dtype int64"):
        grad(lambda x: x.sum())(tg.tensor([1, 2]))


def test_non_numeric_non_differentiated_arguments_pass_through():
    assert grad(lambda x, name: x * len(name))(2.0, "abc").item() == 3.0


# ------------------------------------------------------------------------------- errors
def test_grad_of_a_non_scalar_output_names_the_shape():
    with pytest.raises(ValueError, match=r"one element, got shape \(2, 3\)"):
        grad(lambda x: x)(t64(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"value_and_grad: .*shape \(2,\)"):
        value_and_grad(lambda x: x)(t64([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"hvp: .*shape \(2,\)"):
        hvp(lambda x: x, (t64([1.0, 2.0]),), (t64([1.0, 2.0]),))


@pytest.mark.parametrize("transform", [grad, value_and_grad, jacobian, hessian])
def test_argnums_out_of_range_names_it_and_the_argument_count(transform):
    with pytest.raises(IndexError, match=r"argnums=2 is out of range.*2 positional"):
        transform(lambda x, y: x + y, argnums=(0, 2))(1.0, 2.0)
    with pytest.raises(IndexError, match=r"argnums=-3 is out of range.*2 positional"):
        transform(lambda x, y: x + y, argnums=-3)(1.0, 2.0)


@pytest.mark.parametrize("argnums", [1.0, "0", [0], (0, 1.5), True])
def test_argnums_of_the_wrong_type(argnums):
    with pytest.raises(TypeError, match="argnums must be an int or a tuple of ints"):
        grad(lambda x: x, argnums=argnums)


def test_argnums_empty_or_repeated():
    with pytest.raises(ValueError, match="empty tuple"):
        grad(lambda x: x, argnums=())
    with pytest.raises(ValueError, match=r"names the same argument twice"):
        grad(lambda x, y: x * y, argnums=(0, -2))(1.0, 2.0)


@pytest.mark.parametrize("returned", [1.0, np.ones(2), (t64(1.0),)])
def test_f_returning_a_non_tensor_raises_type_error(returned):
    with pytest.raises(TypeError, match="f must return a Tensor"):
        grad(lambda x: returned)(1.0)
    with pytest.raises(TypeError, match="vjp: f must return a Tensor"):
        vjp(lambda x: returned, 1.0)


def test_f_not_callable():
    with pytest.raises(TypeError, match="jacobian: f must be callable, got int"):
        jacobian(3)


def test_primals_and_tangents_must_be_tuples_of_matching_shapes():
    x = t64([1.0, 2.0])
    with pytest.raises(TypeError, match="jvp: primals must be a tuple"):
        jvp(lambda x: x, x, (x,))
    with pytest.raises(TypeError, match="hvp: tangents must be a tuple"):
        hvp(lambda x: x.sum(), (x,), x)
    with pytest.raises(ValueError, match="1 tangents for 2 primals"):
        jvp(lambda x, y: x * y, (x, x), (x,))
    with pytest.raises(
        ValueError,
        match=r"tangents\[0\] has shape \(3,\) but primals\[0\] has shape \(2,\)",
    ):
        jvp(lambda x: x, (x,), (t64([1.0, 2.0, 3.0]),))


def test_vjp_fn_checks_the_cotangent_shape():
    _, vjp_fn = vjp(lambda x: x * 2, t64([1.0, 2.0]))
    with pytest.raises(
        ValueError,
        match=r"cotangent v has shape \(3,\) but f's output has shape \(2,\)",
    ):
        vjp_fn([1.0, 2.0, 3.0])
    np.testing.assert_allclose(vjp_fn([1.0, 1.0])[0].numpy(), [2.0, 2.0])
