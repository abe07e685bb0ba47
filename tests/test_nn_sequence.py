"""Containers, buffers, `apply`, Conv1d, BatchNorm2d, GroupNorm, recurrent layers,
attention, one_hot and the new loss options: our own behaviour, errors, shapes and
gradcheck in float64 (PyTorch comparisons are in test_nn_sequence_torch.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F
from tinygrad_bp.testing import gradcheck

RNG = np.random.default_rng(11)


@pytest.fixture
def float64():
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    tg.manual_seed(0)
    yield
    tg.set_default_dtype(previous)


def t64(array, requires_grad=True):
    return tg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def normal(*shape):
    return RNG.normal(size=shape)


def with_parameters(module, fn):
    """`fn(module, *inputs)` as a function of (*inputs, *parameters), so gradcheck
    differentiates the parameters too (it passes copies of what it perturbs)."""
    names = [name for name, _ in module.named_parameters()]

    def call(*args):
        inputs, params = args[: len(args) - len(names)], args[len(args) - len(names) :]
        saved = []
        for name, value in zip(names, params):
            *path, last = name.split(".")
            owner = module
            for part in path:
                owner = owner._modules[part]
            saved.append((owner, last, owner._parameters[last]))
            owner._parameters[last] = value  # a test-only swap: gradcheck's copies
        try:
            return fn(module, *inputs)
        finally:
            for owner, last, value in saved:
                owner._parameters[last] = value

    return call, list(module.parameters())


# ------------------------------------------------------------------------ ModuleList
def test_module_list_indexing_iteration_and_registration():
    layers = [nn.Linear(2, 2) for _ in range(3)]
    blocks = nn.ModuleList(layers)
    assert len(blocks) == 3
    assert blocks[0] is layers[0] and blocks[-1] is layers[2]
    assert list(blocks) == layers
    assert [name for name, _ in blocks.named_children()] == ["0", "1", "2"]
    assert len(list(blocks.parameters())) == 6
    assert list(blocks.state_dict())[:2] == ["0.weight", "0.bias"]
    sliced = blocks[1:]
    assert isinstance(sliced, nn.ModuleList) and list(sliced) == layers[1:]
    assert len(nn.ModuleList()) == 0

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 1)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    net = Net()
    assert next(net.named_parameters())[0] == "blocks.0.weight"
    assert net(tg.ones(4, 2)).shape == (4, 1)


def test_module_list_append_extend_insert_set_and_delete_renumber():
    a, b, c, d = (nn.Linear(1, 1) for _ in range(4))
    blocks = nn.ModuleList([a])
    assert blocks.append(b) is blocks
    assert blocks.extend([c]) is blocks
    blocks.insert(1, d)
    assert list(blocks) == [a, d, b, c]
    assert list(blocks._modules) == ["0", "1", "2", "3"]
    blocks.insert(-1, a)  # list.insert semantics
    assert list(blocks) == [a, d, b, a, c]
    blocks[0] = c
    assert blocks[0] is c
    del blocks[1]
    assert list(blocks) == [c, b, a, c]
    assert list(blocks._modules) == ["0", "1", "2", "3"]
    del blocks[::2]
    assert list(blocks) == [b, c]
    # a module held twice has its parameters listed once
    assert len(list(nn.ModuleList([a, a]).parameters())) == 2


def test_module_list_errors_change_nothing():
    blocks = nn.ModuleList([nn.Linear(1, 1)])
    with pytest.raises(TypeError, match="expected a Module, got int"):
        blocks.append(3)
    with pytest.raises(TypeError, match="got str"):
        blocks.extend([nn.Tanh(), "relu"])
    assert len(blocks) == 1
    with pytest.raises(TypeError, match="use append"):
        blocks.extend(nn.Tanh())
    with pytest.raises(IndexError, match="index 1 is out of range for 1 modules"):
        blocks[1]
    with pytest.raises(IndexError, match="-2"):
        blocks[-2] = nn.Tanh()
    with pytest.raises(TypeError, match="ints or slices, got str"):
        blocks["0"]
    with pytest.raises(TypeError, match="expected a Module"):
        blocks.insert(0, None)
    with pytest.raises(NotImplementedError, match="ModuleList does not define forward"):
        blocks(tg.ones(1))
    assert len(blocks) == 1


# ------------------------------------------------------------------------ ModuleDict
def test_module_dict_access_views_and_update():
    heads = nn.ModuleDict({"a": nn.Linear(2, 3)})
    heads["b"] = nn.Linear(2, 1)
    heads.update([("c", nn.Tanh())])
    heads.update(nn.ModuleDict({"d": nn.ReLU()}))
    assert heads.keys() == ["a", "b", "c", "d"] and list(heads) == heads.keys()
    assert [type(m).__name__ for m in heads.values()] == [
        "Linear",
        "Linear",
        "Tanh",
        "ReLU",
    ]
    assert heads.items()[1] == ("b", heads["b"])
    assert "a" in heads and "z" not in heads and len(heads) == 4
    assert [n for n, _ in heads.named_parameters()] == [
        "a.weight",
        "a.bias",
        "b.weight",
        "b.bias",
    ]
    replacement = nn.Linear(2, 2)
    heads.update({"a": replacement})
    assert heads["a"] is replacement and heads.keys()[0] == "a"
    assert isinstance(heads.pop("c"), nn.Tanh) and "c" not in heads
    del heads["d"]
    assert heads.keys() == ["a", "b"]
    heads.clear()
    assert len(heads) == 0 and list(heads.parameters()) == []


def test_module_dict_errors_change_nothing():
    heads = nn.ModuleDict({"a": nn.Tanh()})
    with pytest.raises(KeyError, match="no module 'z'.*keys: \\['a'\\]"):
        heads["z"]
    with pytest.raises(TypeError, match="value for 'b' is a int"):
        heads["b"] = 1
    with pytest.raises(TypeError, match="value for 'c' is a str"):
        heads.update({"b": nn.ReLU(), "c": "relu"})
    with pytest.raises(KeyError, match="contain no '.'"):
        heads.update({"b": nn.ReLU(), "x.y": nn.ReLU()})
    with pytest.raises(KeyError, match="attribute 'keys' already exists"):
        heads["keys"] = nn.ReLU()
    with pytest.raises(TypeError, match="pairs"):
        heads.update(["ab"])
    with pytest.raises(KeyError, match="no module 'z'"):
        del heads["z"]
    assert heads.keys() == ["a"]


# ------------------------------------------------------------------ buffers and apply
def test_non_persistent_buffer_is_left_out_of_state_dict():
    m = nn.BatchNorm1d(2)
    m.register_buffer("cache", np.ones(3), persistent=False)
    assert "cache" not in m.state_dict()
    assert [n for n, _ in m.named_buffers()][-1] == "cache"
    assert isinstance(m.cache, tg.Tensor) and not m.cache.requires_grad
    # loading needs no value for it, and a value for it is unexpected
    m.load_state_dict(nn.BatchNorm1d(2).state_dict())
    with pytest.raises(KeyError, match="unexpected keys \\['cache'\\]"):
        m.load_state_dict({**nn.BatchNorm1d(2).state_dict(), "cache": np.ones(3)})
    # reassigning keeps it non-persistent; registering again as persistent saves it
    m.cache = np.zeros(3)
    assert "cache" not in m.state_dict()
    m.register_buffer("cache", np.zeros(3))
    assert "cache" in m.state_dict()
    outer = nn.Sequential(m)
    m.register_buffer("cache", np.zeros(3), persistent=False)
    assert (
        "0.cache" not in outer.state_dict() and "0.running_mean" in outer.state_dict()
    )


def test_non_persistent_flag_goes_with_the_name():
    m = nn.Module()
    m.register_buffer("x", np.ones(1), persistent=False)
    m.x = nn.Parameter(np.ones(1))  # now a parameter: saved
    assert list(m.state_dict()) == ["x"]
    del m.x
    m.register_buffer("x", np.ones(1))
    assert list(m.state_dict()) == ["x"]
    with pytest.raises(TypeError, match="persistent must be a bool"):
        m.register_buffer("y", np.ones(1), persistent="no")
    assert "y" not in m._buffers


def test_apply_visits_children_first_then_self_and_returns_self():
    inner = nn.Sequential(nn.Linear(1, 1), nn.Tanh())
    model = nn.Sequential(inner, nn.ReLU())
    seen = []
    assert model.apply(lambda m: seen.append(m)) is model
    assert seen == [inner[0], inner[1], inner, model[1], model]
    with pytest.raises(TypeError, match="must be callable"):
        model.apply(3)


def test_apply_for_initialisation():
    def init_weights(m):
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.ones_(m.weight)

    model = nn.Sequential(nn.Linear(2, 2), nn.ModuleList([nn.Conv1d(1, 1, 2)]))
    model.apply(init_weights)
    assert (model[0].weight.data == 1).all() and (model[1][0].weight.data == 1).all()


# --------------------------------------------------------------------------- Conv1d
def conv1d_loops(x, w, b, stride, padding):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    n, _, length = x.shape
    o, _, k = w.shape
    cols = (length - k) // stride + 1
    out = np.zeros((n, o, cols))
    for i in range(cols):
        window = x[:, :, i * stride : i * stride + k]
        out[:, :, i] = np.einsum("ncp,ocp->no", window, w)
    return out if b is None else out + b[None, :, None]


@pytest.mark.parametrize(
    "stride, padding, bias", [(1, 0, True), (2, 1, False), (3, 2, True)]
)
def test_conv1d_matches_loops_and_gradcheck(float64, stride, padding, bias):
    conv = nn.Conv1d(2, 3, 3, stride=stride, padding=padding, bias=bias)
    x = t64(normal(2, 2, 8))
    b = conv.bias.data if bias else None
    np.testing.assert_allclose(
        conv(x).data, conv1d_loops(x.data, conv.weight.data, b, stride, padding)
    )
    call, params = with_parameters(conv, lambda m, x: m(x))
    assert gradcheck(call, [x, *params])


def test_conv1d_init_repr_and_errors():
    conv = nn.Conv1d(4, 2, 5, padding=1, bias=False)
    assert conv.weight.shape == (2, 4, 5) and conv.bias is None
    assert np.abs(conv.weight.data).max() <= 1 / np.sqrt(20)
    assert repr(conv) == "Conv1d(4, 2, kernel_size=5, stride=1, padding=1, bias=False)"
    with pytest.raises(ValueError, match=re.escape("(2, 3, 8)")):
        conv(tg.ones(2, 3, 8))
    with pytest.raises(ValueError, match="kernel 5 is longer"):
        conv(tg.ones(1, 4, 2))
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        nn.Conv1d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv1d(1, 1, (2, 2))
    assert F.conv1d(tg.ones(2, 5), tg.ones(1, 2, 3)).shape == (1, 3)


# ---------------------------------------------------------- BatchNorm2d and GroupNorm
def test_batch_norm_2d_statistics_per_channel(float64):
    bn = nn.BatchNorm2d(3)
    x = normal(4, 3, 2, 5) * 3 + 2
    out = bn(t64(x))
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out.data, (x - mean) / np.sqrt(var + 1e-5))
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * mean.reshape(-1))
    np.testing.assert_allclose(
        bn.running_var.data, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1)
    )
    call, params = with_parameters(bn, lambda m, x: m(x))
    assert gradcheck(call, [t64(normal(3, 3, 2, 2)), *params])
    assert gradcheck(lambda v: bn.eval()(v), [t64(normal(2, 3, 2, 2))])


def test_batch_norm_layers_check_their_input_rank_and_change_nothing():
    bn2, bn1 = nn.BatchNorm2d(3), nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=re.escape("(N, C, H, W), got (4, 3)")):
        bn2(tg.ones(4, 3))
    with pytest.raises(
        ValueError, match=re.escape("(N, C) or (N, C, L), got (2, 3, 2, 2)")
    ):
        bn1(tg.ones(2, 3, 2, 2))
    assert int(bn2.num_batches_tracked.data) == 0 and not bn2.running_mean.data.any()
    assert repr(bn2) == "BatchNorm2d(3, eps=1e-05, momentum=0.1)"


def test_group_norm_matches_numpy_and_gradcheck(float64):
    norm = nn.GroupNorm(2, 4)
    norm.weight.data = normal(4)
    norm.bias.data = normal(4)
    x = normal(3, 4, 5)
    grouped = x.reshape(3, 2, 10)
    expected = (grouped - grouped.mean(axis=2, keepdims=True)) / np.sqrt(
        grouped.var(axis=2, keepdims=True) + 1e-5
    )
    expected = (
        expected.reshape(x.shape) * norm.weight.data[:, None] + norm.bias.data[:, None]
    )
    np.testing.assert_allclose(norm(t64(x)).data, expected, rtol=1e-12)
    call, params = with_parameters(norm, lambda m, x: m(x))
    assert gradcheck(call, [t64(normal(2, 4, 3)), *params])
    assert norm.eval()(t64(x)).data == pytest.approx(expected)  # no running statistics


def test_group_norm_errors_and_no_affine():
    with pytest.raises(
        ValueError, match="num_channels 6 is not divisible by num_groups 4"
    ):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=re.escape("(N, 4, ...), got (2, 3, 5)")):
        nn.GroupNorm(2, 4)(tg.ones(2, 3, 5))
    with pytest.raises(ValueError, match="dividing the 4 channels"):
        F.group_norm(tg.ones(2, 4), 3)
    plain = nn.GroupNorm(1, 2, affine=False)
    assert list(plain.parameters()) == [] and plain(tg.randn(2, 2, 3)).shape == (
        2,
        2,
        3,
    )
    assert repr(plain) == "GroupNorm(1, 2, eps=1e-05, affine=False)"


# ------------------------------------------------------------------------ recurrent
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recurrent_layer_parameter_names_shapes_and_dtype(name):
    layer = getattr(nn, name)(3, 5, num_layers=2)
    gates = GATES[name] * 5
    assert {n: p.shape for n, p in layer.named_parameters()} == {
        "weight_ih_l0": (3, gates),
        "weight_hh_l0": (5, gates),
        "bias_ih_l0": (gates,),
        "bias_hh_l0": (gates,),
        "weight_ih_l1": (5, gates),
        "weight_hh_l1": (5, gates),
        "bias_ih_l1": (gates,),
        "bias_hh_l1": (gates,),
    }
    assert all(p.dtype == np.float32 for p in layer.parameters())
    assert all(np.abs(p.data).max() <= 1 / np.sqrt(5) for p in layer.parameters())


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_parameter_names_and_shapes(name):
    cell = getattr(nn, name)(3, 4, bias=False)
    gates = GATES[name[:-4]] * 4
    assert {n: p.shape for n, p in cell.named_parameters()} == {
        "weight_ih": (3, gates),
        "weight_hh": (4, gates),
    }


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_recurrent_layer_output_shapes(name, batch_first):
    layer = getattr(nn, name)(3, 5, num_layers=3, batch_first=batch_first)
    x = tg.randn(2, 7, 3) if batch_first else tg.randn(7, 2, 3)
    output, state = layer(x)
    assert output.shape == ((2, 7, 5) if batch_first else (7, 2, 5))
    states = state if name == "LSTM" else (state,)
    assert all(s.shape == (3, 2, 5) for s in states)
    # the last time step of the output is the top layer's final state
    last = output[:, -1] if batch_first else output[-1]
    np.testing.assert_allclose(last.data, states[0][-1].data)


@pytest.mark.parametrize(
    "layer_cls, cell_cls, nonlinearity",
    [
        (nn.RNN, nn.RNNCell, "tanh"),
        (nn.RNN, nn.RNNCell, "relu"),
        (nn.LSTM, nn.LSTMCell, None),
        (nn.GRU, nn.GRUCell, None),
    ],
)
def test_layer_is_the_cell_stepped_over_time(
    float64, layer_cls, cell_cls, nonlinearity
):
    kwargs = {"nonlinearity": nonlinearity} if nonlinearity else {}
    layer = layer_cls(3, 4, **kwargs)
    cell = cell_cls(3, 4, **kwargs)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data = getattr(layer, name + "_l0").data.copy()
    x = normal(6, 2, 3)
    output, _ = layer(t64(x))
    state = None
    for t in range(6):
        state = cell(t64(x[t]), state)
        h = state[0] if isinstance(state, tuple) else state
        np.testing.assert_allclose(output.data[t], h.data, rtol=1e-12)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recurrent_layer_gradcheck_two_layers_with_state(float64, name):
    layer = getattr(nn, name)(2, 3, num_layers=2, batch_first=True)
    x = t64(normal(2, 4, 2))
    h0 = t64(normal(2, 2, 3))
    if name == "LSTM":
        c0 = t64(normal(2, 2, 3))
        call, params = with_parameters(layer, lambda m, x, h, c: m(x, (h, c)))
        inputs = [x, h0, c0]
    else:
        call, params = with_parameters(layer, lambda m, x, h: m(x, h))
        inputs = [x, h0]

    def flat(*args):
        output, state = call(*args)
        states = state if name == "LSTM" else (state,)
        return (output, *states)

    assert gradcheck(flat, [*inputs, *params])


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_gradcheck(float64, name):
    cell = getattr(nn, name)(3, 2)
    x = t64(normal(4, 3))
    if name == "LSTMCell":
        call, params = with_parameters(cell, lambda m, x, h, c: m(x, (h, c)))
        inputs = [x, t64(normal(4, 2)), t64(normal(4, 2))]
    else:
        call, params = with_parameters(cell, lambda m, x, h: m(x, h))
        inputs = [x, t64(normal(4, 2))]
    assert gradcheck(call, [*inputs, *params])


def test_relu_rnn_and_unbatched_inputs():
    rnn = nn.RNN(2, 3, nonlinearity="relu", num_layers=2)
    output, h_n = rnn(tg.randn(5, 2))
    assert output.shape == (5, 3) and h_n.shape == (2, 3)
    assert (output.data >= 0).all()
    assert nn.LSTMCell(2, 3)(tg.randn(2))[1].shape == (3,)
    assert repr(rnn) == "RNN(2, 3, num_layers=2, nonlinearity='relu')"


def test_recurrent_dropout_between_layers_only_in_training():
    tg.manual_seed(0)
    lstm = nn.LSTM(2, 4, num_layers=2, dropout=0.5)
    x = tg.randn(3, 2, 2)
    tg.manual_seed(1)
    a, _ = lstm(x)
    tg.manual_seed(1)
    b, _ = lstm(x)
    np.testing.assert_array_equal(a.data, b.data)  # reproducible under manual_seed
    lstm.eval()
    c, _ = lstm(x)
    d, _ = lstm(x)
    np.testing.assert_array_equal(c.data, d.data)
    assert not np.allclose(a.data, c.data)
    assert "dropout=0.5" in repr(lstm)


def test_recurrent_errors_name_the_problem():
    rnn = nn.RNN(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=re.escape("input = 3, got (5, 2, 2)")):
        rnn(tg.ones(5, 2, 2))
    with pytest.raises(
        ValueError, match=re.escape("h_0 has shape (1, 2, 4), expected (2, 2, 4)")
    ):
        rnn(tg.ones(5, 2, 3), tg.zeros(1, 2, 4))
    with pytest.raises(TypeError, match="tuple \\('h_0', 'c_0'\\)"):
        nn.LSTM(3, 4)(tg.ones(5, 2, 3), tg.zeros(1, 2, 4))
    with pytest.raises(TypeError, match="input must be floating, got dtype int64"):
        rnn(np.ones((5, 2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="sequence is empty"):
        rnn(tg.ones(0, 2, 3))
    with pytest.raises(
        ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'gelu'"
    ):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got 0"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match="num_layers"):
        nn.LSTM(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, dropout=1.0)
    with pytest.raises(ValueError, match=re.escape("(batch, 3) or (3,), got (2, 4)")):
        nn.GRUCell(3, 4)(tg.ones(2, 4))
    with pytest.raises(
        ValueError, match=re.escape("c has shape (2, 3), expected (2, 4)")
    ):
        nn.LSTMCell(3, 4)(tg.ones(2, 3), (tg.zeros(2, 4), tg.zeros(2, 3)))


# ------------------------------------------------------------------------ attention
def test_sdpa_matches_numpy_and_gradcheck(float64):
    q, k, v = normal(2, 3, 4), normal(2, 5, 4), normal(2, 5, 2)
    mask = RNG.random((3, 5)) < 0.7
    mask[:, 0] = True
    scores = q @ k.transpose(0, 2, 1) / 2.0
    scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    out = F.scaled_dot_product_attention(t64(q), t64(k), t64(v), attn_mask=mask)
    np.testing.assert_allclose(out.data, weights @ v, rtol=1e-12)
    for kwargs in ({"attn_mask": mask}, {"is_causal": True, "scale": 0.7}, {}):
        assert gradcheck(
            lambda q, k, v, kw=kwargs: F.scaled_dot_product_attention(q, k, v, **kw),
            [t64(q), t64(k), t64(v)],
        )
    float_mask = t64(normal(3, 5))
    assert gradcheck(
        lambda q, m: F.scaled_dot_product_attention(q, t64(k), t64(v), attn_mask=m),
        [t64(q), float_mask],
    )


def test_sdpa_dropout_is_seeded_and_errors_name_the_problem():
    q = tg.randn(2, 3, 4)
    tg.manual_seed(3)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    tg.manual_seed(3)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(TypeError, match="boolean or floating, got dtype int64"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), dtype=int))
    with pytest.raises(ValueError, match=re.escape("shape (2, 2) does not broadcast")):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(
            q, q, q, attn_mask=np.ones((3, 3), dtype=bool), is_causal=True
        )
    with pytest.raises(
        ValueError, match=re.escape("query (2, 3, 4) and key (2, 3, 5)")
    ):
        F.scaled_dot_product_attention(q, tg.ones(2, 3, 5), q)
    with pytest.raises(ValueError, match="same S"):
        F.scaled_dot_product_attention(q, q, tg.ones(2, 4, 4))


def test_multihead_attention_shapes_weights_and_gradcheck(float64):
    mha = nn.MultiheadAttention(4, 2)
    q, kv = t64(normal(2, 3, 4)), t64(normal(2, 5, 4))
    out, weights = mha(q, kv, kv)
    assert out.shape == (2, 3, 4) and weights.shape == (2, 3, 5)
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0)
    out2, none = mha(q, kv, kv, need_weights=False)
    assert none is None
    np.testing.assert_allclose(out2.data, out.data)
    mask = np.zeros((3, 5), dtype=bool)
    mask[:, -1] = True  # True: may not attend
    _, masked = mha(q, kv, kv, attn_mask=mask)
    assert not masked.data[..., -1].any()
    call, params = with_parameters(
        mha, lambda m, q, k, v: m(q, k, v, attn_mask=mask, is_causal=False)
    )
    assert gradcheck(call, [q, kv, t64(normal(2, 5, 4)), *params])
    causal, _ = with_parameters(mha, lambda m, x: m(x, x, x, is_causal=True))
    assert gradcheck(causal, [t64(normal(2, 3, 4)), *params])


def test_multihead_attention_sequence_first_and_dropout():
    mha = nn.MultiheadAttention(4, 1, batch_first=False, dropout=0.5)
    x = tg.randn(6, 2, 4)  # (L, batch, E)
    out, weights = mha(x, x, x)
    assert out.shape == (6, 2, 4) and weights.shape == (2, 6, 6)
    mha.eval()
    a, _ = mha(x, x, x)
    b, _ = mha(x, x, x)
    np.testing.assert_array_equal(a.data, b.data)
    assert "batch_first=False" in repr(mha)
    assert nn.MultiheadAttention(4, 2, bias=False).in_proj_bias is None


def test_multihead_attention_errors_name_the_problem():
    with pytest.raises(ValueError, match="embed_dim 6 is not divisible by num_heads 4"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        nn.MultiheadAttention(6, 0)
    mha = nn.MultiheadAttention(4, 2)
    x = tg.ones(2, 3, 4)
    with pytest.raises(ValueError, match=re.escape("got query (2, 3, 5)")):
        mha(tg.ones(2, 3, 5), x, x)
    with pytest.raises(ValueError, match="different batch sizes 2 and 1"):
        mha(x, tg.ones(1, 3, 4), tg.ones(1, 3, 4))
    with pytest.raises(
        ValueError, match=re.escape("attn_mask must have shape (L, S) = (3, 3)")
    ):
        mha(x, x, x, attn_mask=np.zeros((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        mha(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="attn_mask must be boolean or floating"):
        mha(x, x, x, attn_mask=np.zeros((3, 3), dtype=int))


# ------------------------------------------------------------------ losses, one_hot
LOGITS = normal(5, 4)


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def test_ignore_index_zeroes_the_loss_and_mean_counts_the_others():
    target = np.array([0, -100, 3, 1, -100])
    per = F.cross_entropy(t64(LOGITS), target, reduction="none")
    logp = log_softmax(LOGITS, 1)
    kept = target != -100
    expected = np.where(kept, -logp[np.arange(5), np.where(kept, target, 0)], 0.0)
    np.testing.assert_allclose(per.data, expected)
    mean = F.cross_entropy(t64(LOGITS), target)
    assert mean.item() == pytest.approx(expected.sum() / 3)
    assert gradcheck(lambda v: F.cross_entropy(v, target), [t64(LOGITS)])
    logits = t64(LOGITS)
    F.cross_entropy(logits, target).backward()
    assert not logits.grad.data[~kept].any()


def test_label_smoothing_formula_and_gradcheck():
    target = np.array([0, 2, 3, 1, 2])
    logp = log_softmax(LOGITS, 1)
    nll = -logp[np.arange(5), target]
    expected = 0.7 * nll + 0.3 * (-logp.mean(axis=1))
    out = F.cross_entropy(t64(LOGITS), target, reduction="none", label_smoothing=0.3)
    np.testing.assert_allclose(out.data, expected)
    assert gradcheck(
        lambda v: F.cross_entropy(v, target, ignore_index=2, label_smoothing=0.3),
        [t64(LOGITS)],
    )


def test_loss_option_errors():
    with pytest.raises(
        ValueError, match="label_smoothing must be in \\[0, 1\\], got 1.5"
    ):
        F.cross_entropy(t64(LOGITS), [0, 1, 2, 3, 0], label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index must be an int, got 0.5"):
        F.nll_loss(t64(LOGITS), [0, 1, 2, 3, 0], ignore_index=0.5)
    with pytest.raises(
        IndexError, match="target 7 at position \\(1,\\).*ignore_index 3"
    ):
        F.cross_entropy(t64(LOGITS), [0, 7, 2, 3, 0], ignore_index=3)
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)
    assert (
        repr(nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1))
        == "CrossEntropyLoss(reduction='mean', ignore_index=0, label_smoothing=0.1)"
    )
    assert repr(nn.NLLLoss()) == "NLLLoss(reduction='mean')"


def test_one_hot_values_and_errors():
    out = F.one_hot(np.array([[1, 0], [2, 2]]), 4)
    assert out.shape == (2, 2, 4) and out.dtype == np.int64
    assert out.tolist()[1][0] == [0, 0, 1, 0]
    assert F.one_hot(tg.tensor([3, 1])).shape == (2, 4)
    assert F.one_hot(np.array(2), 3).tolist() == [0, 0, 1]
    with pytest.raises(TypeError, match="indices must be integers, got dtype float64"):
        F.one_hot(np.array([1.0]), 3)
    with pytest.raises(
        IndexError, match="index 3 at position \\(1,\\) is out of range for 3"
    ):
        F.one_hot(np.array([0, 3]), 3)
    with pytest.raises(IndexError, match="index -1"):
        F.one_hot(np.array([-1]), 3)
    with pytest.raises(ValueError, match="cannot infer num_classes"):
        F.one_hot(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="num_classes must be positive"):
        F.one_hot(np.array([0]), 0)


# ------------------------------------------------------------------------ Embedding
def test_embedding_padding_idx_row_zero_no_gradient(float64):
    emb = nn.Embedding(5, 3, padding_idx=-1)
    assert emb.padding_idx == 4 and not emb.weight.data[4].any()
    assert repr(emb) == "Embedding(5, 3, padding_idx=4)"
    out = emb(np.array([[4, 1], [1, 4]]))
    (out * t64(normal(2, 2, 3), requires_grad=False)).sum().backward()
    assert not emb.weight.grad.data[4].any() and emb.weight.grad.data[1].any()
    assert not emb.weight.grad.data[[0, 2, 3]].any()
    with pytest.raises(ValueError, match="padding_idx 5 is out of range for 5"):
        nn.Embedding(5, 3, padding_idx=5)
    with pytest.raises(TypeError, match="padding_idx must be an int or None"):
        nn.Embedding(5, 3, padding_idx=1.0)


def test_new_names_are_exported():
    for name in [
        "ModuleList",
        "ModuleDict",
        "Conv1d",
        "BatchNorm2d",
        "GroupNorm",
        "RNNCell",
        "LSTMCell",
        "GRUCell",
        "RNN",
        "LSTM",
        "GRU",
        "MultiheadAttention",
    ]:
        assert name in nn.__all__ and isinstance(getattr(nn, name), type)
    for name in ["conv1d", "group_norm", "one_hot", "scaled_dot_product_attention"]:
        assert name in F.__all__ and callable(getattr(F, name))
    assert nn.Linear(2, 3, bias=False).bias is None


def test_float32_stays_float32_through_the_new_layers():
    x = tg.randn(2, 3, 4)  # float32, as the parameters
    assert nn.GRU(4, 5, batch_first=True)(x)[0].dtype == np.float32
    assert nn.LSTM(4, 5)(x)[1][1].dtype == np.float32
    assert nn.Conv1d(3, 2, 2)(x).dtype == np.float32
    assert nn.GroupNorm(1, 3)(x).dtype == np.float32
    assert nn.BatchNorm2d(2)(tg.randn(2, 2, 2, 2)).dtype == np.float32
    padding = np.zeros((2, 3), dtype=bool)
    out, weights = nn.MultiheadAttention(4, 2)(
        x, x, x, attn_mask=np.zeros((3, 3)), key_padding_mask=padding, is_causal=True
    )
    assert out.dtype == weights.dtype == np.float32
    sdpa = F.scaled_dot_product_attention(x, x, x, attn_mask=np.zeros((3, 3)))
    assert sdpa.dtype == np.float32
