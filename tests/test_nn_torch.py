"""nn against PyTorch in float64: forward values, input and parameter gradients."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(2024)


@pytest.fixture(autouse=True)
def float64():
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    yield
    tg.set_default_dtype(previous)


def both(array, requires_grad=True):
    """The same float64 values as (ours, torch's)."""
    array = np.asarray(array, dtype=np.float64)
    ours = tg.Tensor(array.copy(), requires_grad=requires_grad)
    theirs = torch.tensor(array, requires_grad=requires_grad)
    return ours, theirs


def close(ours, theirs, rtol=1e-10, atol=1e-12):
    ours = ours.data if isinstance(ours, tg.Tensor) else np.asarray(ours)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=rtol, atol=atol)


def backward_both(out, ref):
    g = RNG.normal(size=ref.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))


def copy_params(ours, theirs, transpose=()):
    """Copy our parameters into torch's module (transposing the names in `transpose`)."""
    with torch.no_grad():
        for name, p in ours.named_parameters():
            value = p.data.T if name in transpose else p.data
            theirs.get_parameter(name).copy_(torch.tensor(value))


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    ours = nn.Linear(4, 3, bias=bias)
    theirs = torch.nn.Linear(4, 3, bias=bias, dtype=torch.float64)
    copy_params(ours, theirs, transpose={"weight"})
    x, xt = both(RNG.normal(size=(5, 4)))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)
    close(ours.weight.grad.data.T, theirs.weight.grad)
    if bias:
        close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize(
    "kernel, stride, padding, bias",
    [
        (3, 1, 0, True),
        (3, 2, 1, True),
        ((2, 3), (1, 2), (1, 0), False),
        (1, 1, 0, True),
    ],
)
def test_conv2d(kernel, stride, padding, bias):
    ours = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, bias=bias)
    theirs = torch.nn.Conv2d(
        2, 3, kernel, stride=stride, padding=padding, bias=bias, dtype=torch.float64
    )
    copy_params(ours, theirs)
    x, xt = both(RNG.normal(size=(2, 2, 6, 7)))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)
    close(ours.weight.grad, theirs.weight.grad)
    if bias:
        close(ours.bias.grad, theirs.bias.grad)


def test_conv2d_init_bounds_match_torch():
    ours = nn.Conv2d(3, 200, (3, 2))
    theirs = torch.nn.Conv2d(3, 200, (3, 2), dtype=torch.float64)
    for name in ("weight", "bias"):
        ours_max = np.abs(getattr(ours, name).data).max()
        torch_max = theirs.get_parameter(name).detach().abs().max().item()
        assert ours_max == pytest.approx(torch_max, rel=0.05)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 1), ((2, 3), (2, 1))])
def test_max_pool2d(kernel, stride):
    # distinct values: torch and we split ties differently, so avoid them
    values = RNG.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7) / 10.0
    x, xt = both(values)
    out = nn.MaxPool2d(kernel, stride)(x)
    ref = torch.nn.MaxPool2d(kernel, stride)(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)


def test_avg_pool2d():
    x, xt = both(RNG.normal(size=(2, 3, 6, 6)))
    out, ref = nn.AvgPool2d(3, 2)(x), torch.nn.AvgPool2d(3, 2)(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)


def test_layer_norm():
    ours = nn.LayerNorm((3, 4))
    theirs = torch.nn.LayerNorm((3, 4), dtype=torch.float64)
    ours.weight.data = RNG.normal(size=(3, 4))
    ours.bias.data = RNG.normal(size=(3, 4))
    copy_params(ours, theirs)
    x, xt = both(RNG.normal(size=(2, 3, 4)))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad, rtol=1e-8)
    close(ours.weight.grad, theirs.weight.grad)
    close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_train_eval_and_running_stats(shape, momentum):
    ours = nn.BatchNorm1d(3, momentum=momentum)
    theirs = torch.nn.BatchNorm1d(3, momentum=momentum, dtype=torch.float64)
    ours.weight.data = RNG.normal(size=3)
    ours.bias.data = RNG.normal(size=3)
    copy_params(ours, theirs)
    for _ in range(3):
        x, xt = both(RNG.normal(size=shape) * 2 + 0.5)
        out, ref = ours(x), theirs(xt)
        close(out, ref, rtol=1e-9)
        backward_both(out, ref)
        close(x.grad, xt.grad, rtol=1e-8, atol=1e-10)
    close(ours.weight.grad, theirs.weight.grad, rtol=1e-9)
    close(ours.bias.grad, theirs.bias.grad)
    state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, state[name].numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    x, xt = both(RNG.normal(size=shape))
    out, ref = ours(x), theirs(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)


def test_embedding():
    ours = nn.Embedding(6, 3)
    theirs = torch.nn.Embedding(6, 3, dtype=torch.float64)
    copy_params(ours, theirs)
    indices = np.array([[0, 5, 2], [2, 2, 1]])
    out, ref = ours(indices), theirs(torch.tensor(indices))
    close(out, ref)
    backward_both(out, ref)
    close(ours.weight.grad, theirs.weight.grad)


def test_dropout_p_zero_and_eval():
    x, xt = both(RNG.normal(size=(4, 5)))
    for ours, theirs in [
        (nn.Dropout(0.0), torch.nn.Dropout(0.0)),
        (nn.Dropout(0.7).eval(), torch.nn.Dropout(0.7).eval()),
    ]:
        out, ref = ours(x), theirs(xt)
        close(out, ref)
    backward_both(ours(x) * 1.0, theirs(xt) * 1.0)
    close(x.grad, xt.grad)


