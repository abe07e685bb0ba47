"""Differential fuzzing of the engine with random programs (see tests/fuzz_programs.py).

Each example is a small random program over the op table, run with tinygrad_bp and
checked against:

- the table's NumPy references: every node's value, and central differences of
  ``sum(out * v)`` for the first-order gradients (nodes made under `no_grad` or
  detached held constant, as autograd must treat them);
- PyTorch, when it is installed and every op of the program has a translation:
  values, `requires_grad` flags, gradients, hooks, retained gradients, and gradients of
  second and third order; without PyTorch, second-order gradients are checked by
  central differences of our own first-order ones;
- the graph's rules: results made under `no_grad` or detached do not require grad,
  `.grad` never is (nor requires grad like) the `gradient` passed to `backward`, a
  second backward with ``retain_graph=True`` exactly doubles every gradient, and hooks
  see the same gradient both times.

A failing example prints the program as a self-contained script (run it from the
repository root) under "Falsifying example", with the check that failed.

Budget: ``TINYGRAD_BP_FUZZ_EXAMPLES`` sets the number of programs (default 500, about
15 s); with ``HYPOTHESIS_PROFILE=ci`` the draw is derandomized, so CI always runs the
same programs. For a longer hunt::

    TINYGRAD_BP_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, note, settings

import tinygrad_bp as tg
from tests.fuzz_programs import Program, magnitude, programs, reference, shape_of

try:
    import torch
except ImportError:  # the PyTorch comparison is skipped, the others still run
    torch = None

EXAMPLES = int(os.environ.get("TINYGRAD_BP_FUZZ_EXAMPLES", "500"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
EPS = 1e-6


def _tolerances(program: Program, against: str) -> tuple[float, float]:
    """(rtol, atol) for comparing the program's results; atol scales with its values."""
    scale = 1.0 + magnitude(program)
    if program.dtype == np.float32:
        return 2e-3, 1e-4 * scale
    if against == "central differences":
        return 1e-3, 1e-5 * scale
    return 1e-6, 1e-9 * scale


def _assert_close(actual: Any, expected: Any, what: str, tol: tuple[float, float]):
    rtol, atol = tol
    assert actual is not None, f"{what}: ours is None, expected {expected}"
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    )
    # written so that a NaN on either side counts as a mismatch
    bad = ~(np.abs(actual - expected) <= atol + rtol * np.abs(expected))
    assert not bad.any(), (
        f"{what}: ours\n{actual}\nexpected\n{expected}\n(rtol={rtol}, atol={atol})"
    )


def _central_differences(program: Program) -> dict[str, np.ndarray]:
    """d sum(out * v) / d leaf for each leaf that requires grad, by the NumPy refs."""
    base = reference(program)
    frozen = {s.name: base[s.name] for s in program.steps if s.mode != "grad"}
    v = np.asarray(program.v, dtype=np.float64)
    leaves = {leaf.name: base[leaf.name] for leaf in program.leaves}

    def loss(name: str, x: np.ndarray) -> float:
        values = reference(program, {**leaves, name: x}, frozen)
        return float(np.sum(values[program.output] * v))

    return {
        name: _differences(lambda x, name=name: loss(name, x), leaves[name])
        for name in program.wrt
    }


def _differences(f, x: np.ndarray) -> np.ndarray:
    grad = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += EPS
        minus[index] -= EPS
        grad[index] = (f(plus) - f(minus)) / (plus[index] - minus[index])
    return grad


