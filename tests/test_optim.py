"""Optimizers and schedulers against loop-written references of PyTorch's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.optim import SGD, Adam, AdamW, Optimizer, RMSprop
from tinygrad_bp.optim.lr_scheduler import CosineAnnealingLR, StepLR

# ---------------------------------------------------------------------------
# References: one scalar at a time, written straight from the torch.optim docs'
# pseudo-code. Each returns the parameter after every step.


def reference_sgd(
    theta, grads, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0
):
    out = [np.empty_like(theta) for _ in grads]
    for i in np.ndindex(theta.shape):
        x, b = float(theta[i]), None
        for t, grad in enumerate(grads):
            g = float(grad[i])
            if weight_decay != 0:
                g += weight_decay * x
            if momentum != 0:
                b = g if b is None else momentum * b + (1 - dampening) * g
                g = g + momentum * b if nesterov else b
            x -= lr * g
            out[t][i] = x
    return out


def reference_adam(
    theta,
    grads,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0,
    amsgrad=False,
    decoupled=False,
):
    beta1, beta2 = betas
    out = [np.empty_like(theta) for _ in grads]
    for i in np.ndindex(theta.shape):
        x, m, v, v_max = float(theta[i]), 0.0, 0.0, 0.0
        for t, grad in enumerate(grads, start=1):
            g = float(grad[i])
            if decoupled:
                x -= lr * weight_decay * x
            elif weight_decay != 0:
                g += weight_decay * x
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1**t)
            v_max = max(v_max, v)
            v_hat = (v_max if amsgrad else v) / (1 - beta2**t)
            x -= lr * m_hat / (math.sqrt(v_hat) + eps)
            out[t - 1][i] = x
    return out


def reference_adamw(theta, grads, weight_decay=1e-2, **kwargs):
    return reference_adam(
        theta, grads, weight_decay=weight_decay, decoupled=True, **kwargs
    )


def reference_rmsprop(
    theta,
    grads,
    lr=1e-2,
    alpha=0.99,
    eps=1e-8,
    weight_decay=0,
    momentum=0,
    centered=False,
):
    out = [np.empty_like(theta) for _ in grads]
    for i in np.ndindex(theta.shape):
        x, v, b, g_ave = float(theta[i]), 0.0, 0.0, 0.0
        for t, grad in enumerate(grads):
            g = float(grad[i])
            if weight_decay != 0:
                g += weight_decay * x
            v = alpha * v + (1 - alpha) * g * g
            v_tilde = v
            if centered:
                g_ave = alpha * g_ave + (1 - alpha) * g
                v_tilde -= g_ave * g_ave
            if momentum > 0:
                b = momentum * b + g / (math.sqrt(v_tilde) + eps)
                x -= lr * b
            else:
                x -= lr * g / (math.sqrt(v_tilde) + eps)
            out[t][i] = x
    return out


REFERENCE = {
    SGD: reference_sgd,
    Adam: reference_adam,
    AdamW: reference_adamw,
    RMSprop: reference_rmsprop,
}

CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    (SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True}),
    (SGD, {"lr": 0.1, "weight_decay": 0.05}),
    (SGD, {"lr": 0.05, "momentum": 0.7, "nesterov": True, "weight_decay": 0.1}),
    (Adam, {}),
    (Adam, {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-3}),
    (Adam, {"lr": 0.1, "weight_decay": 0.1}),
    (Adam, {"lr": 0.1, "betas": (0.9, 0.5), "amsgrad": True}),
    (Adam, {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}),
    (AdamW, {"lr": 0.1}),
    (AdamW, {"lr": 0.1, "weight_decay": 0.3, "betas": (0.9, 0.5), "amsgrad": True}),
    (RMSprop, {}),
    (RMSprop, {"lr": 0.1, "alpha": 0.9, "eps": 1e-4}),
    (RMSprop, {"lr": 0.1, "momentum": 0.9}),
    (RMSprop, {"lr": 0.1, "centered": True}),
    (RMSprop, {"lr": 0.1, "alpha": 0.8, "centered": True, "momentum": 0.5}),
    (RMSprop, {"lr": 0.1, "weight_decay": 0.2, "momentum": 0.3}),
]
CASE_IDS = [f"{cls.__name__}-{kw}" for cls, kw in CASES]
cases = pytest.mark.parametrize(("cls", "kwargs"), CASES, ids=CASE_IDS)


def make_param(array):
    return tg.Tensor(np.array(array, dtype=np.float64), requires_grad=True)


def run(opt, params, grads_per_param):
    """Step ``opt`` once per gradient; return each parameter's values after each step."""
    history = []
    for grads in zip(*grads_per_param):
        for p, g in zip(params, grads):
            p.grad = tg.Tensor(g)
        opt.step()
        history.append([p.data.copy() for p in params])
    return history


