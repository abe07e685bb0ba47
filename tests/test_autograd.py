"""The engine: graph walking, accumulation, grad modes, hooks, higher order, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.testing import gradcheck


def f64(*shape, requires_grad=True, seed=0):
    return tg.Tensor(
        np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad
    )


# --------------------------------------------------------- the seed's toy network
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


ACTIVATIONS = {
    "sigmoid": (
        lambda t: t.sigmoid(),
        sigmoid,
        lambda z: sigmoid(z) * (1 - sigmoid(z)),
    ),
    "tanh": (lambda t: t.tanh(), np.tanh, lambda z: 1 - np.tanh(z) ** 2),
}


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh"])
@pytest.mark.parametrize("output", ["sigmoid", "tanh"])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 8))
def test_seed_network_hand_derived_gradients_equal_the_engine(hidden, output, seed, n):
    """SEED.md's toy network: the four hand-derived lines against the generated pass."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    w = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    b = [rng.standard_normal(4), rng.standard_normal(2)]
    f = [ACTIVATIONS[hidden], ACTIVATIONS[output]]

    # by hand, as SEED.md: z[l] = a[l] @ w[l] + b[l]; a[l+1] = f[l](z[l])
    a, z = [X], []
    for layer in range(2):
        z.append(a[layer] @ w[layer] + b[layer])
        a.append(f[layer][1](z[layer]))
    dE_da2 = (a[2] - Y) / n
    d1 = dE_da2 * f[1][2](z[1])
    d0 = (d1 @ w[1].T) * f[0][2](z[0])
    hand = {"w0": a[0].T @ d0, "b0": d0.sum(0), "w1": a[1].T @ d1, "b1": d1.sum(0)}

    # generated
    params = {
        "w0": tg.Tensor(w[0], requires_grad=True),
        "b0": tg.Tensor(b[0], requires_grad=True),
        "w1": tg.Tensor(w[1], requires_grad=True),
        "b1": tg.Tensor(b[1], requires_grad=True),
    }
    h = f[0][0](tg.Tensor(X) @ params["w0"] + params["b0"])
    pred = f[1][0](h @ params["w1"] + params["b1"])
    E = (0.5 * (pred - Y) ** 2).sum(axis=1).mean(axis=0)
    E.backward()
    for name, g in hand.items():
        np.testing.assert_allclose(params[name].grad.data, g, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ graph shapes
def test_diamond_graph_visits_each_node_once_and_sums_paths():
    x = tg.tensor(3.0, requires_grad=True)
    a = x * 2
    b, c = a * a, a.exp()
    (b + c).backward()
    # d/dx [(2x)^2 + e^(2x)] = 8x + 2e^(2x)
    assert x.grad.item() == pytest.approx(8 * 3 + 2 * np.exp(6), rel=1e-6)


def test_same_tensor_used_twice_in_one_op():
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, -4.0]


def test_gradients_accumulate_over_two_backward_calls():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [3 + 2, 3 + 4]


def test_retain_graph_allows_a_second_backward_and_accumulates():
    x = tg.tensor(2.0, requires_grad=True)
    y = x**3
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 24.0


def test_second_backward_without_retain_graph_says_to_pass_it():
    x = tg.tensor(2.0, requires_grad=True)
    y = (x * x).exp()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    assert x.grad.item() == pytest.approx(4 * np.exp(4), rel=1e-6)


def test_saved_values_are_released_after_backward():
    x = tg.tensor([1.0], requires_grad=True)
    y = x * 2
    z = y.exp()
    z.backward()
    assert z.grad_fn.inputs is None and y.grad_fn.inputs is None


def test_deep_chain_of_100k_ops_has_no_recursion_error():
    x = tg.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]
    # freeing a deep graph that never ran backward must not overflow the C stack
    y = x
    for _ in range(100_000):
        y = y + 0.0
    del y


def test_only_leaves_get_grad_unless_retained():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    k = h * 3
    k.retain_grad()
    (k * k).sum().backward()
    assert h.grad is None
    assert k.grad.tolist() == [12.0, 24.0]
    assert x.grad.tolist() == [72.0, 144.0]


def test_leaf_grads_are_independent_arrays():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    assert a.grad is not b.grad and a.grad.data is not b.grad.data
    a.grad.data[0] = 100.0  # writable, and b.grad is unaffected
    assert b.grad.tolist() == [1.0, 1.0]