def _higher_order_by_differences(program: Program, order: int) -> dict[str, np.ndarray]:
    """The gradient of order `order` (2 or 3) by central differences of our own
    gradient one order below, in float64 (a float32 program is run in float64)."""
    run = program.namespace("tg", frozen=True)["program_tg"]
    base = reference(program)
    frozen = {s.name: base[s.name] for s in program.steps if s.mode != "grad"}
    leaves = {leaf.name: base[leaf.name] for leaf in program.leaves}
    cotangents = [program.w, program.u][: order - 1]

    def lower_order_dot(name: str, x: np.ndarray) -> float:
        n = run({**leaves, name: x}, frozen)
        wrt = [n[k] for k in program.wrt]
        outputs, grad_outputs = (
            [n[program.output]],
            [tg.tensor(program.v, dtype=np.float64)],
        )
        for k, cotangent in enumerate(cotangents):
            grads = tg.grad(
                outputs,
                wrt,
                grad_outputs=grad_outputs,
                create_graph=k < len(cotangents) - 1,
                allow_unused=True,
            )
            live = [
                (g, cotangent[key])
                for key, g in zip(program.wrt, grads)
                if g is not None
            ]
            if k == len(cotangents) - 1:
                return sum(float(np.sum(g.numpy() * c)) for g, c in live)
            live = [(g, c) for g, c in live if g.requires_grad]
            if not live:  # the lower-order gradient is constant
                return 0.0
            outputs = [sum((g * tg.tensor(c, dtype=np.float64)).sum() for g, c in live)]
            grad_outputs = None
        raise AssertionError("unreachable")

    return {
        name: _differences(lambda x, name=name: lower_order_dot(name, x), leaves[name])
        for name in program.wrt
    }


def _check_higher_orders(
    program: Program, ours: dict[str, Any], theirs: dict[str, Any] | None
) -> None:
    """Orders 2 and 3 against PyTorch; where they differ (or without PyTorch),
    against central differences of our own gradient one order below."""
    for order in range(2, program.order + 1):
        numerical = None
        for name in program.wrt:
            key = f"order {order} {name}"
            if theirs is not None:
                try:
                    _assert_close(
                        ours[key],
                        theirs[key],
                        f"{key} vs PyTorch",
                        _tolerances(program, "PyTorch"),
                    )
                    continue
                except AssertionError as error:
                    # PyTorch masks `**` at 0 with `where`, which is wrong for some
                    # mixed and second derivatives: central differences decide
                    note(f"{error}; checking against central differences")
            if numerical is None:
                numerical = _higher_order_by_differences(program, order)
            _assert_close(
                ours[key],
                numerical[name],
                f"{key} vs central differences of order {order - 1}",
                _tolerances(program, "central differences"),
            )


def check(program: Program) -> None:
    """Run every check on `program`; an AssertionError names the one that failed."""
    ours = program.run_ours()
    expected = reference(program)
    tol = _tolerances(program, "NumPy")
    for name in program.nodes:
        _assert_close(ours[f"value {name}"], expected[name], f"value of {name}", tol)
    if program.differentiable:
        # before the flags: a wrong flag shows up as a wrong gradient where it matters
        differences = _central_differences(program)
        for name in program.wrt:
            grad = ours[f"grad {name}"]
            _assert_close(
                np.zeros_like(differences[name]) if grad is None else grad,
                differences[name],
                f"{name}.grad vs central differences",
                _tolerances(program, "central differences"),
            )
    for name in program.nodes:
        assert ours[f"requires_grad {name}"] == program.requires_grad(name), (
            f"{name}.requires_grad is {ours[f'requires_grad {name}']}, expected "
            f"{program.requires_grad(name)} (made under no_grad or detached?)"
        )
    if not program.differentiable:
        return
    _check_graph_rules(program, ours)
    theirs = None
    if torch is not None and program.torch_ok:
        theirs = _check_against_torch(program, ours)
    _check_higher_orders(program, ours, theirs)


def _check_graph_rules(program: Program, ours: dict[str, Any]) -> None:
    """.grad is a new Tensor; a second backward doubles it; hooks see the same."""
    watched = program.wrt + program.retained
    for name in watched:
        requires_grad = ours[f"grad requires_grad {name}"]
        is_gradient = ours[f"grad is gradient {name}"]
        assert not (requires_grad or is_gradient), (
            f"after backward without create_graph, {name}.grad requires grad: "
            f"{requires_grad}; is the very `gradient` Tensor passed in: {is_gradient}"
        )
    if not program.twice:
        return
    for name in watched:
        once, twice = ours[f"grad {name}"], ours[f"grad twice {name}"]
        if once is None:
            assert twice is None, f"{name}.grad appeared at the second backward"
            continue
        assert twice is not None and np.array_equal(twice, 2 * once, True), (
            f"{name}.grad after two backward passes with retain_graph is\n{twice}"
            f"\nnot twice the first\n{once}"
        )
    for name, grads in ours["hooks"].items():
        half = len(grads) // 2
        assert len(grads) % 2 == 0 and all(
            np.array_equal(a, b, True) for a, b in zip(grads[:half], grads[half:])
        ), f"the hook on {name} saw different gradients in the two passes"


