"""tinygrad_bp.compile against eager mode, the oracle: after every call, the losses,
parameters, `.grad`s, buffers and optimizer state of a compiled training step equal
eager's (rtol 1e-5 in float32, 1e-10 in float64), for random MLPs and small CNNs,
every optimizer, clipping, dropout, BatchNorm, integer targets, gradient
accumulation, and batches whose size and contents change from call to call (so relu
signs, max-pool winners, targets and `where` conditions change too)."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

RTOL = {np.float32: 1e-5, np.float64: 1e-10}

OPTIMIZERS: dict[str, Callable[[Any], Any]] = {
    "sgd": lambda p: tg.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: tg.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1),
    "sgd_nesterov": lambda p: tg.optim.SGD(
        p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "adam": lambda p: tg.optim.Adam(p, lr=0.01, weight_decay=0.001),
    "adamw": lambda p: tg.optim.AdamW(p, lr=0.01),
    "amsgrad": lambda p: tg.optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw_amsgrad": lambda p: tg.optim.AdamW(p, lr=0.01, amsgrad=True),
    "rmsprop": lambda p: tg.optim.RMSprop(p, lr=0.01),
    "rmsprop_momentum": lambda p: tg.optim.RMSprop(
        p, lr=0.01, momentum=0.5, centered=True, weight_decay=0.01
    ),
}


def snapshot(model: Any, opt: Any, result: Any) -> dict[str, Any]:
    """Everything a step can change, copied."""
    results = result if isinstance(result, tuple) else (result,)
    return {
        "results": [None if r is None else np.array(r.numpy()) for r in results],
        "params": [p.data.copy() for p in model.parameters()],
        "grads": [
            None if p.grad is None else p.grad.data.copy() for p in model.parameters()
        ],
        "state_dict": {k: np.array(v) for k, v in model.state_dict().items()},
        "opt": [
            {
                k: np.array(v) if isinstance(v, np.ndarray) else v
                for k, v in opt.state[p].items()
            }
            for p in model.parameters()
            if p in opt.state
        ],
    }


def assert_close(eager: Any, compiled: Any, rtol: float, path: str = "") -> None:
    if isinstance(eager, np.ndarray):
        assert isinstance(compiled, np.ndarray), path
        assert eager.shape == compiled.shape and eager.dtype == compiled.dtype, path
        np.testing.assert_allclose(
            compiled, eager, rtol=rtol, atol=rtol * 1e-3, err_msg=path
        )
    elif isinstance(eager, dict):
        assert eager.keys() == compiled.keys(), path
        for k in eager:
            assert_close(eager[k], compiled[k], rtol, f"{path}.{k}")
    elif isinstance(eager, (list, tuple)):
        assert len(eager) == len(compiled), path
        for i, (a, b) in enumerate(zip(eager, compiled)):
            assert_close(a, b, rtol, f"{path}[{i}]")
    else:
        assert eager == compiled, (path, eager, compiled)


def run_both(
    build: Callable[[], tuple], batches: list[tuple], dtype: Any, seed: int = 7
):
    """Run the step `build()` makes eagerly and compiled over `batches`; compare after
    every call. Returns the compiled step."""
    model, opt, step = build()
    tg.manual_seed(seed)
    eager = [snapshot(model, opt, step(*batch)) for batch in batches]
    model, opt, step = build()
    compiled = tg.compile(step)
    tg.manual_seed(seed)
    for i, batch in enumerate(batches):
        got = snapshot(model, opt, compiled(*batch))
        assert_close(eager[i], got, RTOL[dtype], f"call {i}")
    return compiled


def classification_batches(
    shape_of: Callable[[int], tuple], sizes, dtype, classes=3, seed=1
):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(shape_of(n)).astype(dtype), rng.integers(0, classes, n))
        for n in sizes
    ]


def mlp_builder(
    widths,
    activation,
    optimizer,
    dtype,
    dropout=0.0,
    batchnorm=False,
    clip=None,
    loss="cross_entropy",
):
    def build():
        tg.manual_seed(0)
        layers: list[Any] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                if batchnorm:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(
                    {
                        "relu": nn.ReLU(),
                        "tanh": nn.Tanh(),
                        "gelu": nn.GELU(),
                        "sigmoid": nn.Sigmoid(),
                        "leaky": nn.LeakyReLU(),
                    }[activation]
                )
                if dropout:
                    layers.append(nn.Dropout(dropout))
        model = nn.Sequential(*layers)
        for p in model.parameters():
            p.data = p.data.astype(dtype)
        opt = OPTIMIZERS[optimizer](model.parameters())

        def step(x, y):
            opt.zero_grad()
            out = model(tg.Tensor(x))
            if loss == "cross_entropy":
                value = F.cross_entropy(out, y)
            else:
                value = F.mse_loss(out, tg.Tensor(np.eye(widths[-1], dtype=dtype)[y]))
            value.backward()
            if clip == "norm":
                nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            elif clip == "value":
                nn.utils.clip_grad_value_(model.parameters(), 0.05)
            opt.step()
            return value

        return model, opt, step

    return build


def cnn_builder(optimizer, dtype, pool="max", batchnorm=False):
    def build():
        tg.manual_seed(0)
        layers: list[Any] = [nn.Conv2d(1, 3, 3, padding=1)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(3))
        layers += [
            nn.ReLU(),
            nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(3 * 3 * 3, 4),
        ]
        model = nn.Sequential(*layers)
        for p in model.parameters():
            p.data = p.data.astype(dtype)
        opt = OPTIMIZERS[optimizer](model.parameters())

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(tg.Tensor(x)), y)
            loss.backward()
            opt.step()
            return loss

        return model, opt, step

    return build


# ------------------------------------------------------------- property-based
@settings(max_examples=12)
@given(
    widths=st.lists(st.integers(2, 9), min_size=2, max_size=4),
    activation=st.sampled_from(["relu", "tanh", "gelu", "sigmoid", "leaky"]),
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
    dtype=st.sampled_from([np.float32, np.float64]),
    dropout=st.sampled_from([0.0, 0.3]),
    clip=st.sampled_from([None, "norm", "value"]),
    sizes=st.lists(st.integers(2, 7), min_size=2, max_size=5),
    seed=st.integers(0, 10),
)
def test_random_mlps_match_eager(
    widths, activation, optimizer, dtype, dropout, clip, sizes, seed
):
    widths = [3, *widths]
    build = mlp_builder(
        widths, activation, optimizer, dtype, dropout=dropout, clip=clip
    )
    batches = classification_batches(lambda n: (n, 3), sizes, dtype, widths[-1], seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_both(build, batches, dtype)


@settings(max_examples=6)
@given(
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
    dtype=st.sampled_from([np.float32, np.float64]),
    pool=st.sampled_from(["max", "avg"]),
    batchnorm=st.booleans(),
    sizes=st.lists(st.integers(2, 4), min_size=2, max_size=4),
    seed=st.integers(0, 10),
)
def test_random_cnns_match_eager(optimizer, dtype, pool, batchnorm, sizes, seed):
    build = cnn_builder(optimizer, dtype, pool, batchnorm)
    # integers: max-pool ties happen, and their split changes with the batch
    rng = np.random.default_rng(seed)
    batches = [
        (rng.integers(-2, 3, (n, 1, 6, 6)).astype(dtype), rng.integers(0, 4, n))
        for n in sizes
    ]
    run_both(build, batches, dtype)


# ------------------------------------------------------------- every optimizer
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_optimizer_over_changing_batches(optimizer, dtype):
    build = mlp_builder([4, 8, 3], "relu", optimizer, dtype)
    batches = classification_batches(lambda n: (n, 4), [6, 6, 3, 6, 5, 6, 6], dtype)
    compiled = run_both(build, batches, dtype)
    assert compiled.programs <= 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_gelu_calls_the_librarys_erf_once_each_way(dtype):
    # erfc in the forward, erf in the backward: one call each in the program (not
    # the masks and loops inside them), equal to eager at every call, wide inputs
    # reaching both tails and both sides of erf's seam at |x| = 0.5
    build = mlp_builder([4, 8, 8, 3], "gelu", "adam", dtype)
    batches = classification_batches(lambda n: (n, 4), [6, 6, 3, 6, 6], dtype)
    batches = [(4 * x, y) for x, y in batches]
    compiled = run_both(build, batches, dtype)
    body = compiled.source
    assert body.count(" = erfc(") == 2 and body.count(" = erf(") == 2, body
    assert "empty_like" not in body and "full_like" not in body


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipping_dropout_and_batchnorm(dtype):
    build = mlp_builder(
        [4, 8, 8, 3], "tanh", "adam", dtype, dropout=0.25, batchnorm=True, clip="norm"
    )
    batches = classification_batches(lambda n: (n, 4), [8, 8, 8, 5, 8], dtype)
    run_both(build, batches, dtype)


def test_batchnorm_eval_after_train_and_mse_loss():
    dtype = np.float32
    build = mlp_builder(
        [4, 6, 2], "relu", "sgd_momentum", dtype, batchnorm=True, loss="mse"
    )
    batches = classification_batches(lambda n: (n, 4), [5, 5, 5], dtype, classes=2)
    model, opt, step = build()
    compiled = tg.compile(step)
    model_e, opt_e, step_e = build()
    for x, y in batches:
        compiled(x, y)
        step_e(x, y)
    model.eval()
    model_e.eval()
    for x, y in batches:  # eval: running statistics normalise; still an update step
        assert_close(
            snapshot(model_e, opt_e, step_e(x, y)),
            snapshot(model, opt, compiled(x, y)),
            1e-5,
        )


def test_integer_targets_with_ignore_index_and_label_smoothing():
    dtype = np.float64
    tg.manual_seed(0)

    def build():
        tg.manual_seed(0)
        model = nn.Linear(4, 5)
        for p in model.parameters():
            p.data = p.data.astype(dtype)
        opt = tg.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y, ignore_index=2, label_smoothing=0.1)
            loss.backward()
            opt.step()
            return loss

        return model, opt, step

    rng = np.random.default_rng(3)
    batches = [
        (tg.Tensor(rng.standard_normal((6, 4))), tg.Tensor(rng.integers(0, 5, 6)))
        for _ in range(5)
    ]
    run_both(build, batches, dtype)


def test_gradient_accumulation_over_two_backwards_and_calls_without_zero_grad():
    dtype = np.float64

    def build():
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
        for p in model.parameters():
            p.data = p.data.astype(dtype)
        opt = tg.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)

        def step(x1, x2):
            # no zero_grad: .grad accumulates across calls, as in eager mode
            first = (model(x1) ** 2).mean()
            first.backward()
            second = model(x2).tanh().sum()
            second.backward()
            opt.step()
            return first, second

        return model, opt, step

    rng = np.random.default_rng(0)
    batches = [
        (rng.standard_normal((4, 3)), rng.standard_normal((3, 3))) for _ in range(5)
    ]
    compiled = run_both(build, batches, dtype)
    assert compiled.programs == 2  # .grad None on the first call, a Tensor after


def test_where_and_maximum_conditions_change_with_the_data():
    dtype = np.float64

    def build():
        tg.manual_seed(0)
        w = tg.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
        model = nn.Module()
        model.w = nn.Parameter(w.data)
        opt = tg.optim.SGD([model.w], lr=0.1)

        def step(x):
            opt.zero_grad()
            h = x @ model.w
            y = tg.where(h > 0, h * 2, tg.maximum(h, -0.1) * h)
            loss = y.max(axis=1).sum() + h.abs().mean()
            loss.backward()
            opt.step()
            return loss

        return model, opt, step

    rng = np.random.default_rng(5)
    batches = [
        (tg.Tensor(rng.integers(-2, 3, (4, 2)).astype(dtype)),) for _ in range(6)
    ]
    run_both(build, batches, dtype)