def random_problem(seed, shape, n_steps=3, decay=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) * decay**t for t in range(n_steps)]
    return theta, grads


# ---------------------------------------------------------------------------
# Update rules


@cases
def test_first_three_steps_match_reference(cls, kwargs):
    theta, grads = random_problem(0, (3, 4), decay=0.1)
    p = make_param(theta)
    history = run(cls([p], **kwargs), [p], [grads])
    expected = REFERENCE[cls](theta, grads, **kwargs)
    for t, ([got], want) in enumerate(zip(history, expected)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13, err_msg=f"{t=}")
    assert not np.allclose(history[-1][0], theta)


@cases
@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
    decay=st.sampled_from([1.0, 0.3, 0.01]),
)
def test_random_shapes_match_reference(cls, kwargs, seed, shape, decay):
    theta, grads = random_problem(seed, shape, decay=decay)
    p = make_param(theta)
    history = run(cls([p], **kwargs), [p], [grads])
    expected = REFERENCE[cls](theta, grads, **kwargs)
    for [got], want in zip(history, expected):
        assert got.shape == shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_amsgrad_uses_the_running_max(cls):
    # Shrinking gradients make v_t fall below its running max, so amsgrad matters.
    theta = np.array([1.0, -2.0, 0.5])
    grads = [np.array([1.0, -2.0, 3.0]) * 0.01**t for t in range(3)]
    results = {}
    for amsgrad in (False, True):
        p = make_param(theta)
        kwargs = {"lr": 0.1, "betas": (0.9, 0.5), "amsgrad": amsgrad}
        history = run(cls([p], **kwargs), [p], [grads])
        np.testing.assert_allclose(
            history[-1][0], REFERENCE[cls](theta, grads, **kwargs)[-1], rtol=1e-12
        )
        results[amsgrad] = history[-1][0]
    assert np.all(np.abs(results[True] - results[False]) > 1e-3)


def test_sgd_uses_nesterov_lookahead():
    theta, grads = random_problem(1, (4,))
    results = []
    for nesterov in (False, True):
        p = make_param(theta)
        run(SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov), [p], [grads])
        results.append(p.data.copy())
    assert not np.allclose(results[0], results[1])


def test_plain_sgd_keeps_no_state():
    p = make_param([1.0, 2.0])
    opt = SGD([p], lr=0.5)
    p.grad = tg.Tensor(np.array([2.0, -2.0]))
    opt.step()
    np.testing.assert_array_equal(p.data, [0.0, 3.0])
    assert opt.state == {}
    assert opt.state_dict()["state"] == {}


@cases
def test_parameters_without_grad_are_skipped(cls, kwargs):
    a, b = make_param([1.0, 2.0]), make_param([3.0, 4.0])
    opt = cls([a, b], **kwargs)
    for _ in range(2):
        a.grad = tg.Tensor(np.array([0.5, -0.5]))
        opt.step()
    np.testing.assert_array_equal(b.data, [3.0, 4.0])
    assert b not in opt.state
    assert 1 not in opt.state_dict()["state"]
    assert not np.allclose(a.data, [1.0, 2.0])


@cases
def test_gradient_arrays_are_never_modified(cls, kwargs):
    theta, grads = random_problem(2, (5,))
    a, b = make_param(theta), make_param(theta)
    opt = cls([a, b], **kwargs)
    for g in grads:
        shared = tg.Tensor(g)  # one gradient Tensor (and array) for both parameters
        a.grad = b.grad = shared
        opt.step()
        np.testing.assert_array_equal(shared.data, g)
    expected = REFERENCE[cls](theta, grads, **kwargs)[-1]
    np.testing.assert_allclose(a.data, expected, rtol=1e-10)
    np.testing.assert_array_equal(a.data, b.data)


