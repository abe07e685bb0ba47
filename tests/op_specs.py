"""The op table: one row per public differentiable operation, and how to draw its inputs.

Each `OpSpec` pairs a tinygrad_bp callable with its NumPy reference and says which
inputs are valid: the shapes (broadcasting pairs for binary ops), a value domain per
input (positive for log, off the kinks of relu, tie-free for max) and the keyword
arguments (axis, keepdims, shapes). `tests/test_ops_forward.py` and
`tests/test_ops_gradients.py` run every row through Hypothesis; a completeness test
there fails when an op of API.md has no row here.

A row's name is the op's name, optionally followed by a variant in brackets
(`matmul[2d@2d]`), so the op a row covers is `name.split("[")[0]`.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_bp as tg
from tinygrad_bp.testing.strategies import broadcastable_shapes, shapes, tensors

Shape = tuple[int, ...]
Shapes = tuple[Shape, ...]
# A row's shapes are drawn for a given largest side length, so the gradient-of-gradient
# tests can ask for smaller arrays than the forward tests.
ShapesFn = Callable[[int], st.SearchStrategy[Shapes]]
KwargsFn = Callable[[Shapes], st.SearchStrategy[dict[str, Any]]]


# ----------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class Domain:
    """The values one input may take: an element strategy, drawn as float64 arrays."""

    elements: st.SearchStrategy[Any]
    unique: bool = False
    dtype: Any = np.float64


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_subnormal=False)


def _away_from(
    *kinks: float, margin: float = 0.1, lo: float = -3, hi: float = 3
) -> Domain:
    """Reals in [lo, hi] at least `margin` from every kink, so that finite differences
    (steps of 1e-6) never straddle one."""
    return Domain(
        _floats(lo, hi).filter(lambda v: all(abs(v - k) >= margin for k in kinks))
    )


def _grid(step: float, offset: float = 0.0, unique: bool = False) -> Domain:
    """Multiples of `step` plus `offset`: binary fractions, exact in float32 too, so two
    draws are equal or at least `step` apart (never a near-tie that eps could cross)."""
    return Domain(st.integers(-200, 200).map(lambda k: k * step + offset), unique)


REAL = Domain(_floats(-3, 3))
POSITIVE = Domain(_floats(0.1, 3))
NONZERO = _away_from(0, margin=0.3)
OFF_ZERO = _away_from(0)
SMALL = Domain(_floats(-2, 2))  # exponents: keep a**b within float32 range
# max/min must not tie inside the array (ties have a test of their own).
DISTINCT = _grid(1 / 64, unique=True)
# maximum(a, b): a on even multiples of 1/64 and b on odd ones, so they never tie.
EVEN = _grid(1 / 32)
ODD = _grid(1 / 32, offset=1 / 64)
CONDITION = Domain(st.booleans(), dtype=np.bool_)
CLIP_BOUNDS = (-1.0, -0.5, 0.5, 1.0)
OFF_CLIP_BOUNDS = _away_from(*CLIP_BOUNDS, margin=0.05)


# --------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class OpSpec:
    """One public differentiable operation, its NumPy reference and its valid inputs.

    `op(*inputs, **kwargs)` takes Tensors (and, at the `constant` positions, plain
    NumPy arrays); `ref` is the same computation on NumPy arrays and gives the expected
    values and result dtype. `smooth` means twice differentiable everywhere, so
    `gradgradcheck` applies; `broadcasts` means the inputs may have any mutually
    broadcastable shapes and accept Python scalars on either side.
    """

    name: str
    op: Callable[..., Any]
    ref: Callable[..., Any]
    shapes: ShapesFn
    domains: Domain | tuple[Domain, ...] = REAL
    kwargs: KwargsFn = field(default=lambda _: st.just({}))
    smooth: bool = True
    broadcasts: bool = False
    constant: tuple[int, ...] = ()
    out_dtype: Any = None  # fixed result dtype (astype); None: that of the inputs
    check: dict[str, float] = field(default_factory=dict)  # gradcheck settings

    def domain(self, i: int) -> Domain:
        return self.domains if isinstance(self.domains, Domain) else self.domains[i]

    @property
    def op_name(self) -> str:
        return self.name.split("[")[0]

    def __repr__(self) -> str:  # pytest ids show the name
        return self.name


@dataclass
class Case:
    """Drawn inputs (float64 or bool arrays) and keyword arguments for one row."""

    arrays: list[np.ndarray]
    kwargs: dict[str, Any]


def cases(spec: OpSpec, max_side: int = 4) -> st.SearchStrategy[Case]:
    """Inputs for `spec`: shapes, then one array per shape from its domain, then kwargs."""
    return _cases(spec, spec.shapes(max_side))


@st.composite
def _cases(draw: st.DrawFn, spec: OpSpec, shapes_: st.SearchStrategy[Shapes]) -> Case:
    input_shapes = draw(shapes_)
    arrays = [
        draw(_values(spec.domain(i), shape)) for i, shape in enumerate(input_shapes)
    ]
    return Case(arrays, draw(_kwargs(spec.kwargs, input_shapes)))


# Strategies are cached per shape: building (and validating) one costs Hypothesis more
# than drawing from it, and the same few small shapes come up again and again.
@functools.cache
def _values(domain: Domain, shape: Shape) -> st.SearchStrategy[np.ndarray]:
    if domain.dtype == np.float64 and not domain.unique:
        values = tensors(shape, elements=domain.elements, requires_grad=False)
        return values.map(lambda t: t.data)
    return hnp.arrays(
        domain.dtype, shape, elements=domain.elements, unique=domain.unique
    )


@functools.cache
def _kwargs(kwargs: KwargsFn, shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return kwargs(shapes_)


# ------------------------------------------------------------------- shape strategies
def unary(min_dims: int = 0, max_dims: int = 3, min_side: int = 1) -> ShapesFn:
    return lambda side: shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=side
    ).map(lambda s: (s,))


def _shuffled(pair: Shapes) -> st.SearchStrategy[Shapes]:
    return st.sampled_from([pair, pair[::-1]])


@functools.cache
def _partner(shape: Shape, side: int) -> st.SearchStrategy[Shape]:
    """A shape that broadcasts with `shape`, no bigger than the drawn shapes."""
    return broadcastable_shapes(shape, max_dims=3, max_side=side).map(tuple)


def broadcast_pair(side: int) -> st.SearchStrategy[Shapes]:
    """Two shapes that broadcast together (either may be the larger one)."""
    first = shapes(min_dims=0, max_dims=3, max_side=side)
    pairs = first.flatmap(lambda s: _partner(s, side).map(lambda t: (s, t)))
    return pairs.flatmap(_shuffled)


def condition_and_pair(side: int) -> st.SearchStrategy[Shapes]:
    """Shapes of where(cond, a, b): all three broadcast together."""
    return broadcast_pair(side).flatmap(
        lambda ab: _partner(np.broadcast_shapes(*ab), side).map(lambda c: (c, *ab))
    )


@st.composite
def _matmul_shapes(draw: st.DrawFn, side: int, a_dims: str, b_dims: str) -> Shapes:
    """Shapes for a @ b with each side "1" (vector), "2" (matrix) or "n" (batched,
    batch dims broadcasting against the other side's)."""
    n, k, m = (draw(st.integers(1, side)) for _ in range(3))
    batch = draw(shapes(min_dims=1, max_dims=2, max_side=side))
    other_batch = draw(_partner(batch, side))
    batches = {"a": batch, "b": other_batch if a_dims == "n" else batch}
    a = {"1": (k,), "2": (n, k), "n": (*batches["a"], n, k)}[a_dims]
    b = {"1": (k,), "2": (k, m), "n": (*batches["b"], k, m)}[b_dims]
    return a, b


def matmul_shapes(a_dims: str, b_dims: str) -> ShapesFn:
    return lambda side: _matmul_shapes(side, a_dims, b_dims)


@st.composite
def _joinable(draw: st.DrawFn, side: int, stack: bool) -> Shapes:
    """1 to 3 shapes for concatenate (equal except along one axis) or stack (equal)."""
    base = draw(shapes(min_dims=1, max_dims=3, max_side=side))
    count = draw(st.integers(1, 3))
    if stack:
        return (base,) * count
    axis = draw(st.integers(0, len(base) - 1))
    lengths = draw(st.lists(st.integers(1, side), min_size=count, max_size=count))
    return tuple((*base[:axis], n, *base[axis + 1 :]) for n in lengths)


def distinct_sides(side: int) -> st.SearchStrategy[Shapes]:
    """A 2-D or 3-D shape whose sides all differ: permuting it wrongly changes it."""
    sides = st.lists(st.integers(1, side + 1), min_size=2, max_size=3, unique=True)
    return sides.map(lambda s: (tuple(s),))


# ------------------------------------------------------------------ kwargs strategies
def _axis(ndim: int) -> st.SearchStrategy[int]:
    """One axis, counted from the front or (negative) from the back."""
    return st.integers(-ndim, ndim - 1)


def _axes(ndim: int) -> st.SearchStrategy[Any]:
    """None, one axis or a tuple of distinct axes, possibly negative."""
    if ndim == 0:
        return st.none()
    tuples = st.lists(
        st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True
    ).flatmap(lambda axes: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axes]))
    return st.one_of(st.none(), _axis(ndim), tuples)


