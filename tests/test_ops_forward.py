"""Forward values and dtypes of every op in the table (tests/op_specs.py) against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_specs import OP_SPECS, Case, OpSpec, cases

import tinygrad_bp as tg

# float64 is compared tightly: the core and the references use the same formulas
# up to summation order. float32 results are compared with a float64 reference
# computed from the same (float32-rounded) inputs.
TIGHT = {"rtol": 1e-12, "atol": 1e-13}
LOOSE = {"rtol": 1e-4, "atol": 1e-5}

# Binary ops whose operands may each be a Tensor, a NumPy array or a Python scalar.
MIXABLE = [s for s in OP_SPECS if s.broadcasts or s.op_name == "matmul"]


def cast(arrays: list[np.ndarray], dtype: type) -> list[np.ndarray]:
    """The floating arrays cast to `dtype` (boolean conditions and indices stay)."""
    return [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]


def run(spec: OpSpec, case: Case, arrays: list[np.ndarray]) -> tg.Tensor:
    """spec.op on Tensors made from `arrays` (plain arrays at the constant positions)."""
    inputs = [a if i in spec.constant else tg.tensor(a) for i, a in enumerate(arrays)]
    out = spec.op(*inputs, **case.kwargs)
    assert isinstance(out, tg.Tensor)
    return out


def assert_matches(out: tg.Tensor, want: np.ndarray, tolerance: dict) -> None:
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, **tolerance)


@pytest.mark.parametrize("spec", OP_SPECS, ids=str)
@given(data=st.data())
def test_forward_matches_numpy(spec: OpSpec, data: st.DataObject) -> None:
    case = data.draw(cases(spec), label="case")
    snapshot = [a.copy() for a in case.arrays]

    out = run(spec, case, case.arrays)
    want = np.asarray(spec.ref(*case.arrays, **case.kwargs))
    assert out.dtype == want.dtype == (spec.out_dtype or np.float64)
    assert_matches(out, want, TIGHT)

    arrays32 = cast(case.arrays, np.float32)
    out32 = run(spec, case, arrays32)
    # NumPy decides the dtype (float32 in, float32 out) ...
    assert out32.dtype == np.asarray(spec.ref(*arrays32, **case.kwargs)).dtype
    assert out32.dtype == (spec.out_dtype or np.float32)
    # ... and float64 arithmetic on the same inputs the values.
    want32 = np.asarray(spec.ref(*cast(arrays32, np.float64), **case.kwargs))
    assert_matches(out32, want32, LOOSE)

    for before, after in zip(snapshot, case.arrays):
        np.testing.assert_array_equal(before, after)  # the op wrote to no input


def operand(array: np.ndarray, kind: str, dtype: type) -> tuple:
    """(what the op gets, what NumPy gets) for one operand of the given kind."""
    if kind == "scalar":
        value = float(array.flat[0])  # a Python float: a weak scalar for NumPy
        return value, value
    array = array.astype(dtype)
    return (tg.tensor(array) if kind == "tensor" else array), array


@pytest.mark.parametrize("spec", MIXABLE, ids=str)
@settings(max_examples=15)
@given(data=st.data())
def test_operands_of_any_kind_and_dtype(spec: OpSpec, data: st.DataObject) -> None:
    """Tensors, NumPy arrays and Python scalars on either side, float32 and float64
    mixed: the values and the result dtype are NumPy's (a float32 tensor stays float32
    with Python scalars; a float64 array promotes it)."""
    case = data.draw(cases(spec), label="case")
    operands = [i for i in range(len(case.arrays)) if i not in spec.constant]
    kinds = ["tensor", "array", "scalar"] if spec.broadcasts else ["tensor", "array"]
    chosen = data.draw(
        st.tuples(*[st.sampled_from(kinds) for _ in operands]).filter(
            lambda k: "tensor" in k
        ),
        label="kinds",
    )
    dtypes = data.draw(
        st.tuples(*[st.sampled_from([np.float32, np.float64]) for _ in operands]),
        label="dtypes",
    )
    args, ref_args = list(case.arrays), list(case.arrays)
    for i, kind, dtype in zip(operands, chosen, dtypes):
        args[i], ref_args[i] = operand(case.arrays[i], kind, dtype)

    out = spec.op(*args, **case.kwargs)
    want = np.asarray(spec.ref(*ref_args, **case.kwargs))

    assert isinstance(out, tg.Tensor)
    assert out.dtype == want.dtype
    promoted = any(d == np.float64 and k != "scalar" for k, d in zip(chosen, dtypes))
    assert out.dtype == (np.float64 if promoted else np.float32)
    assert_matches(out, want, TIGHT if promoted else {"rtol": 1e-6, "atol": 1e-6})


def test_reflected_operators_return_tensors() -> None:
    """NumPy arrays on the left hand the operation to the Tensor, for every operator."""
    x = tg.tensor(np.array([1.0, 2.0]))
    a = np.array([3.0, 4.0])
    for result, want in [
        (a + x, [4.0, 6.0]),
        (a - x, [2.0, 2.0]),
        (a * x, [3.0, 8.0]),
        (a / x, [3.0, 2.0]),
        (a**x, [3.0, 16.0]),
        (a @ x, 11.0),
        (2.0 - x, [1.0, 0.0]),
        (2**x, [2.0, 4.0]),
    ]:
        assert isinstance(result, tg.Tensor)
        np.testing.assert_array_equal(result.data, want)
