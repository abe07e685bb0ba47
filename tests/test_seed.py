"""tinygrad_bp.seed: the seed's hand-derived backprop, the one copy the tutorial, the
``seed`` command and these tests use."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from tinygrad_bp import seed

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def _tutorial_listing() -> ast.Module:
    """The tutorial's shown (not run) listing of the seed module's code."""
    blocks = re.findall(
        r"<!-- no-run -->\n```python\n(.*?)```", TUTORIAL.read_text(), re.S
    )
    (listing,) = [b for b in blocks if "def backward_by_hand" in b]
    return ast.parse(listing)


def _without_docstring(body: list[ast.stmt]) -> list[str]:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    ):
        body = body[1:]
    return [ast.dump(statement) for statement in body]


def test_the_tutorial_shows_the_module_code_line_for_line():
    module = ast.parse(inspect.getsource(seed))
    defined = {
        node.name: node for node in module.body if isinstance(node, ast.FunctionDef)
    }
    assigned = {
        node.target.id: node.value
        for node in module.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    shown = _tutorial_listing().body
    assert {type(n) for n in shown} == {ast.FunctionDef, ast.Assign}
    for node in shown:
        if isinstance(node, ast.FunctionDef):
            original = defined[node.name]
            assert [a.arg for a in node.args.args] == [
                a.arg for a in original.args.args
            ]
            assert _without_docstring(node.body) == _without_docstring(original.body)
            summary = ast.get_docstring(node)
            if summary:  # the page keeps the first line of the docstring
                assert ast.get_docstring(original).splitlines()[0] == summary
        else:
            (target,) = node.targets
            assert ast.dump(node.value) == ast.dump(assigned[target.id]), target.id


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_toy_hand_formulas_match_finite_differences(activation):
    # Independent of the generated pass: the four formulas against central differences.
    rng = np.random.default_rng(7)
    arrays = {
        "a[0]": rng.standard_normal((4, 3)),
        "Y": rng.uniform(0, 1, (4, 2)),
        "w[0]": rng.standard_normal((3, 4)),
        "b[0]": rng.standard_normal(4),
        "w[1]": rng.standard_normal((4, 2)),
        "b[1]": rng.standard_normal(2),
    }
    _, grads = seed.toy_gradients_by_hand(arrays, activation)
    eps = 1e-6
    for name, grad in grads.items():
        for index in np.ndindex(grad.shape):
            shifted = {}
            for sign in (1, -1):
                moved = dict(arrays, **{name: arrays[name].copy()})
                moved[name][index] += sign * eps
                shifted[sign] = seed.toy_gradients_by_hand(moved, activation)[0]
            numeric = (shifted[1] - shifted[-1]) / (2 * eps)
            assert grad[index] == pytest.approx(numeric, abs=1e-8), (name, index)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_toy_hand_and_generated_gradients_agree(activation):
    arrays = seed.toy_network(activation, seed=3)
    E, by_hand = seed.toy_gradients_by_hand(arrays, activation)
    tensors = seed.toy_tensors(arrays)
    recorded = seed.toy_forward(tensors, activation)
    recorded["E"].backward()
    assert recorded["E"].item() == pytest.approx(E, rel=1e-14)
    for name in seed.TOY_PARAMETERS:
        np.testing.assert_allclose(
            tensors[name].grad.numpy(), by_hand[name], rtol=1e-12
        )


def test_any_depth_with_relu_matches_the_generated_pass():
    import tinygrad_bp as tg

    rng = np.random.default_rng(0)
    sizes, names = [3, 5, 4, 2], ["relu", "tanh", "sigmoid"]
    W = [rng.standard_normal((m, n)) for m, n in itertools.pairwise(sizes)]
    B = [rng.standard_normal(n) for n in sizes[1:]]
    X, Y = rng.standard_normal((6, 3)), rng.uniform(size=(6, 2))
    F = [seed.ACTIVATIONS[n] for n in names]
    a, z = seed.forward_by_hand(X, W, B, F)
    _, dw, db = seed.backward_by_hand(a, z, W, F, Y)

    Wt = [tg.Tensor(w, requires_grad=True) for w in W]
    Bt = [tg.Tensor(b, requires_grad=True) for b in B]
    h = tg.Tensor(X)
    for w, b, name in zip(Wt, Bt, names):
        h = getattr(h @ w + b, name)()
    loss = (0.5 * (h - Y) ** 2).sum(axis=1).mean()
    loss.backward()
    assert loss.item() == pytest.approx(seed.seed_loss(a[-1], Y), rel=1e-14)
    for t, g in zip(Wt + Bt, dw + db):
        np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-12, atol=1e-15)


def test_toy_network_is_reproducible_and_names_a_bad_activation():
    a, b = seed.toy_network("tanh", seed=5), seed.toy_network("tanh", seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(seed.toy_network("tanh")["Y"]).max() < 0.9  # inside tanh's range
    for call in (
        lambda: seed.toy_network("relu"),
        lambda: seed.toy_forward(seed.toy_tensors(a), "relu"),
        lambda: seed.toy_gradients_by_hand(a, "relu"),
    ):
        with pytest.raises(ValueError, match="'sigmoid' or 'tanh', got 'relu'"):
            call()