def _reduced_count(shape: Shape, axis: Any) -> int:
    if axis is None:
        return math.prod(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
    return math.prod(shape[a] for a in axes)


def reduction_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"axis": _axes(len(shapes_[0])), "keepdims": st.booleans()}
    )


def var_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    # ddof below the number of reduced elements: n - ddof > 0, no division by zero
    return reduction_kwargs(shapes_).flatmap(
        lambda kw: st.integers(0, _reduced_count(shapes_[0], kw["axis"]) - 1).map(
            lambda ddof: {**kw, "ddof": ddof}
        )
    )


def axis_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"axis": _axis(len(shapes_[0]))})


@st.composite
def _reshape_target(draw: st.DrawFn, shape: Shape) -> Shape:
    """Another shape with the same size: random factors, 1s and possibly one -1."""
    remaining, target = math.prod(shape), []
    while remaining > 1:
        divisors = [d for d in range(2, remaining + 1) if remaining % d == 0]
        d = draw(st.sampled_from(divisors))
        target.append(d)
        remaining //= d
    target = draw(st.permutations(target))
    for _ in range(draw(st.integers(0, 2))):
        target.insert(draw(st.integers(0, len(target))), 1)
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return tuple(target)


def reshape_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return _reshape_target(shapes_[0]).map(lambda s: {"shape": s})