@cases
def test_float32_parameters_stay_float32(cls, kwargs):
    p = tg.Tensor(np.array([1.0, -1.0], dtype=np.float32), requires_grad=True)
    opt = cls([p], **kwargs)
    for _ in range(2):
        p.grad = tg.Tensor(np.array([0.3, 0.2], dtype=np.float32))
        opt.step()
    assert p.data.dtype == np.float32
    for value in opt.state.get(p, {}).values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


def test_zero_grad_sets_grads_to_none():
    a, b = make_param([1.0]), make_param([2.0])
    opt = Adam([{"params": [a]}, {"params": [b]}])
    a.grad, b.grad = tg.Tensor(np.ones(1)), tg.Tensor(np.ones(1))
    opt.zero_grad()
    assert a.grad is None
    assert b.grad is None


def test_step_runs_the_closure_with_grad_enabled_and_returns_its_loss():
    w = make_param([3.0])
    opt = SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with tg.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(w.data, [3.0 - 0.25 * 6.0])


@cases
def test_step_refuses_read_only_parameters_and_changes_nothing(cls, kwargs):
    a, b = make_param([1.0, 2.0]), make_param([3.0])
    opt = cls([a, b], **kwargs)
    a.grad, b.grad = tg.Tensor(np.ones(2)), tg.Tensor(np.ones(1))
    b.data.flags.writeable = False
    with pytest.raises(ValueError, match=r"parameter 1 of group 0 \(shape \(1,\)\)"):
        opt.step()
    np.testing.assert_array_equal(a.data, [1.0, 2.0])
    assert opt.state == {}


def test_adam_minimises_a_quadratic():
    tg.manual_seed(0)
    target = tg.Tensor(np.array([1.0, -2.0, 3.0, 0.5]))
    scale = tg.Tensor(np.array([1.0, 10.0, 0.1, 3.0]))
    x = tg.Tensor(np.zeros(4), requires_grad=True)
    opt = Adam([x], lr=0.1)

    def loss_fn():
        return (scale * (x - target) ** 2).sum()

    initial = loss_fn().item()
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 1e-4 * initial
    np.testing.assert_allclose(x.data, target.data, atol=2e-2)


# ---------------------------------------------------------------------------
# Parameter groups


def test_param_groups_have_their_own_learning_rates():
    theta, grads = random_problem(3, (2, 3))
    a, b = make_param(theta), make_param(theta)
    opt = SGD(
        [{"params": [a]}, {"params": b, "lr": 0.01, "nesterov": True}],
        lr=0.1,
        momentum=0.9,
    )
    history = run(opt, [a, b], [grads, grads])
    want_a = reference_sgd(theta, grads, lr=0.1, momentum=0.9)
    want_b = reference_sgd(theta, grads, lr=0.01, momentum=0.9, nesterov=True)
    for (got_a, got_b), wa, wb in zip(history, want_a, want_b):
        np.testing.assert_allclose(got_a, wa, rtol=1e-12)
        np.testing.assert_allclose(got_b, wb, rtol=1e-12)


def test_group_hyperparameters_default_and_extras_are_kept():
    a, b = make_param([1.0]), make_param([2.0])
    opt = Adam([{"params": [a], "name": "w"}, {"params": [b], "betas": (0.5, 0.6)}])
    first, second = opt.param_groups
    assert first["name"] == "w"
    assert first["betas"] == (0.9, 0.999)
    assert first["lr"] == 1e-3
    assert second["betas"] == (0.5, 0.6)
    assert first["params"] == [a] and second["params"][0] is b


