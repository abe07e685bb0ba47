"""Sequence models, attention, the new layers and losses against PyTorch in float64:
forward values, input gradients and every parameter's gradient, with the same
weights copied in (ours are PyTorch's transposed where the layout differs)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def float64():
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    tg.manual_seed(0)
    yield
    tg.set_default_dtype(previous)


def both(array, requires_grad=True):
    """The same float64 values as (ours, torch's)."""
    array = np.asarray(array, dtype=np.float64)
    ours = tg.Tensor(array.copy(), requires_grad=requires_grad)
    theirs = torch.tensor(array, requires_grad=requires_grad)
    return ours, theirs


def normal(*shape):
    return RNG.normal(size=shape)


def close(ours, theirs, rtol=1e-9, atol=1e-11):
    ours = ours.data if isinstance(ours, tg.Tensor) else np.asarray(ours)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


def transposed(name):
    """Our 2-D weights are PyTorch's transposed (input-to-output layout)."""
    last = name.rsplit(".", 1)[-1]
    return last.startswith("weight") or last == "in_proj_weight"


def copy_params(ours, theirs, transpose=transposed):
    """Copy every parameter of ours into theirs, and check the names match."""
    ours_names = [name for name, _ in ours.named_parameters()]
    assert ours_names == [name for name, _ in theirs.named_parameters()]
    with torch.no_grad():
        for name, p in ours.named_parameters():
            value = p.data.T if transpose(name) and p.ndim == 2 else p.data
            theirs.get_parameter(name).copy_(torch.tensor(value))


def close_param_grads(ours, theirs, transpose=transposed):
    for name, p in ours.named_parameters():
        ref = theirs.get_parameter(name).grad
        grad = p.grad.data.T if transpose(name) and p.ndim == 2 else p.grad.data
        close(grad, ref)


def backward_both(outs, refs):
    """Backward of Σ <out, G> with a random cotangent G per output."""
    loss, ref_loss = 0, 0
    for out, ref in zip(outs, refs):
        g = RNG.normal(size=tuple(ref.shape))
        loss = loss + (out * g).sum()
        ref_loss = ref_loss + (ref * torch.tensor(g)).sum()
    loss.backward()
    ref_loss.backward()


# -------------------------------------------------------------------- recurrent layers
LAYERS = {
    "rnn_tanh": (
        lambda **kw: nn.RNN(**kw, nonlinearity="tanh"),
        lambda **kw: torch.nn.RNN(**kw, nonlinearity="tanh", dtype=torch.float64),
    ),
    "rnn_relu": (
        lambda **kw: nn.RNN(**kw, nonlinearity="relu"),
        lambda **kw: torch.nn.RNN(**kw, nonlinearity="relu", dtype=torch.float64),
    ),
    "lstm": (nn.LSTM, lambda **kw: torch.nn.LSTM(**kw, dtype=torch.float64)),
    "gru": (nn.GRU, lambda **kw: torch.nn.GRU(**kw, dtype=torch.float64)),
}


def make_layer(kind, **kwargs):
    ours_cls, theirs_cls = LAYERS[kind]
    ours, theirs = ours_cls(**kwargs), theirs_cls(**kwargs)
    copy_params(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_layer_two_layers(kind, batch_first, with_state):
    seq, batch, size, hidden, layers = 5, 3, 4, 6, 2
    ours, theirs = make_layer(
        kind,
        input_size=size,
        hidden_size=hidden,
        num_layers=layers,
        batch_first=batch_first,
    )
    shape = (batch, seq, size) if batch_first else (seq, batch, size)
    x, xt = both(normal(*shape))
    states = []
    if with_state:
        count = 2 if kind == "lstm" else 1
        states = [both(normal(layers, batch, hidden)) for _ in range(count)]
    ours_state = tuple(s for s, _ in states) if states else None
    theirs_state = tuple(s for _, s in states) if states else None
    if ours_state is not None and kind != "lstm":
        ours_state, theirs_state = ours_state[0], theirs_state[0]
    out, final = ours(x, ours_state)
    ref, ref_final = theirs(xt, theirs_state)
    finals = list(final) if kind == "lstm" else [final]
    ref_finals = list(ref_final) if kind == "lstm" else [ref_final]
    close(out, ref)
    for f, rf in zip(finals, ref_finals):
        assert f.shape == (layers, batch, hidden)
        close(f, rf)
    backward_both([out, *finals], [ref, *ref_finals])
    close(x.grad, xt.grad)
    for state, ref_state in states:
        close(state.grad, ref_state.grad)
    close_param_grads(ours, theirs)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_layer_without_bias_one_layer(kind):
    ours, theirs = make_layer(kind, input_size=3, hidden_size=4, bias=False)
    assert [n for n, _ in ours.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    x, xt = both(normal(6, 2, 3))
    out, _ = ours(x)
    ref, _ = theirs(xt)
    close(out, ref)
    backward_both([out], [ref])
    close(x.grad, xt.grad)
    close_param_grads(ours, theirs)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_layer_unbatched(kind):
    ours, theirs = make_layer(kind, input_size=3, hidden_size=4, num_layers=2)
    x, xt = both(normal(5, 3))
    if kind == "lstm":
        (h, ht), (c, ct) = both(normal(2, 4)), both(normal(2, 4))
        out, (h_n, c_n) = ours(x, (h, c))
        ref, (ref_h, ref_c) = theirs(xt, (ht, ct))
        finals, ref_finals = [h_n, c_n], [ref_h, ref_c]
    else:
        h, ht = both(normal(2, 4))
        out, h_n = ours(x, h)
        ref, ref_h = theirs(xt, ht)
        finals, ref_finals = [h_n], [ref_h]
    assert out.shape == (5, 4) and h_n.shape == (2, 4)
    close(out, ref)
    for f, rf in zip(finals, ref_finals):
        close(f, rf)
    backward_both([out, *finals], [ref, *ref_finals])
    close(x.grad, xt.grad)
    close(h.grad, ht.grad)
    close_param_grads(ours, theirs)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_recurrent_init_bounds_match_torch(kind):
    hidden = 16
    ours, _ = LAYERS[kind]
    layer = ours(input_size=5, hidden_size=hidden, num_layers=2)
    theirs = LAYERS[kind][1](input_size=5, hidden_size=hidden, num_layers=2)
    for (name, p), (_, q) in zip(layer.named_parameters(), theirs.named_parameters()):
        assert (
            p.shape == tuple(reversed(q.shape)) if p.ndim == 2 else p.shape == q.shape
        )
        bound = 1 / np.sqrt(hidden)
        assert np.abs(p.data).max() <= bound
        # a uniform sample fills most of its range, as torch's does
        assert np.abs(p.data).max() > 0.8 * bound, name


# ---------------------------------------------------------------------------- cells
CELLS = {
    "rnn_tanh": (
        lambda *a, **kw: nn.RNNCell(*a, **kw),
        lambda *a, **kw: torch.nn.RNNCell(*a, **kw, dtype=torch.float64),
    ),
    "rnn_relu": (
        lambda *a, **kw: nn.RNNCell(*a, **kw, nonlinearity="relu"),
        lambda *a, **kw: torch.nn.RNNCell(
            *a, **kw, nonlinearity="relu", dtype=torch.float64
        ),
    ),
    "lstm": (
        nn.LSTMCell,
        lambda *a, **kw: torch.nn.LSTMCell(*a, **kw, dtype=torch.float64),
    ),
    "gru": (
        nn.GRUCell,
        lambda *a, **kw: torch.nn.GRUCell(*a, **kw, dtype=torch.float64),
    ),
}


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cells(kind, with_state, bias, batched):
    ours = CELLS[kind][0](4, 5, bias=bias)
    theirs = CELLS[kind][1](4, 5, bias=bias)
    copy_params(ours, theirs)
    lead = (3,) if batched else ()
    x, xt = both(normal(*lead, 4))
    states = []
    if with_state:
        states = [both(normal(*lead, 5)) for _ in range(2 if kind == "lstm" else 1)]
    if kind == "lstm":
        args = (tuple(s for s, _ in states),) if states else ()
        ref_args = (tuple(s for _, s in states),) if states else ()
        outs, refs = list(ours(x, *args)), list(theirs(xt, *ref_args))
    else:
        args = (states[0][0],) if states else ()
        ref_args = (states[0][1],) if states else ()
        outs, refs = [ours(x, *args)], [theirs(xt, *ref_args)]
    for out, ref in zip(outs, refs):
        assert out.shape == (*lead, 5)
        close(out, ref)
    backward_both(outs, refs)
    close(x.grad, xt.grad)
    for state, ref_state in states:
        close(state.grad, ref_state.grad)
    close_param_grads(ours, theirs)


# ------------------------------------------------------------------------ attention
def sdpa_both(q, k, v, **kwargs):
    (q, qt), (k, kt), (v, vt) = both(q), both(k), both(v)
    ref_kwargs = dict(kwargs)
    mask = kwargs.get("attn_mask")
    if isinstance(mask, np.ndarray):
        ref_kwargs["attn_mask"] = torch.tensor(mask)
    out = F.scaled_dot_product_attention(q, k, v, **kwargs)
    ref = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, **ref_kwargs)
    close(out, ref)
    backward_both([out], [ref])
    for ours, theirs in ((q, qt), (k, kt), (v, vt)):
        close(ours.grad, theirs.grad)


@pytest.mark.parametrize(
    "case",
    ["plain", "bool_mask", "bool_mask_batched", "float_mask", "causal", "causal_rect"],
)
@pytest.mark.parametrize("scale", [None, 0.3])
def test_scaled_dot_product_attention(case, scale):
    batch, heads, length, source, dim, vdim = 2, 3, 4, 5, 6, 7
    if case == "causal_rect":
        source = 6
    q = normal(batch, heads, length, dim)
    k = normal(batch, heads, source, dim)
    v = normal(batch, heads, source, vdim)
    kwargs = {"scale": scale}
    if case == "bool_mask":
        mask = RNG.random((length, source)) < 0.7
        mask[:, 0] = True  # no row fully masked
        kwargs["attn_mask"] = mask
    elif case == "bool_mask_batched":
        mask = RNG.random((batch, 1, length, source)) < 0.6
        mask[..., 1] = True
        kwargs["attn_mask"] = mask
    elif case == "float_mask":
        kwargs["attn_mask"] = normal(length, source)
    elif case.startswith("causal"):
        kwargs["is_causal"] = True
    sdpa_both(q, k, v, **kwargs)


def test_scaled_dot_product_attention_float_mask_gets_a_gradient():
    (q, qt), (k, kt), (v, vt) = (
        both(normal(4, 3)),
        both(normal(5, 3)),
        both(normal(5, 2)),
    )
    mask, mask_t = both(normal(4, 5))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask_t)
    close(out, ref)
    backward_both([out], [ref])
    close(mask.grad, mask_t.grad)


def make_mha(embed, heads, bias=True, batch_first=True):
    ours = nn.MultiheadAttention(embed, heads, bias=bias, batch_first=batch_first)
    theirs = torch.nn.MultiheadAttention(
        embed, heads, bias=bias, batch_first=batch_first, dtype=torch.float64
    )
    copy_params(ours, theirs)
    return ours, theirs


MHA_CASES = [
    "self",
    "cross",
    "bool_mask",
    "float_mask",
    "mask_3d",
    "key_padding",
    "causal",
    "causal_and_padding",
    "no_weights",
    "per_head_weights",
    "no_bias",
]


@pytest.mark.parametrize("case", MHA_CASES)
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention(case, batch_first):
    batch, length, source, embed, heads = 2, 4, 5 if case == "cross" else 4, 6, 3
    ours, theirs = make_mha(
        embed, heads, bias=case != "no_bias", batch_first=batch_first
    )

    def seq(n):
        return normal(batch, n, embed) if batch_first else normal(n, batch, embed)

    (q, qt) = both(seq(length))
    (k, kt), (v, vt) = both(seq(source)), both(seq(source))
    kwargs, ref_kwargs = {}, {}
    if case == "bool_mask":
        mask = RNG.random((length, source)) < 0.3
        mask[:, 0] = False  # every query may attend somewhere
        kwargs["attn_mask"], ref_kwargs["attn_mask"] = mask, torch.tensor(mask)
    elif case == "float_mask":
        mask = normal(length, source)
        kwargs["attn_mask"], ref_kwargs["attn_mask"] = mask, torch.tensor(mask)
    elif case == "mask_3d":
        mask = RNG.random((batch * heads, length, source)) < 0.3
        mask[..., 1] = False
        kwargs["attn_mask"], ref_kwargs["attn_mask"] = mask, torch.tensor(mask)
    if case in ("key_padding", "causal_and_padding"):
        padding = np.zeros((batch, source), dtype=bool)
        padding[0, -2:] = True
        kwargs["key_padding_mask"] = padding
        ref_kwargs["key_padding_mask"] = torch.tensor(padding)
    if case.startswith("causal"):
        kwargs["is_causal"] = ref_kwargs["is_causal"] = True
        # PyTorch needs the causal mask itself with its is_causal hint
        future = ~np.tril(np.ones((length, source), dtype=bool))
        ref_kwargs["attn_mask"] = torch.tensor(future)
    if case == "no_weights":
        kwargs["need_weights"] = ref_kwargs["need_weights"] = False
    if case == "per_head_weights":
        kwargs["average_attn_weights"] = ref_kwargs["average_attn_weights"] = False
    out, weights = ours(q, k, v, **kwargs)
    ref, ref_weights = theirs(qt, kt, vt, **ref_kwargs)
    close(out, ref)
    if case == "no_weights":
        assert weights is None and ref_weights is None
        backward_both([out], [ref])
    else:
        expected = (
            (batch, heads, length, source)
            if case == "per_head_weights"
            else (
                batch,
                length,
                source,
            )
        )
        assert weights.shape == expected
        close(weights, ref_weights)
        backward_both([out, weights], [ref, ref_weights])
    for mine, theirs_input in ((q, qt), (k, kt), (v, vt)):
        close(mine.grad, theirs_input.grad)
    close_param_grads(ours, theirs)


def test_multihead_attention_unbatched_and_causal_alone_equals_the_mask():
    ours, theirs = make_mha(4, 2)
    x, xt = both(normal(5, 4))
    future = ~np.tril(np.ones((5, 5), dtype=bool))
    out, weights = ours(x, x, x, is_causal=True)
    ref, ref_weights = theirs(
        xt, xt, xt, attn_mask=torch.tensor(future), is_causal=True
    )
    assert out.shape == (5, 4) and weights.shape == (5, 5)
    close(out, ref)
    close(weights, ref_weights)
    backward_both([out], [ref])
    close(x.grad, xt.grad)
    close_param_grads(ours, theirs)
    with_mask, _ = ours(x, x, x, attn_mask=future)
    close(with_mask, ref)


def test_multihead_attention_init_matches_torch():
    ours = nn.MultiheadAttention(32, 4)
    theirs = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    assert [n for n, _ in ours.named_parameters()] == [
        n for n, _ in theirs.named_parameters()
    ]
    bound = np.sqrt(6 / (32 + 96))
    assert np.abs(ours.in_proj_weight.data).max() <= bound
    assert np.abs(ours.in_proj_weight.data).max() > 0.9 * bound
    assert not ours.in_proj_bias.data.any() and not ours.out_proj.bias.data.any()
    assert np.abs(ours.out_proj.weight.data).max() <= 1 / np.sqrt(32)


# -------------------------------------------------------------- conv and normalisation
@pytest.mark.parametrize(
    "kernel, stride, padding, bias",
    [(3, 1, 0, True), (3, 2, 1, True), (1, 1, 0, False), (4, 3, 2, True)],
)
def test_conv1d(kernel, stride, padding, bias):
    ours = nn.Conv1d(3, 4, kernel, stride=stride, padding=padding, bias=bias)
    theirs = torch.nn.Conv1d(
        3, 4, kernel, stride=stride, padding=padding, bias=bias, dtype=torch.float64
    )
    copy_params(ours, theirs, transpose=lambda name: False)
    x, xt = both(normal(2, 3, 9))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both([out], [ref])
    close(x.grad, xt.grad)
    close_param_grads(ours, theirs, transpose=lambda name: False)


def test_conv1d_unbatched():
    w, wt = both(normal(4, 3, 2))
    x, xt = both(normal(3, 6))
    out = F.conv1d(x, w, padding=1)
    ref = torch.nn.functional.conv1d(xt, wt, padding=1)
    close(out, ref)
    backward_both([out], [ref])
    close(x.grad, xt.grad)
    close(w.grad, wt.grad)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_2d_train_eval_and_running_stats(momentum):
    ours = nn.BatchNorm2d(3, momentum=momentum)
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(normal(3)))
        theirs.bias.copy_(torch.tensor(normal(3)))
    ours.weight.data = theirs.weight.detach().numpy().copy()
    ours.bias.data = theirs.bias.detach().numpy().copy()
    for _ in range(3):
        x, xt = both(normal(4, 3, 5, 2) * 2 + 1)
        out, ref = ours(x), theirs(xt)
        close(out, ref)
        backward_both([out], [ref])
        close(x.grad, xt.grad)
        close_param_grads(ours, theirs, transpose=lambda name: False)
        ours.zero_grad()
        theirs.zero_grad()
    close(ours.running_mean, theirs.running_mean)
    close(ours.running_var, theirs.running_var)
    assert int(ours.num_batches_tracked.data) == int(theirs.num_batches_tracked)
    ours.eval()
    theirs.eval()
    x, xt = both(normal(2, 3, 3, 3))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both([out], [ref])
    close(x.grad, xt.grad)