def transpose_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    permutations = st.permutations(range(len(shapes_[0]))).map(tuple)
    return st.fixed_dictionaries({"axes": st.one_of(st.none(), permutations)})


def negative_transpose_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    """A permutation written with some axes counted from the back (`(-1, 0)`)."""
    ndim = len(shapes_[0])
    permutations = st.permutations(range(ndim)).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axes])
    )
    return st.fixed_dictionaries(
        {"axes": permutations.filter(lambda axes: min(axes) < 0)}
    )


def squeeze_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    shape = shapes_[0]
    ones = [a for a, n in enumerate(shape) if n == 1]
    if not ones:
        return st.just({"axis": None})
    chosen = st.lists(st.sampled_from(ones), min_size=1, unique=True).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - len(shape)]) for a in axes])
    )
    single = st.sampled_from(ones + [a - len(shape) for a in ones])
    return st.fixed_dictionaries({"axis": st.one_of(st.none(), single, chosen)})


def unsqueeze_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"axis": _axis(len(shapes_[0]) + 1)})


def swapaxes_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    ndim = len(shapes_[0])
    return st.fixed_dictionaries({"axis1": _axis(ndim), "axis2": _axis(ndim)})


def flatten_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"start_axis": _axis(len(shapes_[0]))})


def concatenate_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    # every axis along which the shapes agree everywhere else
    ndim = len(shapes_[0])
    axes = [a for a in range(ndim) if len({s[:a] + s[a + 1 :] for s in shapes_}) == 1]
    return st.fixed_dictionaries(
        {"axis": st.sampled_from(axes + [a - ndim for a in axes])}
    )


def stack_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"axis": _axis(len(shapes_[0]) + 1)})


def pad_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    """np.pad's three forms: n, (before, after), one pair per axis; and a fill value."""
    ndim = len(shapes_[0])
    width = st.integers(0, 2)
    pair = st.tuples(width, width)
    return st.fixed_dictionaries(
        {"pad_width": st.one_of(width, pair, st.tuples(*[pair] * ndim))},
        optional={"value": st.sampled_from([0.0, -1.5])},
    )


def windows_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    *_, height, width = shapes_[0]
    kernel = st.tuples(st.integers(1, height), st.integers(1, width))
    stride = st.tuples(st.integers(1, 2), st.integers(1, 2))
    # an int means the same size in both directions
    return st.fixed_dictionaries(
        {
            "kernel_size": kernel.map(lambda k: k[0] if k[0] == k[1] else k),
            "stride": stride.map(lambda s: s[0] if s[0] == s[1] else s),
        }
    )


@st.composite
def _expanded(draw: st.DrawFn, shape: Shape) -> Shape:
    """A shape that `shape` broadcasts to: leading axes added, axes of length 1 stretched."""
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    return (*lead, *(draw(st.integers(1, 3)) if n == 1 else n for n in shape))


@st.composite
def _summed_to(draw: st.DrawFn, shape: Shape) -> Shape:
    """A shape that broadcasts to `shape`: leading axes dropped, some axes made 1."""
    kept = shape[draw(st.integers(0, len(shape))) :]
    return tuple(1 if draw(st.booleans()) else n for n in kept)


def expand_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return _expanded(shapes_[0]).map(lambda s: {"shape": s})


def sum_to_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return _summed_to(shapes_[0]).map(lambda s: {"shape": s})


def basic_index_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    index = hnp.basic_indices(shapes_[0], allow_newaxis=True, allow_ellipsis=True)
    return index.map(lambda i: {"index": i})


@st.composite
def _array_index(draw: st.DrawFn, shape: Shape) -> Any:
    """An integer array (1-D or 2-D, negative entries allowed, repeats likely) on one
    axis, slices on the axes before it."""
    axis = draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    index_shape = draw(
        st.sampled_from([(2 * n,), (n + 1,), (2, n)])
    )  # longer than the axis: some index must repeat
    indices = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(-n, n - 1)))
    return (slice(None),) * axis + (indices,)


def array_index_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return _array_index(shapes_[0]).map(lambda i: {"index": i})


def array_tuple_index_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    index = hnp.integer_array_indices(shapes_[0])
    return index.map(lambda i: {"index": i})


def mask_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    shape = shapes_[0]
    # a mask over all axes, or over the leading ones
    lead = st.integers(1, len(shape)).map(lambda k: shape[:k])
    masks = lead.flatmap(lambda s: hnp.arrays(np.bool_, s))
    return masks.map(lambda m: {"index": m})


