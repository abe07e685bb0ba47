"""The "More operations" of API.md, where the op table (tests/op_specs.py) cannot say it:
prod at zeros to second order, sort/topk indices, take_along_axis with repeated
indices, split/chunk and the rounding family against PyTorch, einsum forms, the
random factories, and the errors for bad arguments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp.func import hessian
from tinygrad_bp.testing import gradcheck, gradgradcheck


def leaf(values, dtype=np.float64) -> tg.Tensor:
    return tg.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def central_hessian(f, x: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """d²f/dx_i dx_j of a scalar function of a vector by central differences."""
    steps = np.eye(x.size) * eps
    h = np.zeros((x.size, x.size))
    for i in range(x.size):
        for j in range(x.size):
            di, dj = steps[i], steps[j]
            h[i, j] = f(x + di + dj) - f(x + di - dj) - f(x - di + dj) + f(x - di - dj)
    return h / (4 * eps * eps)


# ------------------------------------------------------------------------------ prod
@pytest.mark.parametrize(
    "values",
    [
        [2.0, -3.0, 0.5, 4.0],
        [2.0, 0.0, 3.0, -1.5],
        [0.0, 2.0, 0.0, 3.0],
        [0.0, 0.0, 0.0, 2.0],
    ],
    ids=["no_zero", "one_zero", "two_zeros", "three_zeros"],
)
def test_prod_gradient_and_hessian_with_zeros(values: list[float]) -> None:
    x = leaf(values)
    x.prod().backward()
    others = [np.prod(np.delete(values, i)) for i in range(len(values))]
    np.testing.assert_allclose(x.grad.data, others)
    assert gradcheck(lambda t: t.prod(), [leaf(values)])
    assert gradgradcheck(lambda t: t.prod(), [leaf(values)])

    h = hessian(lambda t: t.prod())(leaf(values))
    want = central_hessian(np.prod, np.array(values))
    np.testing.assert_allclose(h.data, want, atol=1e-6)


def test_prod_with_zeros_along_an_axis_keepdims_and_float32() -> None:
    values = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
    for axis in [0, 1, (0, 1), None]:
        for keepdims in [False, True]:
            f = lambda t: t.prod(axis=axis, keepdims=keepdims)  # noqa: B023, E731
            assert gradcheck(f, [leaf(values)])
            assert gradgradcheck(f, [leaf(values)])
    x = leaf(values, np.float32)
    x.prod(axis=1).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(
        x.grad.data, [[6.0, 0.0, 0.0], [0.0, 0.0, 0.0], [6.0, 3.0, 2.0]]
    )


def test_prod_gradient_survives_underflow() -> None:
    """y = 0 with no zero in x (1e-200²): the gradient is not y/x = 0."""
    x = leaf([1e-200, 1e-200, 2.0])
    (g,) = tg.grad(x.prod(), x, create_graph=True)
    np.testing.assert_allclose(g.data, [2e-200, 2e-200, 0.0])
    (gg,) = tg.grad(g[0], x)
    np.testing.assert_allclose(gg.data, [0.0, 2.0, 1e-200])


def test_prod_matches_torch_to_second_order() -> None:
    torch = pytest.importorskip("torch")
    values = np.array([[0.0, 2.0, 3.0, 0.5], [0.0, 0.0, 5.0, 1.0]])
    v = np.array([0.3, -1.2])
    x = leaf(values)
    (g,) = tg.grad((x.prod(axis=1) * tg.tensor(v)).sum(), x, create_graph=True)
    (gg,) = tg.grad((g * g).sum(), x)
    xt = torch.tensor(values, requires_grad=True)
    (gt,) = torch.autograd.grad(
        (xt.prod(dim=1) * torch.tensor(v)).sum(), xt, create_graph=True
    )
    (ggt,) = torch.autograd.grad((gt * gt).sum(), xt)
    np.testing.assert_allclose(g.data, gt.detach().numpy())
    np.testing.assert_allclose(gg.data, ggt.numpy())


# ------------------------------------------------------------- std, norm, the rounding
def test_norm_and_std_have_zero_gradient_at_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = leaf([0.0, 0.0, 0.0])
        x.norm().backward()
        np.testing.assert_array_equal(x.grad.data, 0.0)
        y = leaf([[2.0, 2.0], [1.0, 3.0]])
        y.std(axis=1).sum().backward()
        assert np.isfinite(y.grad.data).all()
        np.testing.assert_array_equal(y.grad.data[0], 0.0)
        np.testing.assert_allclose(y.grad.data[1], [-0.5, 0.5])


def test_std_and_norm_match_torch() -> None:
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(0).standard_normal((3, 4))
    x, xt = leaf(values), torch.tensor(values, requires_grad=True)
    (x.std(axis=1, ddof=1).sum() + x.norm(axis=0).sum()).backward()
    (xt.std(dim=1).sum() + xt.norm(dim=0).sum()).backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy())


@pytest.mark.parametrize("name", ["sign", "floor", "ceil", "round"])
def test_rounding_family_matches_torch_and_has_zero_gradient(name: str) -> None:
    torch = pytest.importorskip("torch")
    values = np.array([-2.5, -1.5, -0.5, -0.3, 0.0, 0.5, 1.5, 2.5, 2.7])
    x = leaf(values)
    out = getattr(x, name)()
    np.testing.assert_array_equal(
        out.data, getattr(torch, name)(torch.tensor(values)).numpy()
    )
    out.backward(tg.ones_like(out))
    np.testing.assert_array_equal(x.grad.data, np.zeros_like(values))


def test_elementwise_values_match_numpy() -> None:
    x = np.array([-0.5, 1e-12, 0.7])
    np.testing.assert_allclose(tg.tensor(x).log1p().data, np.log1p(x), rtol=1e-15)
    np.testing.assert_allclose(tg.tensor(x).expm1().data, np.expm1(x), rtol=1e-15)
    np.testing.assert_allclose(tg.tensor(x).tan().data, np.tan(x), rtol=1e-15)
    np.testing.assert_array_equal(tg.tensor(x).square().data, x * x)


# ------------------------------------------------------------------ cumsum, flip, roll
def test_cumsum_forms() -> None:
    assert tg.tensor(3.0).cumsum(0).shape == ()
    assert tg.tensor([[1, 2], [3, 4]]).cumsum().tolist() == [1, 3, 6, 10]
    assert tg.tensor([[1, 2], [3, 4]]).cumsum(-1).tolist() == [[1, 3], [3, 7]]
    x = leaf([1.0, 2.0, 3.0])
    x.cumsum(0).backward(tg.tensor([1.0, 10.0, 100.0], dtype="float64"))
    np.testing.assert_array_equal(x.grad.data, [111.0, 110.0, 100.0])


# ---------------------------------------------------------------- selection and order
def test_take_along_axis_accumulates_repeated_indices() -> None:
    x = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    index = np.array([[0, 0, 2, 0], [1, -1, 1, 1]])
    out = x.take_along_axis(index, axis=1)
    np.testing.assert_array_equal(out.data, np.take_along_axis(x.data, index, 1))
    out.backward(tg.ones_like(out))
    np.testing.assert_array_equal(x.grad.data, [[3.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    y = leaf([1.0, 2.0, 3.0])
    tg.take_along_axis(y, tg.tensor([2, 2]), axis=None).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [0.0, 0.0, 2.0])


def test_sort_and_topk_match_torch_and_route_gradients() -> None:
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(1).permutation(24).reshape(2, 3, 4) / 8.0
    for axis in [0, 1, -1]:
        for descending in [False, True]:
            got, index = tg.tensor(values).sort(axis, descending)
            want = torch.sort(torch.tensor(values), dim=axis, descending=descending)
            np.testing.assert_array_equal(got.data, want.values.numpy())
            np.testing.assert_array_equal(index.data, want.indices.numpy())
            assert index.dtype == np.int64 and not index.requires_grad
        for largest in [False, True]:
            got, index = tg.tensor(values).topk(2, axis, largest)
            want = torch.topk(torch.tensor(values), 2, dim=axis, largest=largest)
            np.testing.assert_array_equal(got.data, want.values.numpy())
            np.testing.assert_array_equal(index.data, want.indices.numpy())
    x = leaf([3.0, 1.0, 2.0])
    top, index = x.topk(2)
    top.backward(tg.tensor([10.0, 20.0], dtype="float64"))
    np.testing.assert_array_equal(index.data, [0, 2])
    np.testing.assert_array_equal(x.grad.data, [10.0, 0.0, 20.0])


def test_sort_is_stable_with_ties_both_ways() -> None:
    torch = pytest.importorskip("torch")
    values = np.array([2.0, 1.0, 2.0, 1.0, 3.0, 2.0])
    for descending in [False, True]:
        index = tg.tensor(values).argsort(descending=descending)
        want = torch.sort(torch.tensor(values), descending=descending, stable=True)
        np.testing.assert_array_equal(index.data, want.indices.numpy())
    assert (
        tg.tensor(values).argsort().tolist()
        == np.argsort(values, kind="stable").tolist()
    )


def test_masked_fill_broadcasts_and_fills_with_a_tensor() -> None:
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    value = leaf(-1.0)
    out = x.masked_fill(np.array([True, False]), value)
    np.testing.assert_array_equal(out.data, [[-1.0, 2.0], [-1.0, 4.0]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 1.0], [0.0, 1.0]])
    assert value.grad.item() == 2.0


def test_tril_triu_keep_the_dtype_and_mirror_numpy() -> None:
    a = np.arange(24).reshape(2, 3, 4)
    for k in [-1, 0, 2]:
        assert tg.tensor(a).tril(k).dtype == np.int64
        np.testing.assert_array_equal(tg.tril(tg.tensor(a), k).data, np.tril(a, k))
        np.testing.assert_array_equal(tg.triu(tg.tensor(a), k).data, np.triu(a, k))


@pytest.mark.parametrize(
    ("length", "arg"),
    [(5, 2), (5, 5), (5, 7), (6, [1, 0, 5]), (0, 2), (4, [4])],
)
def test_split_matches_torch(length: int, arg) -> None:
    torch = pytest.importorskip("torch")
    values = np.arange(length * 2.0).reshape(2, length)
    got = tg.tensor(values).split(arg, axis=1)
    want = torch.tensor(values).split(arg, dim=1)
    assert isinstance(got, tuple)
    assert [p.tolist() for p in got] == [p.tolist() for p in want]


@pytest.mark.parametrize(
    ("length", "n"), [(5, 4), (6, 4), (5, 2), (3, 5), (0, 3), (8, 1)]
)
def test_chunk_matches_torch(length: int, n: int) -> None:
    torch = pytest.importorskip("torch")
    values = np.arange(length * 2.0).reshape(length, 2)
    got = tg.tensor(values).chunk(n)
    want = torch.tensor(values).chunk(n)
    assert [p.shape for p in got] == [tuple(p.shape) for p in want]
    assert [p.tolist() for p in got] == [p.tolist() for p in want]


def test_split_pieces_carry_their_gradients() -> None:
    x = leaf(np.arange(5.0))
    a, _, c = x.split(2)
    (a.sum() + 10 * c.sum()).backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0, 0.0, 0.0, 10.0])


def test_repeat_and_tile_match_numpy() -> None:
    a = np.arange(6.0).reshape(2, 3)
    for repeats, axis in [(2, None), (2, 0), ([1, 0, 3], 1), (0, 1)]:
        got = tg.tensor(a).repeat(repeats, axis)
        np.testing.assert_array_equal(got.data, np.repeat(a, repeats, axis))
    for reps in [2, (2, 1), (1, 2, 3), (3,), ()]:
        np.testing.assert_array_equal(tg.tensor(a).tile(reps).data, np.tile(a, reps))
    x = leaf([1.0, 2.0])
    x.tile((2, 3)).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [6.0, 6.0])


# ---------------------------------------------------------------------------- einsum
EINSUM_FORMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ba,cb", [(2, 3), (4, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    ("i...,i", [(2, 3, 1), (2,)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->ji", [(2, 2, 3)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij->", [(2, 3)]),
    ("ijk->j", [(2, 3, 2)]),
    ("i,i,i->", [(3,), (3,), (3,)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    (",i->i", [(), (3,)]),
]


@pytest.mark.parametrize(
    ("subscripts", "shapes"), EINSUM_FORMS, ids=[f[0] for f in EINSUM_FORMS]
)
def test_einsum_forms_match_numpy_and_gradcheck(subscripts: str, shapes) -> None:
    rng = np.random.default_rng(2)
    xs = [leaf(rng.standard_normal(s)) for s in shapes]
    out = tg.einsum(subscripts, *xs)
    np.testing.assert_allclose(
        out.data, np.einsum(subscripts, *[x.data for x in xs]), rtol=1e-12
    )
    f = lambda *ts: tg.einsum(subscripts, *ts)  # noqa: E731
    assert gradcheck(f, xs)
    assert gradgradcheck(f, xs)


def test_einsum_gradients_match_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 3, 2)), rng.standard_normal((2, 3))
    x, y = leaf(a), leaf(b)
    tg.einsum("iij,jk->ik", x, y).sum().backward()
    xt, yt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.einsum("iij,jk->ik", xt, yt).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy())
    np.testing.assert_allclose(y.grad.data, yt.grad.numpy())


def test_einsum_with_the_same_operand_twice() -> None:
    x = leaf([1.0, 2.0, 3.0])
    tg.einsum("i,i->", x, x).backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0, 6.0])


# ------------------------------------------------------------------------ factories
def test_linspace_randint_multinomial_are_exported_and_static() -> None:
    for name in ["linspace", "randint", "multinomial"]:
        assert getattr(tg, name) is getattr(tg.Tensor, name)
    for name in ["tril", "triu", "take_along_axis", "einsum"]:
        assert callable(getattr(tg, name)) and name in tg.__all__
    np.testing.assert_allclose(tg.linspace(-1, 1, 5).data, [-1, -0.5, 0, 0.5, 1])
    assert tg.linspace(0, 1, 3, dtype="float64", requires_grad=True).requires_grad


def test_random_draws_are_reproducible_under_manual_seed() -> None:
    probs = tg.tensor([[1.0, 2.0, 0.0, 5.0], [0.0, 0.0, 1.0, 1.0]])
    draws = []
    for _ in range(2):
        tg.manual_seed(7)
        draws.append(
            (
                tg.randint(-3, 3, (4, 5)).tolist(),
                tg.multinomial(probs, 2).tolist(),
                tg.multinomial(probs, 6, replacement=True).tolist(),
            )
        )
    assert draws[0] == draws[1]
    x = tg.randint(-3, 3, (100,))
    assert x.dtype == np.int64 and x.shape == (100,)
    assert x.min().item() >= -3 and x.max().item() < 3


def test_multinomial_statistics_and_rules() -> None:
    tg.manual_seed(0)
    weights = np.array([1.0, 0.0, 3.0, 6.0])  # need not sum to 1
    with_replacement = tg.multinomial(weights, 20000, replacement=True)
    assert with_replacement.shape == (20000,) and with_replacement.dtype == np.int64
    freq = np.bincount(with_replacement.data, minlength=4) / 20000
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.015)
    # without replacement: distinct, never a zero weight; the first draw follows p
    rows = tg.multinomial(np.tile(weights, (5000, 1)), 3).data
    assert rows.shape == (5000, 3)
    assert all(len(set(r)) == 3 for r in rows) and not (rows == 1).any()
    first = np.bincount(rows[:, 0], minlength=4) / 5000
    np.testing.assert_allclose(first, weights / weights.sum(), atol=0.025)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: tg.ones(3).topk(4), ValueError, r"topk: k=4 .* length 3"),
        (lambda: tg.ones(2, 3).sort(axis=2), ValueError, "argsort: axis 2"),
        (
            lambda: tg.ones(2, 3).take_along_axis(np.array([[3]]), 1),
            IndexError,
            r"take_along_axis: .* out of range for axis 1 of length 3",
        ),
        (
            lambda: tg.ones(2, 3).take_along_axis(np.array([0.5]), 1),
            TypeError,
            "take_along_axis: indices must be integers",
        ),
        (
            lambda: tg.ones(2, 3).take_along_axis(np.array([0]), 1),
            ValueError,
            r"take_along_axis: indices of shape \(1,\) need as many dimensions",
        ),
        (
            lambda: tg.ones(2, 3).take_along_axis(np.zeros((3, 1), int), 1),
            ValueError,
            "do not broadcast",
        ),
        (lambda: tg.ones(5).split([2, 2]), ValueError, r"split: sizes \[2, 2\]"),
        (lambda: tg.ones(5).split(0), ValueError, "split: the chunk size"),
        (lambda: tg.ones(5).split(2.5), TypeError, "split: size_or_sizes"),
        (lambda: tg.ones(5).chunk(0), ValueError, "chunk: n must be"),
        (lambda: tg.ones(3).tril(), ValueError, r"tril: .* shape \(3,\)"),
        (lambda: tg.triu(tg.ones(2, 2), 0.5), TypeError, "triu: k must be an int"),
        (
            lambda: tg.ones(2, 2).masked_fill(np.array([1, 0]), 0.0),
            TypeError,
            "masked_fill: mask must be boolean",
        ),
        (
            lambda: tg.ones(2, 2).masked_fill(np.ones((3, 2), bool), 0.0),
            ValueError,
            r"masked_fill: mask of shape \(3, 2\)",
        ),
        (lambda: tg.ones(2).repeat(-1), ValueError, "repeat: repeats"),
        (lambda: tg.ones(2, 2).repeat([1, 2, 3], 0), ValueError, "repeat: 3 repeats"),
        (lambda: tg.ones(2).tile((-1,)), ValueError, "tile: reps"),
        (lambda: tg.ones(2).flip(1), ValueError, "flip: axis 1"),
        (lambda: tg.ones(2).roll((1, 2), 0), ValueError, "roll: 2 shifts"),
        (lambda: tg.ones(2).cumsum(1), ValueError, "cumsum: axis 1"),
        (lambda: tg.ones(2, 3).prod(axis=2), ValueError, "axis 2"),
        (
            lambda: tg.einsum("ij,jk->ik", tg.ones(2, 3), tg.ones(4, 2)),
            ValueError,
            r"Einsum on \(2, 3\)",
        ),
        (lambda: tg.einsum("ij", tg.ones(2)), ValueError, "Einsum"),
        (lambda: tg.einsum(tg.ones(2)), TypeError, "einsum: subscripts"),
        (lambda: tg.randint(3, 3, 2), ValueError, "randint: high"),
        (lambda: tg.linspace(0, 1, -1), ValueError, "linspace: num"),
        (lambda: tg.multinomial([1.0, -1.0], 1), ValueError, "multinomial: .*negative"),
        (lambda: tg.multinomial([0.0, 0.0], 1), ValueError, "positive weight"),
        (lambda: tg.multinomial([1.0, 0.0], 2), ValueError, "without replacement"),
        (lambda: tg.multinomial(np.ones((2, 2, 2)), 1), ValueError, "1-D or 2-D"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()