def _check_against_torch(program: Program, ours: dict[str, Any]) -> dict | None:
    """Compare everything but the higher orders with PyTorch; PyTorch's results."""
    try:
        theirs = program.run_torch()
    except Exception as error:  # something PyTorch refuses: nothing to compare
        note(f"PyTorch refused the program: {error!r}")
        return None
    tol = _tolerances(program, "PyTorch")
    for key, value in theirs.items():
        mine = ours.get(key)
        if key.startswith(("requires_grad ", "order ")):
            # PyTorch's views made under no_grad keep requires_grad=True (with no
            # gradient flowing through them); the API wants False, checked above.
            continue
        if key == "hooks":
            assert mine.keys() == value.keys(), (
                f"hooks fired on {sorted(mine)}, PyTorch's on {sorted(value)}"
            )
            for name in value:
                assert len(mine[name]) == len(value[name]), (
                    f"the hook on {name} fired {len(mine[name])} times, PyTorch's "
                    f"{len(value[name])}"
                )
                for a, b in zip(mine[name], value[name]):
                    _assert_close(a, b, f"gradient seen by the hook on {name}", tol)
        elif isinstance(value, np.ndarray) or value is None:
            if value is None:
                assert mine is None, f"{key}: ours {mine}, PyTorch None"
            else:
                _assert_close(mine, value, f"{key} vs PyTorch", tol)
        else:
            assert mine == value, f"{key}: ours {mine}, PyTorch {value}"
    return theirs


@FUZZ_SETTINGS
@given(programs())
def test_random_programs_agree_with_references(program: Program) -> None:
    note(f"The program as a script:\n\n{program.to_script()}")
    check(program)


@settings(max_examples=10, deadline=None)
@given(programs())
def test_printed_scripts_run(program: Program) -> None:
    """The script a failure prints runs on its own and shows our results."""
    script = program.to_script()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script, "<script>", "exec"), {"__name__": "__main__"})
    assert "value x0 =" in printed.getvalue()


def _features(program: Program) -> set[str]:
    """What a program exercises, among the cases the engine got wrong before."""
    features = set()
    for step in program.steps:
        inputs = [a for a in step.inputs if isinstance(a, str)]
        shape = shape_of(program, inputs[0]) if inputs else None
        features.add(step.mode)
        if step.mode == "no_grad" and shape == step.shape:
            features.add("shape op changing nothing, under no_grad")
        if step.row in ("pow[x**k]", "pow[zero_base**b]"):
            features.add(step.row)
        if shape == () and step.kwargs.get("axis") is not None:
            features.add(f"{step.row} with an axis on 0-d")
        if step.row == "expand" and -1 in step.kwargs["shape"]:
            features.add("expand with -1")
    if program.differentiable:
        if program.backward == "gradient" and program.gradient_requires_grad:
            features.add("backward(gradient=g) with g requiring grad")
        features.update(
            name
            for name, present in [
                ("retain_graph, twice", program.twice),
                ("hooks", program.hooks),
                ("retain_grad", program.retained),
                ("third order", program.order == 3),
            ]
            if present
        )
    return features


def test_the_generator_draws_the_risky_cases() -> None:
    """In the CI budget the draws include every case the engine's past bugs needed."""
    seen: set[str] = set()

    @settings(max_examples=min(EXAMPLES, 300), deadline=None, derandomize=True)
    @given(programs())
    def collect(program: Program) -> None:
        seen.update(_features(program))

    collect()
    wanted = {
        "no_grad",
        "detach",
        "shape op changing nothing, under no_grad",
        "pow[x**k]",
        "pow[zero_base**b]",
        "sum with an axis on 0-d",
        "mean with an axis on 0-d",
        "log_softmax with an axis on 0-d",
        "expand with -1",
        "backward(gradient=g) with g requiring grad",
        "retain_graph, twice",
        "hooks",
        "retain_grad",
        "third order",
    }
    assert wanted <= seen, f"never drawn: {sorted(wanted - seen)}"