def leaky_relu_kwargs(_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({}), st.fixed_dictionaries({"slope": st.sampled_from([0.2, -0.5, 2.0])})
    )


def elu_kwargs(_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({}), st.fixed_dictionaries({"alpha": st.sampled_from([0.5, 2.0])})
    )


def clip_kwargs(_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    lo, hi = (
        st.sampled_from([None, *CLIP_BOUNDS[:2]]),
        st.sampled_from([None, *CLIP_BOUNDS[2:]]),
    )
    bounds = st.tuples(lo, hi).filter(lambda b: b != (None, None))
    return bounds.map(lambda b: {"lo": b[0], "hi": b[1]})


# -------------------------------------------------------------------- NumPy references
def _like(x: np.ndarray, values: Any) -> np.ndarray:
    return np.asarray(values, dtype=x.dtype)


def _np_erf(x: np.ndarray) -> np.ndarray:
    # the C library's erf, element by element: independent of the core's own erf
    return _like(x, np.vectorize(math.erf, otypes=[np.float64])(x))


def _np_gelu(x: np.ndarray) -> np.ndarray:
    x64 = np.asarray(x, dtype=np.float64)
    return _like(x, 0.5 * x64 * (1 + _np_erf(x64 / math.sqrt(2))))


def _np_gelu_tanh(x: np.ndarray) -> np.ndarray:
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1 + np.tanh(inner))


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _np_log_sum_exp(x: np.ndarray, axis: Any = None, keepdims: bool = False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_windows(x: np.ndarray, kernel_size: Any, stride: Any) -> np.ndarray:
    """windows by definition: out[..., i, j, p, q] = x[..., i*sh + p, j*sw + q]."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    rows = (x.shape[-2] - kh) // sh + 1
    cols = (x.shape[-1] - kw) // sw + 1
    out = np.empty((*x.shape[:-2], rows, cols, kh, kw), dtype=x.dtype)
    for i in range(rows):
        for j in range(cols):
            out[..., i, j, :, :] = x[..., i * sh : i * sh + kh, j * sw : j * sw + kw]
    return out


def _np_sum_to(x: np.ndarray, shape: Shape) -> np.ndarray:
    """The sum of x over the axes that broadcasting `shape` to x.shape would add."""
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead)))
    stretched = tuple(a for a, n in enumerate(shape) if n == 1 and x.shape[a] != 1)
    return x.sum(axis=stretched, keepdims=True)


def _np_flatten(x: np.ndarray, start_axis: int = 0) -> np.ndarray:
    if x.ndim == 0:
        return x.reshape(1)
    return x.reshape(*x.shape[: start_axis % x.ndim], -1)


def _np_squeeze(x: np.ndarray, axis: Any = None) -> np.ndarray:
    return np.squeeze(x, axis=axis)


# ---------------------------------------------------------------------------- the table
def _row(name, op, ref=None, **kw) -> OpSpec:
    """A row whose reference is `ref`, or `op` itself where operator syntax (`a + b`)
    means the same thing on NumPy arrays."""
    return OpSpec(name, op, op if ref is None else ref, **kw)


def _method(name: str) -> Callable[..., Any]:
    """x.<name>(**kwargs) for a Tensor."""
    return lambda x, **kw: getattr(x, name)(**kw)


def _elementwise(
    name: str,
    ref: Callable,
    domain: Domain = REAL,
    kwargs: KwargsFn | None = None,
    smooth: bool = True,
) -> OpSpec:
    return OpSpec(
        name,
        _method(name),
        ref,
        unary(),
        domain,
        kwargs or (lambda _: st.just({})),
        smooth=smooth,
    )


def _reduction(name: str, ref: Callable, domain: Domain = REAL, **kw) -> OpSpec:
    return OpSpec(
        name,
        _method(name),
        ref,
        unary(),
        domain,
        kw.pop("kwargs", reduction_kwargs),
        **kw,
    )


def _binary(
    name: str, op: Callable, domains: tuple[Domain, Domain] = (REAL, REAL), **kw
):
    return _row(name, op, shapes=broadcast_pair, domains=domains, broadcasts=True, **kw)


def _matmul(a_dims: str, b_dims: str) -> OpSpec:
    label = {"1": "1d", "2": "2d", "n": "nd"}
    return _row(
        f"matmul[{label[a_dims]}@{label[b_dims]}]",
        operator.matmul,
        shapes=matmul_shapes(a_dims, b_dims),
    )


def _shape_op(name: str, op: Callable, ref: Callable, kwargs: KwargsFn, **kw) -> OpSpec:
    return OpSpec(name, op, ref, kw.pop("shapes", unary()), REAL, kwargs, **kw)


OP_SPECS: list[OpSpec] = [
    # arithmetic, broadcasting, Python scalars and arrays on either side
    _binary("add", operator.add),
    _binary("sub", operator.sub),
    _binary("mul", operator.mul),
    _binary("truediv", operator.truediv, (REAL, NONZERO)),
    _binary("pow", operator.pow, (POSITIVE, SMALL)),
    _row("neg", operator.neg, shapes=unary()),
    _matmul("1", "1"),
    _matmul("1", "2"),
    _matmul("2", "1"),
    _matmul("2", "2"),
    _matmul("n", "n"),
    _matmul("1", "n"),
    _matmul("n", "1"),
    # reflected operators: the Tensor on the right, or a constant exponent
    _row("sub[2.0-x]", lambda x: 2.0 - x, shapes=unary()),
    _row(
        "mul[array*x]",
        lambda c, x: c * x,
        shapes=broadcast_pair,
        constant=(0,),
    ),
    _row("truediv[1/x]", lambda x: 1 / x, shapes=unary(), domains=NONZERO),
    _row("pow[x**2]", lambda x: x**2, shapes=unary()),
    _row("pow[x**-1.5]", lambda x: x**-1.5, shapes=unary(), domains=POSITIVE),
    _row("pow[2**x]", lambda x: 2**x, shapes=unary()),
    # elementwise
    _elementwise("exp", np.exp),
    _elementwise("log", np.log, POSITIVE),
    _elementwise("sqrt", np.sqrt, POSITIVE),
    _elementwise("abs", np.abs, OFF_ZERO, smooth=False),
    _elementwise("sin", np.sin),
    _elementwise("cos", np.cos),
    _elementwise("tanh", np.tanh),
    _elementwise("sigmoid", _np_sigmoid),
    _elementwise("relu", lambda x: x * (x > 0), OFF_ZERO, smooth=False),
    _elementwise(
        "leaky_relu",
        lambda x, slope=0.01: np.where(x > 0, x, slope * x),
        OFF_ZERO,
        leaky_relu_kwargs,
        smooth=False,
    ),
    _elementwise(
        "elu",
        lambda x, alpha=1.0: np.where(x > 0, x, alpha * (np.exp(x) - 1)),
        OFF_ZERO,
        elu_kwargs,
        smooth=False,
    ),
    _elementwise("gelu", _np_gelu),
    OpSpec(
        "gelu[tanh]",
        lambda x: x.gelu(approximate="tanh"),
        _np_gelu_tanh,
        unary(),
    ),
    _elementwise("softplus", lambda x: np.log1p(np.exp(x))),
    _elementwise("silu", lambda x: x * _np_sigmoid(x)),
    _elementwise(
        "clip",
        lambda x, lo, hi: np.clip(x, lo, hi),
        OFF_CLIP_BOUNDS,
        clip_kwargs,
        smooth=False,
    ),
    _elementwise("erf", _np_erf),
    OpSpec(
        "astype[float32]",
        lambda x: x.astype(np.float32),
        lambda x: x.astype(np.float32),
        unary(),
        out_dtype=np.float32,
        # the float32 result carries ~1e-7 relative error: take big steps (the op is
        # linear, so a big step costs no truncation error)
        check={"eps": 1e-2, "atol": 1e-4},
    ),
    OpSpec(
        "astype[float64]",
        lambda x: x.astype(np.float64),
        lambda x: x.astype(np.float64),
        unary(),
        out_dtype=np.float64,
    ),
    _row(
        "maximum",
        tg.maximum,
        np.maximum,
        shapes=broadcast_pair,
        domains=(EVEN, ODD),
        broadcasts=True,
        smooth=False,
    ),
    _row(
        "minimum",
        tg.minimum,
        np.minimum,
        shapes=broadcast_pair,
        domains=(ODD, EVEN),
        broadcasts=True,
        smooth=False,
    ),
    _row(
        "where",
        tg.where,
        np.where,
        shapes=condition_and_pair,
        domains=(CONDITION, REAL, REAL),
        broadcasts=True,
        constant=(0,),
    ),
    # reductions
    _reduction("sum", lambda x, **kw: np.sum(x, **kw)),
    _reduction("mean", lambda x, **kw: np.mean(x, **kw)),
    _reduction("var", lambda x, **kw: np.var(x, **kw), kwargs=var_kwargs),
    _reduction("max", lambda x, **kw: np.max(x, **kw), DISTINCT, smooth=False),
    _reduction("min", lambda x, **kw: np.min(x, **kw), DISTINCT, smooth=False),
    _reduction("logsumexp", _np_log_sum_exp),
    OpSpec("softmax", _method("softmax"), _np_softmax, unary(1), REAL, axis_kwargs),
    OpSpec(
        "log_softmax",
        _method("log_softmax"),
        lambda x, axis: x - _np_log_sum_exp(x, axis=axis, keepdims=True),
        unary(1),
        REAL,
        axis_kwargs,
    ),
    # shape
    _shape_op(
        "reshape",
        lambda x, shape: x.reshape(*shape),
        lambda x, shape: x.reshape(shape),
        reshape_kwargs,
    ),
    _shape_op(
        "transpose",
        lambda x, axes: x.transpose() if axes is None else x.transpose(*axes),
        lambda x, axes: np.transpose(x, axes),
        transpose_kwargs,
    ),
    _shape_op(
        "transpose[negative_axes]",
        lambda x, axes: x.transpose(*axes),
        lambda x, axes: np.transpose(x, axes),
        negative_transpose_kwargs,
        shapes=distinct_sides,
    ),
    _shape_op("transpose[T]", lambda x: x.T, lambda x: x.T, lambda _: st.just({})),
    _shape_op(
        "swapaxes",
        _method("swapaxes"),
        lambda x, **kw: np.swapaxes(x, **kw),
        swapaxes_kwargs,
        shapes=unary(1),
    ),
    _shape_op(
        "flatten", _method("flatten"), _np_flatten, flatten_kwargs, shapes=unary(1)
    ),
    _shape_op(
        "flatten[default]", lambda x: x.flatten(), _np_flatten, lambda _: st.just({})
    ),
    OpSpec(
        "expand",
        lambda x, shape: x.expand(*shape),
        lambda x, shape: np.broadcast_to(x, shape).copy(),
        unary(),
        REAL,
        expand_kwargs,
    ),
    OpSpec(
        "sum_to",
        lambda x, shape: x.sum_to(shape),
        _np_sum_to,
        unary(),
        REAL,
        sum_to_kwargs,
    ),
    _shape_op(
        "squeeze",
        _method("squeeze"),
        _np_squeeze,
        squeeze_kwargs,
        shapes=lambda side: shapes(min_dims=0, max_dims=4, max_side=min(side, 2)).map(
            lambda s: (s,)
        ),
    ),
    _shape_op(
        "unsqueeze",
        _method("unsqueeze"),
        lambda x, axis: np.expand_dims(x, axis),
        unsqueeze_kwargs,
    ),
    _shape_op(
        "getitem[basic]",
        lambda x, index: x[index],
        lambda x, index: x[index],
        basic_index_kwargs,
    ),
    _shape_op(
        "getitem[int_array]",
        lambda x, index: x[index],
        lambda x, index: x[index],
        array_index_kwargs,
        shapes=unary(1),
    ),
    _shape_op(
        "getitem[int_arrays]",
        lambda x, index: x[index],
        lambda x, index: x[index],
        array_tuple_index_kwargs,
        shapes=unary(1),
    ),
    _shape_op(
        "getitem[bool_mask]",
        lambda x, index: x[index],
        lambda x, index: x[index],
        mask_kwargs,
        shapes=unary(1),
    ),
    OpSpec(
        "concatenate",
        lambda *xs, axis: tg.concatenate(list(xs), axis=axis),
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        lambda side: _joinable(side, stack=False),
        REAL,
        concatenate_kwargs,
    ),
    OpSpec(
        "stack",
        lambda *xs, axis: tg.stack(list(xs), axis=axis),
        lambda *xs, axis: np.stack(xs, axis=axis),
        lambda side: _joinable(side, stack=True),
        REAL,
        stack_kwargs,
    ),
    _shape_op(
        "pad",
        lambda x, pad_width, **value: tg.pad(x, pad_width, **value),
        lambda x, pad_width, value=0: np.pad(x, pad_width, constant_values=value),
        pad_kwargs,
        shapes=unary(1),
    ),
    _shape_op(
        "windows",
        lambda x, **kw: x.windows(**kw),
        _np_windows,
        windows_kwargs,
        shapes=unary(2, 4),
    ),
]


# ---------------------------------------------------------------- more operations (API.md)
# The section "More operations" of API.md: elementwise, reductions, shape and selection,
# einsum. Ops that return tuples (split, chunk, sort, topk) are checked through a Tensor
# built from their results.
LOG1P = Domain(_floats(-0.9, 3))
TAN = Domain(_floats(-1.2, 1.2))
OFF_INTEGERS = _away_from(*range(-3, 4))
OFF_HALVES = _away_from(*(k + 0.5 for k in range(-4, 4)))
PROD = Domain(_floats(-1.5, 1.5))
# exact zeros in about one draw in three: one zero, two zeros, ... in a reduced group
PROD_ZEROS = Domain(st.one_of(st.just(0.0), _floats(-1.5, 1.5), _floats(-1.5, 1.5)))


def optional_axis_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"axis": st.one_of(st.none(), _axis(len(shapes_[0])))})


def flip_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"axis": _axes(len(shapes_[0]))})


def roll_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    ndim = len(shapes_[0])
    shift = st.integers(-5, 5)
    flat = st.fixed_dictionaries({"shift": shift, "axis": st.none()})
    if ndim == 0:
        return flat
    axes = st.lists(_axis(ndim), min_size=1, max_size=ndim).map(tuple)
    several = axes.flatmap(
        lambda a: st.tuples(*[shift] * len(a)).map(lambda s: {"shift": s, "axis": a})
    )
    single = st.fixed_dictionaries({"shift": shift, "axis": _axis(ndim)})
    return st.one_of(flat, single, several)


def repeat_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    shape = shapes_[0]
    flat = st.fixed_dictionaries({"repeats": st.integers(0, 3), "axis": st.none()})
    if not shape:
        return flat
    per_element = _axis(len(shape)).flatmap(
        lambda a: st.lists(st.integers(0, 3), min_size=shape[a], max_size=shape[a]).map(
            lambda r: {"repeats": r, "axis": a}
        )
    )
    same = st.fixed_dictionaries(
        {"repeats": st.integers(0, 3), "axis": _axis(len(shape))}
    )
    return st.one_of(flat, same, per_element)


def tile_kwargs(_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    reps = st.lists(st.integers(1, 3), max_size=4).map(tuple)
    return st.fixed_dictionaries({"reps": st.one_of(st.integers(1, 3), reps)})


@st.composite
def _sizes(draw: st.DrawFn, total: int) -> list[int]:
    """Non-negative sizes adding up to `total`."""
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=3)))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def split_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    shape = shapes_[0]
    return _axis(len(shape)).flatmap(
        lambda a: st.fixed_dictionaries(
            {
                "size_or_sizes": st.one_of(
                    st.integers(1, shape[a] + 1), _sizes(shape[a])
                ),
                "axis": st.just(a),
            }
        )
    )


def chunk_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"n": st.integers(1, 4), "axis": _axis(len(shapes_[0]))}
    )


def triangle_kwargs(_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), st.fixed_dictionaries({"k": st.integers(-2, 2)}))


def masked_fill_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    masks = _summed_to(shapes_[0]).flatmap(lambda s: hnp.arrays(np.bool_, s))
    return st.fixed_dictionaries({"mask": masks, "value": st.sampled_from([0.0, -2.5])})


@st.composite
def _along_axis(draw: st.DrawFn, shape: Shape) -> dict[str, Any]:
    """Indices for take_along_axis: along `axis`, up to twice its length (repeats
    likely, negative entries allowed); elsewhere the tensor's length or 1."""
    if draw(st.booleans()):  # axis None: 1-D indices into the flattened tensor
        n = math.prod(shape)
        indices = draw(
            hnp.arrays(
                np.int64, draw(st.integers(1, 2 * n)), elements=st.integers(-n, n - 1)
            )
        )
        return {"indices": indices, "axis": None}
    axis = draw(_axis(len(shape)))
    n = shape[axis]
    index_shape = [
        draw(st.integers(1, 2 * n))
        if a == axis % len(shape)
        else draw(st.sampled_from([1, m]))
        for a, m in enumerate(shape)
    ]
    indices = draw(
        hnp.arrays(np.int64, tuple(index_shape), elements=st.integers(-n, n - 1))
    )
    return {"indices": indices, "axis": axis}


def take_along_axis_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return _along_axis(shapes_[0])


def sort_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"axis": _axis(len(shapes_[0])), "descending": st.booleans()}
    )