def test_params_may_be_a_generator():
    params = [make_param([1.0]), make_param([2.0])]
    opt = SGD((p for p in params), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == 2


def test_add_param_group():
    a, b = make_param([1.0]), make_param([2.0])
    opt = SGD([a], lr=0.1, momentum=0.5)
    opt.add_param_group({"params": [b], "lr": 1.0})
    assert opt.param_groups[1]["lr"] == 1.0
    assert opt.param_groups[1]["momentum"] == 0.5
    b.grad = tg.Tensor(np.array([1.0]))
    opt.step()
    np.testing.assert_allclose(b.data, [1.0])
    with pytest.raises(ValueError, match="appears more than once"):
        opt.add_param_group({"params": [a]})
    assert len(opt.param_groups) == 2


def test_repr_lists_groups():
    opt = SGD([make_param([1.0])], lr=0.1)
    assert "SGD" in repr(opt)
    assert "lr=0.1" in repr(opt)


# ---------------------------------------------------------------------------
# Validation


def grad_param():
    return make_param([1.0, 2.0])


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "match"),
    [
        (SGD, {"lr": -0.1}, ValueError, "lr: -0.1"),
        (SGD, {"lr": float("nan")}, ValueError, "lr: nan"),
        (SGD, {"lr": "0.1"}, TypeError, "lr must be a real number, got '0.1'"),
        (SGD, {"lr": 0.1, "momentum": -0.5}, ValueError, "momentum: -0.5"),
        (SGD, {"lr": 0.1, "dampening": -1}, ValueError, "dampening: -1"),
        (SGD, {"lr": 0.1, "weight_decay": -1e-4}, ValueError, "weight_decay: -0.0001"),
        (SGD, {"lr": 0.1, "nesterov": True}, ValueError, "nesterov.*momentum=0"),
        (
            SGD,
            {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
            ValueError,
            "nesterov.*dampening=0.1",
        ),
        (Adam, {"lr": -1.0}, ValueError, "lr: -1.0"),
        (Adam, {"betas": (1.0, 0.999)}, ValueError, r"betas\[0\]: 1.0"),
        (Adam, {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\]: -0.1"),
        (Adam, {"betas": (0.9,)}, ValueError, r"betas must be a pair.*\(0.9,\)"),
        (Adam, {"betas": 0.9}, TypeError, "betas must be a pair.*0.9"),
        (Adam, {"eps": -1e-8}, ValueError, "eps: -1e-08"),
        (Adam, {"weight_decay": -0.1}, ValueError, "weight_decay: -0.1"),
        (AdamW, {"weight_decay": -0.1}, ValueError, "weight_decay: -0.1"),
        (AdamW, {"betas": (0.9, 1.5)}, ValueError, r"betas\[1\]: 1.5"),
        (RMSprop, {"alpha": 1.5}, ValueError, "alpha: 1.5"),
        (RMSprop, {"alpha": -0.1}, ValueError, "alpha: -0.1"),
        (RMSprop, {"eps": -1.0}, ValueError, "eps: -1.0"),
        (RMSprop, {"momentum": -0.9}, ValueError, "momentum: -0.9"),
        (RMSprop, {"weight_decay": -2}, ValueError, "weight_decay: -2"),
    ],
)
def test_invalid_hyperparameters_raise(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls([grad_param()], **kwargs)
    # The same value given for one group only is caught as well.
    with pytest.raises(error, match=match):
        cls([{"params": [grad_param()]}, {"params": [grad_param()], **kwargs}], lr=0.1)


def test_invalid_params_raise():
    p = grad_param()
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors.*got Tensor"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors.*got set"):
        SGD({p}, lr=0.1)
    with pytest.raises(
        TypeError, match="parameter 1 of group 0 must be a Tensor, got int"
    ):
        SGD([p, 3], lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 of group 0 must be a Tensor"):
        SGD([np.zeros(2)], lr=0.1)
    frozen = tg.Tensor(np.zeros(3))
    with pytest.raises(
        ValueError, match=r"parameter 0 .*\(3,\).*does not require grad"
    ):
        SGD([frozen], lr=0.1)
    with pytest.raises(ValueError, match="parameter 0 of group 0.*not a leaf"):
        SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="parameter 1 of group 0.*more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="parameter 0 of group 1.*more than once"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="must be a dict.*got Tensor"):
        SGD([{"params": [p]}, grad_param()], lr=0.1)
    with pytest.raises(KeyError, match="group 1 has no 'params'"):
        SGD([{"params": [p]}, {"lr": 0.1}], lr=0.1)
    with pytest.raises(TypeError, match="ordered iterable.*got set"):
        SGD([{"params": {p}}], lr=0.1)


def test_failed_add_param_group_changes_nothing():
    a = grad_param()
    opt = SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="lr: -1"):
        opt.add_param_group({"params": [grad_param()], "lr": -1})
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [grad_param(), a]})
    assert len(opt.param_groups) == 1


# ---------------------------------------------------------------------------
# State dicts


def trained(cls, kwargs, n_steps=2):
    """An optimizer over two groups (three parameters) after ``n_steps`` steps."""
    theta, grads = random_problem(4, (2, 3), n_steps=n_steps)
    params = [make_param(theta), make_param(theta[0]), make_param(theta[:, 0])]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.01}]
    opt = cls(groups, **kwargs)
    run(opt, params, [grads, [g[0] for g in grads], [g[:, 0] for g in grads]])
    return opt, params


