"""Gradients of every op in the table (tests/op_specs.py), checked with our own
`tinygrad_bp.testing.gradcheck` against central differences, in float64.

The completeness test at the bottom reads the op names from API.md's Tensor section and
fails when one of them has no row in the table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_specs import OP_SPECS, OpSpec, cases

import tinygrad_bp as tg
from tinygrad_bp.testing import gradcheck, gradgradcheck

ROWS = OP_SPECS
SMOOTH = [s for s in ROWS if s.smooth]
LAYOUTS = ["contiguous", "strided", "transposed"]


def leaf(array: np.ndarray, layout: str) -> tg.Tensor:
    """A leaf Tensor holding `array`'s values, its `.data` laid out as asked.

    "strided" is every other row of a bigger array whose other rows are NaN, so an op
    that reads outside the view gives NaN; "transposed" is the transpose of a C-ordered
    copy of `array.T`. Arrays with too few axes for a layout stay contiguous.
    """
    if layout == "strided" and array.ndim >= 1:
        big = np.full((2 * array.shape[0], *array.shape[1:]), np.nan)
        big[::2] = array
        x = tg.tensor(big, requires_grad=True)
        x.data = x.data[::2]
    elif layout == "transposed" and array.ndim >= 2:
        x = tg.tensor(np.ascontiguousarray(array.T), requires_grad=True)
        x.data = x.data.T
    else:
        x = tg.tensor(array, requires_grad=True)
    np.testing.assert_array_equal(x.data, array)
    return x


def inputs(spec: OpSpec, arrays: list[np.ndarray], layout: str) -> list:
    return [a if i in spec.constant else leaf(a, layout) for i, a in enumerate(arrays)]


@pytest.mark.parametrize("spec", ROWS, ids=str)
@given(data=st.data())
def test_gradcheck(spec: OpSpec, data: st.DataObject) -> None:
    """Backprop agrees with central differences, for contiguous inputs and for
    non-contiguous views (strided slices, transposes), and leaves the inputs alone."""
    case = data.draw(cases(spec), label="case")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    xs = inputs(spec, case.arrays, layout)
    snapshot = [np.array(x.data) for x in xs if isinstance(x, tg.Tensor)]

    assert gradcheck(lambda *xs: spec.op(*xs, **case.kwargs), xs, **spec.check)

    for before, x in zip(snapshot, [x for x in xs if isinstance(x, tg.Tensor)]):
        np.testing.assert_array_equal(before, x.data)


@pytest.mark.parametrize("spec", SMOOTH, ids=str)
@settings(max_examples=8)
@given(data=st.data())
def test_gradgradcheck(spec: OpSpec, data: st.DataObject) -> None:
    """The backward pass is itself differentiable (create_graph=True) and correct."""
    case = data.draw(cases(spec, max_side=3), label="case")
    xs = inputs(spec, case.arrays, "contiguous")
    assert gradgradcheck(lambda *xs: spec.op(*xs, **case.kwargs), xs, **spec.check)


@pytest.mark.parametrize("spec", ROWS, ids=str)
@settings(max_examples=5)
@given(data=st.data())
def test_gradient_has_the_input_dtype_and_shape(
    spec: OpSpec, data: st.DataObject
) -> None:
    """float32 leaves get float32 gradients of their own shape (no silent float64)."""
    case = data.draw(cases(spec), label="case")
    xs = [
        a if i in spec.constant else tg.tensor(a.astype(np.float32), requires_grad=True)
        for i, a in enumerate(case.arrays)
    ]
    out = spec.op(*xs, **case.kwargs)
    assert out.requires_grad
    out.backward(tg.ones_like(out))
    for x in xs:
        if isinstance(x, tg.Tensor):
            assert x.grad is not None
            assert x.grad.dtype == np.float32
            assert x.grad.shape == x.shape


# ---------------------------------------------------------------------- completeness
def find_api_md() -> Path | None:
    here = Path(__file__).resolve().parent
    for candidate in [
        here.parent.parent / "shared" / "API.md",  # the shared checkout beside the repo
        here.parent / "docs" / "API.md",
        here.parent / "API.md",
    ]:
        if candidate.is_file():
            return candidate
    return None


SYMBOLS = {
    "+": "add",
    "-": "sub",
    "*": "mul",
    "/": "truediv",
    "**": "pow",
    "@": "matmul",
}


def differentiable_ops(text: str) -> set[str]:
    """The op names in API.md's "Differentiable operations" list of the Tensor section.

    Reads every `code span` of that list: operator symbols map to their dunder names
    (a lone `-` after "unary" is `neg`), `t[index]` is `getitem`, and each other
    identifier is an op, with arguments in parentheses and `name=value` settings
    and dotted references (`np.matmul`) dropped.
    """
    section = re.search(r"^## Tensor\b(.*?)^## ", text, re.S | re.M)
    if section is None:
        raise ValueError("API.md has no '## Tensor' section")
    block = re.search(
        r"^- Differentiable operations(.*?)^- ", section.group(1), re.S | re.M
    )
    if block is None:
        raise ValueError("API.md's Tensor section has no '- Differentiable operations'")
    ops = set()
    for match in re.finditer(r"`([^`]+)`", block.group(1)):
        span = match.group(1)
        before = block.group(1)[: match.start()]
        if span == "-" and before.rstrip().endswith("unary"):
            ops.add("neg")
            continue
        if re.fullmatch(r"\w+\[\w+\]", span):
            ops.add("getitem")
            continue
        for token in re.sub(r"\([^)]*\)", " ", span).split():
            if token in SYMBOLS:
                ops.add(SYMBOLS[token])
            elif re.fullmatch(r"[a-z_][a-z0-9_]*", token):
                ops.add(token)
    return ops


def test_api_md_parser_reads_a_known_snippet() -> None:
    snippet = """## Tensor
