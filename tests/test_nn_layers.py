"""nn layers and nn.init: forward values against NumPy, gradients, initialisation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F
from tinygrad_bp.nn import init
from tinygrad_bp.testing import gradcheck


@pytest.fixture
def float64():
    """Build layers in float64, as gradient checks need; restore the default after."""
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    yield
    tg.set_default_dtype(previous)


def t64(array, requires_grad=False):
    return tg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


RNG = np.random.default_rng(7)


# ------------------------------------------------------------------------------ Linear
def test_linear_layout_forward_and_hand_derived_gradients(float64):
    layer = nn.Linear(3, 2)
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (2,)
    x = RNG.normal(size=(4, 3))
    g = RNG.normal(size=(4, 2))
    xt = t64(x, requires_grad=True)
    out = layer(xt)
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(out.data, x @ w + b, rtol=1e-12)
    out.backward(g)
    # the seed's formulas: dW = aᵀ d, db = Σ_rows d, da = d Wᵀ
    np.testing.assert_allclose(layer.weight.grad.data, x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.data, g.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(xt.grad.data, g @ w.T, rtol=1e-12)
    assert gradcheck(layer, [t64(x, requires_grad=True)])


def test_linear_init_bounds_dtype_and_reproducibility():
    tg.manual_seed(1)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and p.requires_grad
        assert np.abs(p.data).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3)
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.abs(layer.weight.data).max() > 0.99 * bound
    tg.manual_seed(1)
    again = nn.Linear(400, 300)
    np.testing.assert_array_equal(layer.weight.data, again.weight.data)
    np.testing.assert_array_equal(layer.bias.data, again.bias.data)


def test_linear_without_bias(float64):
    layer = nn.Linear(2, 3, bias=False)
    assert layer.bias is None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    x = RNG.normal(size=(5, 2))
    np.testing.assert_allclose(layer(t64(x)).data, x @ layer.weight.data)
    assert repr(layer) == "Linear(in_features=2, out_features=3, bias=False)"


def test_linear_params_follow_default_dtype(float64):
    assert nn.Linear(2, 2).weight.dtype == np.float64


@pytest.mark.parametrize("args", [(0, 2), (2, -1), (2.5, 2), (True, 2)])
def test_linear_rejects_bad_sizes(args):
    with pytest.raises(ValueError, match="must be a positive int"):
        nn.Linear(*args)


# -------------------------------------------------------------------------- Sequential
def test_sequential_chains_names_indexes():
    a, b, c = nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)
    model = nn.Sequential(a, b, c)
    assert [name for name, _ in model.named_children()] == ["0", "1", "2"]
    assert len(model) == 3 and list(model) == [a, b, c]
    assert model[0] is a and model[-1] is c
    head = model[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    x = tg.randn(3, 2)
    np.testing.assert_allclose(model(x).data, c(b(a(x))).data)
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]


def test_sequential_from_mapping_and_append():
    model = nn.Sequential({"hidden": nn.Linear(2, 3), "act": nn.Tanh()})
    model.append(nn.Linear(3, 1))
    assert [name for name, _ in model.named_children()] == ["hidden", "act", "2"]
    assert model(tg.ones(4, 2)).shape == (4, 1)


def test_sequential_errors():
    with pytest.raises(TypeError, match="argument 1 is a int"):
        nn.Sequential(nn.ReLU(), 3)
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(IndexError, match="index 1 is out of range for 1"):
        model[1]
    with pytest.raises(TypeError, match="ints or slices"):
        model["0"]
    with pytest.raises(TypeError, match="expected a Module"):
        model.append(len)


# ------------------------------------------------------------------------- activations
ACTIVATION_MODULES = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Sigmoid(), lambda x: 0.5 * (1 + np.tanh(x / 2))),
    (nn.Tanh(), np.tanh),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (nn.ELU(), lambda x: np.where(x > 0, x, np.expm1(x))),
    (nn.Softplus(), lambda x: np.logaddexp(0, x)),
    (nn.SiLU(), lambda x: x * 0.5 * (1 + np.tanh(x / 2))),
    (nn.Softmax(axis=0), lambda x: np.exp(x) / np.exp(x).sum(axis=0)),
    (nn.LogSoftmax(), lambda x: x - np.log(np.exp(x).sum(axis=-1, keepdims=True))),
    (nn.Identity(), lambda x: x),
]


@pytest.mark.parametrize(
    "module, reference", ACTIVATION_MODULES, ids=lambda v: type(v).__name__
)
def test_activation_modules_match_numpy(module, reference):
    x = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(module(t64(x)).data, reference(x), rtol=1e-12)
    assert module.training and list(module.parameters()) == []


def test_activation_reprs():
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax()) == "Softmax(axis=-1)"
    assert repr(nn.Flatten()) == "Flatten(start_axis=1)"
    with pytest.raises(ValueError, match="'exact'"):
        nn.GELU("exact")


def test_flatten():
    x = RNG.normal(size=(2, 3, 4, 5))
    np.testing.assert_array_equal(nn.Flatten()(t64(x)).data, x.reshape(2, 60))
    np.testing.assert_array_equal(nn.Flatten(2)(t64(x)).data, x.reshape(2, 3, 20))


# ------------------------------------------------------------------------------ Dropout
def test_dropout_module_train_is_seeded_eval_is_identity():
    drop = nn.Dropout(0.25)
    x = tg.ones(50, 40)
    tg.manual_seed(5)
    first = drop(x).data
    tg.manual_seed(5)
    np.testing.assert_array_equal(drop(x).data, first)
    assert (first == 0).any() and (first == np.float32(1 / 0.75)).any()
    assert drop.eval()(x) is x
    assert repr(drop) == "Dropout(p=0.25)"


@pytest.mark.parametrize("p", [1.0, -0.5, 2])
def test_dropout_module_validates_p(p):
    with pytest.raises(ValueError, match=f"got {p}"):
        nn.Dropout(p)


# ---------------------------------------------------------------------------- LayerNorm
def test_layer_norm_module(float64):
    norm = nn.LayerNorm((3, 4), eps=1e-3)
    np.testing.assert_array_equal(norm.weight.data, np.ones((3, 4)))
    np.testing.assert_array_equal(norm.bias.data, np.zeros((3, 4)))
    norm.weight.data = RNG.normal(size=(3, 4))
    norm.bias.data = RNG.normal(size=(3, 4))
    x = RNG.normal(size=(2, 3, 4))
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * norm.weight.data + norm.bias.data
    np.testing.assert_allclose(norm(t64(x)).data, expected, rtol=1e-10)
    assert gradcheck(norm, [t64(x, requires_grad=True)])
    assert repr(norm) == "LayerNorm((3, 4), eps=0.001)"
    with pytest.raises(ValueError, match=re.escape("(2, 4, 3)")):
        norm(t64(np.ones((2, 4, 3))))
    with pytest.raises(ValueError, match="positive int"):
        nn.LayerNorm(0)


# -------------------------------------------------------------------------- BatchNorm1d
def _reference_running_stats(batches, momentum, axes):
    mean, var = np.zeros(batches[0].shape[1]), np.ones(batches[0].shape[1])
    for x in batches:
        n = x.size // x.shape[1]
        mean = (1 - momentum) * mean + momentum * x.mean(axis=axes)
        var = (1 - momentum) * var + momentum * x.var(axis=axes) * n / (n - 1)
    return mean, var


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batch_norm_running_stats_train_and_eval(float64, shape):
    bn = nn.BatchNorm1d(3, momentum=0.2)
    axes = (0,) if len(shape) == 2 else (0, 2)
    batches = [RNG.normal(size=shape) * 2 + 1 for _ in range(4)]
    for x in batches:
        out = bn(t64(x))
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
        np.testing.assert_allclose(out.data, (x - mean) / np.sqrt(var + 1e-5))
    mean, var = _reference_running_stats(batches, 0.2, axes)
    np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, var, rtol=1e-12)
    assert int(bn.num_batches_tracked.data) == 4
    bn.eval()
    x = batches[0]
    per_channel = (3,) + (1,) * (len(shape) - 2)
    expected = (x - mean.reshape(per_channel)) / np.sqrt(
        var.reshape(per_channel) + 1e-5
    )
    np.testing.assert_allclose(bn(t64(x)).data, expected, rtol=1e-10)
    assert int(bn.num_batches_tracked.data) == 4  # eval changes no statistics
    np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-12)
    assert gradcheck(bn, [t64(x, requires_grad=True)])


def test_batch_norm_gradients_in_training(float64):
    bn = nn.BatchNorm1d(2)
    bn.weight.data = np.array([1.5, -0.5])
    x = RNG.normal(size=(5, 2))
    # every call moves the running statistics; the output does not depend on them
    assert gradcheck(bn, [t64(x, requires_grad=True)])


def test_batch_norm_momentum_none_is_cumulative_average(float64):
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [RNG.normal(size=(6, 2)) + i for i in range(3)]
    for x in batches:
        bn(t64(x))
    np.testing.assert_allclose(
        bn.running_mean.data, np.mean([x.mean(axis=0) for x in batches], axis=0)
    )


def test_batch_norm_state_and_errors_change_nothing():
    bn = nn.BatchNorm1d(3)
    assert list(bn.state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert [name for name, _ in bn.named_parameters()] == ["weight", "bias"]
    assert bn.running_mean.dtype == np.float32 and not bn.running_mean.requires_grad
    before = bn.state_dict()
    with pytest.raises(ValueError, match=re.escape("(4, 2)")):
        bn(tg.ones(4, 2))
    with pytest.raises(ValueError, match="more than one value"):
        bn(tg.ones(1, 3))
    for name, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert repr(bn) == "BatchNorm1d(3, eps=1e-05, momentum=0.1)"
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=1.5)


# ---------------------------------------------------------------------------- Embedding
def test_embedding_lookup_gradient_and_init(float64):
    tg.manual_seed(0)
    emb = nn.Embedding(500, 40)
    assert emb.weight.shape == (500, 40)
    assert emb.weight.data.mean() == pytest.approx(0.0, abs=0.02)
    assert emb.weight.data.std() == pytest.approx(1.0, rel=0.02)
    indices = np.array([[3, 7, 3], [0, 499, 3]])
    out = emb(indices)
    np.testing.assert_array_equal(out.data, emb.weight.data[indices])
    np.testing.assert_array_equal(emb(tg.tensor(indices)).data, out.data)
    g = RNG.normal(size=out.shape)
    out.backward(g)
    expected = np.zeros((500, 40))
    np.add.at(expected, indices, g)  # index 3 appears three times: the rows add up
    np.testing.assert_allclose(emb.weight.grad.data, expected)
    assert repr(emb) == "Embedding(500, 40)"


def test_embedding_errors():
    emb = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match=r"index 4 at position \(1,\).*4 embeddings"):
        emb([0, 4])
    with pytest.raises(IndexError, match="index -1"):
        emb([-1])
    with pytest.raises(TypeError, match="integers, got dtype float64"):
        emb(np.array([0.0, 1.0]))


# ------------------------------------------------------------------------------- Conv2d
def _conv_reference(x, w, b, stride, padding):
    """Independent of ours: NumPy's sliding windows and one einsum."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    return np.einsum("nchwpq,ocpq->nohw", windows, w) + b[None, :, None, None]


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    o=st.integers(1, 3),
    size=st.integers(5, 7),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
)
def test_conv2d_module_matches_numpy(n, c, o, size, k, stride, padding):
    tg.set_default_dtype(np.float64)
    try:
        conv = nn.Conv2d(c, o, k, stride=stride, padding=padding)
    finally:
        tg.set_default_dtype(np.float32)
    x = np.random.default_rng(size).normal(size=(n, c, size, size))
    expected = _conv_reference(x, conv.weight.data, conv.bias.data, stride, padding)
    np.testing.assert_allclose(conv(t64(x)).data, expected, rtol=1e-10, atol=1e-12)


