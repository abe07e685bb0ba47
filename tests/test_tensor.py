"""Tensor construction, dtype rules, factories, attributes, conversions and their errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_bp as tg


@pytest.fixture
def float64_default():
    tg.set_default_dtype(np.float64)
    yield
    tg.set_default_dtype(np.float32)


def test_python_floats_and_lists_default_to_float32():
    assert tg.Tensor(1.5).dtype == np.float32
    assert tg.Tensor([[1.0, 2.0]]).dtype == np.float32
    assert tg.tensor([1, 2.5]).dtype == np.float32


def test_python_ints_and_bools_keep_numpy_kinds():
    assert tg.Tensor([1, 2]).dtype == np.int64
    assert tg.Tensor(True).dtype == np.bool_


def test_numpy_arrays_keep_their_dtype_and_are_copied():
    a = np.arange(3, dtype=np.float64)
    t = tg.Tensor(a)
    assert t.dtype == np.float64
    a[0] = 42
    assert t.data[0] == 0


def test_explicit_dtype_wins():
    assert tg.Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert tg.Tensor(np.ones(2, np.float32), dtype="float64").dtype == np.float64


def test_set_default_dtype(float64_default):
    assert tg.Tensor(1.0).dtype == np.float64
    assert tg.zeros(2).dtype == np.float64
    assert tg.get_default_dtype() == np.float64


def test_set_default_dtype_rejects_integers():
    with pytest.raises(TypeError, match="floating"):
        tg.set_default_dtype(np.int32)
    assert tg.get_default_dtype() == np.float32


def test_tensor_from_tensor_copies_and_detaches():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.Tensor(x)
    assert not y.requires_grad and y.data is not x.data
    np.testing.assert_array_equal(y.data, x.data)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_requires_grad_on_integer_dtype_raises_type_error(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        tg.Tensor(np.zeros(2, dtype=dtype), requires_grad=True)
    t = tg.Tensor(np.zeros(2, dtype=dtype))
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad_()
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad = True
    assert not t.requires_grad


def test_object_data_is_rejected():
    with pytest.raises(TypeError, match="cannot make a Tensor"):
        tg.Tensor({"a": 1})


def test_requires_grad_cannot_change_on_non_leaf():
    y = tg.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)
    assert y.requires_grad


@pytest.mark.parametrize(
    "factory, args, expected",
    [
        (tg.zeros, (2, 3), np.zeros((2, 3))),
        (tg.zeros, ((2, 3),), np.zeros((2, 3))),
        (tg.ones, (4,), np.ones(4)),
        (tg.full, ((2, 2), 7.0), np.full((2, 2), 7.0)),
        (tg.full, (3, 1.5), np.full(3, 1.5)),
        (tg.eye, (3,), np.eye(3)),
        (tg.arange, (0.0, 1.0, 0.25), np.arange(0.0, 1.0, 0.25)),
    ],
)
def test_factories(factory, args, expected):
    t = factory(*args)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, expected.astype(np.float32))
    t64 = factory(*args, dtype=np.float64, requires_grad=True)
    assert t64.dtype == np.float64 and t64.requires_grad and t64.is_leaf


def test_factories_are_tensor_static_methods_too():
    assert tg.Tensor.zeros(2).shape == (2,)
    assert tg.Tensor.randn(2, 3).shape == (2, 3)
    assert tg.Tensor.ones_like(tg.zeros(4)).shape == (4,)


def test_integer_arange_stays_int64():
    assert tg.arange(5).dtype == np.int64
    assert tg.arange(5).tolist() == [0, 1, 2, 3, 4]


def test_like_factories_keep_shape_and_dtype():
    t = tg.Tensor(np.ones((2, 3), np.float64))
    z = tg.zeros_like(t)
    o = tg.ones_like(t, requires_grad=True)
    assert z.shape == o.shape == (2, 3)
    assert z.dtype == o.dtype == np.float64
    assert o.requires_grad and not z.requires_grad
    assert z.data.sum() == 0 and o.data.sum() == 6


@given(st.integers(0, 2**31 - 1))
def test_manual_seed_makes_every_draw_reproducible(seed):
    tg.manual_seed(seed)
    first = (tg.rand(3).tolist(), tg.randn(2, 2).tolist())
    tg.manual_seed(seed)
    assert (tg.rand(3).tolist(), tg.randn(2, 2).tolist()) == first


def test_random_factories_distribution():
    tg.manual_seed(0)
    u, n = tg.rand(20000).data, tg.randn(20000).data
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03
    assert u.dtype == n.dtype == np.float32


def test_attributes():
    x = tg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    y = x * 2
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == np.float32
    assert x.is_leaf and x.grad_fn is None and x.grad is None
    assert not y.is_leaf and y.grad_fn is not None and y.requires_grad
    assert x.T.shape == (3, 2)
    np.testing.assert_array_equal(x.T.data, x.data.T)


def test_conversions():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.numpy() is x.data
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert tg.tensor([3.5]).item() == 3.5
    np.testing.assert_array_equal(np.asarray(x), x.data)
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert len(x) == 2
    assert x.astype(np.float64).dtype == np.float64
    assert x.astype(np.float32) is x


def test_item_needs_one_element():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        tg.tensor([1.0, 2.0]).item()


def test_len_of_0d_raises():
    with pytest.raises(TypeError, match="0-d"):
        len(tg.tensor(1.0))


def test_detach_shares_data_and_leaves_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 3).detach()
    assert d.is_leaf and not d.requires_grad
    y = x * 1
    assert y.detach().data is y.data


def test_comparisons_and_argmax_do_not_require_grad():
    x = tg.tensor([1.0, 5.0, 3.0], requires_grad=True)
    for result in (
        x < 2,
        x <= 3,
        x > 2,
        x >= 3,
        x == 5,
        x != 5,
        x.argmax(),
        x.argmin(),
    ):
        assert not result.requires_grad
    assert (x > 2).tolist() == [False, True, True]
    assert (x == tg.tensor([1.0, 0.0, 3.0])).tolist() == [True, False, True]
    assert x.argmax().item() == 1 and x.argmin().item() == 0
    m = tg.tensor([[1.0, 9.0], [7.0, 2.0]])
    assert m.argmax(axis=1).tolist() == [1, 0]
    assert m.argmin(axis=0).tolist() == [0, 1]


def test_tensors_hash_by_identity():
    a, b = tg.tensor([1.0]), tg.tensor([1.0])
    assert len({a, b}) == 2 and hash(a) != hash(b)


def test_numpy_array_on_the_left_delegates_to_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, tg.Tensor) and y.requires_grad
    assert y.tolist() == [3.0, 8.0]


def test_python_scalars_keep_the_tensor_dtype():
    x = tg.tensor([1.0, 2.0])
    for y in (x + 1, 2.5 * x, x / 3, 1 - x, x**2, 2**x):
        assert y.dtype == np.float32
    assert (tg.Tensor(np.ones(2)) * 2.0).dtype == np.float64


def test_repr_is_readable():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "Tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2) == "Tensor([2., 4.], grad_fn=<Mul>)"
    assert repr(tg.Tensor(np.ones(1))) == "Tensor([1.], dtype=float64)"


def test_squeeze_unsqueeze_errors_name_the_axis():
    x = tg.zeros(2, 1, 3)
    assert x.squeeze().shape == (2, 3)
    assert x.squeeze(1).shape == (2, 3)
    assert x.unsqueeze(-1).shape == (2, 1, 3, 1)
    with pytest.raises(ValueError, match=r"axis 0 .* length 2"):
        x.squeeze(0)
    with pytest.raises(ValueError, match="axis 5"):
        x.unsqueeze(5)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        tg.tensor([1.0]).gelu(approximate="fast")


def test_pad_and_stack_errors():
    with pytest.raises(ValueError, match="non-negative"):
        tg.pad(tg.zeros(2), -1)
    with pytest.raises(ValueError, match="does not fit"):
        tg.pad(tg.zeros(2, 2), ((1, 1), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="same shape"):
        tg.stack([tg.zeros(2), tg.zeros(3)])
    with pytest.raises(ValueError, match="at least one"):
        tg.concatenate([])


def test_iteration_yields_rows_that_stay_in_the_graph():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(x)
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    (rows[1] * 2).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0], [2.0, 2.0]]
    with pytest.raises(TypeError, match="0-d"):
        iter(tg.tensor(1.0))


def test_format_spec_applies_to_one_element_tensors():
    assert f"{tg.tensor(0.123456):.3f}" == "0.123"
    assert f"{tg.tensor([2.5]):>6}" == "   2.5"
    assert f"{tg.tensor([1.0, 2.0])}" == "Tensor([1., 2.])"


def test_operand_type_errors_name_the_op_shapes_and_dtypes():
    with pytest.raises(TypeError, match=r"Add on \(2,\) float32, \(\) <U1"):
        tg.ones(2) + "a"


def test_windows_errors_name_the_bad_argument():
    x = tg.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"positive int or a pair.*\(2, 0\)"):
        x.windows((2, 0))
    with pytest.raises(ValueError, match=r"positive int or a pair.*-1"):
        x.windows(2, stride=-1)
    with pytest.raises(ValueError, match=r"4x4 window does not fit.*\(1, 1, 3, 3\)"):
        x.windows(4)


def test_clip_needs_a_bound():
    with pytest.raises(ValueError, match="at least one of lo and hi"):
        tg.ones(2).clip(None, None)
    assert tg.tensor([-2.0, 5.0]).clip(None, 1.0).tolist() == [-2.0, 1.0]


def test_astype_to_an_integer_dtype_needs_no_grad():
    x = tg.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        x.astype(np.int64)
    assert tg.ones(2).astype(np.int64).dtype == np.int64


@pytest.mark.parametrize("reduce", ["max", "min"])
def test_max_min_of_an_empty_tensor_raise(reduce):
    with pytest.raises(ValueError, match=r"empty array of shape \(0,\)"):
        getattr(tg.zeros(0), reduce)()


def test_float_and_int_of_a_one_element_tensor():
    assert float(tg.tensor([2.5])) == 2.5
    assert int(tg.tensor(3.7)) == 3
    assert isinstance(float(tg.tensor(1)), float)
    with pytest.raises(ValueError, match=r"one element, got shape \(2,\)"):
        float(tg.ones(2))