def topk_kwargs(shapes_: Shapes) -> st.SearchStrategy[dict[str, Any]]:
    shape = shapes_[0]
    return _axis(len(shape)).flatmap(
        lambda a: st.fixed_dictionaries(
            {
                "k": st.integers(1, shape[a]),
                "axis": st.just(a),
                "largest": st.booleans(),
            }
        )
    )


@st.composite
def _einsum_shapes(draw: st.DrawFn, side: int, subscripts: str) -> Shapes:
    """Operand shapes for `subscripts`: one size per letter; `...` is a batch shape for
    the first operand and shapes broadcasting with it for the others."""
    letters = sorted(set(subscripts) - set(",->."))
    size = {c: draw(st.integers(1, side)) for c in letters}
    batch = draw(shapes(min_dims=0, max_dims=2, max_side=side))
    out = []
    for i, term in enumerate(subscripts.split("->")[0].split(",")):
        lead = (
            (batch if i == 0 else draw(_partner(batch, side))) if "..." in term else ()
        )
        head, _, tail = term.partition("...")
        out.append((*(size[c] for c in head), *lead, *(size[c] for c in tail)))
    return tuple(out)


def _einsum(variant: str, subscripts: str) -> OpSpec:
    return OpSpec(
        f"einsum[{variant}]",
        lambda *xs: tg.einsum(subscripts, *xs),
        lambda *xs: np.einsum(subscripts, *xs),
        lambda side: _einsum_shapes(side, subscripts),
    )


