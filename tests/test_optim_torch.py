"""Optimizers and schedulers against torch.optim, step for step, in float64."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp import optim
from tinygrad_bp.optim import lr_scheduler

torch = pytest.importorskip("torch")

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "nesterov": True, "weight_decay": 0.2}),
    ("Adam", {}),
    ("Adam", {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-4}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "betas": (0.9, 0.6), "amsgrad": True}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.3}),
    ("AdamW", {"lr": 0.05, "betas": (0.9, 0.6), "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.05, "alpha": 0.8, "eps": 1e-4}),
    ("RMSprop", {"lr": 0.05, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.05, "centered": True}),
    ("RMSprop", {"lr": 0.05, "weight_decay": 0.1, "momentum": 0.5, "centered": True}),
]
cases = pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{kw}" for n, kw in CASES]
)
# The second parameter group overrides these, to check per-group hyper-parameters.
GROUP_OVERRIDES = {
    "SGD": {"lr": 0.02},
    "Adam": {"lr": 0.01, "betas": (0.5, 0.7)},
    "AdamW": {"lr": 0.01, "weight_decay": 0.5},
    "RMSprop": {"lr": 0.01, "alpha": 0.5},
}
SHAPES = [(3, 4), (4,), ()]


def gradient(theta, t):
    """A trajectory-dependent gradient, so any divergence compounds step by step."""
    noise = np.random.default_rng(100 + t).standard_normal(theta.shape)
    return np.asarray(np.sin(3 * theta) + 0.1 * theta**3 + noise)


class Pair:
    """The same problem held by a tinygrad_bp optimizer and a torch optimizer."""

    def __init__(self, name, kwargs, seed=0):
        rng = np.random.default_rng(seed)
        thetas = [rng.standard_normal(shape) for shape in SHAPES]
        self.ours = [tg.Tensor(theta, requires_grad=True) for theta in thetas]
        self.theirs = [torch.tensor(theta, requires_grad=True) for theta in thetas]
        override = GROUP_OVERRIDES[name]
        self.opt = getattr(optim, name)(
            [{"params": self.ours[:2]}, {"params": self.ours[2:], **override}],
            **kwargs,
        )
        self.torch_opt = getattr(torch.optim, name)(
            [{"params": self.theirs[:2]}, {"params": self.theirs[2:], **override}],
            **kwargs,
        )
        self.t = 0

    def step(self):
        for p, q in zip(self.ours, self.theirs):
            p.grad = tg.Tensor(gradient(p.data, self.t))
            q.grad = torch.from_numpy(gradient(q.detach().numpy(), self.t))
        self.opt.step()
        self.torch_opt.step()
        self.t += 1

    def assert_close(self, rtol=1e-10, atol=1e-12):
        for p, q in zip(self.ours, self.theirs):
            np.testing.assert_allclose(
                p.data, q.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"t={self.t}"
            )


@cases
def test_steps_match_torch(name, kwargs):
    pair = Pair(name, kwargs)
    for _ in range(6):
        pair.step()
        pair.assert_close()
    start = Pair(name, kwargs)
    assert not np.allclose(pair.ours[0].data, start.ours[0].data)


@cases
def test_state_matches_torch(name, kwargs):
    pair = Pair(name, kwargs)
    for _ in range(3):
        pair.step()
    ours = pair.opt.state_dict()
    theirs = pair.torch_opt.state_dict()
    assert ours["state"].keys() == theirs["state"].keys()
    for index, state in ours["state"].items():
        assert state.keys() <= theirs["state"][index].keys()
        for key, value in state.items():
            expected = theirs["state"][index][key]
            if key == "step":
                assert value == int(expected) == 3
            else:
                np.testing.assert_allclose(value, expected.numpy(), rtol=1e-10)
    assert [g["params"] for g in ours["param_groups"]] == [
        g["params"] for g in theirs["param_groups"]
    ]


@cases
def test_loading_a_torch_state_dict_continues_like_torch(name, kwargs):
    pair = Pair(name, kwargs)
    for _ in range(3):
        pair.step()
    theirs = pair.torch_opt.state_dict()
    ours = pair.opt.state_dict()
    converted = {
        "state": {
            i: {
                k: v.item() if k == "step" else v.numpy()
                for k, v in s.items()
                if v is not None
            }
            for i, s in theirs["state"].items()
        },
        "param_groups": [
            {k: v for k, v in g.items() if k in mine}
            for g, mine in zip(theirs["param_groups"], ours["param_groups"])
        ],
    }
    for p in pair.opt.state:
        for value in pair.opt.state[p].values():
            if isinstance(value, np.ndarray):
                value[...] = np.nan  # prove that the loaded state is what is used
    pair.opt.load_state_dict(converted)
    for _ in range(3):
        pair.step()
        pair.assert_close()


@settings(max_examples=15, deadline=None)
@given(
    step_size=st.integers(1, 4),
    gamma=st.sampled_from([0.1, 0.3, 0.5, 0.9, 1.5]),
)
def test_step_lr_matches_torch(step_size, gamma):
    assert_schedules_match(
        lambda opt: lr_scheduler.StepLR(opt, step_size, gamma),
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size, gamma),
        n_epochs=20,
    )


@settings(max_examples=15, deadline=None)
@given(
    T_max=st.integers(1, 7),
    eta_min=st.sampled_from([0.0, 1e-4, 0.01, 0.05]),
)
def test_cosine_annealing_lr_matches_torch(T_max, eta_min):
    assert_schedules_match(
        lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max, eta_min),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max, eta_min),
        n_epochs=4 * T_max + 3,
    )


def test_chained_schedulers_match_torch():
    assert_schedules_match(
        lambda opt: [
            lr_scheduler.StepLR(opt, 3, 0.5),
            lr_scheduler.CosineAnnealingLR(opt, 5, 0.001),
        ],
        lambda opt: [
            torch.optim.lr_scheduler.StepLR(opt, 3, 0.5),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5, 0.001),
        ],
        n_epochs=16,
    )


def assert_schedules_match(make_ours, make_theirs, n_epochs):
    lrs = (0.1, 0.03)
    ours = optim.SGD(
        [{"params": [tg.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs], lr=1.0
    )
    theirs = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs],
        lr=1.0,
    )
    ours_scheds = make_ours(ours)
    theirs_scheds = make_theirs(theirs)
    if not isinstance(ours_scheds, list):
        ours_scheds, theirs_scheds = [ours_scheds], [theirs_scheds]
    for epoch in range(n_epochs):
        for mine, torchs in zip(ours_scheds, theirs_scheds):
            np.testing.assert_allclose(
                mine.get_last_lr(), torchs.get_last_lr(), rtol=1e-13, atol=1e-15
            )
            assert mine.last_epoch == torchs.last_epoch == epoch
        ours.step()
        theirs.step()
        for mine, torchs in zip(ours_scheds, theirs_scheds):
            mine.step()
            torchs.step()


@pytest.mark.parametrize(
    ("name", "kwargs", "make"),
    [
        ("SGD", {"lr": 0.1, "momentum": 0.9}, ("StepLR", {"step_size": 2})),
        ("Adam", {"lr": 0.05, "amsgrad": True}, ("CosineAnnealingLR", {"T_max": 4})),
        ("RMSprop", {"lr": 0.05, "centered": True}, ("StepLR", {"step_size": 3})),
    ],
)
def test_training_with_a_scheduler_matches_torch(name, kwargs, make):
    pair = Pair(name, kwargs, seed=3)
    sched_name, sched_kwargs = make
    ours = getattr(lr_scheduler, sched_name)(pair.opt, **sched_kwargs)
    theirs = getattr(torch.optim.lr_scheduler, sched_name)(
        pair.torch_opt, **sched_kwargs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns if the step order is wrong
        for _ in range(10):
            pair.step()
            ours.step()
            theirs.step()
            pair.assert_close()
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-13)