def test_conv2d_module_init_gradients_and_repr(float64):
    tg.manual_seed(2)
    conv = nn.Conv2d(3, 64, kernel_size=(3, 2), padding=1)
    assert conv.weight.shape == (64, 3, 3, 2) and conv.bias.shape == (64,)
    bound = 1 / math.sqrt(3 * 3 * 2)
    assert np.abs(conv.weight.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.98 * bound
    assert np.abs(conv.bias.data).max() <= bound
    assert (
        repr(conv) == "Conv2d(3, 64, kernel_size=(3, 2), stride=(1, 1), padding=(1, 1))"
    )
    small = nn.Conv2d(2, 2, 2, stride=2, bias=False)
    assert small.bias is None
    assert repr(small) == "Conv2d(2, 2, kernel_size=(2, 2), stride=(2, 2), bias=False)"
    x = t64(RNG.normal(size=(1, 2, 5, 5)), requires_grad=True)
    assert gradcheck(small, [x])
    out = small(x)
    g = RNG.normal(size=out.shape)
    out.backward(g)
    # dL/dw[o, c, p, q] = Σ g[n, o, i, j] x[n, c, 2i + p, 2j + q]
    patches = x.data[:, :, :4, :4].reshape(1, 2, 2, 2, 2, 2)  # n c i p j q
    expected = np.einsum("noij,ncipjq->ocpq", g, patches)
    np.testing.assert_allclose(small.weight.grad.data, expected, rtol=1e-10)


def test_conv2d_module_errors():
    with pytest.raises(ValueError, match="in_channels"):
        nn.Conv2d(0, 2, 3)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 2, (3, 0))
    with pytest.raises(ValueError, match=re.escape("(1, 2, 5, 5)")):
        nn.Conv2d(3, 2, 3)(tg.ones(1, 2, 5, 5))