- Differentiable operations, all broadcasting:
  - arithmetic: `+ - * / **`, unary `-`, `@` (like `np.matmul`)
  - methods: `exp leaky_relu(slope=0.01)
    clip(lo, hi)`; module functions `where(cond, a, b)`
  - reductions: `sum max` with `axis=None|int`, as `torch.amax`; `t[index]`
- Non-differentiable: `argmax(axis)`
## Autograd
"""
    assert differentiable_ops(snippet) == {
        "add", "sub", "mul", "truediv", "pow", "neg", "matmul", "exp",
        "leaky_relu", "clip", "where", "sum", "max", "getitem",
    }  # fmt: skip


def test_every_op_of_api_md_has_a_row() -> None:
    path = find_api_md()
    if path is None:
        pytest.skip("API.md not found beside the repository (../shared/API.md)")
    documented = differentiable_ops(path.read_text(encoding="utf-8"))
    # The parser must have found the list, not an empty or truncated one.
    assert {"add", "matmul", "gelu", "logsumexp", "getitem", "pad"} <= documented
    covered = {spec.op_name for spec in OP_SPECS}
    missing = sorted(documented - covered)
    assert not missing, f"ops of API.md with no row in tests/op_specs.py: {missing}"


def more_differentiable_ops(text: str) -> set[str]:
    """The op names in API.md's "More operations" section: every identifier in a code
    span of its bullets, except the factories bullet and spans marked
    "(not differentiable)"; `tinygrad_bp.einsum(...)` counts as `einsum`."""
    section = re.search(r"^## More operations\b(.*?)^## ", text, re.S | re.M)
    if section is None:
        raise ValueError("API.md has no '## More operations' section")
    ops = set()
    for bullet in re.split(r"^- ", section.group(1), flags=re.M)[1:]:
        if bullet.startswith("Factories"):
            continue
        for match in re.finditer(r"`([^`]+)`(\s*\(not\s+differentiable\))?", bullet):
            if match.group(2):
                continue
            span = re.sub(r"\([^)]*\)", " ", match.group(1))
            for token in span.replace("tinygrad_bp.", "").split():
                if re.fullmatch(r"[a-z_][a-z0-9_]*", token):
                    ops.add(token)
    return ops


def test_more_operations_parser_reads_a_known_snippet() -> None:
    snippet = """## More operations (for everyday code)
All differentiable unless marked:
- elementwise methods `log1p tan`; `sign` (gradient zero).
- reductions `std(axis=None,
  keepdims=False)`, `masked_fill(mask, value)` (`True` = filled), `sort(axis=-1)`
  returning `(values, indices)`; `argsort(axis=-1)` (not
  differentiable).
  Module functions `tril take_along_axis` mirror the methods.
- `tinygrad_bp.einsum(subscripts, *operands)` (`...` broadcasting, `->`).
- Factories and sampling: `linspace(start, stop, num)`, `probs`.
## Next
"""
    assert more_differentiable_ops(snippet) == {
        "log1p", "tan", "sign", "std", "masked_fill", "sort", "tril",
        "take_along_axis", "einsum",
    }  # fmt: skip


def test_every_more_operation_of_api_md_has_a_row() -> None:
    path = find_api_md()
    if path is None:
        pytest.skip("API.md not found beside the repository (../shared/API.md)")
    documented = more_differentiable_ops(path.read_text(encoding="utf-8"))
    assert {"log1p", "prod", "einsum", "topk", "take_along_axis"} <= documented
    covered = {spec.op_name for spec in OP_SPECS}
    missing = sorted(documented - covered)
    assert not missing, f"ops of API.md with no row in tests/op_specs.py: {missing}"


def test_row_names_are_unique() -> None:
    names = [spec.name for spec in OP_SPECS]
    assert len(names) == len(set(names))