def test_backward_never_mutates_inputs_or_the_incoming_gradient():
    x = f64(3, 4)
    w = f64(4, 2, seed=1)
    before = x.data.copy(), w.data.copy()
    g = np.random.default_rng(2).standard_normal((3, 2))
    g_before = g.copy()
    seed = tg.Tensor(g)
    out = (x @ w).tanh() + x.sum(axis=1, keepdims=True)
    out.backward(seed)
    np.testing.assert_array_equal(g, g_before)
    np.testing.assert_array_equal(seed.data, g_before)
    np.testing.assert_array_equal(x.data, before[0])
    np.testing.assert_array_equal(w.data, before[1])
    x.grad.data[...] = 0  # the grads we hand out are not the user's gradient
    np.testing.assert_array_equal(seed.data, g_before)


def test_gradient_dtype_follows_the_leaf():
    x = tg.tensor([1.0, 2.0], requires_grad=True)  # float32
    (x * np.array([2.0, 3.0])).sum().backward()  # computed in float64
    assert x.grad.dtype == np.float32
    assert x.grad.tolist() == [2.0, 3.0]


# ------------------------------------------------------------------ grad modes
def test_no_grad_records_nothing_and_enable_grad_turns_it_back_on():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_no_grad_as_decorator_restores_mode_on_error():
    @tg.no_grad()
    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    assert tg.is_grad_enabled()


def test_detach_stops_the_gradient():
    x = tg.tensor(2.0, requires_grad=True)
    (x * x.detach()).backward()
    assert x.grad.item() == 2.0


# ------------------------------------------------------------------ hooks
def test_hook_sees_the_gradient_and_can_replace_it():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.tolist()))
    h.register_hook(lambda g: g * 0 + 1)
    (h * h).sum().backward()
    assert seen == [[6.0, 12.0]]
    assert x.grad.tolist() == [3.0, 3.0]


def test_hook_can_be_removed():
    x = tg.tensor([1.0], requires_grad=True)
    remove = x.register_hook(lambda g: g * 100)
    remove()
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0]


def test_hook_returning_a_wrong_shape_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: tg.zeros(3))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        (x * 2).sum().backward()


def test_hooks_and_retain_grad_need_requires_grad():
    t = tg.tensor([1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        t.register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="does not require grad"):
        t.retain_grad()


# ------------------------------------------------------------------ tg.grad
def test_grad_returns_gradients_without_touching_dot_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0, 4.0], requires_grad=True)
    gx, gy = tg.grad((x * y).sum(), [x, y])
    assert gx.tolist() == [3.0, 4.0] and gy.tolist() == [1.0, 2.0]
    assert x.grad is None and y.grad is None


def test_grad_of_an_intermediate_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (gh,) = tg.grad((h * h).sum(), h)
    assert gh.tolist() == [4.0, 8.0]


def test_grad_with_grad_outputs_and_several_outputs():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    a, b = x * 2, x * x
    (gx,) = tg.grad(
        [a, b], x, grad_outputs=[tg.tensor([1.0, 1.0]), tg.tensor([1.0, 0.5])]
    )
    assert gx.tolist() == [2 + 2 * 1.0, 2 + 0.5 * 4.0]


def test_grad_allow_unused():
    x = tg.tensor(1.0, requires_grad=True)
    unused = tg.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        tg.grad(x * 2, [x, unused], retain_graph=True)
    gx, gu = tg.grad(x * 2, [x, unused], allow_unused=True)
    assert gx.item() == 2.0 and gu is None


def test_grad_frees_the_graph_unless_retained():
    x = tg.tensor(1.0, requires_grad=True)
    y = x.exp()
    tg.grad(y, x, retain_graph=True)
    tg.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph"):
        tg.grad(y, x)


def test_grad_input_errors():
    x = tg.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"inputs\[0\] does not require grad"):
        tg.grad(x * 2, tg.tensor(1.0))
    with pytest.raises(TypeError, match="not a Tensor"):
        tg.grad(x * 2, [np.ones(1)])
    with pytest.raises(ValueError, match="2 grad_outputs for 1 outputs"):
        tg.grad(x * 2, x, grad_outputs=[None, None])


