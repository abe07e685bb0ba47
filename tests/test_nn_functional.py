"""nn.functional: forward values against NumPy references, gradients by gradcheck."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinygrad_bp as tg
from tinygrad_bp.nn import functional as F
from tinygrad_bp.testing import gradcheck

SETTINGS = settings(max_examples=15, deadline=None)


def t64(array, requires_grad=True):
    return tg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def floats(shape, lo=-3.0, hi=3.0):
    return arrays(
        np.float64,
        shape,
        elements=st.floats(lo, hi, allow_nan=False, allow_subnormal=False),
    )


def _erf(x):
    return np.vectorize(math.erf)(x)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))  # no overflow at large |x|


# ------------------------------------------------------------------------ activations
ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (F.sigmoid, _sigmoid),
    "tanh": (F.tanh, np.tanh),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
    "gelu_tanh": (
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    ),
    "leaky_relu": (
        lambda x: F.leaky_relu(x, 0.2),
        lambda x: np.where(x > 0, x, 0.2 * x),
    ),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x))),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "silu": (F.silu, lambda x: x * _sigmoid(x)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@SETTINGS
@given(x=floats((2, 3)))
def test_activation_matches_numpy_and_gradcheck(name, x):
    fn, reference = ACTIVATIONS[name]
    # keep off the kinks of relu-like functions, where finite differences straddle
    x = np.where(np.abs(x) < 1e-3, 0.5, x)
    np.testing.assert_allclose(fn(t64(x)).data, reference(x), rtol=1e-12, atol=1e-12)
    assert gradcheck(fn, [t64(x)])


def test_activations_accept_arrays():
    np.testing.assert_array_equal(F.relu(np.array([-1.0, 2.0])).data, [0.0, 2.0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(axis):
    x = np.random.default_rng(0).normal(size=(3, 4))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(F.softmax(t64(x), axis).data, expected, rtol=1e-12)
    np.testing.assert_allclose(
        F.log_softmax(t64(x), axis).data, np.log(expected), rtol=1e-12
    )
    assert gradcheck(lambda v: F.softmax(v, axis), [t64(x)])
    assert gradcheck(lambda v: F.log_softmax(v, axis), [t64(x)])


# ---------------------------------------------------------------------------- losses
def _reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


RNG = np.random.default_rng(42)
PRED = RNG.normal(size=(4, 3))
TARGET = RNG.normal(size=(4, 3))
LOGITS = RNG.normal(size=(5, 4)) * 3
CLASSES = np.array([0, 3, 1, 1, 2])
PROBS = RNG.uniform(0.05, 0.95, size=(3, 4))
LABELS = RNG.integers(0, 2, size=(3, 4)).astype(np.float64)

# name -> (loss(input, target, reduction), input, target, NumPy loss per element)
LOSSES = {
    "mse_loss": (F.mse_loss, PRED, TARGET, (PRED - TARGET) ** 2),
    "cross_entropy": (
        F.cross_entropy,
        LOGITS,
        CLASSES,
        -_log_softmax(LOGITS, 1)[np.arange(5), CLASSES],
    ),
    "nll_loss": (
        F.nll_loss,
        _log_softmax(LOGITS, 1),
        CLASSES,
        -_log_softmax(LOGITS, 1)[np.arange(5), CLASSES],
    ),
    "binary_cross_entropy": (
        F.binary_cross_entropy,
        PROBS,
        LABELS,
        -(LABELS * np.log(PROBS) + (1 - LABELS) * np.log(1 - PROBS)),
    ),
    "binary_cross_entropy_with_logits": (
        F.binary_cross_entropy_with_logits,
        PRED,
        LABELS[:, :3].repeat(2, axis=0)[:4],
        -(
            LABELS[:, :3].repeat(2, axis=0)[:4] * np.log(_sigmoid(PRED))
            + (1 - LABELS[:, :3].repeat(2, axis=0)[:4]) * np.log(1 - _sigmoid(PRED))
        ),
    ),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_value_and_gradient_for_each_reduction(name, reduction):
    loss, x, target, per_element = LOSSES[name]
    out = loss(t64(x), target, reduction=reduction)
    np.testing.assert_allclose(out.data, _reduce(per_element, reduction), rtol=1e-10)
    assert gradcheck(lambda v: loss(v, target, reduction=reduction), [t64(x)])


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_rejects_unknown_reduction(name):
    loss, x, target, _ = LOSSES[name]
    with pytest.raises(ValueError, match=r"reduction.*'avg'"):
        loss(t64(x), target, reduction="avg")


@pytest.mark.parametrize(
    "name", ["mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]
)
def test_elementwise_loss_shape_mismatch_names_both_shapes(name):
    loss = LOSSES[name][0]
    with pytest.raises(
        ValueError, match=re.escape("(3, 4)") + ".*" + re.escape("(4,)")
    ):
        loss(t64(np.full((3, 4), 0.5)), np.zeros(4))


@pytest.mark.parametrize(
    "name", ["mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]
)
def test_elementwise_loss_gradient_reaches_target(name):
    loss, x, target, _ = LOSSES[name]
    assert gradcheck(lambda v: loss(t64(x, False), v), [t64(target)])


def test_integer_targets_do_not_change_the_loss_dtype():
    pred = tg.tensor([0.5, 0.25])
    out = F.binary_cross_entropy(pred, np.array([1, 0]))
    assert out.dtype == np.float32
    assert F.mse_loss(pred, tg.tensor([1, 0])).dtype == np.float32


def test_cross_entropy_is_finite_and_exact_at_large_logits():
    logits = t64([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    target = np.array([0, 1, 2])
    out = F.cross_entropy(logits, target, reduction="none")
    np.testing.assert_allclose(out.data, [0.0, 1e4, np.log(3)], rtol=1e-12, atol=1e-12)
    out.sum().backward()
    expected = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0], [1 / 3, 1 / 3, -2 / 3]])
    np.testing.assert_allclose(logits.grad.data, expected, atol=1e-12)


def test_cross_entropy_stable_in_float32():
    logits = tg.tensor([[1e4, -1e4], [-1e4, 1e4]], requires_grad=True)
    loss = F.cross_entropy(logits, [1, 1])
    assert loss.item() == pytest.approx(1e4)
    loss.backward()
    assert np.isfinite(logits.grad.data).all()


def test_cross_entropy_with_spatial_axes_and_unbatched_input():
    logits = RNG.normal(size=(2, 3, 4))  # (N, C, d)
    target = RNG.integers(0, 3, size=(2, 4))
    logp = _log_softmax(logits, 1)
    expected = -np.take_along_axis(logp, target[:, None, :], axis=1)[:, 0, :]
    out = F.cross_entropy(t64(logits), target, reduction="none")
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(lambda v: F.cross_entropy(v, target), [t64(logits)])
    single = F.cross_entropy(t64(LOGITS[0]), np.array(2))
    assert single.item() == pytest.approx(-_log_softmax(LOGITS[0], 0)[2])


def test_cross_entropy_accepts_tensor_and_unsigned_targets():
    expected = F.cross_entropy(t64(LOGITS), CLASSES).item()
    assert F.cross_entropy(t64(LOGITS), tg.tensor(CLASSES)).item() == expected
    assert F.cross_entropy(t64(LOGITS), CLASSES.astype(np.uint8)).item() == expected


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("bad", [4, 7, -1])
def test_class_target_out_of_range_is_index_error_naming_it(loss, bad):
    target = CLASSES.copy()
    target[2] = bad
    with pytest.raises(
        IndexError, match=rf"target {bad} at position \(2,\).*4 classes"
    ):
        loss(t64(LOGITS), target)


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize(
    "target",
    [
        np.array([0.0, 1.5, 1.0, 1.0, 2.0]),
        np.array([0.0, 1.0, 1.0, 1.0, 2.0]),  # whole floats are refused too
        [0.0, 1.0, 1.0, 1.0, 2.0],
        tg.tensor([0.0, 1.0, 1.0, 1.0, 2.0]),
        np.ones(5, dtype=bool),
    ],
)
def test_class_target_that_is_not_integer_is_type_error_naming_the_dtype(loss, target):
    dtype = np.asarray(target.data if isinstance(target, tg.Tensor) else target).dtype
    with pytest.raises(TypeError, match=f"dtype {dtype}"):
        loss(t64(LOGITS), target)


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
def test_class_target_shape_mismatch_names_both_shapes(loss):
    with pytest.raises(ValueError, match=re.escape("(4,)") + ".*" + re.escape("(5,)")):
        loss(t64(LOGITS), CLASSES[:4])
    with pytest.raises(ValueError, match="0-d"):
        loss(t64(1.0), CLASSES)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    probs = t64([0.0, 1.0, 0.0, 1.0])
    out = F.binary_cross_entropy(
        probs, np.array([1.0, 0.0, 0.0, 1.0]), reduction="none"
    )
    np.testing.assert_array_equal(out.data, [100.0, 100.0, 0.0, 0.0])
    out.sum().backward()
    assert np.isfinite(probs.grad.data).all()


def test_binary_cross_entropy_rejects_values_outside_0_1():
    with pytest.raises(ValueError, match=r"1\.5 at position \(1,\)"):
        F.binary_cross_entropy(t64([0.5, 1.5]), np.array([1.0, 0.0]))


def test_binary_cross_entropy_with_logits_is_stable_and_right():
    x = t64([1e4, -1e4, 1e4, -1e4, 0.0])
    y = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    out = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(out.data, [0.0, 1e4, 1e4, 0.0, np.log(2)], rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, _sigmoid(x.data) - y, atol=1e-12)


# --------------------------------------------------------------------------- dropout
def test_dropout_is_reproducible_under_manual_seed_and_scales_kept_values():
    x = tg.ones(1000, 10)
    tg.manual_seed(3)
    a = F.dropout(x, 0.3).data
    tg.manual_seed(3)
    b = F.dropout(x, 0.3).data
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.unique(a), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((a == 0).mean() - 0.3) < 0.02  # 10000 draws: std of the mean ~0.005
    assert a.dtype == np.float32


def test_dropout_gradient_is_the_mask():
    x = tg.Tensor(np.arange(1.0, 7.0), requires_grad=True)
    out = F.dropout(x, 0.5)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, out.data / x.data)


def test_dropout_identity_when_not_training_or_p_zero():
    x = tg.tensor([1.0, 2.0])
    assert F.dropout(x, 0.9, training=False) is x
    assert F.dropout(x, 0.0) is x


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, "0.5"])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(tg.ones(2), p)


# ---------------------------------------------------------------------- linear, norms
def test_linear_matches_numpy_and_gradcheck():
    x, w, b = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 2)), RNG.normal(size=2)
    np.testing.assert_allclose(F.linear(t64(x), t64(w), t64(b)).data, x @ w + b)
    np.testing.assert_allclose(F.linear(t64(x), t64(w)).data, x @ w)
    assert gradcheck(F.linear, [t64(x), t64(w), t64(b)])


@pytest.mark.parametrize("normalized_shape", [4, (4,), (3, 4)])
def test_layer_norm_matches_numpy_and_gradcheck(normalized_shape):
    x = RNG.normal(size=(2, 3, 4))
    shape = (
        (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    )
    axes = tuple(range(3 - len(shape), 3))
    w, b = RNG.normal(size=shape), RNG.normal(size=shape)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * w + b
    out = F.layer_norm(t64(x), normalized_shape, t64(w), t64(b))
    np.testing.assert_allclose(out.data, expected, rtol=1e-10)
    assert gradcheck(
        lambda x, w, b: F.layer_norm(x, normalized_shape, w, b),
        [t64(x), t64(w), t64(b)],
    )


@pytest.mark.parametrize("normalized_shape", [3, (2, 4), (), (1, 2, 3, 4)])
def test_layer_norm_shape_mismatch(normalized_shape):
    with pytest.raises(ValueError, match=re.escape("(2, 3, 4)")):
        F.layer_norm(t64(np.ones((2, 3, 4))), normalized_shape)


def _batch_norm_reference(x, weight, bias, eps=1e-5):
    axes = (0,) if x.ndim == 2 else (0, 2)
    shape = (-1,) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    return out * weight.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2)])
def test_batch_norm_training_matches_numpy_and_gradcheck(shape):
    x, w, b = RNG.normal(size=shape), RNG.normal(size=3), RNG.normal(size=3)
    out = F.batch_norm(t64(x), None, None, t64(w), t64(b), training=True)
    np.testing.assert_allclose(out.data, _batch_norm_reference(x, w, b), rtol=1e-10)
    assert gradcheck(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        [t64(x), t64(w), t64(b)],
    )


def test_batch_norm_running_update_and_eval():
    x = RNG.normal(size=(6, 2)) * 3 + 1
    mean, var = t64(np.zeros(2), False), t64(np.ones(2), False)
    F.batch_norm(t64(x), mean, var, training=True, momentum=0.25)
    np.testing.assert_allclose(mean.data, 0.25 * x.mean(0))
    np.testing.assert_allclose(var.data, 0.75 + 0.25 * x.var(0, ddof=1))
    out = F.batch_norm(t64(x), mean, var, t64([2.0, 1.0]), t64([0.0, 1.0]))
    expected = (x - mean.data) / np.sqrt(var.data + 1e-5) * [2.0, 1.0] + [0.0, 1.0]
    np.testing.assert_allclose(out.data, expected)
    assert gradcheck(lambda v: F.batch_norm(v, mean, var), [t64(x)])


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than one value per channel"):
        F.batch_norm(t64(np.ones((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match=re.escape("(3,)")):
        F.batch_norm(t64(np.ones(3)), None, None, training=True)
    with pytest.raises(ValueError, match=r"running_mean has shape \(2,\)"):
        F.batch_norm(t64(np.ones((4, 3))), t64(np.zeros(2)), t64(np.ones(3)))
    with pytest.raises(ValueError, match="needed when not training"):
        F.batch_norm(t64(np.ones((4, 3))), None, None)


# ---------------------------------------------------------------- convolution, pooling
def _conv2d_loops(x, w, b, stride, padding):
    """The definition, one output pixel at a time."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    rows, cols = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, rows, cols))
    for i in range(rows):
        for j in range(cols):
            patch = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + b[None, :, None, None]


