"""The two ways a backward runs: on arrays when it is not recorded (the fast path of
`backward()`), on Tensors when it is (`create_graph=True`). Both must give the same
gradients; and only the leaves whose values a backward reads are kept read-only."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp.nn import functional as F

RNG = np.random.default_rng(0)
ROWS = np.array([[0, 4, -1], [2, 2, 0]])  # repeated and negative rows


def _value(t):
    return t.data if isinstance(t, tg.Tensor) else t


PROGRAMS = {
    "matmul batch x matrix": lambda a, b: (a.reshape(5, 1, 3) @ b).tanh().sum(),
    "matmul vector and batch": lambda a, b: (a[0] @ b).sum() + (b.T @ a[1]).sum(),
    "matmul batched": lambda a, b: (a.reshape(5, 3, 1) @ a.reshape(5, 1, 3)).sum(),
    "arithmetic": lambda a, b: ((a - 2) * a / (a * a + 1) - (-a) ** 3).sum(),
    "pow with tensor exponent": lambda a, b: (a.abs() + 1).__pow__(b[:, :1].T).sum(),
    "reductions": lambda a, b: a.max(axis=1).sum() + a.logsumexp(axis=0).sum(),
    "softmax family": lambda a, b: (a.softmax(axis=1) * a.log_softmax(axis=0)).sum(),
    "shape ops": lambda a, b: (a.T.reshape(15)[:7] * a.reshape(15)[8:]).sum(),
    "gather rows": lambda a, b: (a[ROWS] * a[ROWS]).sum(),
    "where": lambda a, b: tg.where(_value(a) > 0, a * a, -a).sum(),
    "gelu tanh": lambda a, b: F.gelu(a, approximate="tanh").sum(),
    "cross entropy": lambda a, b: F.cross_entropy(a, [0, 2, 1, 1, 0]),
    "mean and var": lambda a, b: a.mean(axis=0).sum() + a.var(axis=1).sum(),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_array_path_and_recorded_path_give_the_same_gradients(name):
    program = PROGRAMS[name]
    a0, b0 = RNG.standard_normal((5, 3)), RNG.standard_normal((3, 4))
    grads = []
    for create_graph in (False, True):
        a = tg.tensor(a0, requires_grad=True)
        b = tg.tensor(b0, requires_grad=True)
        out = program(a, b)
        found = tg.grad(out, [a, b], create_graph=create_graph, allow_unused=True)
        grads.append([None if g is None else g.data for g in found])
    for fast, recorded in zip(*grads):
        assert (fast is None) == (recorded is None)
        if fast is not None:
            np.testing.assert_allclose(fast, recorded, rtol=1e-12, atol=1e-14)


def test_only_leaves_whose_values_backward_reads_are_locked():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    y = (w * 2 + b).sum()  # Add and Sum never read b's values
    assert not w.data.flags.writeable
    b.data[...] = 0  # allowed: the gradient does not depend on it
    y.backward()
    assert w.grad.tolist() == [2.0, 2.0] and b.grad.tolist() == [1.0, 1.0]
    assert w.data.flags.writeable


def test_results_not_held_elsewhere_are_freed_during_backward():
    import weakref

    x = tg.tensor(RNG.standard_normal(8), requires_grad=True)
    h = (x * 2).tanh()
    alive = weakref.ref(h)
    y = (h * 3).sum()
    del h
    seen = []
    x.register_hook(lambda g: seen.append(alive() is None))
    y.backward()
    assert seen == [True]  # freed before the last node (x's) was reached