def snapshot(opt):
    """Everything an optimizer holds, copied, for before/after comparisons."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    params = [p for g in opt.param_groups for p in g["params"]]
    state = {
        i: {k: np.array(v, copy=True) for k, v in opt.state[p].items()}
        for i, p in enumerate(params)
        if p in opt.state
    }
    return groups, state


def assert_same_snapshot(a, b):
    assert a[0] == b[0]
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        assert a[1][key].keys() == b[1][key].keys()
        for name in a[1][key]:
            np.testing.assert_array_equal(a[1][key][name], b[1][key][name])


def test_state_dict_format():
    opt, params = trained(Adam, {"amsgrad": True, "betas": (0.8, 0.9)})
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][0]["betas"] == [0.8, 0.9]
    assert sd["param_groups"][1]["lr"] == 0.01
    assert sorted(sd["state"]) == [0, 1, 2]
    entry = sd["state"][1]
    assert entry["step"] == 2 and type(entry["step"]) is int
    assert sorted(entry) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert entry["exp_avg"].shape == params[1].shape
    # The arrays are copies: neither side sees the other's later changes.
    entry["exp_avg"][...] = 123.0
    assert not np.any(opt.state[params[1]]["exp_avg"] == 123.0)
    before = sd["state"][0]["exp_avg_sq"].copy()
    params[0].grad = tg.Tensor(np.ones((2, 3)))
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg_sq"], before)


@cases
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    opt, params = trained(cls, kwargs)
    sd = opt.state_dict()
    copies = [make_param(p.data) for p in params]
    restored = cls([{"params": copies[:2]}, {"params": copies[2:]}], **kwargs)
    restored.load_state_dict(sd)
    assert restored.param_groups[1]["lr"] == 0.01
    assert_same_snapshot(snapshot(restored), snapshot(opt))
    for group_opt, group_restored in zip(opt.param_groups, restored.param_groups):
        for key, value in group_opt.items():
            if key != "params":
                assert type(group_restored[key]) is type(value), key
    rng = np.random.default_rng(5)
    for _ in range(2):
        for p, q in zip(params, copies):
            p.grad = q.grad = tg.Tensor(rng.standard_normal(p.shape))
        opt.step()
        restored.step()
        for p, q in zip(params, copies):
            np.testing.assert_array_equal(p.data, q.data)


def test_loading_a_fresh_state_dict_resets_the_state():
    opt, params = trained(Adam, {})
    fresh = Adam([{"params": params[:2]}, {"params": params[2:]}])
    opt.load_state_dict(fresh.state_dict())
    assert opt.state == {}
    assert opt.param_groups[1]["lr"] == 1e-3


def test_loaded_arrays_are_copied_and_cast_to_the_parameter_dtype():
    opt, _ = trained(RMSprop, {"momentum": 0.5})
    sd = opt.state_dict()
    p = tg.Tensor(np.zeros((2, 3), dtype=np.float32), requires_grad=True)
    q = tg.Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    r = tg.Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    restored = RMSprop([{"params": [p, q]}, {"params": [r]}], momentum=0.5)
    restored.load_state_dict(sd)
    buf = restored.state[p]["momentum_buffer"]
    assert buf.dtype == np.float32
    np.testing.assert_allclose(buf, sd["state"][0]["momentum_buffer"], rtol=1e-6)
    sd["state"][0]["momentum_buffer"][...] = 99.0
    assert not np.any(restored.state[p]["momentum_buffer"] == 99.0)


def test_load_state_dict_accepts_lists_and_numpy_scalars():
    a = make_param([1.0, 2.0])
    opt = Adam([a], betas=(0.9, 0.999))
    a.grad = tg.Tensor(np.array([1.0, 1.0]))
    opt.step()
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = np.float64(0.5)
    sd["param_groups"][0]["betas"] = np.array([0.8, 0.7])
    sd["param_groups"][0]["params"] = [np.int64(0)]
    sd["state"][0]["step"] = np.array(4)
    sd["state"][0]["exp_avg"] = sd["state"][0]["exp_avg"].tolist()
    opt.load_state_dict(sd)
    group = opt.param_groups[0]
    assert group["lr"] == 0.5 and type(group["lr"]) is float
    assert group["betas"] == (0.8, 0.7)
    assert opt.state[a]["step"] == 4 and type(opt.state[a]["step"]) is int
    assert isinstance(opt.state[a]["exp_avg"], np.ndarray)


def test_state_dict_round_trips_through_save_and_load(tmp_path):
    if not hasattr(tg, "save"):
        pytest.skip("tinygrad_bp.save is not available yet")
    opt, params = trained(Adam, {"amsgrad": True})
    path = tmp_path / "opt.npz"
    tg.save(opt.state_dict(), path)
    copies = [make_param(p.data) for p in params]
    restored = Adam([{"params": copies[:2]}, {"params": copies[2:]}], amsgrad=True)
    restored.load_state_dict(tg.load(path))
    assert_same_snapshot(snapshot(restored), snapshot(opt))


def bad_group_count(sd):
    sd["param_groups"].append(dict(sd["param_groups"][0]))


def bad_param_count(sd):
    sd["param_groups"][1]["params"] = [2, 3]


def bad_state_shape(sd):
    sd["state"][1]["exp_avg"] = np.zeros((3, 2))


def bad_state_index(sd):
    sd["state"][7] = sd["state"][0]


def bad_hyperparameter(sd):
    sd["param_groups"][0]["betas"] = [0.9, 1.0]


def bad_index_type(sd):
    sd["param_groups"][0]["params"] = [0.5, 1]


@pytest.mark.parametrize(
    ("corrupt", "error", "match"),
    [
        (bad_group_count, ValueError, "3 parameter groups, the optimizer has 2"),
        (bad_param_count, ValueError, "group 1 has 2 parameters.*but 1"),
        (bad_state_shape, ValueError, r"state\[1\]\['exp_avg'\].*\(3, 2\).*\(3,\)"),
        (bad_state_index, ValueError, "state for parameter 7"),
        (bad_hyperparameter, ValueError, r"betas\[1\]: 1.0"),
        (bad_index_type, ValueError, "0.5 is not a parameter index"),
        (
            lambda sd: sd["param_groups"][1].pop("params"),
            ValueError,
            r"\[1\].*'params'",
        ),
        (lambda sd: sd.pop("state"), KeyError, "'state'"),
        (lambda sd: sd.pop("param_groups"), KeyError, "'param_groups'"),
    ],
)
def test_bad_state_dict_raises_and_changes_nothing(corrupt, error, match):
    opt, _ = trained(Adam, {"weight_decay": 0.1})
    before = snapshot(opt)
    sd = opt.state_dict()
    corrupt(sd)
    # Give the loaded groups a new lr too, so a partial load would show.
    for group in sd.get("param_groups", []):
        group["lr"] = 0.123
    with pytest.raises(error, match=match):
        opt.load_state_dict(sd)
    assert_same_snapshot(snapshot(opt), before)


def test_load_state_dict_rejects_a_non_dict():
    opt, _ = trained(SGD, {"lr": 0.1})
    with pytest.raises(TypeError, match="state_dict must be a dict, got list"):
        opt.load_state_dict([])


# ---------------------------------------------------------------------------
# Learning-rate schedulers


def sgd_with_groups(*lrs):
    return SGD([{"params": [grad_param()], "lr": lr} for lr in lrs], lr=0.1)


def lr_sequence(scheduler, n_epochs):
    lrs = []
    for _ in range(n_epochs):
        lrs.append(scheduler.get_last_lr())
        assert lrs[-1] == [g["lr"] for g in scheduler.optimizer.param_groups]
        scheduler.step()
    return np.array(lrs)


@settings(max_examples=20, deadline=None)
@given(
    step_size=st.integers(1, 5),
    gamma=st.sampled_from([0.1, 0.5, 0.9, 1.0, 2.0]),
    n_epochs=st.integers(1, 25),
)
def test_step_lr_matches_closed_form(step_size, gamma, n_epochs):
    base = np.array([0.1, 1.0, 0.03])
    sched = StepLR(sgd_with_groups(*base), step_size, gamma)
    got = lr_sequence(sched, n_epochs)
    epochs = np.arange(n_epochs)[:, None]
    want = base * gamma ** (epochs // step_size)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert sched.last_epoch == n_epochs


@settings(max_examples=20, deadline=None)
@given(
    T_max=st.integers(1, 8),
    eta_min=st.sampled_from([0.0, 1e-3, 0.05]),
)
def test_cosine_annealing_matches_closed_form_beyond_t_max(T_max, eta_min):
    base = np.array([0.1, 1.0])
    sched = CosineAnnealingLR(sgd_with_groups(*base), T_max, eta_min)
    n_epochs = 3 * T_max + 3
    got = lr_sequence(sched, n_epochs)
    epochs = np.arange(n_epochs)[:, None]
    want = eta_min + (base - eta_min) * (1 + np.cos(np.pi * epochs / T_max)) / 2
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_cosine_annealing_reaches_eta_min_then_rises():
    sched = CosineAnnealingLR(sgd_with_groups(1.0), T_max=4, eta_min=0.1)
    got = lr_sequence(sched, 9)[:, 0]
    np.testing.assert_allclose(got[4], 0.1)
    np.testing.assert_allclose(got[8], 1.0)
    assert np.all(np.diff(got[:5]) < 0) and np.all(np.diff(got[4:]) > 0)


def test_optimizer_steps_with_the_scheduled_lr():
    p = make_param([0.0])
    opt = SGD([p], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    moves = []
    for _ in range(3):
        before = p.data.copy()
        p.grad = tg.Tensor(np.array([1.0]))
        opt.step()
        sched.step()
        moves.append((before - p.data).item())
    assert moves == [1.0, 0.5, 0.25]


def test_scheduler_records_initial_lr_and_get_last_lr_is_a_copy():
    opt = sgd_with_groups(0.5)
    sched = CosineAnnealingLR(opt, T_max=10)
    assert opt.param_groups[0]["initial_lr"] == 0.5
    assert sched.base_lrs == [0.5]
    assert sched.last_epoch == 0
    sched.get_last_lr().append(1.0)
    assert sched.get_last_lr() == [0.5]
    assert "T_max=10" in repr(sched)


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [(StepLR, {"step_size": 3, "gamma": 0.5}), (CosineAnnealingLR, {"T_max": 5})],
)
def test_scheduler_state_dict_round_trip(make, kwargs):
    opt = sgd_with_groups(0.1, 0.2)
    sched = make(opt, **kwargs)
    for _ in range(4):
        sched.step()
    opt2 = sgd_with_groups(0.1, 0.2)
    opt2.load_state_dict(opt.state_dict())
    sched2 = make(opt2, **{k: v + 1 for k, v in kwargs.items()})
    sched2.load_state_dict(sched.state_dict())
    assert sched2.state_dict() == sched.state_dict()
    np.testing.assert_allclose(lr_sequence(sched2, 8), lr_sequence(sched, 8))


@pytest.mark.parametrize(
    ("corrupt", "error", "match"),
    [
        (lambda sd: sd.pop("step_size"), KeyError, "'step_size'"),
        (lambda sd: sd.pop("last_epoch"), KeyError, "'last_epoch'"),
        (lambda sd: sd.update(base_lrs=[0.1]), ValueError, "'base_lrs' has 1 entries"),
        (lambda sd: sd.update(step_size=0), ValueError, "step_size: 0"),
        (lambda sd: sd.update(last_epoch=1.5), TypeError, "last_epoch must be an int"),
    ],
)
def test_bad_scheduler_state_dict_raises_and_changes_nothing(corrupt, error, match):
    sched = StepLR(sgd_with_groups(0.1, 0.2), step_size=2)
    sched.step()
    before = sched.state_dict()
    sd = sched.state_dict()
    sd["gamma"] = 0.7
    corrupt(sd)
    with pytest.raises(error, match=match):
        sched.load_state_dict(sd)
    assert sched.state_dict() == before


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda opt: StepLR(opt, step_size=0), ValueError, "step_size: 0"),
        (lambda opt: StepLR(opt, step_size=2.5), TypeError, "step_size must be an int"),
        (lambda opt: StepLR(opt, 2, gamma=-0.1), ValueError, "gamma: -0.1"),
        (lambda opt: CosineAnnealingLR(opt, T_max=0), ValueError, "T_max: 0"),
        (lambda opt: CosineAnnealingLR(opt, 5, eta_min=-1), ValueError, "eta_min: -1"),
        (lambda opt: StepLR(object(), 2), TypeError, "Optimizer, got object"),
    ],
)
def test_invalid_scheduler_arguments_raise(make, error, match):
    opt = sgd_with_groups(0.1)
    with pytest.raises(error, match=match):
        make(opt)
    assert "initial_lr" not in opt.param_groups[0]


def test_optimizer_base_is_exported():
    assert issubclass(SGD, Optimizer)