@st.composite
def conv_cases(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(5, 7)), draw(st.integers(5, 7))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    x = draw(floats((n, c, h, w)))
    weight = draw(floats((o, c, kh, kw)))
    bias = draw(floats((o,)))
    return x, weight, bias, stride, padding


@SETTINGS
@given(case=conv_cases())
def test_conv2d_matches_loops(case):
    x, w, b, stride, padding = case
    out = F.conv2d(t64(x), t64(w), t64(b), stride=stride, padding=padding)
    expected = _conv2d_loops(x, w, b, stride, padding)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=5, deadline=None)
@given(case=conv_cases())
def test_conv2d_gradcheck(case):
    x, w, b, stride, padding = case
    assert gradcheck(
        lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
        [t64(x), t64(w), t64(b)],
    )


def test_conv2d_rectangular_arguments_and_unbatched_input():
    x, w = RNG.normal(size=(2, 6, 7)), RNG.normal(size=(3, 2, 2, 3))
    out = F.conv2d(t64(x), t64(w), stride=(2, 1), padding=(1, 0))
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    expected = np.zeros((3, 4, 5))
    for i in range(4):
        for j in range(5):
            expected[:, i, j] = np.einsum(
                "chw,ochw->o", padded[:, 2 * i : 2 * i + 2, j : j + 3], w
            )
    np.testing.assert_allclose(out.data, expected, rtol=1e-10)