def _np_split(x: np.ndarray, size_or_sizes: Any, axis: int) -> list[np.ndarray]:
    n = x.shape[axis]
    if isinstance(size_or_sizes, int):
        cuts = list(range(size_or_sizes, n, size_or_sizes))
    else:
        cuts = np.cumsum(size_or_sizes)[:-1].tolist()
    return np.split(x, cuts, axis=axis)


def _np_chunk(x: np.ndarray, n: int, axis: int) -> list[np.ndarray]:
    return _np_split(x, -(-x.shape[axis] // n), axis)


def _reversed_pieces(pieces: Any, axis: int, join: Callable) -> Any:
    """The pieces joined in reverse order: each piece must land in its own place."""
    return join(list(pieces)[::-1], axis=axis)


def _np_sort(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    values = np.sort(x, axis=axis)
    return np.flip(values, axis) if descending else values


def _np_topk(x: np.ndarray, k: int, axis: int, largest: bool) -> np.ndarray:
    values = _np_sort(x, axis, largest)
    return np.take(values, np.arange(k), axis=axis)


def _np_take_along_axis(x: np.ndarray, indices: np.ndarray, axis: Any) -> np.ndarray:
    return np.take_along_axis(x, indices, axis=axis)


MORE_OP_SPECS: list[OpSpec] = [
    # elementwise
    _elementwise("log1p", np.log1p, LOG1P),
    _elementwise("expm1", np.expm1),
    _elementwise("square", np.square),
    _elementwise("tan", np.tan, TAN),
    _elementwise("sign", np.sign, OFF_ZERO, smooth=False),
    _elementwise("floor", np.floor, OFF_INTEGERS, smooth=False),
    _elementwise("ceil", np.ceil, OFF_INTEGERS, smooth=False),
    _elementwise("round", np.round, OFF_HALVES, smooth=False),
    # reductions
    # std and norm have a kink where std = 0 (norm = 0): distinct values, off zero
    _reduction("std", lambda x, **kw: np.std(x, **kw), DISTINCT, kwargs=var_kwargs),
    _reduction("prod", lambda x, **kw: np.prod(x, **kw), PROD),
    OpSpec(
        "prod[zeros]",
        _method("prod"),
        lambda x, **kw: np.prod(x, **kw),
        unary(1),
        PROD_ZEROS,
        reduction_kwargs,
    ),
    _reduction("norm", lambda x, **kw: np.sqrt(np.sum(x * x, **kw)), NONZERO),
    OpSpec(
        "cumsum",
        _method("cumsum"),
        lambda x, axis: np.cumsum(x, axis=axis),
        unary(1),
        REAL,
        optional_axis_kwargs,
    ),
    # shape and selection
    _shape_op("flip", _method("flip"), lambda x, axis: np.flip(x, axis), flip_kwargs),
    _shape_op("roll", _method("roll"), lambda x, **kw: np.roll(x, **kw), roll_kwargs),
    _shape_op(
        "repeat", _method("repeat"), lambda x, **kw: np.repeat(x, **kw), repeat_kwargs
    ),
    _shape_op("tile", _method("tile"), lambda x, reps: np.tile(x, reps), tile_kwargs),
    _shape_op(
        "split",
        lambda x, axis, **kw: _reversed_pieces(
            x.split(axis=axis, **kw), axis, tg.concatenate
        ),
        lambda x, axis, **kw: _reversed_pieces(
            _np_split(x, axis=axis, **kw), axis, np.concatenate
        ),
        split_kwargs,
        shapes=unary(1),
    ),
    _shape_op(
        "chunk",
        lambda x, n, axis: _reversed_pieces(x.chunk(n, axis), axis, tg.concatenate),
        lambda x, n, axis: _reversed_pieces(
            _np_chunk(x, n, axis), axis, np.concatenate
        ),
        chunk_kwargs,
        shapes=unary(1),
    ),
    _shape_op("tril", _method("tril"), np.tril, triangle_kwargs, shapes=unary(2, 4)),
    _shape_op("triu", _method("triu"), np.triu, triangle_kwargs, shapes=unary(2, 4)),
    _shape_op("tril[function]", tg.tril, np.tril, triangle_kwargs, shapes=unary(2, 4)),
    _shape_op("triu[function]", tg.triu, np.triu, triangle_kwargs, shapes=unary(2, 4)),
    _shape_op(
        "masked_fill",
        _method("masked_fill"),
        lambda x, mask, value: np.where(mask, value, x),
        masked_fill_kwargs,
    ),
    _shape_op(
        "take_along_axis",
        _method("take_along_axis"),
        _np_take_along_axis,
        take_along_axis_kwargs,
        shapes=unary(1),
    ),
    _shape_op(
        "take_along_axis[function]",
        tg.take_along_axis,
        _np_take_along_axis,
        take_along_axis_kwargs,
        shapes=unary(1),
    ),
    OpSpec(
        "sort",
        lambda x, **kw: x.sort(**kw)[0],
        _np_sort,
        unary(1),
        DISTINCT,
        sort_kwargs,
    ),
    OpSpec(
        "topk",
        lambda x, **kw: x.topk(**kw)[0],
        _np_topk,
        unary(1),
        DISTINCT,
        topk_kwargs,
    ),
    # einsum: explicit and implicit output, several operands, ellipsis, diagonals
    _einsum("matmul", "ij,jk->ik"),
    _einsum("implicit", "ij,jk"),
    _einsum("chain", "ij,jk,kl->il"),
    _einsum("batch", "...ij,...jk->...ik"),
    _einsum("implicit_ellipsis", "i...,i"),
    _einsum("diagonal", "ii->i"),
    _einsum("trace", "ii"),
    _einsum("outer", "i,j->ij"),
    _einsum("sum", "ijk->j"),
    _einsum("transpose", "ij->ji"),
    _einsum("bilinear", "i,ij,j->"),
]
OP_SPECS += MORE_OP_SPECS
