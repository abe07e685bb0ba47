"""Numerical edge cases of the ops: huge inputs, exact gelu, ties, repeated indices,
and the errors for shapes that do not broadcast."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import tinygrad_bp as tg

# ------------------------------------------------------------------ |x| = 1000
HUGE = [[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0], [1000.0, 1000.0, 999.0]]
# A cotangent with distinct entries, so a backward right only for all-ones fails.
COTANGENT = [[1.0, -2.0, 0.5], [3.0, 1.5, -1.0], [-0.5, 2.0, 1.0]]


def softmax_reference(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# (op, expected value, expected gradient for cotangent v), in float64 on HUGE. Where
# the exact answer is below float64's range (e^-1000) it is 0; every other element is
# an exact rounding.
def _softmax_grad(x, v):
    y = softmax_reference(x)
    return y * (v - (v * y).sum(axis=-1, keepdims=True))


def _log_softmax_grad(x, v):
    return v - softmax_reference(x) * v.sum(axis=-1, keepdims=True)


def _logsumexp_value(x):
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[:, None]).sum(axis=-1))


STABLE_OPS = {
    "softmax": (
        lambda t: t.softmax(),
        softmax_reference,
        _softmax_grad,
    ),
    "log_softmax": (
        lambda t: t.log_softmax(),
        lambda x: x - _logsumexp_value(x)[:, None],
        _log_softmax_grad,
    ),
    "logsumexp": (
        lambda t: t.logsumexp(axis=-1),
        _logsumexp_value,
        lambda x, v: v[:, None] * softmax_reference(x),
    ),
    "sigmoid": (
        lambda t: t.sigmoid(),
        lambda x: (x > 0) + (x == 0) * 0.5,
        lambda x, v: v * (x == 0) * 0.25,
    ),
    "softplus": (
        lambda t: t.softplus(),
        lambda x: np.maximum(x, 0) + (x == 0) * math.log(2),
        lambda x, v: v * ((x > 0) + (x == 0) * 0.5),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(STABLE_OPS))
def test_stable_at_a_thousand(name: str, dtype: type) -> None:
    """Forward and backward stay finite, correct and free of NumPy warnings.

    Underflow is the one floating-point event allowed: e^-1000 rounds to 0, which is
    the correct float result and what NumPy reports only when asked (its default
    is to ignore underflow). Overflow, invalid operations and division by zero raise.
    """
    op, value, gradient = STABLE_OPS[name]
    x = np.array(HUGE, dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        t = tg.tensor(x, requires_grad=True)
        out = op(t)
        v = np.array(COTANGENT, dtype=dtype)
        v = v if out.ndim == 2 else v[:, 0]
        out.backward(tg.tensor(v))
    assert out.dtype == dtype and t.grad.dtype == dtype
    assert np.isfinite(out.data).all() and np.isfinite(t.grad.data).all()
    x64, v64 = x.astype(np.float64), v.astype(np.float64)
    # Rounding errors of a few units in the last place of the inputs' scale (1000):
    # m + log Σ exp(x - m) is rounded at the magnitude of m, and so is anything
    # computed from it (x - logsumexp, exp(x - logsumexp)).
    atol = 4 * np.finfo(dtype).eps * np.abs(x64).max()
    np.testing.assert_allclose(out.data, value(x64), rtol=0, atol=atol)
    np.testing.assert_allclose(t.grad.data, gradient(x64, v64), rtol=0, atol=atol)


def test_stable_at_a_thousand_under_numpys_default_error_settings() -> None:
    """What a user sees: not a single RuntimeWarning."""
    x = tg.tensor(np.array(HUGE), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total = sum((op(x) * 1.0).sum() for op, _, _ in STABLE_OPS.values())
        total.backward()
    assert np.isfinite(x.grad.data).all()


# ------------------------------------------------------------------------ exact gelu
def test_gelu_is_the_exact_erf_form_in_float64() -> None:
    """gelu(x) = x/2 (1 + erf(x/√2)) to the last bit or so, where that formula is
    itself accurate (x >= -1: no cancellation in 1 + erf)."""
    x = np.concatenate(
        [np.linspace(-1.0, 10.0, 2201), np.geomspace(1e-300, 1.0, 60), [0.0, 30.0]]
    )
    got = tg.tensor(x).gelu().data
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_gelu_is_accurate_in_the_negative_tail() -> None:
    """For x < -1, 1 + erf(x/√2) cancels; 0.5 x erfc(-x/√2) is the accurate form."""
    x = np.linspace(-30.0, -1.0, 2901)
    got = tg.tensor(x).gelu().data
    want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])
    # erfc(u) has condition number ~2u² = x²: rounding its argument (x/√2, one ulp)
    # moves the result by x² ulps, in any implementation.
    rtol = 4 * np.finfo(np.float64).eps * (x * x + 4)
    assert (np.abs(got - want) <= rtol * np.abs(want)).all()


def test_gelu_tanh_differs_from_exact() -> None:
    x = tg.tensor(np.array([1.0]))
    exact, approximate = x.gelu().item(), x.gelu(approximate="tanh").item()
    assert approximate == pytest.approx(
        0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * (1 + 0.044715))), rel=1e-15
    )
    assert abs(exact - approximate) > 1e-5


def test_gelu_rejects_an_unknown_approximation() -> None:
    with pytest.raises(ValueError, match="approximate"):
        tg.tensor([1.0]).gelu(approximate="erf")


# ------------------------------------------------------------------------------ ties
def gradient_of(fn, x, cotangent=None) -> np.ndarray:
    t = tg.tensor(np.array(x, dtype=np.float64), requires_grad=True)
    out = fn(t)
    out.backward(None if cotangent is None else tg.tensor(cotangent))
    return t.grad.data


@pytest.mark.parametrize(
    ("reduce", "x", "want"),
    [
        ("max", [1.0, 3.0, 3.0], [0.0, 0.5, 0.5]),
        ("min", [1.0, 3.0, 1.0], [0.5, 0.0, 0.5]),
        ("max", [2.0, 2.0, 2.0], [1 / 3, 1 / 3, 1 / 3]),
        ("min", [[0.0, 5.0], [0.0, 0.0]], [[1 / 3, 0.0], [1 / 3, 1 / 3]]),
    ],
)
def test_tied_extrema_share_the_gradient(reduce, x, want) -> None:
    grad = gradient_of(lambda t: getattr(t, reduce)(), x)
    np.testing.assert_allclose(grad, want, rtol=1e-15)


@pytest.mark.parametrize("keepdims", [False, True])
def test_tied_maxima_along_an_axis(keepdims: bool) -> None:
    x = [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [5.0, 0.0, 4.0]]
    v = np.array([1.0, 3.0, -2.0])
    grad = gradient_of(
        lambda t: t.max(axis=1, keepdims=keepdims),
        x,
        v[:, None] if keepdims else v,
    )
    want = [[0.0, 0.5, 0.5], [1.0, 1.0, 1.0], [-2.0, 0.0, 0.0]]
    np.testing.assert_allclose(grad, want, rtol=1e-15)


def test_tied_minima_along_axis_zero_and_a_tuple() -> None:
    x = [[1.0, 0.0], [1.0, 4.0]]
    np.testing.assert_allclose(
        gradient_of(lambda t: t.min(axis=0), x, np.array([2.0, 5.0])),
        [[1.0, 5.0], [1.0, 0.0]],
    )
    x3 = np.zeros((2, 2, 2))
    x3[1, 1, 1] = -1.0
    grad = gradient_of(lambda t: t.min(axis=(0, -1)), x3, np.array([4.0, 3.0]))
    want = np.zeros((2, 2, 2))
    want[:, 0, :] = 1.0  # four tied zeros share 4
    want[1, 1, 1] = 3.0
    np.testing.assert_allclose(grad, want)


@pytest.mark.parametrize("fn", [tg.maximum, tg.minimum], ids=["maximum", "minimum"])
def test_elementwise_ties_give_half_to_each_side(fn) -> None:
    a = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = tg.tensor(np.array([1.0, 0.0, 3.0]), requires_grad=True)
    fn(a, b).backward(tg.tensor(np.array([2.0, 4.0, 6.0])))
    a_wins = fn is tg.maximum
    np.testing.assert_array_equal(a.grad.data, [1.0, 4.0 if a_wins else 0.0, 3.0])
    np.testing.assert_array_equal(b.grad.data, [1.0, 0.0 if a_wins else 4.0, 3.0])


def test_maximum_tie_with_a_broadcast_scalar() -> None:
    """relu written as maximum(x, 0): a zero input ties with the broadcast 0."""
    x = tg.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    zero = tg.tensor(np.array(0.0), requires_grad=True)
    tg.maximum(x, zero).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.5, 1.0])
    assert zero.grad.item() == 1.5


# -------------------------------------------------------------- repeated indices
def test_repeated_indices_accumulate() -> None:
    grad = gradient_of(lambda t: t[[0, 0, 1]].sum(), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(grad, [2.0, 1.0, 0.0, 0.0])


def test_repeated_indices_accumulate_the_cotangent() -> None:
    grad = gradient_of(
        lambda t: t[np.array([2, 0, 2, -2])],
        [1.0, 2.0, 3.0],
        np.array([1.0, 2.0, 3.0, 4.0]),
    )
    np.testing.assert_array_equal(grad, [2.0, 4.0, 4.0])


def test_repeated_index_pairs_and_columns_accumulate() -> None:
    x = np.arange(6.0).reshape(2, 3)
    pairs = gradient_of(lambda t: t[[0, 0, 1], [2, 2, 0]].sum(), x)
    np.testing.assert_array_equal(pairs, [[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
    columns = gradient_of(lambda t: t[:, [1, 1, 1]].sum(), x)
    np.testing.assert_array_equal(columns, [[0.0, 3.0, 0.0], [0.0, 3.0, 0.0]])


def test_repeated_indices_in_a_second_order_gradient() -> None:
    """d/dx of (Σ x[idx]²)' accumulates too: the scatter-add's backward is a gather."""
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = tg.grad((x[[0, 0, 1]] ** 2).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.data, [4.0, 4.0])  # 2 * 2x0, 2x1
    (h,) = tg.grad((g * tg.tensor(np.array([1.0, 10.0]))).sum(), x)
    np.testing.assert_array_equal(h.data, [4.0, 20.0])


# ---------------------------------------------------------- broadcasting errors
BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a**b),
    ("maximum", tg.maximum),
    ("minimum", tg.minimum),
]


@pytest.mark.parametrize(("name", "fn"), BINARY, ids=[n for n, _ in BINARY])
def test_shapes_that_do_not_broadcast_raise(name, fn) -> None:
    a = tg.tensor(np.ones((2, 3)), requires_grad=True)
    b = tg.tensor(np.ones(4), requires_grad=True)
    with pytest.raises(ValueError) as error:
        fn(a, b)
    message = str(error.value)
    assert name in message.lower()
    assert "(2, 3)" in message and "(4,)" in message
    assert a.grad is None and b.grad is None


def test_plus_names_the_op_and_both_shapes_with_a_numpy_operand() -> None:
    with pytest.raises(ValueError, match=r"(?i)add.*\(2, 3\).*\(4,\)"):
        tg.tensor(np.ones((2, 3))) + np.ones(4)


def test_where_shapes_that_do_not_broadcast_raise() -> None:
    with pytest.raises(ValueError, match=r"(?i)where.*\(2, 3\).*\(4,\)"):
        tg.where(np.ones((2, 3), dtype=bool), tg.tensor(np.ones((2, 3))), np.ones(4))


@pytest.mark.parametrize(
    ("a", "b"), [((2, 3), (4, 5)), ((3,), (4,)), ((5, 2, 3), (4, 5)), ((2, 3), (2,))]
)
def test_matmul_of_misaligned_shapes_raises(a, b) -> None:
    x = tg.tensor(np.ones(a), requires_grad=True)
    with pytest.raises(ValueError) as error:
        x @ np.ones(b)
    message = str(error.value)
    assert "matmul" in message.lower()
    assert str(a) in message and str(b) in message


def test_matmul_batch_dims_that_do_not_broadcast_raise() -> None:
    with pytest.raises(ValueError, match=r"(?i)matmul.*\(2, 3, 4\).*\(5, 4, 2\)"):
        tg.tensor(np.ones((2, 3, 4))) @ tg.tensor(np.ones((5, 4, 2)))


def test_matmul_of_a_scalar_raises() -> None:
    with pytest.raises(ValueError, match="(?i)matmul"):
        tg.tensor(np.ones(3)) @ tg.tensor(2.0)


def test_expand_to_a_shape_it_does_not_broadcast_to_raises() -> None:
    with pytest.raises(ValueError, match=r"(?i)expand.*\(2, 3\)"):
        tg.tensor(np.ones((2, 3))).expand(4, 3)


@pytest.mark.parametrize(
    ("shape", "target"),
    [
        ((3, 2), (2, 3)),
        ((2, 3), (3, 2)),
        ((2, 3), (1, 2, 3)),
        ((2, 3), (2,)),
    ],
)
def test_sum_to_a_shape_that_does_not_broadcast_raises(shape, target) -> None:
    """sum_to is broadcasting's adjoint, defined only for a target that broadcasts to
    the tensor's shape; anything else (even of the same size) is an error, not a
    reshape. The engine relies on it to catch backward passes of the wrong shape."""
    x = tg.tensor(np.ones(shape), requires_grad=True)
    with pytest.raises(ValueError) as error:
        x.sum_to(target)
    message = str(error.value)
    assert "sum_to" in message.lower().replace("sumto", "sum_to")
    assert str(shape) in message and str(target) in message