def test_conv2d_errors():
    x = t64(np.ones((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=re.escape("(1, 2, 5, 5)") + ".*(3, 3, 3, 3)"):
        F.conv2d(x, t64(np.ones((3, 3, 3, 3))))
    with pytest.raises(ValueError, match="kernel"):
        F.conv2d(x, t64(np.ones((1, 2, 6, 6))))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, t64(np.ones((1, 2, 3, 3))), stride=0)
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(x, t64(np.ones((1, 2, 3, 3))), padding=-1)


def _pool_reference(x, k, s, reduce):
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(-2, -1))
    return reduce(windows[..., ::s, ::s, :, :], axis=(-2, -1))


@settings(max_examples=8, deadline=None)
@given(
    shape=st.tuples(
        st.integers(1, 2), st.integers(1, 3), st.integers(4, 7), st.integers(4, 7)
    ),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
)
def test_max_and_avg_pool_match_numpy_and_gradcheck(shape, k, s):
    # distinct values: no ties, so the gradient is unambiguous
    x = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0
    out = F.max_pool2d(t64(x), k, s)
    np.testing.assert_array_equal(out.data, _pool_reference(x, k, s, np.max))
    avg = F.avg_pool2d(t64(x), k, s)
    np.testing.assert_allclose(avg.data, _pool_reference(x, k, s, np.mean))
    assert gradcheck(lambda v: F.max_pool2d(v, k, s), [t64(x)])
    assert gradcheck(lambda v: F.avg_pool2d(v, k, s), [t64(x)])


def test_max_pool_stride_defaults_to_kernel():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    expected = x.reshape(1, 1, 3, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(F.max_pool2d(t64(x), 2).data, expected)


def test_pool_errors():
    with pytest.raises(ValueError, match=re.escape("(4, 4)")):
        F.max_pool2d(t64(np.ones((4, 4))), 2)
    with pytest.raises(ValueError, match=re.escape("(1, 1, 2, 2)")):
        F.avg_pool2d(t64(np.ones((1, 1, 2, 2))), 3)
    with pytest.raises(ValueError, match="kernel_size"):
        F.max_pool2d(t64(np.ones((1, 1, 4, 4))), 0)