# ------------------------------------------------------------------ higher order
@given(st.floats(-2, 2))
def test_third_derivative_of_a_scalar_function(v):
    # f = sin(x) x^3; f''' = -cos x x^3 - 9 sin x x^2 + 18 cos x x + 6 sin x
    x = tg.Tensor(np.float64(v), requires_grad=True)
    (d1,) = tg.grad(x.sin() * x**3, x, create_graph=True)
    (d2,) = tg.grad(d1, x, create_graph=True)
    (d3,) = tg.grad(d2, x)
    s, c = np.sin(v), np.cos(v)
    expected = -c * v**3 - 9 * s * v**2 + 18 * c * v + 6 * s
    assert d3.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_backward_with_create_graph_records_the_backward():
    x = tg.tensor(3.0, dtype=np.float64, requires_grad=True)
    (x**3).backward(create_graph=True)
    assert x.grad.requires_grad
    (g2,) = tg.grad(x.grad, x)
    assert g2.item() == pytest.approx(18.0)


def tanh_mlp(params, X):
    w1, b1, w2, b2 = params
    return ((X @ w1 + b1).tanh() @ w2 + b2).tanh().sum()


def test_hessian_vector_product_of_a_tanh_mlp_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = tg.Tensor(rng.standard_normal((5, 3)))
    shapes = [(3, 4), (4,), (4, 2), (2,)]
    values = [rng.standard_normal(s) for s in shapes]
    vs = [rng.standard_normal(s) for s in shapes]

    def gradient(vals):
        ps = [tg.Tensor(v, requires_grad=True) for v in vals]
        return ps, tg.grad(tanh_mlp(ps, X), ps, create_graph=True)

    params, grads = gradient(values)
    dot = sum((g * tg.Tensor(v)).sum() for g, v in zip(grads, vs))
    hvp = tg.grad(dot, params)

    eps = 1e-6
    plus = gradient([p + eps * v for p, v in zip(values, vs)])[1]
    minus = gradient([p - eps * v for p, v in zip(values, vs)])[1]
    for h, gp, gm in zip(hvp, plus, minus):
        np.testing.assert_allclose(
            h.data, (gp.data - gm.data) / (2 * eps), rtol=1e-6, atol=1e-8
        )


# ------------------------------------------------------------------ errors
def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor([1.0]).sum().backward()


def test_non_scalar_backward_without_gradient_raises_and_says_so():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"gradient.*shape \(2,\)"):
        y.backward()
    assert x.grad is None
    y.backward(tg.tensor([1.0, 1.0]))  # nothing was released by the failed call
    assert x.grad.tolist() == [2.0, 2.0]


def test_backward_gradient_of_the_wrong_shape_raises():
    y = tg.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        y.backward(np.ones(3))


@pytest.mark.parametrize(
    "op, a, b",
    [
        (lambda a, b: a + b, (2, 3), (4,)),
        (lambda a, b: a * b, (2, 3), (3, 2)),
        (lambda a, b: a @ b, (2, 3), (4, 5)),
        (lambda a, b: a @ b, (3,), (4,)),
    ],
)
def test_shape_mismatch_names_the_op_and_both_shapes(op, a, b):
    x, y = tg.zeros(*a, requires_grad=True), tg.zeros(*b)
    with pytest.raises(ValueError) as info:
        op(x, y)
    message = str(info.value)
    assert str(a) in message and str(b) in message
    assert any(name in message for name in ("Add", "Mul", "MatMul", "matmul"))


# ------------------------------------------------------------------ Function
class Square(tg.Function):
    """y = x²; dy/dx = 2x"""

    def forward(self, x):
        return x * x

    def backward(self, grad, out):
        return 2 * grad * self.inputs[0]


def test_custom_function_records_and_differentiates():
    x = tg.Tensor(np.array([1.0, -3.0]), requires_grad=True)
    assert gradcheck(lambda t: Square.apply(t), [x])
    Square.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, -6.0]


def test_custom_function_returning_too_few_gradients_raises():
    class Broken(tg.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad, out):
            return (grad,)

    a = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="1 gradients for 2 inputs"):
        Broken.apply(a, a).sum().backward()


def test_function_must_implement_forward_and_backward():
    class Incomplete(tg.Function):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="backward"):
        Incomplete.apply(tg.tensor([1.0]))
