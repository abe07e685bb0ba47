"""erf and erfc in NumPy against the C library's (via math), plus dtype/shape rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_bp._special import erf, erfc

RTOL = 1e-14
# Results in the subnormal range carry only a few significant bits; allow a few of
# their ulps on top of the relative tolerance.
ATOL = 1e-320


def reference(fn, x: np.ndarray) -> np.ndarray:
    return np.array([fn(v) for v in x.reshape(-1).tolist()]).reshape(x.shape)


def assert_matches(got: np.ndarray, want: np.ndarray) -> None:
    err = np.abs(got - want)
    bad = ~(err <= RTOL * np.abs(want) + ATOL)
    assert not bad.any(), (
        f"worst at x-index {np.argmax(bad)}: got {got[bad][:3]}, want {want[bad][:3]}"
    )


GRID = np.concatenate(
    [
        np.linspace(-7.0, 7.0, 14_001),
        # both sides of the seam between the series and the erfc polynomial
        np.nextafter(0.5, 0.0) + np.arange(-50, 50) * 2.0**-53,
        np.geomspace(1e-308, 1.0, 600),
        -np.geomspace(1e-308, 1.0, 600),
        np.geomspace(1.0, 1e308, 300),
        -np.geomspace(1.0, 1e308, 300),
    ]
)


def test_erf_dense_grid_matches_math_erf():
    assert_matches(erf(GRID), reference(math.erf, GRID))


def test_erfc_dense_grid_matches_math_erfc():
    x = np.concatenate([GRID, np.linspace(5.0, 27.0, 2_001)])
    assert_matches(erfc(x), reference(math.erfc, x))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_erf_matches_math_erf_on_any_float(x):
    assert_matches(erf(np.array([x])), np.array([math.erf(x)]))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_erfc_matches_math_erfc_on_any_float(x):
    assert_matches(erfc(np.array([x])), np.array([math.erfc(x)]))


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
        elements=st.floats(-8, 8),
    )
)
def test_erf_is_odd_and_keeps_shape(x):
    y = erf(x)
    assert isinstance(y, np.ndarray)
    assert y.shape == x.shape
    assert y.dtype == np.float64
    np.testing.assert_array_equal(erf(-x), -y)
    assert_matches(y, reference(math.erf, x))


def test_erf_is_monotonic_across_the_seam():
    x = np.linspace(0.49, 0.51, 10_001)
    assert np.all(np.diff(erf(x)) >= 0.0)


def test_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e308, -1e308])
    y = erf(x)
    np.testing.assert_array_equal(y[[0, 1, 5, 6]], [1.0, -1.0, 1.0, -1.0])
    assert np.isnan(y[2])
    assert y[3] == 0.0 and not np.signbit(y[3])
    assert y[4] == 0.0 and np.signbit(y[4])
    c = erfc(x)
    np.testing.assert_array_equal(c[[0, 1, 3, 5, 6]], [0.0, 2.0, 1.0, 0.0, 2.0])
    assert np.isnan(c[2])


def test_no_floating_point_warnings_even_when_they_raise():
    x = np.array([5e-324, 1e-200, 0.3, 6.0, 30.0, 1e308, np.inf, -np.inf, np.nan])
    with np.errstate(all="raise"):
        erf(x)
        erfc(x)


@pytest.mark.parametrize("fn, ref", [(erf, math.erf), (erfc, math.erfc)])
def test_float32_in_float32_out_computed_in_float64(fn, ref):
    x = np.linspace(-5.0, 5.0, 1001, dtype=np.float32)
    y = fn(x)
    assert y.dtype == np.float32
    want = reference(ref, x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("fn", [erf, erfc])
def test_shapes_and_non_float_inputs(fn):
    zero_d = fn(np.float64(0.25))
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == ()
    assert fn(np.array(0.25, dtype=np.float32)).shape == ()
    assert fn(np.zeros((2, 0, 3))).shape == (2, 0, 3)
    # integers, bools and Python scalars/lists become float64
    assert fn(np.arange(3)).dtype == np.float64
    assert fn(np.array([True, False])).dtype == np.float64
    np.testing.assert_array_equal(fn([[1, 2]]), fn(np.array([[1.0, 2.0]])))
    assert fn(0.5).shape == ()


def test_input_is_not_modified():
    x = np.linspace(-3, 3, 7)
    before = x.copy()
    erf(x)
    erfc(x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("fn", [erf, erfc])
def test_complex_input_is_rejected(fn):
    with pytest.raises(TypeError, match="complex128"):
        fn(np.array([1 + 1j]))