@pytest.mark.parametrize(
    "groups, shape", [(1, (2, 4, 3)), (2, (3, 4, 2, 3)), (4, (2, 4, 5))]
)
def test_group_norm(groups, shape):
    ours = nn.GroupNorm(groups, shape[1])
    theirs = torch.nn.GroupNorm(groups, shape[1], dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(normal(shape[1])))
        theirs.bias.copy_(torch.tensor(normal(shape[1])))
    ours.weight.data = theirs.weight.detach().numpy().copy()
    ours.bias.data = theirs.bias.detach().numpy().copy()
    x, xt = both(normal(*shape))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both([out], [ref])
    close(x.grad, xt.grad)
    close_param_grads(ours, theirs, transpose=lambda name: False)


# ------------------------------------------------------------------------------ losses
def torch_target(target):
    return torch.tensor(np.asarray(target, dtype=np.int64))


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (2, 4, 3, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cross_entropy(shape, reduction, ignore_index, label_smoothing):
    target_shape = shape[:1] + shape[2:]
    target = RNG.integers(0, shape[1], size=target_shape)
    target.flat[0] = ignore_index if ignore_index == 2 else -100
    target.flat[-1] = 1  # at least one target is kept
    logits, logits_t = both(normal(*shape))
    out = F.cross_entropy(
        logits,
        target,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    ref = torch.nn.functional.cross_entropy(
        logits_t,
        torch_target(target),
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    close(out, ref)
    backward_both([out], [ref])
    close(logits.grad, logits_t.grad)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_ignore_index(shape, reduction):
    target = RNG.integers(0, shape[1], size=shape[:1] + shape[2:])
    target.flat[::3] = 3
    logp, logp_t = both(normal(*shape))
    out = F.nll_loss(logp, target, reduction=reduction, ignore_index=3)
    ref = torch.nn.functional.nll_loss(
        logp_t, torch_target(target), reduction=reduction, ignore_index=3
    )
    close(out, ref)
    backward_both([out], [ref])
    close(logp.grad, logp_t.grad)


def test_loss_modules_take_ignore_index_and_label_smoothing():
    logits, logits_t = both(normal(5, 3))
    target = np.array([0, 1, -1, 2, 1])
    out = nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.2)(logits, target)
    ref = torch.nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.2)(
        logits_t, torch_target(target)
    )
    close(out, ref)
    out = nn.NLLLoss(ignore_index=-1)(logits, target)
    ref = torch.nn.NLLLoss(ignore_index=-1)(logits_t, torch_target(target))
    close(out, ref)


def test_all_targets_ignored_is_nan_as_torch():
    logits, logits_t = both(normal(2, 3))
    target = np.array([-100, -100])
    out = F.cross_entropy(logits, target)
    ref = torch.nn.functional.cross_entropy(logits_t, torch_target(target))
    assert np.isnan(out.item()) and torch.isnan(ref)
    assert F.cross_entropy(logits, target, reduction="sum").item() == 0.0


# ------------------------------------------------------------------ embedding, one_hot
@pytest.mark.parametrize("padding_idx", [0, 3, -2])
def test_embedding_padding_idx(padding_idx):
    ours = nn.Embedding(6, 4, padding_idx=padding_idx)
    theirs = torch.nn.Embedding(6, 4, padding_idx=padding_idx, dtype=torch.float64)
    row = padding_idx % 6
    assert not ours.weight.data[row].any()
    # a non-zero padding row is returned as is, but still gets no gradient
    ours.weight.data[row] = 1.5
    copy_params(ours, theirs, transpose=lambda name: False)
    indices = np.array([[0, 3, 4], [row, 5, row]])
    out, ref = ours(indices), theirs(torch_target(indices))
    close(out, ref)
    backward_both([out], [ref])
    close_param_grads(ours, theirs, transpose=lambda name: False)
    assert not ours.weight.grad.data[row].any()


def test_one_hot():
    indices = RNG.integers(0, 5, size=(3, 4))
    for num_classes in (5, 7, -1):
        out = F.one_hot(indices, num_classes)
        ref = torch.nn.functional.one_hot(torch_target(indices), num_classes)
        assert out.dtype == np.int64 and not out.requires_grad
        np.testing.assert_array_equal(out.data, ref.numpy())
