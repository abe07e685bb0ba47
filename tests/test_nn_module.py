"""Module bookkeeping, Parameter, state dicts, and nn.utils gradient clipping."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn.utils import clip_grad_norm_, clip_grad_value_


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.inner = nn.Linear(2, 2)
        self.norm = nn.BatchNorm1d(2)
        self.offset = nn.Parameter(np.zeros(2, dtype=np.float32))
        self.note = "plain attribute"

    def forward(self, x):
        return self.norm(self.inner(x * self.scale)) + self.offset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(2, 1))

    def forward(self, x):
        return self.head(self.block(x))


# ------------------------------------------------------------------------ Parameter
def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float32
    assert nn.Parameter(np.zeros(2)).dtype == np.float64
    assert not hasattr(p, "__dict__")
    assert repr(p) == "Parameter containing:\nTensor([1., 2.], requires_grad=True)"
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.array([1, 2]))


# --------------------------------------------------------------------- registration
def test_registration_order_and_dotted_names():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == [
        "block.scale",
        "block.offset",
        "block.inner.weight",
        "block.inner.bias",
        "block.norm.weight",
        "block.norm.bias",
        "head.1.weight",
        "head.1.bias",
    ]
    assert [name for name, _ in net.named_buffers()] == [
        "block.norm.running_mean",
        "block.norm.running_var",
        "block.norm.num_batches_tracked",
    ]
    assert len(list(net.parameters())) == 8 and len(list(net.buffers())) == 3
    assert net.block.note == "plain attribute"
    assert [name for name, _ in net.named_parameters(recurse=False)] == []


def test_modules_children_and_named_modules():
    net = Net()
    assert [name for name, _ in net.named_modules()] == [
        "",
        "block",
        "block.inner",
        "block.norm",
        "head",
        "head.0",
        "head.1",
    ]
    modules = list(net.modules())
    assert modules[0] is net and modules[1] is net.block
    assert list(net.children()) == [net.block, net.head]
    assert [name for name, _ in net.named_children()] == ["block", "head"]


def test_shared_parameter_and_module_are_yielded_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, the shared Linear, Tanh
    assert len(list(model.children())) == 2
    tied = nn.Module()
    tied.a = nn.Linear(2, 2)
    tied.b = nn.Linear(2, 2)
    tied.b.weight = tied.a.weight
    assert [name for name, _ in tied.named_parameters()] == [
        "a.weight",
        "a.bias",
        "b.bias",
    ]
    # the state dict still names every place, as PyTorch's does
    assert list(tied.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_reassignment_moves_between_registries_and_delattr():
    m = nn.Module()
    m.x = nn.Parameter([1.0])
    m.x = nn.Linear(1, 1)
    assert list(m._parameters) == [] and list(m._modules) == ["x"]
    m.x = nn.Parameter([2.0])
    assert list(m._modules) == [] and [n for n, _ in m.named_parameters()] == ["x"]
    m.x = None  # an absent parameter, as Linear(bias=False)
    assert m.x is None and list(m.parameters()) == []
    del m.x
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'x'"):
        m.x  # noqa: B018


def test_assignment_errors():
    m = nn.Module()
    m.w = nn.Parameter([1.0])
    with pytest.raises(TypeError, match="Tensor to parameter 'w'"):
        m.w = tg.tensor([1.0])
    m.sub = nn.ReLU()
    with pytest.raises(TypeError, match="int to submodule 'sub'"):
        m.sub = 3

    class Forgetful(nn.Module):
        def __init__(self):
            self.w = nn.Parameter([1.0])

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Forgetful()


def test_register_buffer_and_parameter():
    m = nn.Module()
    m.register_buffer("count", np.zeros(3))
    m.register_parameter("bias", None)
    m.register_parameter("w", nn.Parameter([1.0]))
    assert isinstance(m.count, tg.Tensor) and not m.count.requires_grad
    m.count = np.ones(3)  # assignment to a buffer's name stays a buffer
    np.testing.assert_array_equal(m.state_dict()["count"], np.ones(3))
    assert list(m.state_dict()) == ["w", "count"]
    m.add_module("child", nn.ReLU())
    with pytest.raises(KeyError, match="contain no '.'"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(KeyError, match="'training' already exists"):
        m.register_buffer("training", np.zeros(1))
    with pytest.raises(TypeError, match="buffer 'c' must be a Tensor"):
        m.register_buffer("c", [1.0])
    with pytest.raises(TypeError, match="as parameter 'p'"):
        m.register_parameter("p", tg.tensor([1.0]))
    with pytest.raises(TypeError, match="as module 'q'"):
        m.add_module("q", "relu")
    with pytest.raises(TypeError, match="name must be a str"):
        m.register_buffer(3, np.zeros(1))


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)


# ---------------------------------------------------------------------- modes, grads
def test_train_eval_propagate_and_return_self():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.block.train(False)
    assert net.training and not net.block.norm.training and net.head.training
    with pytest.raises(ValueError, match="must be a bool"):
        net.train("no")


def test_zero_grad_sets_none():
    net = Net()
    net(tg.randn(4, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# --------------------------------------------------------------------- state dicts
def test_state_dict_names_copies_and_order():
    net = Net()
    state = net.state_dict()
    assert list(state) == [
        "block.scale",
        "block.offset",
        "block.inner.weight",
        "block.inner.bias",
        "block.norm.weight",
        "block.norm.bias",
        "block.norm.running_mean",
        "block.norm.running_var",
        "block.norm.num_batches_tracked",
        "head.1.weight",
        "head.1.bias",
    ]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["block.scale"][:] = 7
    assert (net.block.scale.data == 1).all()  # a copy, not the parameter's array


def test_load_state_dict_round_trip_keeps_objects_and_dtypes():
    tg.manual_seed(0)
    source, target = Net(), Net()
    source(tg.randn(8, 2))  # moves BatchNorm's running statistics
    weight = target.block.inner.weight
    state = {k: v.astype(np.float64) for k, v in source.state_dict().items()}
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.block.inner.weight is weight and weight.dtype == np.float32
    assert target.block.norm.num_batches_tracked.dtype == np.int64
    for name, value in target.state_dict().items():
        np.testing.assert_allclose(value, source.state_dict()[name], rtol=1e-7)
    x = tg.randn(3, 2)
    np.testing.assert_allclose(source.eval()(x).data, target.eval()(x).data, rtol=1e-6)
    # the loaded arrays are the module's own, not the caller's
    state["block.scale"][:] = 9
    assert not (target.block.scale.data == 9).any()


def test_load_state_dict_accepts_tensors():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.load_state_dict({"weight": a.weight, "bias": a.bias.data})
    np.testing.assert_array_equal(b.weight.data, a.weight.data)


def _unchanged(module, before):
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_missing_and_unexpected_keys_change_nothing():
    net, other = Net(), Net()
    before = net.state_dict()
    state = other.state_dict()
    del state["head.1.bias"]
    state["head.2.weight"] = np.zeros(1)
    with pytest.raises(
        KeyError, match=r"missing keys \['head.1.bias'\].*\['head.2.weight'\]"
    ):
        net.load_state_dict(state)
    _unchanged(net, before)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["head.1.bias"]
    assert result.unexpected_keys == ["head.2.weight"]
    np.testing.assert_array_equal(net.head[1].weight.data, other.head[1].weight.data)
    np.testing.assert_array_equal(net.head[1].bias.data, before["head.1.bias"])


def test_load_state_dict_wrong_shape_names_key_and_shapes_and_changes_nothing():
    net = Net()
    before = net.state_dict()
    state = Net().state_dict()
    state["head.1.weight"] = np.zeros((1, 2))  # the last key: all others would load
    message = re.escape("'head.1.weight'") + r".*\(2, 1\).*\(1, 2\)"
    with pytest.raises(ValueError, match=message):
        net.load_state_dict(state)
    _unchanged(net, before)
    state["head.1.weight"] = [["a"], ["b"]]
    with pytest.raises(TypeError, match="'head.1.weight' cannot be converted"):
        net.load_state_dict(state)
    _unchanged(net, before)
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict([("a", 1)])


def test_deepcopy_gives_independent_parameters():
    net = Net()
    clone = copy.deepcopy(net)
    assert clone.block.inner.weight is not net.block.inner.weight
    assert isinstance(clone.block.inner.weight, nn.Parameter)
    assert clone.block.inner.weight.requires_grad
    clone.block.inner.weight.data = clone.block.inner.weight.data + 1
    assert not np.array_equal(
        clone.block.inner.weight.data, net.block.inner.weight.data
    )
    assert list(clone.state_dict()) == list(net.state_dict())


# ----------------------------------------------------------------------------- repr
def test_nested_repr():
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh())
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=16, bias=True)\n"
        "  (1): Tanh()\n"
        ")"
    )
    assert repr(Net()) == (
        "Net(\n"
        "  (block): Block(\n"
        "    (inner): Linear(in_features=2, out_features=2, bias=True)\n"
        "    (norm): BatchNorm1d(2, eps=1e-05, momentum=0.1)\n"
        "  )\n"
        "  (head): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Linear(in_features=2, out_features=1, bias=True)\n"
        "  )\n"
        ")"
    )


# ---------------------------------------------------------------------------- utils
def _with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros_like(g))
        p.grad = tg.Tensor(g)
        params.append(p)
    return params


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, float("inf")])
def test_clip_grad_norm_matches_numpy(norm_type):
    grads = [np.array([3.0, -4.0]), np.array([[1.0, 2.0], [-2.0, 0.5]])]
    params = _with_grads(*grads)
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.linalg.norm(flat, ord=norm_type)
    assert clip_grad_norm_(params, 1.0, norm_type=norm_type) == pytest.approx(total)
    coef = 1.0 / (total + 1e-6)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.data, g * coef, rtol=1e-12)


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing():
    params = _with_grads(np.array([0.3, 0.4]))
    grad = params[0].grad
    params.append(nn.Parameter([1.0]))  # no .grad
    assert clip_grad_norm_(params, 1.0) == pytest.approx(0.5)
    assert params[0].grad is grad and params[1].grad is None
    assert clip_grad_norm_([nn.Parameter([1.0])], 1.0) == 0.0


def test_clipping_replaces_grads_without_writing_into_them():
    (p,) = _with_grads(np.array([30.0, 40.0], dtype=np.float32))
    array = p.grad.data
    array.flags.writeable = False  # a gradient array may be read-only or shared
    assert isinstance(clip_grad_norm_(p, 5.0), float)
    np.testing.assert_allclose(p.grad.data, [3.0, 4.0], rtol=1e-6)
    assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(array, [30.0, 40.0])
    clip_grad_value_(p, 3.5)
    np.testing.assert_allclose(p.grad.data, [3.0, 3.5], rtol=1e-6)


def test_clip_grad_value_matches_numpy():
    grads = [np.array([-3.0, 0.2, 5.0]), np.array([[0.9, -1.1]])]
    params = _with_grads(*grads)
    assert clip_grad_value_(params, 1.0) is None
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.data, np.clip(g, -1, 1))


def test_clipping_errors():
    params = _with_grads(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="total norm of order 2.0.*inf"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm.*-1"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(params, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="clip_value.*-0.5"):
        clip_grad_value_(params, -0.5)
