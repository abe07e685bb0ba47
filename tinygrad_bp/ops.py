"""Every primitive operation: its NumPy forward and its derivative, side by side.

Backward passes are written with Tensor operations (never raw arrays of values that
depend on the inputs), so that `create_graph=True` records them and gradients of any
order come for free. Each returns gradients in the broadcast output shape; the engine
sums them back to each input's shape (`sum_to`), once, for every op.

Piecewise-constant things (masks, indices, shapes) may be plain NumPy arrays: their
derivative is zero almost everywhere, so treating them as constants is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _special
from ._grad_mode import is_grad_enabled
from .function import Function


# erf and erfc look `_special`'s up at each call (one attribute lookup, nothing next
# to their array work): a compile trace swaps them there to record each as one node.
def erf(x):
    return _special.erf(x)


def erfc(x):
    return _special.erfc(x)


# ---------------------------------------------------------------------------------------
# Elementwise ops with one input: one row each, (forward, derivative), as in PyTorch's
# derivatives.yaml. `derivative(x, y, **params)` gets the input and output Tensors.
# ---------------------------------------------------------------------------------------


def _from_array(like, array):
    """`array` as a Tensor of `like`'s class, outside the graph: what a backward that
    is not recorded returns after computing on the arrays (no Tensor op per term)."""
    return like._wrap(array)


class Elementwise(Function):
    """y = f(x) elementwise; dy/dx = f'(x), given by the row's `derivative`.

    A row's derivative is written once, as `derivative(x, y, m, **params)` with the
    maths functions it needs taken from `m`. When the backward pass is recorded
    (`create_graph=True`) it runs on Tensors (`m = TensorMath`), so it can be
    differentiated again; otherwise on the plain arrays (`m = ArrayMath`), which costs
    one Tensor op (`grad * f'`) instead of one per term of f'.
    """

    f: Callable[..., np.ndarray]
    derivative: Callable[..., Any]
    params: dict[str, Any] = {}  # noqa: RUF012 (read-only default: most rows have none)

    def forward(self, x, **params):
        if params:
            self.params = params
        return type(self).f(x, **params)

    def backward(self, grad, out):
        x = self.inputs[0]
        if is_grad_enabled():
            return grad * type(self).derivative(x, out, TensorMath, **self.params)
        derivative = type(self).derivative(x._data, out._data, ArrayMath, **self.params)
        return _from_array(grad, grad._data * derivative)


def _elementwise(name: str, f: Callable, derivative: Callable, doc: str) -> type:
    return type(
        name, (Elementwise,), {"f": f, "derivative": derivative, "__doc__": doc}
    )


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for any x
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


class ArrayMath:
    """What derivative rows compute with, on NumPy arrays (backward not recorded)."""

    exp, sin, cos, tanh = np.exp, np.sin, np.cos, np.tanh
    erf = staticmethod(erf)
    sigmoid = staticmethod(_sigmoid)

    @staticmethod
    def value(x):
        """The values, for piecewise-constant factors (masks, signs)."""
        return x


class TensorMath:
    """What derivative rows compute with, on Tensors (backward recorded)."""

    exp = staticmethod(lambda t: t.exp())
    sin = staticmethod(lambda t: t.sin())
    cos = staticmethod(lambda t: t.cos())
    tanh = staticmethod(lambda t: t.tanh())
    erf = staticmethod(lambda t: t.erf())
    sigmoid = staticmethod(lambda t: t.sigmoid())

    @staticmethod
    def value(t):
        """The values, for piecewise-constant factors (masks, signs)."""
        return t._data


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _silu_derivative(x, y, m):
    s = m.sigmoid(x)
    return s * (1 + x * (1 - s))


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_derivative(x, y, m, alpha):
    positive = m.value(x) > 0
    return (y + alpha) * ~positive + positive


_SQRT1_2 = 1 / math.sqrt(2)
_SQRT_2_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_CUBIC = 0.044715


def _gelu(x):
    # erfc(-x/√2) = 1 + erf(x/√2), without the cancellation for very negative x
    return 0.5 * x * erfc(-x * _SQRT1_2)


def _gelu_derivative(x, y, m):
    # Phi(x) + x * phi(x), with Phi the normal CDF and phi its density
    return 0.5 * (1 + m.erf(x * _SQRT1_2)) + x * m.exp(x * x * -0.5) * _INV_SQRT_2PI


def _gelu_tanh(x):
    # in place on one temporary: a transformer's MLP runs this on its widest arrays
    if x.dtype.kind != "f":
        x = x.astype(np.result_type(x.dtype, np.float32))
    t = np.asarray(x * x)
    t *= _GELU_CUBIC * _SQRT_2_PI
    t += _SQRT_2_PI
    t *= x  # √(2/π) (x + 0.044715 x³)
    np.tanh(t, out=t)
    t += 1
    t *= x
    t *= 0.5
    return t


def _gelu_tanh_derivative(x, y, m):
    if m is ArrayMath:
        return _gelu_tanh_derivative_array(x)
    t = m.tanh((x + x * x * x * _GELU_CUBIC) * _SQRT_2_PI)
    du = (1 + x * x * (3 * _GELU_CUBIC)) * _SQRT_2_PI
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du


def _gelu_tanh_derivative_array(x):
    """The same derivative on an array, in place on two temporaries."""
    if x.dtype.kind != "f":
        x = x.astype(np.result_type(x.dtype, np.float32))
    x2 = np.asarray(x * x)
    t = np.asarray(x2 * (_GELU_CUBIC * _SQRT_2_PI))
    t += _SQRT_2_PI
    t *= x
    np.tanh(t, out=t)
    du = x2  # √(2/π) (1 + 3 · 0.044715 x²)
    du *= 3 * _GELU_CUBIC * _SQRT_2_PI
    du += _SQRT_2_PI
    out = np.asarray(t * t)
    np.subtract(1, out, out=out)
    out *= x
    out *= du
    out += t
    out += 1
    out *= 0.5  # (1 + t)/2 + x (1 - t²) du / 2
    return out


def _leaky_relu_derivative(x, y, m, slope):
    values = m.value(x)
    return np.where(values > 0, 1, slope).astype(values.dtype)


def _clip_derivative(x, y, m, lo, hi):
    values = m.value(x)
    return (values >= lo) & (values <= hi)


Exp = _elementwise("Exp", np.exp, lambda x, y, m: y, "y = exp(x); dy/dx = y")
Log = _elementwise("Log", np.log, lambda x, y, m: 1 / x, "y = log(x); dy/dx = 1/x")
Sqrt = _elementwise(
    "Sqrt", np.sqrt, lambda x, y, m: 0.5 / y, "y = sqrt(x); dy/dx = 1/(2y)"
)
Abs = _elementwise(
    "Abs", np.abs, lambda x, y, m: np.sign(m.value(x)), "y = |x|; dy/dx = sign(x)"
)
Sin = _elementwise(
    "Sin", np.sin, lambda x, y, m: m.cos(x), "y = sin(x); dy/dx = cos(x)"
)
Cos = _elementwise(
    "Cos", np.cos, lambda x, y, m: -m.sin(x), "y = cos(x); dy/dx = -sin(x)"
)
Tanh = _elementwise(
    "Tanh", np.tanh, lambda x, y, m: 1 - y * y, "y = tanh(x); dy/dx = 1-y²"
)
Sigmoid = _elementwise(
    "Sigmoid", _sigmoid, lambda x, y, m: y * (1 - y), "y = σ(x); dy/dx = y(1-y)"
)
Softplus = _elementwise(
    "Softplus",
    _softplus,
    lambda x, y, m: m.sigmoid(x),
    "y = log(1+eˣ); dy/dx = σ(x)",
)
Silu = _elementwise(
    "Silu",
    lambda x: x * _sigmoid(x),
    _silu_derivative,
    "y = x σ(x); dy/dx = σ(x)(1 + x(1-σ(x)))",
)
Relu = _elementwise(
    "Relu",
    lambda x: np.maximum(x, 0),
    lambda x, y, m: m.value(x) > 0,
    "y = max(x, 0); dy/dx = [x>0]",
)
LeakyRelu = _elementwise(
    "LeakyRelu",
    lambda x, slope: np.where(x > 0, x, x * slope),
    _leaky_relu_derivative,
    "y = x if x > 0 else slope*x; dy/dx = 1 or slope",
)
Elu = _elementwise(
    "Elu", _elu, _elu_derivative, "y = x if x > 0 else α(eˣ-1); dy/dx = 1 or y+α"
)
Gelu = _elementwise(
    "Gelu", _gelu, _gelu_derivative, "y = x Φ(x) (exact erf); dy/dx = Φ(x) + x φ(x)"
)
GeluTanh = _elementwise(
    "GeluTanh",
    _gelu_tanh,
    _gelu_tanh_derivative,
    "y = x/2 (1 + tanh(√(2/π)(x + 0.044715x³))); dy/dx by the chain rule",
)
Erf = _elementwise(
    "Erf",
    erf,
    lambda x, y, m: m.exp(x * x * -1) * (2 / math.sqrt(math.pi)),
    "y = erf(x); dy/dx = 2/√π exp(-x²)",
)
Clip = _elementwise(
    "Clip",
    lambda x, lo, hi: np.clip(x, lo, hi),
    _clip_derivative,
    "y = min(max(x, lo), hi); dy/dx = [lo <= x <= hi] (as torch.clamp)",
)


class Cast(Function):
    """y = x as another dtype; dx = dy cast back."""

    reads_inputs = False

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, grad, out):
        return grad.astype(self.inputs[0].dtype)


# ---------------------------------------------------------------------------------------
# Binary arithmetic (NumPy broadcasting; the engine un-broadcasts the gradients)
# ---------------------------------------------------------------------------------------


class Neg(Function):
    """y = -x; dy/dx = -1"""

    reads_inputs = False

    def forward(self, x):
        return -x

    def backward(self, grad, out):
        return -grad if is_grad_enabled() else _from_array(grad, -grad._data)


class Add(Function):
    """z = a + b; dz/da = dz/db = 1"""

    reads_inputs = False

    def forward(self, a, b):
        return a + b

    def backward(self, grad, out):
        return grad, grad


class Sub(Function):
    """z = a - b; dz/da = 1, dz/db = -1"""

    reads_inputs = False

    def forward(self, a, b):
        return a - b

    def backward(self, grad, out):
        if not self.needs_input_grad[1]:
            return grad, None
        return grad, (-grad if is_grad_enabled() else _from_array(grad, -grad._data))


class Mul(Function):
    """z = a*b; dz/da = b, dz/db = a"""

    def forward(self, a, b):
        return a * b

    def backward(self, grad, out):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        if not is_grad_enabled():  # not recorded: multiply the arrays
            g = grad._data
            return (
                _from_array(grad, g * b._data) if need_a else None,
                _from_array(grad, g * a._data) if need_b else None,
            )
        return (grad * b if need_a else None), (grad * a if need_b else None)


class Div(Function):
    """z = a/b; dz/da = 1/b, dz/db = -a/b² = -z/b"""

    def forward(self, a, b):
        return a / b

    def backward(self, grad, out):
        b = self.inputs[1]
        if not is_grad_enabled():
            grad_a = grad._data / b._data
            if not self.needs_input_grad[1]:
                return _from_array(grad, grad_a), None
            return _from_array(grad, grad_a), _from_array(grad, -grad_a * out._data)
        grad_a = grad / b
        return grad_a, (-grad_a * out if self.needs_input_grad[1] else None)


class Pow(Function):
    """z = a**b; dz/da = b a**(b-1), dz/db = z log(a), with PyTorch's finite values at
    a zero base: dz/da = 0 where a = b = 0, and dz/db = 0 where a = 0 and b >= 0"""

    def forward(self, a, b):
        return a**b

    def backward(self, grad, out):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            # a**0 = 1 for every a, so its derivative is 0, also at a = 0 where the
            # formula gives 0 * inf (elsewhere it is exact, to any order)
            constant = None if b._data.all() else (b._data == 0) & (a._data == 0)
            if constant is None or not constant.any():
                if not is_grad_enabled():
                    a_, b_ = a._data, b._data
                    grad_a = _from_array(grad, grad._data * (b_ * a_ ** (b_ - 1)))
                else:
                    grad_a = grad * b * a ** (b - 1)
            else:
                # the exponent is swapped where masked, so no 0 * inf = NaN appears
                # there at this order or any higher one (the double-where trick)
                safe = b * a ** Where.apply(constant, 1, b - 1)
                grad_a = grad * Where.apply(constant, 0, safe)
        if need_b:
            zero_base = (a._data == 0) & (b._data >= 0)  # where log(a) = -inf
            if zero_base.any():
                safe = out * Where.apply(zero_base, 1, a).log()
                grad_b = grad * Where.apply(zero_base, 0, safe)
            elif not is_grad_enabled():
                grad_b = _from_array(grad, grad._data * out._data * np.log(a._data))
            else:
                grad_b = grad * out * a.log()
        return grad_a, grad_b


class _Choose(Function):
    """z = max (min) of a and b elementwise; the gradient goes to the chosen side,
    half to each on a tie."""

    choose: Callable[..., np.ndarray]
    a_wins: Callable[..., np.ndarray]

    def forward(self, a, b):
        return type(self).choose(a, b)

    def backward(self, grad, out):
        a, b = (t._data for t in self.inputs)
        to_a = np.where(a == b, 0.5, type(self).a_wins(a, b))
        to_a = to_a.astype(np.result_type(a, b))
        return grad * to_a, grad * (1 - to_a)


class Maximum(_Choose):
    """z = max(a, b); dz/da = [a > b] (1/2 on ties), dz/db = [b > a] (1/2 on ties)"""

    choose, a_wins = np.maximum, np.greater


class Minimum(_Choose):
    """z = min(a, b); dz/da = [a < b] (1/2 on ties), dz/db = [b < a] (1/2 on ties)"""

    choose, a_wins = np.minimum, np.less


class Where(Function):
    """z = a where cond else b; dz/da = [cond], dz/db = [not cond]"""

    def forward(self, cond, a, b):
        return np.where(cond, a, b)

    def backward(self, grad, out):
        cond = self.inputs[0]._data.astype(bool)
        _, need_a, need_b = self.needs_input_grad
        if not is_grad_enabled():
            g = grad._data
            return (
                None,
                _from_array(grad, g * cond) if need_a else None,
                _from_array(grad, g * ~cond) if need_b else None,
            )
        return (
            None,
            (grad * cond if need_a else None),
            (grad * ~cond if need_b else None),
        )


class MatMul(Function):
    """Z = A @ B (as np.matmul); dZ/dA = G @ Bᵀ, dZ/dB = Aᵀ @ G"""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(
                f"matmul: both operands need at least one dimension, got shapes "
                f"{a.shape} and {b.shape}"
            )
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"{a.shape[-1]} (last axis of the first) != "
                f"{b.shape[-2 if b.ndim > 1 else 0]} (rows of the second)"
            )
        if a.ndim > 2 and b.ndim == 2:  # a batch of rows times one matrix: one GEMM
            return _rows_matmul(a, b)
        return a @ b

    def backward(self, grad, out):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        if is_grad_enabled():
            return _matmul_grads(a, b, grad, need_a, need_b)
        # not recorded: the same formulas on the arrays
        grad_a, grad_b = _matmul_grads(a._data, b._data, grad._data, need_a, need_b)
        return (
            None if grad_a is None else _from_array(grad, grad_a),
            None if grad_b is None else _from_array(grad, grad_b),
        )


def _rows_matmul(a, b):
    """a @ b for a batch of rows a (..., K) and one matrix b (K, N) as one matrix
    product (np.matmul would run one per leading index), on arrays or Tensors."""
    return (a.reshape((-1, a.shape[-1])) @ b).reshape((*a.shape[:-1], b.shape[-1]))


def _matmul_grads(a, b, grad, need_a: bool, need_b: bool):
    """G Bᵀ and Aᵀ G for Z = A @ B, on Tensors or on arrays alike (both have `@`,
    `reshape` and `swapaxes`). 1-D operands are promoted to matrices as np.matmul does
    and the added axis dropped again; a batch of rows times one matrix (a Linear layer
    on a sequence) gives dB as one matmul over all the rows, not a sum of many."""
    a_1d, b_1d = a.ndim == 1, b.ndim == 1
    if b_1d:
        b, grad = b.reshape((-1, 1)), grad.reshape((*grad.shape, 1))
    if a_1d:
        a = a.reshape((1, -1))
        grad = grad.reshape((*grad.shape[:-1], 1, grad.shape[-1]))
    grad_a = grad_b = None
    if need_a and b.ndim == 2 and grad.ndim > 2:
        grad_a = _rows_matmul(grad, b.T)
    elif need_a:
        grad_a = grad @ (b.T if b.ndim == 2 else b.swapaxes(-1, -2))
        if a_1d:
            grad_a = grad_a.reshape(grad_a.shape[:-2] + grad_a.shape[-1:])
    if need_b:
        if a.ndim == 2:  # the hot path
            grad_b = a.T @ grad
        elif b.ndim == 2:
            rows = a.reshape((-1, a.shape[-1]))
            grad_b = rows.T @ grad.reshape((-1, grad.shape[-1]))
        else:
            grad_b = a.swapaxes(-1, -2) @ grad
        if b_1d:
            grad_b = grad_b.reshape(grad_b.shape[:-1])
    return grad_a, grad_b


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------


def reduction_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints) as a sorted tuple of axes in
    [0, ndim). None means every axis. As in NumPy, a 0-d array accepts axis 0 or -1
    (and reduces nothing). Every reduction and softmax normalises its axis here."""
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, quickly
        return (axis % ndim,)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if ndim == 0 and all(a in (0, -1) for a in axes):
        return ()
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for {ndim} dimensions")
    normalised = sorted(int(a) % ndim for a in axes)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"axis {axis!r} names the same axis twice")
    return tuple(normalised)


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a reduction over `axes` (normalised) has with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = Σ x over axis; dy/dx = 1 (the gradient is broadcast back)"""

    reads_inputs = False

    def forward(self, x, axis=None, keepdims=False):
        axis = reduction_axes(axis, x.ndim)
        self.kept_shape = _kept_shape(x.shape, axis)
        return np.sum(x, axis=axis, keepdims=keepdims)

    def backward(self, grad, out):
        shape = self.inputs[0].shape
        if not is_grad_enabled():  # a read-only broadcast view, no copy
            kept = grad._data.reshape(self.kept_shape)
            return _from_array(grad, np.broadcast_to(kept, shape))
        kept = grad if grad.ndim == 0 else grad.reshape(self.kept_shape)
        return kept.expand(*shape)


class _Extremum(Function):
    """y = max (min) of x over axis; the gradient is split evenly among tied elements."""

    reads_inputs = False

    reduce: Callable[..., np.ndarray]

    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(
                f"{self.name}: cannot reduce an empty array of shape {x.shape}"
            )
        axis = reduction_axes(axis, x.ndim)
        extremum = type(self).reduce(x, axis=axis, keepdims=True)
        self.kept_shape = extremum.shape
        winners = x == extremum
        self.weights = winners / winners.sum(axis=axis, keepdims=True, dtype=x.dtype)
        return extremum if keepdims else np.squeeze(extremum, axis=axis)

    def backward(self, grad, out):
        if not is_grad_enabled():
            return _from_array(grad, grad._data.reshape(self.kept_shape) * self.weights)
        return grad.reshape(self.kept_shape) * self.weights


class Max(_Extremum):
    """y = max of x over axis; dy/dx = 1/k on each of the k maxima, 0 elsewhere"""

    reduce = np.max


class Min(_Extremum):
    """y = min of x over axis; dy/dx = 1/k on each of the k minima, 0 elsewhere"""

    reduce = np.min


def _rows(x, axis):
    """x as a matrix of its rows when `axis` is the last axis of a C-contiguous float32
    or float64 array (the softmax and cross-entropy case), else None."""
    if (
        x.ndim >= 2
        and axis == (x.ndim - 1,)
        and x.dtype.char in "fd"
        and x.size
        and x.flags.c_contiguous
    ):
        return x.reshape(-1, x.shape[-1])
    return None


def _max_kept(x, axis):
    """np.max(x, axis, keepdims=True). NumPy reduces short contiguous rows one at a
    time; over the columns of the transposed copy it vectorises (3x faster on the
    rows of attention scores)."""
    rows = _rows(x, axis)
    if rows is None:
        return np.max(x, axis=axis, keepdims=True)
    return np.max(np.ascontiguousarray(rows.T), axis=0).reshape(*x.shape[:-1], 1)


def _sum_kept(x, axis):
    """np.sum(x, axis, keepdims=True); along the rows as one matrix-vector product
    (BLAS: ~8x faster than NumPy's row-by-row reduction on short rows)."""
    rows = _rows(x, axis)
    if rows is None:
        return np.sum(x, axis=axis, keepdims=True)
    ones = np.ones(rows.shape[1], dtype=x.dtype)
    return (rows @ ones).reshape(*x.shape[:-1], 1)


def _max_shifted(x, axis):
    """x minus its max along axis, so exp never overflows (all-±inf rows unshifted)."""
    m = _max_kept(x, axis)
    m = np.where(np.isfinite(m), m, 0)
    return x - m, m


def _logsumexp(x, axis):
    """log Σ exp(x) over axis, kept dims, as m + log Σ exp(x - m)."""
    shifted, m = _max_shifted(x, axis)
    return np.log(_sum_kept(np.exp(shifted), axis)) + m


class LogSumExp(Function):
    """y = log Σ exp(x) over axis; dy/dx = exp(x - y) = softmax(x)"""

    def forward(self, x, axis=None, keepdims=False):
        axis = reduction_axes(axis, x.ndim)
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer
            out = _logsumexp(x, axis)
        self.kept_shape = out.shape
        return out if keepdims else np.squeeze(out, axis=axis)

    def backward(self, grad, out):
        kept = self.kept_shape
        if not is_grad_enabled():
            softmax = np.exp(self.inputs[0]._data - out._data.reshape(kept))
            return _from_array(grad, grad._data.reshape(kept) * softmax)
        return grad.reshape(kept) * (self.inputs[0] - out.reshape(kept)).exp()


class Softmax(Function):
    """y = exp(x) / Σ exp(x) along axis; dx = y (g - Σ g y)"""

    reads_inputs = False

    def forward(self, x, axis=-1):
        self.axis = axis = reduction_axes(axis, x.ndim)
        e = np.exp(_max_shifted(x, axis)[0])
        e /= _sum_kept(e, axis)  # in place: attention's widest array
        return e

    def backward(self, grad, out):
        if not is_grad_enabled():
            g, y = grad._data, out._data
            dx = np.asarray(g * y)
            total = _sum_kept(dx, self.axis)
            np.subtract(g, total, out=dx)
            dx *= y
            return _from_array(grad, dx)
        return out * (grad - (grad * out).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x) along axis; dx = g - exp(y) Σ g"""

    reads_inputs = False

    def forward(self, x, axis=-1):
        self.axis = axis = reduction_axes(axis, x.ndim)
        shifted, _ = _max_shifted(x, axis)
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer
            return shifted - np.log(_sum_kept(np.exp(shifted), axis))

    def backward(self, grad, out):
        if not is_grad_enabled():
            g = grad._data
            total = _sum_kept(g, self.axis)
            return _from_array(grad, g - np.exp(out._data) * total)
        return grad - out.exp() * grad.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """y = Σ_n w_n (logsumexp(x_n) - Σ_c q_nc x_nc) over the rows x_n of logits (N, C),
    q_n one-hot at target[n] mixed with the uniform distribution by `smoothing`;
    dy/dx_n = w_n (softmax(x_n) - q_n). Softmax, pick and reduction in one node."""

    def forward(self, x, target, weights, smoothing=0.0):
        if x.ndim != 2 or target.shape != x.shape[:1] or target.dtype.kind not in "iu":
            raise ValueError(
                f"cross-entropy needs logits (N, C) and N integer targets, got logits "
                f"{x.shape} and targets {target.shape} {target.dtype}"
            )
        if np.ndim(weights) and np.shape(weights) != target.shape:
            raise ValueError(
                f"weights of shape {np.shape(weights)} for {len(x)} rows: give one "
                "number, or one per row"
            )
        if target.size and (target.min() < 0 or target.max() >= x.shape[1]):
            raise ValueError(
                f"targets from {target.min()} to {target.max()} are out of range for "
                f"{x.shape[1]} classes"
            )
        self.target, self.weights, self.smoothing = target, weights, smoothing
        shifted, _ = _max_shifted(x, (1,))
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer
            lse = np.log(_sum_kept(np.exp(shifted), (1,))[:, 0])
        losses = lse - shifted[np.arange(len(x)), target]
        if smoothing:
            uniform = lse - shifted.mean(axis=1)  # -mean_c log softmax(x_n)_c
            losses = losses * (1 - smoothing) + uniform * smoothing
        if np.ndim(weights) == 0:
            return np.asarray(losses.sum() * weights, dtype=x.dtype)
        # rows of weight 0 count 0, also where their loss is inf (0 * inf = NaN)
        return np.asarray(np.where(weights == 0, 0, losses) @ weights, dtype=x.dtype)

    def backward(self, grad, out):
        x = self.inputs[0]
        rows, classes = x.shape
        weights = self.weights
        if np.ndim(weights):
            weights = weights.reshape(rows, 1)
        if not is_grad_enabled():  # not recorded: softmax - q on the arrays, in place
            e = np.exp(_max_shifted(x._data, (1,))[0])
            e /= _sum_kept(e, (1,))
            e[np.arange(rows), self.target] -= 1 - self.smoothing
            if self.smoothing:
                e -= self.smoothing / classes
            e *= grad._data * weights
            return _from_array(grad, e)
        q = np.full(x.shape, self.smoothing / classes, dtype=x.dtype)
        q[np.arange(rows), self.target] += 1 - self.smoothing
        return (x.softmax(axis=1) - q) * (grad * weights)


# ---------------------------------------------------------------------------------------
# Shape ops, in adjoint pairs: each one's backward is its partner
# ---------------------------------------------------------------------------------------


class Reshape(Function):
    """y = x reshaped; dx = dy reshaped back"""

    def forward(self, x, shape):
        return x.reshape(shape)

    def backward(self, grad, out):
        if not is_grad_enabled():
            return _from_array(grad, grad._data.reshape(self.inputs[0].shape))
        return grad.reshape(self.inputs[0].shape)


class Transpose(Function):
    """y = x with axes permuted; dx = dy with the inverse permutation"""

    def forward(self, x, axes=None):
        out = np.transpose(x, axes)  # validates axes
        self.axes = None if axes is None else [a % x.ndim for a in axes]
        return out

    def backward(self, grad, out):
        inverse = None if self.axes is None else np.argsort(self.axes).tolist()
        if not is_grad_enabled():
            return _from_array(grad, np.transpose(grad._data, inverse))
        if inverse is None:
            return grad.transpose()
        return grad.transpose(*inverse)


class Expand(Function):
    """y = x broadcast to shape; dx = dy summed back (by the engine's sum_to)"""

    def forward(self, x, shape):
        return np.broadcast_to(x, shape)

    def backward(self, grad, out):
        return grad


def sum_to_shape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast array back to `shape`: the adjoint of broadcasting."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    if lead < 0 or any(n not in (1, m) for n, m in zip(shape, x.shape[lead:])):
        raise ValueError(f"sum_to: shape {shape} does not broadcast to {x.shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return np.sum(x, axis=axes, keepdims=True).reshape(shape)


class SumTo(Function):
    """y = x summed to a shape it broadcasts from; dx = dy broadcast back"""

    def forward(self, x, shape):
        return sum_to_shape(x, shape)

    def backward(self, grad, out):
        return grad.expand(*self.inputs[0].shape)


def _is_basic(index) -> bool:
    """True for an index of ints, slices, None and Ellipsis only (no repeated elements)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis
        for i in items
    )


class GetItem(Function):
    """y = x[index]; dx = zeros with dy added at index (repeated indices accumulate)"""

    def forward(self, x, index):
        self.index = index
        return x[index]

    def backward(self, grad, out):
        shape = self.inputs[0].shape
        if not is_grad_enabled():
            return _from_array(grad, _scatter_add(grad._data, self.index, shape))
        return ScatterAdd.apply(grad, index=self.index, shape=shape)


class ScatterAdd(Function):
    """y = zeros(shape) with x added at index; dx = dy[index]"""

    reads_inputs = False

    def forward(self, x, index, shape):
        self.index = index
        return _scatter_add(x, index, shape)

    def backward(self, grad, out):
        if not is_grad_enabled():
            return _from_array(grad, grad._data[self.index])
        return grad[self.index]


def _scatter_add(x: np.ndarray, index, shape: tuple[int, ...]) -> np.ndarray:
    """zeros(shape) with x added at index (repeated indices accumulate)."""
    out = np.zeros(shape, dtype=x.dtype)
    if _is_basic(index):
        out[index] = x
    elif type(index) is np.ndarray and index.dtype.kind in "iu" and index.size > 1:
        # whole rows picked by one integer array (an embedding lookup)
        _add_rows(out, index.reshape(-1), x.reshape(index.size, *shape[1:]))
    else:
        np.add.at(out, index, x)
    return out


def _add_rows(out: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """out[rows[i]] += values[i] for every i, repeated rows accumulating: the rows
    sorted, then one sum per run of equal rows (2-3x faster than np.add.at)."""
    rows = np.where(rows < 0, rows + len(out), rows)
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    out[rows[starts]] += np.add.reduceat(values[order], starts, axis=0)


class Concatenate(Function):
    """y = the inputs joined along axis; each input's gradient is its slice of dy"""

    reads_inputs = False

    def forward(self, *arrays, axis=0):
        self.axis = axis
        return np.concatenate(arrays, axis=axis)

    def backward(self, grad, out):
        axis = self.axis % grad.ndim
        grads, start = [], 0
        for x, need in zip(self.inputs, self.needs_input_grad):
            stop = start + x.shape[axis]
            grads.append(
                grad[(slice(None),) * axis + (slice(start, stop),)] if need else None
            )
            start = stop
        return tuple(grads)


class Pad(Function):
    """y = x with constant borders; dx = the interior slice of dy"""

    reads_inputs = False

    def forward(self, x, pad_width, value=0):
        self.pad_width = pad_width
        return np.pad(x, pad_width, constant_values=value)

    def backward(self, grad, out):
        return grad[
            tuple(
                slice(lo, lo + n)
                for (lo, _), n in zip(self.pad_width, self.inputs[0].shape)
            )
        ]


class Windows(Function):
    """y[..., i, j, p, q] = x[..., i*s + p, j*s + q]: the kh×kw sliding windows over the
    last two axes (a view, no copy); dx = the windows folded back, overlaps summed"""

    def forward(self, x, kernel_size, stride):
        self.kernel_size, self.stride = kernel_size, stride
        (kh, kw), (sh, sw) = kernel_size, stride
        if x.ndim < 2 or x.shape[-2] < kh or x.shape[-1] < kw:
            raise ValueError(
                f"windows: a {kh}x{kw} window does not fit in the last two axes of "
                f"shape {x.shape}"
            )
        view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))
        return view[..., ::sh, ::sw, :, :]

    def backward(self, grad, out):
        return Fold.apply(
            grad,
            shape=self.inputs[0].shape,
            kernel_size=self.kernel_size,
            stride=self.stride,
        )


class Fold(Function):
    """y = windows summed back into an array of `shape` (the adjoint of Windows);
    dx = the windows of dy"""

    reads_inputs = False

    def forward(self, x, shape, kernel_size, stride):
        self.kernel_size, self.stride = kernel_size, stride
        (kh, kw), (sh, sw) = kernel_size, stride
        rows, cols = x.shape[-4], x.shape[-3]
        out = np.zeros(shape, dtype=x.dtype)
        # one strided add per kernel offset: a loop over the kh*kw offsets, not pixels
        for p in range(kh):
            for q in range(kw):
                out[..., p : p + sh * rows : sh, q : q + sw * cols : sw] += x[..., p, q]
        return out

    def backward(self, grad, out):
        return grad.windows(self.kernel_size, self.stride)


# ---------------------------------------------------------------------------------------
# More operations: log1p/expm1/tan, the rounding family, √ with a zero subgradient,
# prod, cumsum, flip/roll, einsum
# ---------------------------------------------------------------------------------------


def _zero_derivative(x, y, m):
    # piecewise constant: the derivative is 0 wherever it exists, as in PyTorch
    return np.zeros_like(m.value(x))


def _safe_sqrt_derivative(x, y, m):
    values = m.value(y)
    positive = values > 0
    # 1/(2y) where y > 0, and 0 (not inf) at y = 0, without dividing by zero
    return 0.5 / (y + (~positive).astype(values.dtype)) * positive.astype(values.dtype)


Log1p = _elementwise(
    "Log1p", np.log1p, lambda x, y, m: 1 / (1 + x), "y = log(1+x); dy/dx = 1/(1+x)"
)
Expm1 = _elementwise(
    "Expm1", np.expm1, lambda x, y, m: y + 1, "y = eˣ - 1; dy/dx = y + 1"
)
Tan = _elementwise("Tan", np.tan, lambda x, y, m: 1 + y * y, "y = tan(x); dy/dx = 1+y²")
Sign = _elementwise("Sign", np.sign, _zero_derivative, "y = sign(x); dy/dx = 0")
Floor = _elementwise("Floor", np.floor, _zero_derivative, "y = ⌊x⌋; dy/dx = 0")
Ceil = _elementwise("Ceil", np.ceil, _zero_derivative, "y = ⌈x⌉; dy/dx = 0")
Round = _elementwise(
    "Round", np.round, _zero_derivative, "y = x rounded, halves to even; dy/dx = 0"
)
SafeSqrt = _elementwise(
    "SafeSqrt",
    np.sqrt,
    _safe_sqrt_derivative,
    "y = √x; dy/dx = 1/(2y), and 0 at y = 0 (the subgradient std and norm take there)",
)


def _to_last(x, axes: tuple[int, ...]):
    """The permutation that moves `axes` to the end, and its inverse."""
    order = [a for a in range(x.ndim) if a not in axes] + list(axes)
    return order, np.argsort(order).tolist()


def _products_of_others(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Π_{j≠i} x_j over `axes`, for every element i, with no division (exact where x
    has zeros): the product of the elements before i times that of those after it."""
    order, inverse = _to_last(x, axes)
    moved = np.transpose(x, order)
    flat = moved.reshape(*moved.shape[: x.ndim - len(axes)], -1)
    one = np.ones_like(flat[..., :1])
    before = np.cumprod(np.concatenate([one, flat[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([one, flat[..., :0:-1]], axis=-1), axis=-1)
    others = (before * after[..., ::-1]).reshape(moved.shape)
    return np.transpose(others, inverse)


class Prod(Function):
    """y = Π x over axis; dy/dx_i = Π_{j≠i} x_j, exact where x has zeros"""

    def forward(self, x, axis=None, keepdims=False):
        self.axes = reduction_axes(axis, x.ndim)
        self.kept_shape = _kept_shape(x.shape, self.axes)
        return np.prod(x, axis=self.axes, keepdims=keepdims)

    def backward(self, grad, out):
        x = self.inputs[0]
        grad = grad.reshape(self.kept_shape)
        if (out._data != 0).all() and np.isfinite(out._data).all():
            # no zeros in x (nor underflow): y/x_i is Π_{j≠i} x_j, to every order
            return grad * (out.reshape(self.kept_shape) / x)
        if not is_grad_enabled():
            return grad * _products_of_others(x._data, self.axes)
        # Recorded, with zeros: Π_{j≠i} x_j as the Prod of x with x_i replaced by 1,
        # differentiable again (n² memory per reduced group, for this case only).
        order, inverse = _to_last(x, self.axes)
        moved = x.transpose(*order)
        lead = moved.shape[: x.ndim - len(self.axes)]
        n = math.prod(moved.shape[len(lead) :])
        rows = Where.apply(np.eye(n, dtype=bool), 1, moved.reshape(*lead, 1, n))
        others = Prod.apply(rows, axis=-1).reshape(moved.shape).transpose(*inverse)
        return grad * others


class Cumsum(Function):
    """y_i = Σ_{j≤i} x_j along axis (Σ_{j≥i} if reverse); dx = the cumsum of dy the
    other way round"""

    reads_inputs = False

    def forward(self, x, axis, reverse=False):
        self.axis, self.reverse = axis, reverse
        if reverse:
            return np.flip(np.cumsum(np.flip(x, axis), axis), axis)
        return np.cumsum(x, axis)

    def backward(self, grad, out):
        return Cumsum.apply(grad, axis=self.axis, reverse=not self.reverse)


class Flip(Function):
    """y = x reversed along axes; dx = dy reversed along the same axes"""

    def forward(self, x, axes):
        self.axes = axes
        return np.flip(x, axes)

    def backward(self, grad, out):
        return Flip.apply(grad, axes=self.axes)


class Roll(Function):
    """y = x shifted cyclically along axes (as np.roll); dx = dy shifted back"""

    reads_inputs = False

    def forward(self, x, shift, axis=None):
        self.shift, self.axis = shift, axis
        return np.roll(x, shift, axis)

    def backward(self, grad, out):
        back = np.negative(self.shift).tolist()
        return Roll.apply(grad, shift=back, axis=self.axis)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def einsum_labels(
    subscripts: str, shapes: list[tuple[int, ...]]
) -> tuple[list[str], str]:
    """NumPy's einsum subscripts made explicit: one letter per axis of every operand
    and of the output (`...` becomes letters not used elsewhere, aligned from the
    right as broadcasting aligns axes; an implicit output is the broadcast axes, then
    the letters used once, sorted). Returns (input terms, output term)."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, output = spec.partition("->")
    terms = lhs.split(",")
    batch_ndim = max(
        (len(s) - len(t) + 3 for t, s in zip(terms, shapes) if "..." in t), default=0
    )
    batch = "".join([c for c in _LETTERS if c not in spec][:batch_ndim])
    inputs = [
        t.replace("...", batch[len(batch) - (len(s) - len(t) + 3) :])
        for t, s in zip(terms, shapes)
    ]
    if not arrow:
        letters = "".join(terms).replace(".", "")
        once = sorted(c for c in set(letters) if letters.count(c) == 1)
        output = "..." + "".join(once)
    return inputs, output.replace("...", batch)


class Einsum(Function):
    """y = einsum(subscripts, *xs), as np.einsum; dy/dx_k = einsum of dy with the other
    operands into x_k's subscripts (diagonals and summed-out axes put back)"""

    def forward(self, *arrays, subscripts):
        out = np.einsum(subscripts, *arrays, optimize=len(arrays) > 2)
        self.terms, self.out_term = einsum_labels(subscripts, [a.shape for a in arrays])
        self.sizes = {}
        for term, array in zip(self.terms, arrays):
            for label, n in zip(term, array.shape):
                if n != 1 or label not in self.sizes:  # broadcast size-1 axes
                    self.sizes[label] = n
        return out

    def backward(self, grad, out):
        return tuple(
            self._grad(k, grad) if need else None
            for k, need in enumerate(self.needs_input_grad)
        )

    def _grad(self, k: int, grad):
        target = self.terms[k]
        terms = [self.out_term] + [t for i, t in enumerate(self.terms) if i != k]
        operands = [grad] + [x for i, x in enumerate(self.inputs) if i != k]
        known = set("".join(terms))
        fresh = iter([c for c in _LETTERS if c not in known and c not in target])
        wanted = ""
        for i, label in enumerate(target):
            size = self.sizes[label]
            if label in target[:i]:  # a repeated label: the gradient is on the diagonal
                wanted += next(fresh)
                terms.append(label + wanted[-1])
                operands.append(np.eye(size, dtype=grad.dtype))
                continue
            if label not in known:  # summed out of x_k alone: broadcast back
                terms.append(label)
                operands.append(np.ones(size, dtype=grad.dtype))
                known.add(label)
            wanted += label
        return Einsum.apply(*operands, subscripts=",".join(terms) + "->" + wanted)
