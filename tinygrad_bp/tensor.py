"""Tensor: an array that remembers how it was computed, so its gradient can be derived.

Every differentiable method is one line that hands an op from `ops` to `Tensor._apply`,
the single place where operands are normalised, the forward pass runs and the graph is
linked. `Tensor.backward` and `grad` hand the graph to the engine in `autograd`.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _config, ops
from ._grad_mode import _State
from .autograd import backprop
from .function import Function, OutputLock, SavedLeaves

Shape = tuple[int, ...]


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Convert user data to a new array: NumPy keeps its dtype, Python floats get the default."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, (np.ndarray, np.generic)):
        return np.array(data, dtype=dtype)
    array = np.array(data, dtype=dtype)
    if dtype is None and array.dtype == np.float64:
        array = array.astype(_config.get_default_dtype())
    if array.dtype == object:
        raise TypeError(
            f"cannot make a Tensor from {type(data).__name__}: {data!r:.80} "
            "(expected a number, a nested list of numbers, an array or a Tensor)"
        )
    return array


def _check_grad_dtype(dtype: np.dtype) -> None:
    if dtype.kind != "f":
        raise TypeError(
            f"only floating-point tensors can require gradients, got dtype {dtype}"
        )


def _shape_arg(shape: tuple) -> Shape:
    """Accept both f(2, 3) and f((2, 3)), as NumPy and PyTorch users write either."""
    if len(shape) == 1 and isinstance(shape[0], Sequence):
        shape = tuple(shape[0])
    return tuple(int(n) for n in shape)


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    >>> import tinygrad_bp as tg
    >>> x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    Tensor([2., 4., 6.])
    """

    __slots__ = (
        "__weakref__",
        "_data",
        "_hooks",
        "_lock",
        "_requires_grad",
        "_retains_grad",
        "grad",
        "grad_fn",
    )
    # `==` is elementwise, so Tensors hash by identity: the engine keys dicts by tensor.
    __hash__ = object.__hash__
    # Make NumPy hand `array + tensor` to Tensor.__radd__ instead of looping over it.
    __array_ufunc__ = None

    data: np.ndarray
    grad: Tensor | None
    grad_fn: Function | None

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None
    ) -> None:
        self._data = _as_array(data, dtype)
        if requires_grad:
            _check_grad_dtype(self._data.dtype)
        self.grad = None
        self.grad_fn = None
        self._requires_grad = bool(requires_grad)
        self._retains_grad = False
        self._hooks: list[Callable] | None = None
        self._lock: list | None = None  # see function.SavedLeaves

    @classmethod
    def _wrap(cls, data: np.ndarray, grad_fn: Function | None = None) -> Tensor:
        """A Tensor around an array the library just computed (no copy, no checks)."""
        t = object.__new__(cls)
        t._data = data if type(data) is np.ndarray else np.asarray(data)
        t.grad = None
        t.grad_fn = grad_fn
        t._requires_grad = grad_fn is not None
        t._retains_grad = False
        t._hooks = None
        t._lock = None
        return t

    def _recorded(self) -> bool:
        """Whether an op on this tensor now would be recorded in the graph (if not,
        an op that changes nothing returns `detach()`: a new Tensor, same array)."""
        return _State.enabled and self._requires_grad

    @staticmethod
    def _apply(op: type[Function], *args: Any, **params: Any) -> Tensor:
        """Run `op` on Tensors (or scalars/arrays, made constants) and record the node."""
        fn = op()
        inputs = args
        for a in args:
            if not isinstance(a, Tensor):
                inputs = _operands(args)
                break
        else:
            if len(args) > 1 and args[0]._data.dtype is not args[-1]._data.dtype:
                inputs = _operands(args)  # mixed dtypes: integers must not widen
        try:  # map(attrgetter): no Python frame per call, unlike a comprehension
            data = fn.forward(*map(_get_data, inputs), **params)
        except (ValueError, TypeError) as error:  # name the op and its operands
            shapes = ", ".join(f"{t.shape} {t.dtype}" for t in inputs)
            kind = ValueError if isinstance(error, ValueError) else TypeError
            raise kind(f"{fn.name} on {shapes}: {error}") from None
        out = Tensor._wrap(data)
        if _State.enabled:
            needs = tuple(map(_get_requires_grad, inputs))
            if True in needs:
                fn.inputs = inputs
                fn.needs_input_grad = needs
                leaves = []  # a loop, not a comprehension: no frame of its own
                if fn.reads_inputs:
                    for a in args:
                        if isinstance(a, Tensor) and a.grad_fn is None:
                            leaves.append(a)
                fn.saved_leaves = SavedLeaves(leaves) if leaves else None
                fn._output = out._data
                fn._output_lock = None  # taken when handed out (Tensor.data)
                out.grad_fn = fn
                out._requires_grad = True
        return out

    # ----------------------------------------------------------------- attributes
    @property
    def data(self) -> np.ndarray:
        """The NumPy array that holds the values.

        While a recorded graph still needs it (the backward of a later op will read
        it), the array is read-only, so an in-place write cannot silently change a
        gradient; it is writable again once the graph is released. The library itself
        reads `_data`, so only arrays that are handed out are locked.

        >>> import tinygrad_bp as tg
        >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
        >>> h = x.exp(); y = (h * h).sum()
        >>> h.data.flags.writeable, x.data.flags.writeable
        (False, False)
        >>> y.backward(); h.data.flags.writeable, x.data.flags.writeable
        (True, True)
        """
        fn = self.grad_fn
        if fn is not None and fn._output_lock is None and fn.inputs is not None:
            fn._output_lock = OutputLock(self._data)
        return self._data

    @data.setter
    def data(self, array: np.ndarray) -> None:
        # A replaced array is caught by the backward pass (see SavedLeaves, toposort)
        self._data = array

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to (and, for a leaf, accumulate in) this tensor.

        >>> import tinygrad_bp as tg
        >>> tg.ones(2, requires_grad=True).requires_grad
        True
        """
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set `requires_grad` on a leaf in place and return it.

        >>> import tinygrad_bp as tg
        >>> tg.ones(2).requires_grad_().requires_grad
        True
        """
        if self.grad_fn is not None:
            raise RuntimeError(
                "requires_grad can only be changed on leaf tensors; use .detach() to "
                "get a leaf from a computed tensor"
            )
        if flag:
            _check_grad_dtype(self._data.dtype)
        self._requires_grad = bool(flag)
        return self

    @property
    def is_leaf(self) -> bool:
        """True for tensors the user created, False for results of recorded ops.

        >>> import tinygrad_bp as tg
        >>> x = tg.ones(2, requires_grad=True); x.is_leaf, (x * 2).is_leaf
        (True, False)
        """
        return self.grad_fn is None

    @property
    def shape(self) -> Shape:
        """The size of each axis.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3).shape
        (2, 3)
        """
        return self._data.shape

    @property
    def ndim(self) -> int:
        """The number of axes.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3).ndim
        2
        """
        return self._data.ndim

    @property
    def size(self) -> int:
        """The number of elements.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3).size
        6
        """
        return self._data.size

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the data.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2).dtype
        dtype('float32')
        """
        return self._data.dtype

    @property
    def T(self) -> Tensor:
        """The tensor with its axes reversed (`transpose()`).

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3).T.shape
        (3, 2)
        """
        return self.transpose()

    # ---------------------------------------------------------------- conversions
    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.0, 2.0]).numpy()
        array([1., 2.], dtype=float32)
        """
        return self.data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([2.5]).item()
        2.5
        """
        if self._data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, got shape {self.shape}"
            )
        return self._data.item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[1, 2]]).tolist()
        [[1, 2]]
        """
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self.data

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        """`float(t)` of a one-element tensor, as `t.item()`: `float(loss)`."""
        return float(self.item())

    def __int__(self) -> int:
        """`int(t)` of a one-element tensor, as `t.item()`."""
        return int(self.item())

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __format__(self, spec: str) -> str:
        """Format specs apply to one-element tensors' value: f"{loss:.3f}"."""
        if spec and self._data.size == 1:
            return format(self._data.item(), spec)
        return format(repr(self), spec)

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        extras = []
        if self._data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self._data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({', '.join([body, *extras])})"

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph.

        >>> import tinygrad_bp as tg
        >>> (tg.ones(2, requires_grad=True) * 2).detach().requires_grad
        False
        """
        return Tensor._wrap(self.data)

    def astype(self, dtype: Any) -> Tensor:
        """This tensor cast to `dtype` (differentiable between floating dtypes).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.5]).astype('float64').dtype
        dtype('float64')
        """
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            # as torch's .to(), the same tensor; under no_grad (as every op there)
            # a new one that does not require grad
            return self if _State.enabled else self.detach()
        if self._requires_grad:
            _check_grad_dtype(dtype)
        return self._apply(ops.Cast, self, dtype=dtype)

    # ------------------------------------------------------------------- autograd
    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool = False,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) · gradient into `.grad` of every leaf that requires grad.

        `gradient` (dL/dself) may be omitted only when self has one element.
        """
        seed = _seed(self, gradient, "backward()", create_graph)
        backprop([self], [seed], retain_graph or create_graph, create_graph)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor during backward.

        >>> import tinygrad_bp as tg
        >>> x = tg.tensor([1.0, 2.0], requires_grad=True); h = x * 3; h.retain_grad()
        >>> (h * h).sum().backward(); h.grad
        Tensor([ 6., 12.])
        """
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    def register_hook(
        self, hook: Callable[[Tensor], Tensor | None]
    ) -> Callable[[], None]:
        """Call `hook(grad)` when this tensor's gradient is computed; a returned Tensor
        replaces the gradient. Returns a function that removes the hook.

        >>> import tinygrad_bp as tg
        >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
        >>> _ = x.register_hook(lambda g: g * 10)
        >>> (x * x).sum().backward(); x.grad
        Tensor([20., 40.])
        """
        if not self._requires_grad:
            raise RuntimeError(
                "cannot register a hook on a tensor that does not require grad"
            )
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> Tensor:
        return self._apply(ops.Add, self, other)

    def __radd__(self, other: Any) -> Tensor:
        return self._apply(ops.Add, other, self)

    def __sub__(self, other: Any) -> Tensor:
        return self._apply(ops.Sub, self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return self._apply(ops.Sub, other, self)

    def __mul__(self, other: Any) -> Tensor:
        return self._apply(ops.Mul, self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return self._apply(ops.Mul, other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return self._apply(ops.Div, self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._apply(ops.Div, other, self)

    def __pow__(self, other: Any) -> Tensor:
        return self._apply(ops.Pow, self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return self._apply(ops.Pow, other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return self._apply(ops.MatMul, self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._apply(ops.MatMul, other, self)

    def __neg__(self) -> Tensor:
        return self._apply(ops.Neg, self)

    def __pos__(self) -> Tensor:
        # as torch.positive, the same tensor; under no_grad a new one without grad
        return self if _State.enabled else self.detach()

    # ------------------------------------------------- comparisons (no gradient)
    def _compare(self, compare: Callable, other: Any) -> Tensor:
        other = other._data if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(compare(self._data, other)))

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(np.less, other)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(np.less_equal, other)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(np.greater, other)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(np.greater_equal, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(np.equal, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(np.not_equal, other)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index of the largest element (over the flattened tensor when axis is None).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[1.0, 5.0], [7.0, 2.0]]).argmax(axis=1)
        Tensor([1, 0])
        """
        return Tensor._wrap(
            np.asarray(np.argmax(self._data, axis=axis, keepdims=keepdims))
        )

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index of the smallest element (over the flattened tensor when axis is None).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([3.0, 1.0, 2.0]).argmin().item()
        1
        """
        return Tensor._wrap(
            np.asarray(np.argmin(self._data, axis=axis, keepdims=keepdims))
        )

    def argsort(self, axis: int = -1, descending: bool = False) -> Tensor:
        """Indices that sort the tensor along `axis` (stable: ties keep their order, also
        when descending); int64, not differentiable.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([3.0, 1.0, 2.0]).argsort()
        Tensor([1, 2, 0])
        """
        if self.ndim == 0:
            ops.reduction_axes(axis, 0)
            return Tensor._wrap(np.zeros((), dtype=np.int64))
        axis = _axis(axis, self.ndim, "argsort")
        if not descending:
            return Tensor._wrap(np.argsort(self._data, axis=axis, kind="stable"))
        # sort the reversed tensor, then reverse back: ties stay in their first order
        reversed_order = np.argsort(np.flip(self._data, axis), axis=axis, kind="stable")
        return Tensor._wrap(self.shape[axis] - 1 - np.flip(reversed_order, axis))

    # ---------------------------------------------------------------- elementwise
    def exp(self) -> Tensor:
        """eˣ elementwise; d/dx = eˣ.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 1.0]).exp()
        Tensor([1.      , 2.718282])
        """
        return self._apply(ops.Exp, self)

    def log(self) -> Tensor:
        """Natural logarithm elementwise; d/dx = 1/x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.0]).log()
        Tensor([0.])
        """
        return self._apply(ops.Log, self)

    def sqrt(self) -> Tensor:
        """Square root elementwise; d/dx = 1/(2√x).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([4.0, 9.0]).sqrt()
        Tensor([2., 3.])
        """
        return self._apply(ops.Sqrt, self)

    def abs(self) -> Tensor:
        """|x| elementwise; d/dx = sign(x).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-2.0, 3.0]).abs()
        Tensor([2., 3.])
        """
        return self._apply(ops.Abs, self)

    def sin(self) -> Tensor:
        """sin x elementwise; d/dx = cos x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0]).sin()
        Tensor([0.])
        """
        return self._apply(ops.Sin, self)

    def cos(self) -> Tensor:
        """cos x elementwise; d/dx = -sin x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0]).cos()
        Tensor([1.])
        """
        return self._apply(ops.Cos, self)

    def tanh(self) -> Tensor:
        """tanh x elementwise; d/dx = 1 - tanh² x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0]).tanh()
        Tensor([0.])
        """
        return self._apply(ops.Tanh, self)

    def sigmoid(self) -> Tensor:
        """σ(x) = 1 / (1 + e⁻ˣ), without overflow for any x; d/dx = σ(1 - σ).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 1000.0, -1000.0]).sigmoid()
        Tensor([0.5, 1. , 0. ])
        """
        return self._apply(ops.Sigmoid, self)

    def relu(self) -> Tensor:
        """max(x, 0) elementwise; d/dx = 1 where x > 0, else 0.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-1.0, 2.0]).relu()
        Tensor([0., 2.])
        """
        return self._apply(ops.Relu, self)

    def leaky_relu(self, slope: float = 0.01) -> Tensor:
        """x where x > 0, else slope·x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-1.0, 2.0]).leaky_relu(0.1)
        Tensor([-0.1,  2. ])
        """
        return self._apply(ops.LeakyRelu, self, slope=slope)

    def elu(self, alpha: float = 1.0) -> Tensor:
        """x where x > 0, else α(eˣ - 1).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 2.0]).elu()
        Tensor([0., 2.])
        """
        return self._apply(ops.Elu, self, alpha=alpha)

    def gelu(self, approximate: str = "none") -> Tensor:
        """x Φ(x) with the exact erf, or its tanh approximation (`approximate="tanh"`).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 1.0], dtype='float64').gelu().tolist()
        [0.0, 0.8413447460685429]
        """
        if approximate == "none":
            return self._apply(ops.Gelu, self)
        if approximate == "tanh":
            return self._apply(ops.GeluTanh, self)
        raise ValueError(
            f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}"
        )

    def erf(self) -> Tensor:
        """The error function 2/√π ∫₀ˣ e^(-t²) dt; d/dx = 2/√π e^(-x²).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0]).erf()
        Tensor([0.])
        """
        return self._apply(ops.Erf, self)

    def softplus(self) -> Tensor:
        """log(1 + eˣ), without overflow for any x; d/dx = σ(x).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 1000.0]).softplus().tolist()
        [0.6931471824645996, 1000.0]
        """
        return self._apply(ops.Softplus, self)

    def silu(self) -> Tensor:
        """x σ(x) (also called swish).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0]).silu()
        Tensor([0.])
        """
        return self._apply(ops.Silu, self)

    def clip(self, lo: float | None, hi: float | None) -> Tensor:
        """Values limited to [lo, hi]; the gradient passes where lo <= x <= hi.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-2.0, 0.5, 3.0]).clip(0, 1)
        Tensor([0. , 0.5, 1. ])
        """
        if lo is None and hi is None:
            raise ValueError("clip: at least one of lo and hi must be given")
        lo = -np.inf if lo is None else lo
        hi = np.inf if hi is None else hi
        return self._apply(ops.Clip, self, lo=lo, hi=hi)

    def log1p(self) -> Tensor:
        """log(1 + x), accurate for small x; d/dx = 1/(1 + x).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 1e-10], dtype='float64').log1p().tolist()
        [0.0, 1e-10]
        """
        return self._apply(ops.Log1p, self)

    def expm1(self) -> Tensor:
        """eˣ - 1, accurate for small x; d/dx = eˣ.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 1e-10], dtype='float64').expm1().tolist()
        [0.0, 1e-10]
        """
        return self._apply(ops.Expm1, self)

    def square(self) -> Tensor:
        """x² elementwise; d/dx = 2x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-2.0, 3.0]).square()
        Tensor([4., 9.])
        """
        return self * self

    def tan(self) -> Tensor:
        """tan x elementwise; d/dx = 1 + tan² x.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0]).tan()
        Tensor([0.])
        """
        return self._apply(ops.Tan, self)

    def sign(self) -> Tensor:
        """-1, 0 or 1 by the sign of x; the gradient is 0 (as PyTorch).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-2.0, 0.0, 3.0]).sign()
        Tensor([-1.,  0.,  1.])
        """
        return self._apply(ops.Sign, self)

    def floor(self) -> Tensor:
        """The largest integer <= x, elementwise; the gradient is 0.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-1.5, 1.5]).floor()
        Tensor([-2.,  1.])
        """
        return self._apply(ops.Floor, self)

    def ceil(self) -> Tensor:
        """The smallest integer >= x, elementwise; the gradient is 0.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([-1.5, 1.5]).ceil()
        Tensor([-1.,  2.])
        """
        return self._apply(ops.Ceil, self)

    def round(self) -> Tensor:
        """The nearest integer, halves to even (as NumPy and PyTorch); the gradient is 0.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.5, 1.5, 2.7]).round()
        Tensor([0., 2., 3.])
        """
        return self._apply(ops.Round, self)

    # ----------------------------------------------------------------- reductions
    def sum(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """Σx over `axis` (all axes when None); the gradient is broadcast back.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=0)
        Tensor([4., 6.])
        """
        return self._apply(ops.Sum, self, axis=axis, keepdims=keepdims)

    def mean(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """Σx / n over `axis`.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[1.0, 2.0], [3.0, 4.0]]).mean(axis=1)
        Tensor([1.5, 3.5])
        """
        total = self.sum(axis=axis, keepdims=keepdims)
        return total / self._count_reduced_into(total)

    def var(
        self,
        axis: int | tuple[int, ...] | None = None,
        ddof: int = 0,
        keepdims: bool = False,
    ) -> Tensor:
        """Σ(x - mean)² / (n - ddof) over `axis`, as np.var.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.0, 2.0, 3.0, 4.0]).var(ddof=1).item()
        1.6666666269302368
        """
        deviation = self - self.mean(axis=axis, keepdims=True)
        squares = (deviation * deviation).sum(axis=axis, keepdims=keepdims)
        return squares / (self._count_reduced_into(squares) - ddof)

    def _count_reduced_into(self, reduced: Tensor) -> int:
        """How many of this tensor's elements each element of `reduced` summarises."""
        return self.size // max(reduced.size, 1)

    def max(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """Largest element over `axis`; tied maxima share the gradient evenly.

        >>> import tinygrad_bp as tg
        >>> x = tg.tensor([1.0, 3.0, 3.0], requires_grad=True); x.max().backward(); x.grad
        Tensor([0. , 0.5, 0.5])
        """
        return self._apply(ops.Max, self, axis=axis, keepdims=keepdims)

    def min(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """Smallest element over `axis`; tied minima share the gradient evenly.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[1.0, 5.0], [0.0, 2.0]]).min(axis=0)
        Tensor([0., 2.])
        """
        return self._apply(ops.Min, self, axis=axis, keepdims=keepdims)

    def logsumexp(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """log Σ eˣ over `axis`, finite for any |x|; the gradient is softmax(x).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1000.0, 1000.0]).logsumexp().item()
        1000.6931762695312
        """
        return self._apply(ops.LogSumExp, self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        """eˣ / Σ eˣ along `axis`, finite for any |x|.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 0.0]).softmax()
        Tensor([0.5, 0.5])
        """
        return self._apply(ops.Softmax, self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - logsumexp(x) along `axis`, finite for any |x|.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([0.0, 0.0]).log_softmax()
        Tensor([-0.6931472, -0.6931472])
        """
        return self._apply(ops.LogSoftmax, self, axis=axis)

    def softmax_cross_entropy(
        self, target: Any, weights: Any = None, label_smoothing: float = 0.0
    ) -> Tensor:
        """Σₙ wₙ · -log softmax(xₙ)[target[n]] over the rows xₙ of (N, C) logits: the
        mean over rows when `weights` is None, else a number or N per-row weights;
        `label_smoothing` ε mixes the one-hot target with the uniform distribution.
        One node (the primitive behind `nn.functional.cross_entropy`), finite for any
        |x|; the gradient is wₙ (softmax(xₙ) - targetₙ).

        >>> import tinygrad_bp as tg
        >>> logits = tg.tensor([[2.0, 0.0], [0.0, 0.0]])
        >>> round(logits.softmax_cross_entropy([0, 1]).item(), 4)
        0.41
        """
        target = np.asarray(target._data if isinstance(target, Tensor) else target)
        if weights is None:
            weights = 1.0 / target.size if target.size else math.nan
        elif not isinstance(weights, numbers.Real):
            weights = np.asarray(
                weights._data if isinstance(weights, Tensor) else weights,
                dtype=self.dtype,
            )
        return self._apply(
            ops.CrossEntropy,
            self,
            target=target,
            weights=weights,
            smoothing=float(label_smoothing),
        )

    def std(
        self,
        axis: int | tuple[int, ...] | None = None,
        ddof: int = 0,
        keepdims: bool = False,
    ) -> Tensor:
        """√var over `axis`, as np.std; d/dx = (x - mean) / ((n - ddof) std), taken as 0
        where std = 0 (not NaN).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.0, 3.0]).std().item()
        1.0
        """
        variance = self.var(axis=axis, ddof=ddof, keepdims=keepdims)
        return self._apply(ops.SafeSqrt, variance)

    def norm(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """The 2-norm √(Σx²) over `axis`; d/dx = x / norm, taken as 0 where norm = 0.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([3.0, 4.0]).norm().item()
        5.0
        """
        squares = (self * self).sum(axis=axis, keepdims=keepdims)
        return self._apply(ops.SafeSqrt, squares)

    def prod(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        """Πx over `axis`; d/dxᵢ = Π_{j≠i} xⱼ, exact (no division) where x has zeros.

        >>> import tinygrad_bp as tg
        >>> x = tg.tensor([2.0, 0.0, 3.0], requires_grad=True)
        >>> x.prod().backward(); x.grad
        Tensor([0., 6., 0.])
        """
        return self._apply(ops.Prod, self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis: int | None = None) -> Tensor:
        """Running sums along `axis` (of the flattened tensor when None, as np.cumsum);
        the gradient is the running sum of the incoming gradient from the other end.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.0, 2.0, 3.0]).cumsum(0)
        Tensor([1., 3., 6.])
        """
        if axis is None:
            return self.reshape(-1).cumsum(0)
        if self.ndim == 0:  # axis 0 or -1, as for the reductions
            ops.reduction_axes(axis, 0)
            return self.reshape(1).cumsum(0).reshape(())
        return self._apply(ops.Cumsum, self, axis=_axis(axis, self.ndim, "cumsum"))

    # ---------------------------------------------------------------------- shape
    def reshape(self, *shape: Any) -> Tensor:
        """The same values in a new shape (`reshape(2, 3)` or `reshape((2, 3))`, one -1 allowed).

        >>> import tinygrad_bp as tg
        >>> tg.arange(6.0).reshape(2, -1).shape
        (2, 3)
        """
        shape = _shape_arg(shape)
        if shape == self.shape and not self._recorded():
            return self.detach()
        return self._apply(ops.Reshape, self, shape=shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Axes permuted as np.transpose; no axes reverses them.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3, 4).transpose(2, 0, 1).shape
        (4, 2, 3)
        """
        if not axes:
            return self._apply(ops.Transpose, self, axes=None)
        return self._apply(ops.Transpose, self, axes=_shape_arg(axes))

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        """Two axes exchanged.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3, 4).swapaxes(0, -1).shape
        (4, 3, 2)
        """
        axes = list(range(self.ndim))
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return self.transpose(*axes)

    def flatten(self, start_axis: int = 0) -> Tensor:
        """Axes from `start_axis` on merged into one.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3, 4).flatten(1).shape
        (2, 12)
        """
        start = start_axis % max(self.ndim, 1)
        return self.reshape(*self.shape[:start], -1)

    def expand(self, *shape: Any) -> Tensor:
        """The tensor broadcast to `shape` (a view; the gradient is summed back).

        >>> import tinygrad_bp as tg
        >>> tg.ones(3, 1).expand(3, 4).shape
        (3, 4)
        """
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0:
            raise ValueError(
                f"expand: shape {shape} has fewer axes than the tensor's {self.shape}"
            )
        if -1 in shape:  # -1 keeps an existing axis's size, as in PyTorch
            if -1 in shape[:lead]:
                raise ValueError(
                    f"expand: -1 is not allowed for the new leading axes of {shape}"
                )
            shape = shape[:lead] + tuple(
                old if new == -1 else new for new, old in zip(shape[lead:], self.shape)
            )
        if shape == self.shape and not self._recorded():
            return self.detach()
        return self._apply(ops.Expand, self, shape=shape)

    def sum_to(self, shape: Shape) -> Tensor:
        """Sum over the broadcast axes so the result has `shape`: broadcasting's adjoint.

        >>> import tinygrad_bp as tg
        >>> tg.ones(2, 3).sum_to((1, 3))
        Tensor([[2., 2., 2.]])
        """
        shape = tuple(shape)
        if not self._recorded():  # the engine's un-broadcasting: no node to build
            return Tensor._wrap(ops.sum_to_shape(self._data, shape))
        return self._apply(ops.SumTo, self, shape=shape)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        """Drop axes of length 1 (all of them, or those in `axis`).

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 1, 3).squeeze().shape
        (2, 3)
        """
        if axis is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = {_axis(a, self.ndim, "squeeze") for a in _as_tuple(axis)}
        for a in axes:
            if self.shape[a] != 1:
                raise ValueError(
                    f"squeeze: axis {a} of shape {self.shape} has length {self.shape[a]}, not 1"
                )
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def unsqueeze(self, axis: int) -> Tensor:
        """Insert an axis of length 1 at `axis`.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3).unsqueeze(0).shape
        (1, 2, 3)
        """
        a = _axis(axis, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:a] + (1,) + self.shape[a:])

    def windows(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1
    ) -> Tensor:
        """Sliding kh×kw windows over the last two axes: shape (..., H', W', kh, kw)
        with H' = (H - kh) // stride + 1. The building block of convolution and pooling.

        >>> import tinygrad_bp as tg
        >>> tg.arange(16.0).reshape(1, 1, 4, 4).windows(2, stride=2).shape
        (1, 1, 2, 2, 2, 2)
        """
        return self._apply(
            ops.Windows, self, kernel_size=_pair(kernel_size), stride=_pair(stride)
        )

    def flip(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        """The elements in reverse order along `axis` (every axis when None), as np.flip;
        the gradient is flipped back.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[1, 2], [3, 4]]).flip(1)
        Tensor([[2, 1],
                [4, 3]])
        """
        if axis is not None:
            axis = tuple(_axis(a, self.ndim, "flip") for a in _as_tuple(axis))
        return self._apply(ops.Flip, self, axes=axis)

    def roll(
        self, shift: int | tuple[int, ...], axis: int | tuple[int, ...] | None = None
    ) -> Tensor:
        """The elements shifted cyclically by `shift` along `axis` (the flattened tensor
        when None), as np.roll; the gradient is shifted back.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1, 2, 3, 4]).roll(1)
        Tensor([4, 1, 2, 3])
        """
        if axis is not None:
            axis = tuple(_axis(a, self.ndim, "roll") for a in _as_tuple(axis))
            shifts = _as_tuple(shift)
            if len(shifts) not in (1, len(axis)):
                raise ValueError(
                    f"roll: {len(shifts)} shifts {shift!r} for {len(axis)} axes {axis}"
                )
        return self._apply(ops.Roll, self, shift=shift, axis=axis)

    def repeat(self, repeats: int | Sequence[int], axis: int | None = None) -> Tensor:
        """Each element repeated `repeats` times along `axis` (of the flattened tensor
        when None), as np.repeat; the gradient sums the copies.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1, 2]).repeat(2)
        Tensor([1, 1, 2, 2])
        """
        if axis is None:
            return self.reshape(-1).repeat(repeats, 0)
        axis = _axis(axis, self.ndim, "repeat")
        n = self.shape[axis]
        counts = np.asarray(repeats)
        if counts.dtype.kind not in "iu" or counts.ndim > 1 or (counts < 0).any():
            raise ValueError(
                f"repeat: repeats must be a non-negative int or one per element, got "
                f"{repeats!r}"
            )
        if counts.ndim == 1 and len(counts) != n:
            raise ValueError(
                f"repeat: {len(counts)} repeats for axis {axis} of length {n} "
                f"(shape {self.shape})"
            )
        index = np.repeat(np.arange(n), counts)
        return self[(slice(None),) * axis + (index,)]

    def tile(self, reps: int | Sequence[int]) -> Tensor:
        """The tensor repeated `reps[i]` times along axis i, as np.tile (the shorter of
        `reps` and the shape is padded with leading 1s); the gradient sums the copies.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1, 2]).tile(2)
        Tensor([1, 2, 1, 2])
        """
        reps = _as_tuple(reps)
        if any(not isinstance(r, numbers.Integral) or r < 0 for r in reps):
            raise ValueError(f"tile: reps must be non-negative ints, got {reps!r}")
        ndim = max(len(reps), self.ndim)
        reps = (1,) * (ndim - len(reps)) + tuple(int(r) for r in reps)
        shape = (1,) * (ndim - self.ndim) + self.shape
        # (r, n) pairs: a new axis of length r in front of each axis, then merged
        spread = self.reshape(*[d for n in shape for d in (1, n)])
        spread = spread.expand(*[d for r, n in zip(reps, shape) for d in (r, n)])
        return spread.reshape(*[r * n for r, n in zip(reps, shape)])

    def split(
        self, size_or_sizes: int | Sequence[int], axis: int = 0
    ) -> tuple[Tensor, ...]:
        """Pieces along `axis`, as torch.split: all of length `size_or_sizes` (the last
        one shorter if need be) or of the given lengths; each piece's gradient flows
        back to its slice.

        >>> import tinygrad_bp as tg
        >>> [p.tolist() for p in tg.arange(5).split(2)]
        [[0, 1], [2, 3], [4]]
        """
        axis = _axis(axis, self.ndim, "split")
        n = self.shape[axis]
        if isinstance(size_or_sizes, numbers.Integral):
            size = int(size_or_sizes)
            if size < 1:
                raise ValueError(f"split: the chunk size must be positive, got {size}")
            sizes = [size] * (n // size) + ([n % size] if n % size or n == 0 else [])
        elif isinstance(size_or_sizes, Sequence) and all(
            isinstance(s, numbers.Integral) for s in size_or_sizes
        ):
            sizes = [int(s) for s in size_or_sizes]
            if sum(sizes) != n or min(sizes, default=0) < 0:
                raise ValueError(
                    f"split: sizes {sizes} must be non-negative and add up to {n}, the "
                    f"length of axis {axis} of shape {self.shape}"
                )
        else:
            raise TypeError(
                f"split: size_or_sizes must be an int or a sequence of ints, got "
                f"{size_or_sizes!r}"
            )
        ends = np.cumsum(sizes).tolist()
        lead = (slice(None),) * axis
        return tuple(self[(*lead, slice(e - n, e))] for n, e in zip(sizes, ends))

    def chunk(self, n: int, axis: int = 0) -> tuple[Tensor, ...]:
        """At most `n` pieces of equal length along `axis` (the last one shorter if need
        be), as torch.chunk: `split(ceil(length / n), axis)`.

        >>> import tinygrad_bp as tg
        >>> [p.tolist() for p in tg.arange(5).chunk(2)]
        [[0, 1, 2], [3, 4]]
        """
        if not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"chunk: n must be a positive int, got {n!r}")
        length = self.shape[_axis(axis, self.ndim, "chunk")]
        if length == 0:
            return self.split([0] * n, axis)
        return self.split(-(-length // n), axis)

    def tril(self, k: int = 0) -> Tensor:
        """The lower triangle of the last two axes (elements with column - row <= k),
        zeros above; the gradient passes on the triangle only.

        >>> import tinygrad_bp as tg
        >>> tg.ones(2, 2).tril()
        Tensor([[1., 0.],
                [1., 1.]])
        """
        return tril(self, k)

    def triu(self, k: int = 0) -> Tensor:
        """The upper triangle of the last two axes (elements with column - row >= k),
        zeros below; the gradient passes on the triangle only.

        >>> import tinygrad_bp as tg
        >>> tg.ones(2, 2).triu()
        Tensor([[1., 1.],
                [0., 1.]])
        """
        return triu(self, k)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        """`value` where `mask` (broadcast to this shape) is True, this tensor elsewhere;
        the gradient flows to the unmasked elements (and to `value` if a Tensor).

        >>> import tinygrad_bp as tg
        >>> x = tg.tensor([1.0, 2.0, 3.0]); x.masked_fill(x > 1.5, 0.0)
        Tensor([1., 0., 0.])
        """
        mask = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(
                f"masked_fill: mask must be boolean, got dtype {mask.dtype}"
            )
        try:
            fits = np.broadcast_shapes(mask.shape, self.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"masked_fill: mask of shape {mask.shape} does not broadcast to the "
                f"tensor's shape {self.shape}"
            )
        return where(mask, value, self)

    def take_along_axis(self, indices: Any, axis: int | None) -> Tensor:
        """Elements picked by `indices` along `axis`, as np.take_along_axis; the gradient
        is scattered back, repeated indices accumulating.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([[10, 20], [30, 40]]).take_along_axis(tg.tensor([[1], [0]]), 1)
        Tensor([[20],
                [30]])
        """
        return take_along_axis(self, indices, axis)

    def sort(self, axis: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]:
        """`(values, indices)` sorted along `axis` (stable); the values are
        differentiable (each one's gradient goes back to where it came from).

        >>> import tinygrad_bp as tg
        >>> tg.tensor([3.0, 1.0, 2.0]).sort(descending=True)
        (Tensor([3., 2., 1.]), Tensor([0, 2, 1]))
        """
        if self.ndim == 0:  # as a 1-element vector, then back to 0-d
            ops.reduction_axes(axis, 0)
            values, indices = self.reshape(1).sort(0, descending)
            return values.reshape(()), indices.reshape(())
        indices = self.argsort(axis, descending)
        return take_along_axis(self, indices, axis), indices

    def topk(
        self, k: int, axis: int = -1, largest: bool = True
    ) -> tuple[Tensor, Tensor]:
        """`(values, indices)` of the k largest (smallest) elements along `axis`, in
        sorted order, as torch.topk; the values are differentiable.

        >>> import tinygrad_bp as tg
        >>> tg.tensor([1.0, 5.0, 3.0]).topk(2)
        (Tensor([5., 3.]), Tensor([1, 2]))
        """
        if self.ndim == 0:  # as a 1-element vector, then back to 0-d
            ops.reduction_axes(axis, 0)
            values, indices = self.reshape(1).topk(k, 0, largest)
            return (values.reshape(()), indices.reshape(())) if k else (values, indices)
        axis = _axis(axis, self.ndim, "topk")
        length = self.shape[axis]
        if not isinstance(k, numbers.Integral) or not 0 <= k <= length:
            raise ValueError(
                f"topk: k={k!r} is out of range for axis {axis} of length {length} "
                f"(shape {self.shape})"
            )
        first = (slice(None),) * axis + (slice(0, k),)
        indices = Tensor._wrap(self.argsort(axis, descending=largest)._data[first])
        return take_along_axis(self, indices, axis), indices

    def __getitem__(self, index: Any) -> Tensor:
        return self._apply(ops.GetItem, self, index=_index(index))

    # ------------------------------------------------------------------ factories
    @staticmethod
    def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """A tensor of zeros; `zeros(2, 3)` and `zeros((2, 3))` alike.

        >>> import tinygrad_bp as tg
        >>> tg.zeros(2, 3).shape
        (2, 3)
        """
        return _factory(np.zeros(_shape_arg(shape)), dtype, requires_grad)

    @staticmethod
    def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """A tensor of ones; `ones(2, 3)` and `ones((2, 3))` alike.

        >>> import tinygrad_bp as tg
        >>> tg.ones(2)
        Tensor([1., 1.])
        """
        return _factory(np.ones(_shape_arg(shape)), dtype, requires_grad)

    @staticmethod
    def full(
        shape: Any, value: float, dtype: Any = None, requires_grad: bool = False
    ) -> Tensor:
        """A tensor filled with `value`.

        >>> import tinygrad_bp as tg
        >>> tg.full((2,), 7.0)
        Tensor([7., 7.])
        """
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        return _factory(np.full(shape, value), dtype, requires_grad)

    @staticmethod
    def eye(
        n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False
    ) -> Tensor:
        """The identity matrix (n × m).

        >>> import tinygrad_bp as tg
        >>> tg.eye(2)
        Tensor([[1., 0.],
                [0., 1.]])
        """
        return _factory(np.eye(n, m), dtype, requires_grad)

    @staticmethod
    def arange(*args: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Evenly spaced values as np.arange; integers stay int64 unless a dtype is given.

        >>> import tinygrad_bp as tg
        >>> tg.arange(3)
        Tensor([0, 1, 2])
        """
        values = np.arange(*args)
        if dtype is None and values.dtype.kind == "f":
            dtype = _config.get_default_dtype()
        return Tensor(values, requires_grad=requires_grad, dtype=dtype)

    @staticmethod
    def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Uniform samples in [0, 1) from the seeded generator (`manual_seed`).

        >>> import tinygrad_bp as tg
        >>> _ = tg.manual_seed(0); tg.rand(2, 3).shape
        (2, 3)
        """
        return _factory(
            _config.get_rng().random(_shape_arg(shape)), dtype, requires_grad
        )

    @staticmethod
    def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Standard normal samples from the seeded generator (`manual_seed`).

        >>> import tinygrad_bp as tg
        >>> _ = tg.manual_seed(0); tg.randn(4).dtype
        dtype('float32')
        """
        return _factory(
            _config.get_rng().standard_normal(_shape_arg(shape)), dtype, requires_grad
        )

    @staticmethod
    def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Zeros with the shape (and, unless given, the dtype) of `t`.

        >>> import tinygrad_bp as tg
        >>> tg.zeros_like(tg.ones(2, 2)).tolist()
        [[0.0, 0.0], [0.0, 0.0]]
        """
        return Tensor(
            np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad
        )

    @staticmethod
    def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        """Ones with the shape (and, unless given, the dtype) of `t`.

        >>> import tinygrad_bp as tg
        >>> tg.ones_like(tg.zeros(3))
        Tensor([1., 1., 1.])
        """
        return Tensor(
            np.ones(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad
        )

    @staticmethod
    def linspace(
        start: float,
        stop: float,
        num: int,
        dtype: Any = None,
        requires_grad: bool = False,
    ) -> Tensor:
        """`num` evenly spaced values from `start` to `stop`, both included.

        >>> import tinygrad_bp as tg
        >>> tg.linspace(0, 1, 5)
        Tensor([0.  , 0.25, 0.5 , 0.75, 1.  ])
        """
        if not isinstance(num, numbers.Integral) or num < 0:
            raise ValueError(f"linspace: num must be a non-negative int, got {num!r}")
        return _factory(np.linspace(start, stop, num), dtype, requires_grad)

    @staticmethod
    def randint(low: int, high: int, shape: Any, dtype: Any = np.int64) -> Tensor:
        """Integers drawn uniformly from [low, high) by the seeded generator; int64.

        >>> import tinygrad_bp as tg
        >>> _ = tg.manual_seed(0); x = tg.randint(0, 10, (2, 3))
        >>> x.shape, x.dtype, 0 <= x.min().item() and x.max().item() < 10
        ((2, 3), dtype('int64'), True)
        """
        if high <= low:
            raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        values = _config.get_rng().integers(low, high, size=shape, dtype=np.int64)
        return Tensor(values, dtype=dtype)

    @staticmethod
    def multinomial(probs: Any, num_samples: int, replacement: bool = False) -> Tensor:
        """Category indices drawn from each row of `probs` (weights, not necessarily
        summing to 1) by the seeded generator, as torch.multinomial; int64 of shape
        `(num_samples,)` or `(rows, num_samples)`.

        >>> import tinygrad_bp as tg
        >>> _ = tg.manual_seed(0); tg.multinomial(tg.tensor([0.0, 1.0, 3.0]), 2).shape
        (2,)
        """
        weights = np.asarray(probs._data if isinstance(probs, Tensor) else probs)
        if weights.ndim not in (1, 2) or weights.shape[-1] == 0:
            raise ValueError(
                f"multinomial: probs must be 1-D or 2-D and non-empty, got shape "
                f"{weights.shape}"
            )
        rows = np.atleast_2d(weights).astype(np.float64)
        if not np.isfinite(rows).all() or (rows < 0).any():
            raise ValueError("multinomial: probs must be finite and non-negative")
        categories = int((rows > 0).sum(axis=1).min())
        if categories == 0:
            raise ValueError("multinomial: every row of probs needs a positive weight")
        if not isinstance(num_samples, numbers.Integral) or num_samples < 1:
            raise ValueError(
                f"multinomial: num_samples must be a positive int, got {num_samples!r}"
            )
        if not replacement and num_samples > categories:
            raise ValueError(
                f"multinomial: cannot draw {num_samples} samples without replacement "
                f"from a row with {categories} categories of positive weight"
            )
        rng = _config.get_rng()
        if replacement:  # inverse CDF, the last step exactly 1
            cdf = np.cumsum(rows, axis=1)
            cdf /= cdf[:, -1:]
            u = rng.random((len(rows), num_samples))
            samples = np.stack(
                [np.searchsorted(c, v, side="right") for c, v in zip(cdf, u)]
            )
        else:  # the k largest keys log(u)/w are a draw without replacement
            with np.errstate(divide="ignore", invalid="ignore"):
                keys = np.log(1 - rng.random(rows.shape)) / rows
            keys[rows == 0] = -np.inf
            samples = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
        samples = samples.astype(np.int64)
        return Tensor._wrap(samples if weights.ndim == 2 else samples[0])


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or any(
        not isinstance(n, numbers.Integral) or n < 1 for n in pair
    ):
        raise ValueError(f"expected a positive int or a pair of them, got {value!r}")
    return (int(pair[0]), int(pair[1]))


def _as_tuple(axis: int | Sequence[int]) -> tuple[int, ...]:
    return (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)


def _axis(axis: int, ndim: int, caller: str) -> int:
    """`axis` as a non-negative index into `ndim` axes, or a clear error."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{caller}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


_PYTHON_SCALARS = (float, int, bool)
_get_data = operator.attrgetter("_data")
_get_requires_grad = operator.attrgetter("_requires_grad")


def _scalar(value: float, like: np.dtype) -> Tensor:
    """A Python scalar as a constant of the dtype NumPy gives `like_array op value`."""
    dtype = like if like.kind in "fc" else np.result_type(like, value)
    return Tensor._wrap(np.array(value, dtype=dtype))


def _operands(args: Sequence[Any]) -> tuple[Tensor, ...]:
    """Make constants of non-Tensor operands and settle the dtype they compute in.

    Python scalars take the array operands' dtype as NumPy's weak scalars do
    (`float32_tensor * 2.0` stays float32). As in PyTorch, an integer operand never
    widens a floating one: it is converted to the widest floating dtype among the
    operands (`float32_tensor * int64_array` is float32). Boolean operands are left
    as they are (NumPy never widens a float with them, and `where` needs its mask)."""
    if len(args) == 2:  # the common `tensor op scalar` and `scalar op tensor`
        a, b = args
        if isinstance(a, Tensor):
            if type(b) in _PYTHON_SCALARS:
                return a, _scalar(b, a._data.dtype)
            if type(b) is np.ndarray and (
                b.dtype is a._data.dtype or not _int_meets_float(a._data.dtype, b.dtype)
            ):
                return a, Tensor._wrap(b)
        elif isinstance(b, Tensor):
            if type(a) in _PYTHON_SCALARS:
                return _scalar(a, b._data.dtype), b
            if type(a) is np.ndarray and (
                a.dtype is b._data.dtype or not _int_meets_float(a.dtype, b._data.dtype)
            ):
                return Tensor._wrap(a), b
    args = [np.asarray(a) if isinstance(a, np.generic) else a for a in args]
    dtypes = [a.dtype for a in args if isinstance(a, (Tensor, np.ndarray))]
    floats = [d for d in dtypes if d.kind == "f"]
    like = (
        np.result_type(*floats)
        if floats
        else dtypes[0]
        if len(dtypes) == 1
        else np.result_type(*dtypes)
        if dtypes
        else None
    )
    out = []
    for a in args:
        if isinstance(a, (Tensor, np.ndarray)):
            array = a._data if isinstance(a, Tensor) else a
            if floats and array.dtype.kind in "iu":
                out.append(Tensor._wrap(array.astype(like)))
            else:
                out.append(a if isinstance(a, Tensor) else Tensor._wrap(a))
        elif type(a) in _PYTHON_SCALARS and like is not None:
            out.append(_scalar(a, like))
        else:
            out.append(Tensor._wrap(_as_array(a)))
    return tuple(out)


def _int_meets_float(a: np.dtype, b: np.dtype) -> bool:
    kinds = a.kind + b.kind
    return "f" in kinds and ("i" in kinds or "u" in kinds)


def _index(index: Any) -> Any:
    """Tensors and lists inside an index become integer (or boolean) arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _seed(out: Tensor, gradient: Any, caller: str, create_graph: bool) -> Tensor:
    """The starting gradient dL/d(out) for a backward pass, checked and copied.

    Only a recorded pass (`create_graph`) keeps a `gradient` that requires grad in the
    graph; otherwise the seed is a copy, so no `.grad` is, or requires grad like, it."""
    if not out._requires_grad:
        raise RuntimeError(
            f"{caller}: the tensor does not require grad and has no grad_fn: no "
            "recorded operation leads to it from a tensor with requires_grad=True"
        )
    if gradient is None:
        if out.size != 1:
            raise RuntimeError(
                f"{caller}: `gradient` can be omitted only for a tensor with one "
                f"element; this one has shape {out.shape}: pass gradient= of that shape"
            )
        return Tensor._wrap(np.ones(out.shape, dtype=out.dtype))
    if create_graph and isinstance(gradient, Tensor) and gradient.requires_grad:
        seed = gradient  # keep it in the graph: create_graph callers differentiate it
    else:
        seed = Tensor(gradient, dtype=out.dtype)
    if seed.shape != out.shape:
        raise ValueError(
            f"{caller}: gradient has shape {seed.shape} but the tensor has shape {out.shape}"
        )
    return seed


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of `outputs` with respect to `inputs`, without touching any `.grad`.

    Computes Σ_k grad_outputs[k] · d outputs[k] / d inputs[i] for each input.

    >>> import tinygrad_bp as tg
    >>> x = tg.tensor(3.0, requires_grad=True)
    >>> (dx,) = tg.grad(x**3, x, create_graph=True)
    >>> (d2x,) = tg.grad(dx, x)
    >>> dx.item(), d2x.item()
    (27.0, 18.0)
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(
            f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs"
        )
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"grad: inputs[{i}] is a {type(x).__name__}, not a Tensor")
        if not x._requires_grad:
            raise RuntimeError(f"grad: inputs[{i}] does not require grad")
    seeds = [_seed(o, g, "grad()", create_graph) for o, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    grads = backprop(outputs, seeds, retain, create_graph, inputs)
    for i, g in enumerate(grads):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: inputs[{i}] was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return tuple(grads)


# ------------------------------------------------------------ module-level functions
def _factory(array: np.ndarray, dtype: Any, requires_grad: bool) -> Tensor:
    return Tensor(
        array, requires_grad=requires_grad, dtype=dtype or _config.get_default_dtype()
    )


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Same as `Tensor(data, requires_grad, dtype)`.

    >>> import tinygrad_bp as tg
    >>> tg.tensor([[1, 2], [3, 4]]).dtype
    dtype('int64')
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max(a, b); on ties each side gets half the gradient.

    >>> import tinygrad_bp as tg
    >>> tg.maximum(tg.tensor([1.0, 5.0]), 3.0)
    Tensor([3., 5.])
    """
    return Tensor._apply(ops.Maximum, a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min(a, b); on ties each side gets half the gradient.

    >>> import tinygrad_bp as tg
    >>> tg.minimum(tg.tensor([1.0, 5.0]), 3.0)
    Tensor([1., 3.])
    """
    return Tensor._apply(ops.Minimum, a, b)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elements of `a` where `condition` holds, else of `b` (the gradient follows).

    >>> import tinygrad_bp as tg
    >>> x = tg.tensor([-1.0, 2.0]); tg.where(x > 0, x, 0.0)
    Tensor([0., 2.])
    """
    cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    return Tensor._apply(ops.Where, Tensor._wrap(cond.astype(bool)), a, b)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """The tensors joined along an existing axis.

    >>> import tinygrad_bp as tg
    >>> tg.concatenate([tg.zeros(2, 1), tg.ones(2, 2)], axis=1).shape
    (2, 3)
    """
    if len(tensors) == 0:
        raise ValueError("concatenate: needs at least one tensor")
    return Tensor._apply(ops.Concatenate, *tensors, axis=axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """The tensors joined along a new axis.

    >>> import tinygrad_bp as tg
    >>> tg.stack([tg.zeros(3), tg.ones(3)]).shape
    (2, 3)
    """
    if len(tensors) == 0:
        raise ValueError("stack: needs at least one tensor")
    shapes = {np.shape(t) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(
            f"stack: all tensors need the same shape, got {sorted(shapes)}"
        )
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    return concatenate([t.unsqueeze(axis) for t in tensors], axis=axis)


def pad(t: Tensor, pad_width: Any, value: float = 0) -> Tensor:
    """`t` with constant borders, `pad_width` as in np.pad: n, (before, after) or one
    (before, after) pair per axis."""
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (t.ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width {pad_width!r} does not fit a tensor of shape {t.shape}"
        ) from None
    if (widths < 0).any():
        raise ValueError(f"pad: pad_width must be non-negative, got {pad_width!r}")
    return Tensor._apply(
        ops.Pad, t, pad_width=tuple(map(tuple, widths.tolist())), value=value
    )


def _triangle(t: Tensor, k: int, lower: bool, caller: str) -> Tensor:
    """`t` with the elements off the triangle of its last two axes set to zero."""
    if not isinstance(t, Tensor):
        t = Tensor(t)
    if t.ndim < 2:
        raise ValueError(
            f"{caller}: needs a tensor of at least 2 dimensions, got shape {t.shape}"
        )
    if not isinstance(k, numbers.Integral):
        raise TypeError(f"{caller}: k must be an int, got {k!r}")
    rows, cols = t.shape[-2:]
    below = np.tri(rows, cols, k if lower else k - 1, dtype=bool)
    return where(below if lower else ~below, t, 0)


def tril(t: Tensor, k: int = 0) -> Tensor:
    """The lower triangle (column - row <= k) of the last two axes, zeros above, as
    np.tril; the gradient passes on the triangle only.

    >>> import tinygrad_bp as tg
    >>> tg.tril(tg.ones(2, 3), k=1)
    Tensor([[1., 1., 0.],
            [1., 1., 1.]])
    """
    return _triangle(t, k, True, "tril")


def triu(t: Tensor, k: int = 0) -> Tensor:
    """The upper triangle (column - row >= k) of the last two axes, zeros below, as
    np.triu; the gradient passes on the triangle only.

    >>> import tinygrad_bp as tg
    >>> tg.triu(tg.ones(3, 2), k=-1)
    Tensor([[1., 1.],
            [1., 1.],
            [0., 1.]])
    """
    return _triangle(t, k, False, "triu")


def take_along_axis(t: Tensor, indices: Any, axis: int | None) -> Tensor:
    """Elements of `t` picked by `indices` along `axis` (the flattened `t` when None), as
    np.take_along_axis; the gradient is scattered back, repeated indices accumulating.

    >>> import tinygrad_bp as tg
    >>> x = tg.tensor([[1.0, 9.0], [7.0, 2.0]])
    >>> tg.take_along_axis(x, x.argmax(axis=1).unsqueeze(1), axis=1)
    Tensor([[9.],
            [7.]])
    """
    t = t if isinstance(t, Tensor) else Tensor(t)
    index = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if index.dtype.kind not in "iu":
        raise TypeError(
            f"take_along_axis: indices must be integers, got dtype {index.dtype}"
        )
    if axis is None:
        t, axis = t.reshape(-1), 0
    if index.ndim != t.ndim:
        raise ValueError(
            f"take_along_axis: indices of shape {index.shape} need as many dimensions "
            f"as the tensor's shape {t.shape}"
        )
    axis = _axis(axis, t.ndim, "take_along_axis")
    n = t.shape[axis]
    if index.size and (index.min() < -n or index.max() >= n):
        raise IndexError(
            f"take_along_axis: indices from {index.min()} to {index.max()} are out of "
            f"range for axis {axis} of length {n} (shape {t.shape})"
        )
    others = [1 if a == axis else m for a, m in enumerate(t.shape)]
    try:
        np.broadcast_shapes(index.shape, tuple(others))
    except ValueError:
        raise ValueError(
            f"take_along_axis: indices of shape {index.shape} do not broadcast with the "
            f"tensor's shape {t.shape} outside axis {axis}"
        ) from None
    # one index array per axis (an arange, broadcasting) and `index` along `axis`
    grid = list(np.ogrid[tuple(slice(m) for m in t.shape)])
    grid[axis] = index
    return t[tuple(grid)]


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation in NumPy's notation (explicit `->` or implicit output, `...`
    broadcasting); the gradient of each operand is another einsum.

    >>> import tinygrad_bp as tg
    >>> a, b = tg.ones(2, 3), tg.ones(3, 4)
    >>> tg.einsum("ij,jk->ik", a, b).shape, tg.einsum("ii", tg.eye(3)).item()
    ((2, 4), 3.0)
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a str, got {subscripts!r}")
    if not operands:
        raise ValueError("einsum: needs at least one operand")
    return Tensor._apply(ops.Einsum, *operands, subscripts=subscripts)


zeros = Tensor.zeros
ones = Tensor.ones
full = Tensor.full
eye = Tensor.eye
arange = Tensor.arange
rand = Tensor.rand
randn = Tensor.randn
zeros_like = Tensor.zeros_like
ones_like = Tensor.ones_like
linspace = Tensor.linspace
randint = Tensor.randint
multinomial = Tensor.multinomial