@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        (nn.ReLU, torch.nn.ReLU, {}),
        (nn.Sigmoid, torch.nn.Sigmoid, {}),
        (nn.Tanh, torch.nn.Tanh, {}),
        (nn.GELU, torch.nn.GELU, {}),
        (nn.GELU, torch.nn.GELU, {"approximate": "tanh"}),
        (nn.LeakyReLU, torch.nn.LeakyReLU, {"negative_slope": 0.2}),
        (nn.ELU, torch.nn.ELU, {"alpha": 0.7}),
        (nn.Softplus, torch.nn.Softplus, {}),
        (nn.SiLU, torch.nn.SiLU, {}),
    ],
)
def test_activations(ours, theirs, kwargs):
    x, xt = both(RNG.normal(size=(3, 4)) * 3)
    out, ref = ours(**kwargs)(x), theirs(**kwargs)(xt)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_and_log_softmax(axis):
    for ours, theirs in [
        (nn.Softmax(axis), torch.nn.Softmax(axis)),
        (nn.LogSoftmax(axis), torch.nn.LogSoftmax(axis)),
    ]:
        x, xt = both(RNG.normal(size=(3, 4)))
        out, ref = ours(x), theirs(xt)
        close(out, ref)
        backward_both(out, ref)
        close(x.grad, xt.grad)


# ------------------------------------------------------------------------------ losses
LOSS_CASES = {
    "mse_loss": (F.mse_loss, torch.nn.functional.mse_loss),
    "cross_entropy": (F.cross_entropy, torch.nn.functional.cross_entropy),
    "nll_loss": (F.nll_loss, torch.nn.functional.nll_loss),
    "binary_cross_entropy": (
        F.binary_cross_entropy,
        torch.nn.functional.binary_cross_entropy,
    ),
    "binary_cross_entropy_with_logits": (
        F.binary_cross_entropy_with_logits,
        torch.nn.functional.binary_cross_entropy_with_logits,
    ),
}


def _loss_inputs(name):
    if name in ("cross_entropy", "nll_loss"):
        x = RNG.normal(size=(6, 4)) * 3
        if name == "nll_loss":
            x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        target = RNG.integers(0, 4, size=6)
        return x, target, torch.tensor(target), False
    if name == "binary_cross_entropy":
        x = RNG.uniform(0.02, 0.98, size=(3, 4))
    else:
        x = RNG.normal(size=(3, 4)) * 3
    target = RNG.uniform(0, 1, size=(3, 4))
    return x, target, target, True


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_losses(name, reduction):
    ours_fn, torch_fn = LOSS_CASES[name]
    values, target, torch_target, float_target = _loss_inputs(name)
    x, xt = both(values)
    if float_target:
        y, yt = both(target)
    else:
        y, yt = target, torch_target
    out = ours_fn(x, y, reduction=reduction)
    ref = torch_fn(xt, yt, reduction=reduction)
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)
    if float_target and name != "binary_cross_entropy":  # torch: no BCE target grad
        close(y.grad, yt.grad)


def test_cross_entropy_with_spatial_axes():
    x, xt = both(RNG.normal(size=(2, 3, 4, 2)))
    target = RNG.integers(0, 3, size=(2, 4, 2))
    out = F.cross_entropy(x, target)
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor(target))
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)


def test_binary_cross_entropy_at_the_clamp():
    x, xt = both([0.0, 1.0, 1e-50, 0.5])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    out = F.binary_cross_entropy(x, y, reduction="none")
    ref = torch.nn.functional.binary_cross_entropy(
        xt, torch.tensor(y), reduction="none"
    )
    close(out, ref)


def test_large_logits():
    x, xt = both([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]])
    out = F.cross_entropy(x, np.array([2, 0]))
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor([2, 0]))
    close(out, ref)
    backward_both(out, ref)
    close(x.grad, xt.grad)


# ------------------------------------------------------------------------------ utils
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm(norm_type):
    grads = [RNG.normal(size=(3, 2)) * 5, RNG.normal(size=4)]
    ours, theirs = [], []
    for g in grads:
        p, pt = both(np.zeros_like(g))
        p.grad, pt.grad = tg.Tensor(g), torch.tensor(g)
        ours.append(p)
        theirs.append(pt)
    total = nn.utils.clip_grad_norm_(ours, 1.5, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type=norm_type)
    assert total == pytest.approx(ref.item(), rel=1e-12)
    for p, pt in zip(ours, theirs):
        close(p.grad, pt.grad)


def test_kaiming_and_xavier_bounds_match_torch_for_conv_shapes():
    # For tensors with more than two axes our fan convention is PyTorch's.
    shape = (64, 16, 3, 3)
    for ours_fn, torch_fn in [
        (nn.init.kaiming_uniform_, torch.nn.init.kaiming_uniform_),
        (nn.init.xavier_uniform_, torch.nn.init.xavier_uniform_),
    ]:
        ours = ours_fn(tg.zeros(*shape)).data
        theirs = torch_fn(torch.zeros(shape, dtype=torch.float64)).numpy()
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.01)
        assert ours.std() == pytest.approx(theirs.std(), rel=0.05)
