"""The fused cross-entropy primitive (`Tensor.softmax_cross_entropy`, the node behind
`nn.functional.cross_entropy` on (N, C) logits): its value and gradients against the
composite log_softmax + pick + reduce, gradients of every order, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.nn import functional as F
from tinygrad_bp.testing import gradcheck, gradgradcheck


def composite(logits, target, weights, smoothing):
    """The same loss from log_softmax, a gather and a weighted sum."""
    log_p = logits.log_softmax(axis=1)
    rows = np.arange(len(target))
    losses = -log_p[rows, target] * (1 - smoothing) - log_p.mean(axis=1) * smoothing
    return (losses * weights).sum()


@st.composite
def problems(draw, max_rows=5, max_classes=5):
    rows = draw(st.integers(1, max_rows))
    classes = draw(st.integers(1, max_classes))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((rows, classes)) * draw(st.sampled_from([0.1, 1, 5]))
    target = rng.integers(0, classes, rows)
    kind = draw(st.sampled_from(["mean", "number", "rows"]))
    weights = {
        "mean": None,
        "number": 0.5,
        "rows": rng.uniform(0, 2, rows) * (rng.random(rows) > 0.3),
    }[kind]
    smoothing = draw(st.sampled_from([0.0, 0.1, 1.0]))
    return logits, target, weights, smoothing


@given(problems())
def test_value_and_gradient_match_the_composite(problem):
    logits, target, weights, smoothing = problem
    x = tg.tensor(logits, requires_grad=True)
    y = tg.tensor(logits, requires_grad=True)
    fused = x.softmax_cross_entropy(target, weights, smoothing)
    w = np.full(len(target), 1 / len(target)) if weights is None else weights
    expected = composite(y, target, w * np.ones(len(target)), smoothing)
    np.testing.assert_allclose(fused.item(), expected.item(), rtol=1e-10, atol=1e-12)
    fused.backward()
    expected.backward()
    np.testing.assert_allclose(x.grad.data, y.grad.data, rtol=1e-9, atol=1e-12)


@given(problems(max_rows=3, max_classes=4))
def test_gradcheck_and_gradgradcheck(problem):
    logits, target, weights, smoothing = problem
    x = tg.tensor(logits, requires_grad=True)

    def loss(t):
        return t.softmax_cross_entropy(target, weights, smoothing)

    assert gradcheck(loss, [x])
    assert gradgradcheck(loss, [x])


def test_large_logits_stay_finite():
    x = tg.tensor([[1e4, 0.0], [0.0, -1e4]], requires_grad=True)
    loss = x.softmax_cross_entropy([0, 1])
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.data).all()
    np.testing.assert_allclose(loss.item(), 0.5e4, rtol=1e-6)


def test_cross_entropy_on_rows_records_one_node():
    logits = tg.tensor(np.ones((4, 3)), requires_grad=True)
    loss = F.cross_entropy(logits, [0, 1, 2, 0])
    assert loss.grad_fn.name == "CrossEntropy"
    assert loss.grad_fn.inputs == (logits,)


@pytest.mark.parametrize(
    ("target", "weights", "match"),
    [
        ([0, 3], None, "out of range for 3 classes"),
        ([-1, 0], None, "out of range"),
        ([[0], [1]], None, "N integer targets"),
        ([0.0, 1.0], None, "N integer targets"),
        ([0, 1], [1.0, 2.0, 3.0], "one per row"),
    ],
)
def test_bad_targets_and_weights_are_refused(target, weights, match):
    with pytest.raises(ValueError, match=match):
        tg.ones(2, 3).softmax_cross_entropy(np.asarray(target), weights)