# -------------------------------------------------------------------------------- pools
def test_max_pool_module(float64):
    x = RNG.permutation(2 * 3 * 6 * 4).reshape(2, 3, 6, 4).astype(np.float64)
    pool = nn.MaxPool2d(2)
    assert pool.stride == (2, 2)
    np.testing.assert_array_equal(
        pool(t64(x)).data, x.reshape(2, 3, 3, 2, 2, 2).max(axis=(3, 5))
    )
    overlapping = nn.MaxPool2d(3, stride=1)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
    np.testing.assert_array_equal(overlapping(t64(x)).data, windows.max(axis=(-2, -1)))
    xt = t64(x, requires_grad=True)
    pool(xt).sum().backward()
    # each window's maximum gets the gradient, everything else none
    assert xt.grad.data.sum() == 2 * 3 * 3 * 2
    assert set(np.unique(xt.grad.data).tolist()) == {0.0, 1.0}
    assert gradcheck(overlapping, [xt])
    assert repr(pool) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"


def test_avg_pool_module():
    x = np.arange(32.0).reshape(2, 1, 4, 4)
    expected = x.reshape(2, 1, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(nn.AvgPool2d(2)(t64(x)).data, expected)


# ------------------------------------------------------------------------------- losses
@pytest.mark.parametrize(
    "module, fn, x, target",
    [
        (nn.MSELoss, F.mse_loss, [[0.5, 1.0]], [[1.0, 3.0]]),
        (nn.CrossEntropyLoss, F.cross_entropy, [[0.5, 1.0], [2.0, 0.0]], [1, 0]),
        (nn.NLLLoss, F.nll_loss, [[-0.5, -1.0], [-2.0, -0.1]], [1, 0]),
        (nn.BCELoss, F.binary_cross_entropy, [[0.2, 0.7]], [[0.0, 1.0]]),
        (
            nn.BCEWithLogitsLoss,
            F.binary_cross_entropy_with_logits,
            [[0.2, -3.0]],
            [[0.0, 1.0]],
        ),
    ],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_are_the_functions(module, fn, x, target, reduction):
    x, target = t64(x), np.asarray(target)
    np.testing.assert_array_equal(
        module(reduction)(x, target).data, fn(x, target, reduction).data
    )
    assert repr(module(reduction)) == f"{module.__name__}(reduction={reduction!r})"
    with pytest.raises(ValueError, match="'max'"):
        module("max")


# -------------------------------------------------------------------------- a training
def test_a_small_network_learns():
    tg.manual_seed(0)
    x = tg.randn(64, 2)
    y = (x.data[:, 0] * x.data[:, 1] > 0).astype(np.int64)  # XOR of the signs
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    losses = []
    for _ in range(150):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        for p in model.parameters():
            p.data = p.data - 0.5 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


# --------------------------------------------------------------------------------- init
def _fill_stats(fn, shape, **kwargs):
    tg.manual_seed(11)
    t = tg.zeros(*shape, dtype=np.float64)
    assert fn(t, **kwargs) is t
    return t.data


@pytest.mark.parametrize(
    "shape, fan_in, fan_out",
    [((300, 200), 300, 200), ((40, 20, 3, 3), 180, 360)],
)
def test_fan_convention(shape, fan_in, fan_out):
    """2-D weights are (in, out) as our Linear; more axes are (out, in, *kernel)."""
    data = _fill_stats(init.xavier_uniform_, shape)
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(data).max() <= bound and np.abs(data).max() > 0.99 * bound
    data = _fill_stats(init.xavier_normal_, shape, gain=2.0)
    assert data.std() == pytest.approx(2 * math.sqrt(2 / (fan_in + fan_out)), rel=0.03)
    for mode, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        data = _fill_stats(init.kaiming_uniform_, shape, mode=mode)
        bound = math.sqrt(3) * math.sqrt(2) / math.sqrt(fan)  # gain sqrt(2) at a=0
        assert np.abs(data).max() <= bound and np.abs(data).max() > 0.99 * bound
        data = _fill_stats(init.kaiming_normal_, shape, mode=mode, nonlinearity="relu")
        assert data.std() == pytest.approx(math.sqrt(2 / fan), rel=0.03)
        assert data.mean() == pytest.approx(0, abs=0.05 * math.sqrt(2 / fan))
    data = _fill_stats(init.kaiming_uniform_, shape, a=math.sqrt(5))
    assert np.abs(data).max() <= 1 / math.sqrt(fan_in)


def test_simple_fills_keep_dtype_and_object():
    t = nn.Parameter(np.zeros((100, 100), dtype=np.float32))
    assert init.uniform_(t, -2.0, 3.0) is t and t.dtype == np.float32
    assert t.data.min() >= -2 and t.data.max() <= 3 and t.data.max() > 2.9
    init.normal_(t, mean=3.0, std=0.5)
    assert t.data.mean() == pytest.approx(3.0, abs=0.02)
    assert t.data.std() == pytest.approx(0.5, rel=0.03)
    np.testing.assert_array_equal(init.zeros_(t).data, np.zeros((100, 100)))
    np.testing.assert_array_equal(init.ones_(t).data, np.ones((100, 100)))
    np.testing.assert_array_equal(
        init.constant_(t, 0.25).data, np.full((100, 100), 0.25)
    )
    assert t.dtype == np.float32 and t.requires_grad


def test_init_is_reproducible():
    a = _fill_stats(init.normal_, (5, 5))
    b = _fill_stats(init.normal_, (5, 5))
    np.testing.assert_array_equal(a, b)


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="'swish'"):
        init.calculate_gain("swish")


def test_init_errors():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(3,\)"):
        init.xavier_uniform_(tg.zeros(3))
    with pytest.raises(ValueError, match="'fan_avg'"):
        init.kaiming_normal_(tg.zeros(2, 2), mode="fan_avg")
    with pytest.raises(TypeError, match="expected a Tensor, got ndarray"):
        init.normal_(np.zeros(3))
    with pytest.raises(TypeError, match="int64"):
        init.ones_(tg.tensor([1, 2]))
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(tg.zeros(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="std"):
        init.normal_(tg.zeros(2), std=-1.0)
