"""trace: run a step once, for real, while recording every array operation it makes.

The step runs eagerly, so the tracing call gives eager's exact results. What makes the
recording possible is that every array entering the step is swapped for a
`TracedArray`, an `np.ndarray` subclass that computes each NumPy call on plain views
of its operands (the real values) and appends one `ir.Node` for it. The arrays that
enter are: the step's array arguments, the `.data` of every Tensor that existed before
the call (parameters, buffers, `.grad`s) when something reads it, the optimizer's
state arrays and hyper-parameters (as `TracedFloat`/`TracedInt`, Python numbers that
record their arithmetic), and the draws of the one random generator. Masks, indices
and tie weights that ops compute from `.data` inside forward, backward or an
optimizer update are therefore recorded as operations, recomputed at every call.

The hooks are switched on by `Tracer.__enter__` and off by `__exit__`, the pattern of
`detect_anomaly`: class attributes of Tensor, Module and Optimizer, the generator in
`_config`, and NumPy's array constructors are swapped for recording versions and put
back, so nothing costs anything when no trace runs. NumPy's `array`/`asarray` and
creation functions are swapped because they would otherwise drop the subclass (and
with it the record) or make arrays that library code then fills in place. The
library's `erf` and `erfc` (`_special`, which `ops` calls through the module) are
swapped too, so that each call is one node, as a NumPy function's is, rather than
the masks and in-place loops inside it: a code generator can then map it (ONNX's
`Erf`) or call it (the NumPy program).

Python values that come out of data (`bool(mask.any())` in a backward, `int(...)`)
become guards: the program checks them at every call. In user code (not the
library's) they are refused, as `tinygrad_bp.compile` documents.
"""

from __future__ import annotations

import functools
import operator
import re
import sys
import weakref
from typing import Any, NamedTuple

import numpy as np

from .. import _config, _special
from .._grad_mode import _State
from ..tensor import Tensor
from .ir import Graph, Node, Ref, SlotInfo

# The slots that hold a Tensor's array and its gradient, used raw by the hooks (the
# library reads the array through `_data`; the public `data` property wraps it).
_UNLABELLED = {"forward": "", "backward": "backward", "update": "update"}
_PLAIN_KINDS = {int, float, bool, str, type(None), type(Ellipsis), np.dtype}


class _Draft(NamedTuple):
    """A node being recorded (made into an `ir.Node` once, when emitted)."""

    kind: str
    target: Any
    args: tuple = ()
    kwargs: tuple = ()
    outs: tuple = ()
    writes: tuple = ()
    method: str = "__call__"
    expected: Any = None


_DATA_SLOT = "_data" if "_data" in Tensor.__dict__ else "data"
_DATA = Tensor.__dict__[_DATA_SLOT]
_GRAD = Tensor.__dict__["grad"]

REFUSAL = (
    "compile: {what} of a tensor computed in the step is data-dependent Python: the "
    "compiled program could not recompute it at the next call. Return the value "
    "from the step instead (results come back as Tensors), or call this outside "
    "the compiled function."
)


def refusal(what: str) -> RuntimeError:
    """The RuntimeError a trace raises for data-dependent Python in user code.

    >>> str(refusal(".item()")).split(" of ")[0]
    'compile: .item()'
    """
    return RuntimeError(REFUSAL.format(what=what))


def _called_from_user() -> bool:
    """Whether the nearest caller outside NumPy and this package's recorder is the
    user's code (True) or the library's (False)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith(("tinygrad_bp.compiler", "numpy")):
            frame = frame.f_back
            continue
        return not (name == "tinygrad_bp" or name.startswith("tinygrad_bp."))
    return True


def _reported_only() -> bool:
    """Whether a float conversion happens where the library only reports the value
    (the norm `clip_grad_norm_` returns), so it needs no guard."""
    from ..nn.utils import clip_grad_norm_

    frame = sys._getframe(2)
    for _ in range(6):
        if frame is None:
            return False
        if frame.f_code is clip_grad_norm_.__code__:
            return True
        frame = frame.f_back
    return False


def _root(array: Any) -> Any:
    """The object at the end of an array's `.base` chain (the memory's owner); the
    chain may pass through non-arrays (`as_strided` puts an interface object there)."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")  # compiled at import, not mid-trace
_NON_WORD = re.compile(r"\W+")


@functools.cache
def _snake(name: str) -> str:
    if name == "MatMul":
        return "matmul"
    return _HUMP.sub("_", name).lower()


@functools.cache
def _word(label: str, section: str) -> str:
    word = _NON_WORD.sub("_", label.removeprefix("backward of ")).strip("_").lower()
    return ("d_" if section == "backward" else "") + (word or "t")


# ------------------------------------------------------------------ traced values
class TracedArray(np.ndarray):
    """An ndarray whose NumPy calls are recorded by the trace that made it.

    Outside a running trace it behaves as a plain array (its calls are not recorded
    and return plain arrays).
    """

    _slot: int | None
    _tracer: Tracer | None

    def __array_finalize__(self, obj: Any) -> None:
        # made by NumPy itself (not by the tracer): no slot, so a use is noticed
        self._slot = None
        self._tracer = None

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any):
        return _tracer_of(self).ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any):
        return _tracer_of(self).function(func, args, kwargs)

    def __getitem__(self, index: Any) -> Any:
        return _tracer_of(self).getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        _tracer_of(self).setitem(self, index, value)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:  # prints show the trace-time values, record nothing
        return repr(np.ndarray.view(self, np.ndarray))

    def __str__(self) -> str:
        return str(np.ndarray.view(self, np.ndarray))

    def __format__(self, spec: str) -> str:
        return format(np.ndarray.view(self, np.ndarray), spec)

    def __bool__(self) -> bool:
        return _tracer_of(self).convert(self, bool, "bool()")

    def __float__(self) -> float:
        return _tracer_of(self).convert(self, float, "float()")

    def __int__(self) -> int:
        return _tracer_of(self).convert(self, int, "int()")

    def __index__(self) -> int:
        return _tracer_of(self).convert(self, operator.index, "an index")

    def item(self, *args: Any) -> Any:
        return _tracer_of(self).convert(self, "item", ".item()", args)

    def tolist(self) -> Any:
        return _tracer_of(self).convert(self, "tolist", ".tolist()")

    def __copy__(self) -> Any:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> Any:
        return self.copy()

    @property
    def T(self) -> Any:
        return self.transpose()

    def _method(name: str):
        def method(self, *args: Any, **kwargs: Any) -> Any:
            return _tracer_of(self).method(self, name, args, kwargs)

        method.__name__ = name
        return method

    all = _method("all")
    any = _method("any")
    argmax = _method("argmax")
    argmin = _method("argmin")
    argsort = _method("argsort")
    astype = _method("astype")
    clip = _method("clip")
    conj = _method("conj")
    copy = _method("copy")
    cumprod = _method("cumprod")
    cumsum = _method("cumsum")
    diagonal = _method("diagonal")
    dot = _method("dot")
    fill = _method("fill")
    flatten = _method("flatten")
    max = _method("max")
    mean = _method("mean")
    min = _method("min")
    nonzero = _method("nonzero")
    prod = _method("prod")
    put = _method("put")
    ravel = _method("ravel")
    repeat = _method("repeat")
    reshape = _method("reshape")
    round = _method("round")
    sort = _method("sort")
    squeeze = _method("squeeze")
    std = _method("std")
    sum = _method("sum")
    swapaxes = _method("swapaxes")
    take = _method("take")
    transpose = _method("transpose")
    var = _method("var")
    view = _method("view")
    del _method


class _PlainMath:
    """What a TracedArray does when no trace of its own is running: plain NumPy."""

    @staticmethod
    def plain(value: Any) -> Any:
        if isinstance(value, TracedArray):
            return np.ndarray.view(value, np.ndarray)
        if isinstance(value, (tuple, list)):
            return type(value)(_PlainMath.plain(v) for v in value)
        if isinstance(value, dict):
            return {k: _PlainMath.plain(v) for k, v in value.items()}
        return value

    def ufunc(self, ufunc, method, inputs, kwargs):
        return getattr(ufunc, method)(*self.plain(inputs), **self.plain(kwargs))

    def function(self, func, args, kwargs):
        return func(*self.plain(args), **self.plain(kwargs))

    def getitem(self, array, index):
        return self.plain(array)[self.plain(index)]

    def setitem(self, array, index, value):
        self.plain(array)[self.plain(index)] = self.plain(value)

    def convert(self, array, how, what, args=()):
        plain = self.plain(array)
        return getattr(plain, how)(*args) if isinstance(how, str) else how(plain)

    def method(self, array, name, args, kwargs):
        result = getattr(np.ndarray, name)(
            self.plain(array), *self.plain(args), **self.plain(kwargs)
        )
        return result


_PLAIN = _PlainMath()


def _tracer_of(array: Any) -> Any:
    tracer = array._tracer
    if tracer is None or Tracer.active is not tracer or tracer.displaying:
        return _PLAIN
    return tracer


class _TracedScalar:
    """Arithmetic of a Python number that the trace follows (a hyper-parameter, an
    optimizer's step count, a random draw): each result is a new traced number."""

    _slot: int
    _tracer: Tracer

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any):
        return self._tracer.ufunc(ufunc, method, inputs, kwargs)

    def __hash__(self) -> int:
        return hash(self._plain())

    def __bool__(self) -> bool:
        return self._tracer.scalar_guard(operator.truth, (self,))

    def __neg__(self) -> Any:
        return self._tracer.scalar(operator.neg, (self,))

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return self._tracer.scalar(operator.abs, (self,))


def _binary(op: Any, reflected: bool = False):
    def method(self, other):
        if isinstance(other, np.ndarray) or not isinstance(other, (int, float)):
            return NotImplemented
        args = (other, self) if reflected else (self, other)
        return self._tracer.scalar(op, args)

    return method


def _comparison(op: Any):
    def method(self, other):
        if isinstance(other, np.ndarray) or not isinstance(other, (int, float)):
            return NotImplemented
        return self._tracer.scalar_guard(op, (self, other))

    return method


for _name, _op in (
    ("add", operator.add),
    ("sub", operator.sub),
    ("mul", operator.mul),
    ("truediv", operator.truediv),
    ("floordiv", operator.floordiv),
    ("mod", operator.mod),
    ("pow", operator.pow),
):
    setattr(_TracedScalar, f"__{_name}__", _binary(_op))
    setattr(_TracedScalar, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in (
    ("eq", operator.eq),
    ("ne", operator.ne),
    ("lt", operator.lt),
    ("le", operator.le),
    ("gt", operator.gt),
    ("ge", operator.ge),
):
    setattr(_TracedScalar, f"__{_name}__", _comparison(_op))


class TracedFloat(_TracedScalar, float):
    """A float whose arithmetic the trace records (a learning rate, say)."""

    def _plain(self) -> float:
        return float.__float__(self)


class TracedInt(_TracedScalar, int):
    """An int whose arithmetic the trace records (an optimizer's step count)."""

    def _plain(self) -> int:
        return int.__int__(self)


# -------------------------------------------------------------------- the tracer
# NumPy functions that return views or Python values fixed by shapes alone.
_STATIC_FUNCTIONS = {
    np.shape,
    np.ndim,
    np.size,
    np.result_type,
    np.may_share_memory,
    np.iscomplexobj,
    np.isrealobj,
    # text for people (a print in the step): shown at trace time, never a guard
    np.array2string,
    np.array_repr,
    np.array_str,
}
# NumPy functions that write their first argument in place.
_MUTATORS = {np.copyto, np.put, np.place, np.putmask, np.fill_diagonal}
_INPLACE_METHODS = {"fill", "sort", "put"}
# Functions whose result's shape depends on the data: the program checks it.
_DYNAMIC_SHAPE = {np.nonzero, np.argwhere, np.flatnonzero, np.unique, np.extract}
_CREATORS = ("zeros", "ones", "empty", "full", "eye", "identity")
# The library's own array functions that the trace records as one node each (their
# NumPy internals, masks and in-place loops, are not the operation a program means).
_LIBRARY_FUNCTIONS = ("erf", "erfc")


class Location:
    """Where a program input is read from, or an output written to, at each call."""

    __slots__ = ("index", "key", "kind", "owner", "sub")

    def __init__(
        self, kind: str, owner: Any = None, index: Any = None, key: Any = None, sub=None
    ):
        self.kind, self.owner, self.index, self.key, self.sub = (
            kind,
            owner,
            index,
            key,
            sub,
        )

    def tensor(self, args: list[Any]) -> Any:
        """The Tensor this location names at this call (None if there is none)."""
        if self.kind == "arg":
            return args[self.index]
        if self.kind == "root":
            return self.owner
        if self.kind == "grad":
            owner = self.owner.tensor(args)
            return None if owner is None else _GRAD.__get__(owner, Tensor)
        raise ValueError(self.kind)

    def read(self, args: list[Any]) -> Any:
        """The value at this location now (an array, or a Python number)."""
        kind = self.kind
        if kind == "array":
            return args[self.index]
        if kind == "hyper":
            value = self.owner.param_groups[self.index][self.key]
            return value if self.sub is None else value[self.sub]
        if kind == "state":
            return self.owner.state[self.index][self.key]
        return _DATA.__get__(self.tensor(args), Tensor)


class Tracer:
    """Records one call of a step as a `Graph`; use as a context manager."""

    active: Tracer | None = None  # the trace now running (one at a time)

    def __init__(self, arg_tensors: dict[int, int]) -> None:
        self.nodes: list[Node] = []
        self.info: dict[int, SlotInfo] = {}
        self.inputs: list[tuple[int, Location]] = []
        self.labels: list[str] = []
        self.section = "forward"
        self.owners: dict[int, tuple[Any, int]] = {}  # id(memory owner) -> slot
        self.adopted: dict[int, tuple[Any, int]] = {}
        self.constants: set[int] = set()
        self.created: set[int] = set()
        self.arg_tensors = arg_tensors
        self.lifted: dict[int, tuple[Any, Any, Any]] = {}  # tensor, raw, traced
        self.grad_origin: dict[int, Any] = {}
        self.grad_read: dict[int, tuple[Any, Any]] = {}  # tensor, its grad then
        self.grad_written: dict[int, Any] = {}
        self.data_written: dict[int, Any] = {}
        self.checks: list[tuple[str, Any, Any]] = []  # preconditions of the program
        self.optimizers: dict[int, tuple[Any, list, dict]] = {}
        self.modules: dict[int, Any] = {}
        self.lifted_groups: dict[tuple[int, str], Any] = {}  # what the trace put there
        self.lifted_state: dict[int, tuple] = {}  # id -> (traced, original value)
        self.poisoned: str | None = None
        self.displaying = False  # a Tensor is being printed: read, do not record
        self._saved: list[tuple[Any, str, Any]] = []

    # ---------------------------------------------------------------- slots
    def new_slot(self, value: Any, name: str, view_of: int | None = None) -> int:
        slot = len(self.info)
        if isinstance(value, np.ndarray):
            self.info[slot] = SlotInfo(
                name, value.shape, value.dtype, "array", view_of, value.strides
            )
        else:
            self.info[slot] = SlotInfo(name, None, type(value), "scalar")
        return slot

    def poison(self, reason: str) -> None:
        if self.poisoned is None:
            self.poisoned = reason

    def _hint(self) -> str:
        return _word(self.labels[-1] if self.labels else self.section, self.section)

    def traced(
        self, plain: np.ndarray, name: str | None = None, operands: Any = ()
    ) -> TracedArray:
        """A new slot for the array `plain` just computed, as a TracedArray (a view
        of the slot whose memory it shares, if any: of one of `operands`, pairs of
        traced operand and the plain array computed with, if nothing else tells)."""
        root = _root(plain)
        owner = self.owners.get(id(root))
        view_of = None
        if owner is not None and owner[0]() is root:
            view_of = owner[1]
        elif plain.base is not None:
            for original, array in operands:
                if (
                    type(original) is TracedArray
                    and original._tracer is self
                    and np.may_share_memory(plain, array)
                ):
                    view_of = original._slot
                    break
        slot = self.new_slot(plain, name or self._hint(), view_of)
        if view_of is None:
            self.owners[id(root)] = (weakref.ref(root), slot)
        array = np.ndarray.view(plain, TracedArray)
        array._slot, array._tracer = slot, self
        return array

    def traced_scalar(self, value: Any, name: str | None = None) -> Any:
        slot = self.new_slot(value, name or self._hint())
        kind = TracedInt if isinstance(value, int) else TracedFloat
        scalar = kind(value)
        scalar._slot, scalar._tracer = slot, self
        return scalar

    def add_input(self, value: Any, location: Location, name: str) -> Any:
        if isinstance(value, np.ndarray):
            traced = self.traced(value, name)
        else:
            traced = self.traced_scalar(value, name)
        self.inputs.append((traced._slot, location))
        return traced

    # -------------------------------------------------------- plain <-> refs
    def split(self, value: Any) -> tuple[Any, Any]:
        """(the plain value to compute with, the same with `Ref`s for traced parts)."""
        kind = type(value)
        if kind in _PLAIN_KINDS:
            return value, value
        if kind is TracedArray:
            plain = np.ndarray.view(value, np.ndarray)
            if value._tracer is not self or value._slot is None:
                self.poison("an array derived outside the recorder was used")
                return plain, plain
            return plain, Ref(value._slot)
        if kind is TracedFloat or kind is TracedInt:
            if value._tracer is not self:
                return value._plain(), value._plain()
            return value._plain(), Ref(value._slot)
        if kind is np.ndarray:
            slot = self.slot_of_plain(value)
            if slot is None:
                self.constants.add(id(value))
                return value, value
            return value, Ref(slot)
        if kind is tuple or kind is list:
            plains, refs = [], []
            for item in value:
                plain, ref = self.split(item)
                plains.append(plain)
                refs.append(ref)
            if kind is tuple:
                return tuple(plains), tuple(refs)
            return plains, refs
        if kind is dict:
            if not value:
                return value, value
            pairs = {k: self.split(v) for k, v in value.items()}
            return (
                {k: p for k, (p, _) in pairs.items()},
                {k: r for k, (_, r) in pairs.items()},
            )
        if kind is slice and any(
            isinstance(v, (TracedArray, _TracedScalar))
            for v in (value.start, value.stop, value.step)
        ):
            (start, stop, step), refs = self.split(
                (value.start, value.stop, value.step)
            )
            return slice(start, stop, step), slice(*refs)
        if isinstance(value, Tensor):
            self.poison("a Tensor was handed to a NumPy function")
        return value, value

    def slot_of_plain(self, array: np.ndarray) -> int | None:
        """The slot a plain array stands for: adopted, or a view of traced memory."""
        entry = self.adopted.get(id(array))
        if entry is not None and entry[0]() is array:
            return entry[1]
        base = array.base
        while isinstance(base, np.ndarray):
            if type(base) is TracedArray and base._tracer is self:
                if (
                    base.shape == array.shape
                    and base.strides == array.strides
                    and base.__array_interface__["data"]
                    == array.__array_interface__["data"]
                ):
                    return base._slot
                self.poison("a view of a traced array made outside the recorder")
                return None
            base = base.base
        return None

    def writable(self, value: Any) -> int | None:
        """The slot of an array about to be written in place (adopting a plain one)."""
        if type(value) is TracedArray and value._tracer is self:
            return value._slot
        if isinstance(value, np.ndarray):
            slot = self.slot_of_plain(value)
            if slot is not None:
                return slot
            return self.adopt(value)
        return None

    def adopt(self, array: np.ndarray) -> int:
        """Follow a plain array made inside the step that is now written in place:
        the program makes a fresh copy of its current value at this point."""
        if id(array) in self.constants:
            self.poison("an array read as a constant is later written in place")
        snapshot = np.array(array, copy=True)
        slot = self.new_slot(array, self._hint() + "_buf")
        self.emit(_Draft("function", np.copy, (snapshot,), outs=(slot,)))
        self.adopted[id(array)] = (weakref.ref(array), slot)
        return slot

    def emit(self, draft: _Draft) -> None:
        # no Tensor op running: the engine's own work (summing a gradient back to its
        # input's shape, accumulating it) or plain NumPy in the step
        label = self.labels[-1] if self.labels else _UNLABELLED[self.section]
        self.nodes.append(
            Node(
                draft.kind,
                draft.target,
                draft.args,
                draft.kwargs,
                draft.outs,
                draft.writes,
                draft.method,
                label,
                self.section,
                draft.expected,
            )
        )

    def result(self, node: _Draft, value: Any, plain_inputs: Any) -> Any:
        """Record `node` with `value` (what it computed) as output; the traced result."""
        if value is None:
            self.emit(node)
            return None
        if isinstance(value, np.ndarray):
            plain_inputs = list(plain_inputs)
            for original, plain in plain_inputs:
                if value is plain:
                    return original
            out = self.traced(value, None, plain_inputs)
            self.emit(_with_outs(node, (out._slot,)))
            return out
        if isinstance(value, np.generic):
            out = self.traced(np.asarray(value))
            self.emit(_with_outs(node, (out._slot,)))
            return out
        if isinstance(value, (tuple, list)) and all(
            isinstance(v, (np.ndarray, np.generic)) for v in value
        ):
            outs = [self.traced(np.asarray(v)) for v in value]
            self.emit(_with_outs(node, tuple(o._slot for o in outs)))
            return type(value)(outs)
        if isinstance(value, (bool, int, float, tuple, list, str, type(None))):
            slot = self.new_slot(value, "value")
            self.emit(_with_outs(node, (slot,)))
            self.emit(_Draft("guard", "value", (Ref(slot),), expected=value))
            return value
        self.poison(f"a NumPy call returned {type(value).__name__}")
        return value

    # ------------------------------------------------------- NumPy protocols
    def ufunc(self, ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
        plain_in, refs_in = self.split(inputs)
        writes: list[int] = []
        out = kwargs.get("out")
        outs = out if isinstance(out, tuple) else (out,) if out is not None else ()
        for o in outs:
            if o is not None:
                writes.append(self.writable(o))
        if method == "at":
            writes.append(self.writable(inputs[0]))
        plain_kw, refs_kw = self.split(kwargs)
        value = getattr(ufunc, method)(*plain_in, **plain_kw)
        node = _Draft(
            "ufunc",
            ufunc,
            refs_in,
            tuple(refs_kw.items()),
            writes=tuple(w for w in writes if w is not None),
            method=method,
        )
        if method == "at":
            self.emit(node)
            return None
        if outs:
            self.emit(node)
            return outs[0] if len(outs) == 1 else outs
        return self.result(node, value, zip(inputs, plain_in))

    def function(self, func: Any, args: tuple, kwargs: dict) -> Any:
        plain_args, refs_args = self.split(args)
        plain_kw, refs_kw = self.split(kwargs)
        if func in _STATIC_FUNCTIONS:
            return func(*plain_args, **plain_kw)
        writes = []
        if func in _MUTATORS:
            writes.append(self.writable(args[0]))
        out = kwargs.get("out")
        if out is not None:
            writes.append(self.writable(out))
        value = func(*plain_args, **plain_kw)
        node = _Draft(
            "function",
            func,
            refs_args,
            tuple(refs_kw.items()),
            writes=tuple(w for w in writes if w is not None),
        )
        if out is not None:
            self.emit(node)
            return out
        if func in _MUTATORS:
            self.emit(node)
            return value
        traced = self.result(node, value, zip(args, plain_args))
        if func in _DYNAMIC_SHAPE:
            self.shape_guard(traced)
        return traced

    def method(self, array: Any, name: str, args: tuple, kwargs: dict) -> Any:
        plain_self, ref_self = self.split(array)
        plain_args, refs_args = self.split(args)
        plain_kw, refs_kw = self.split(kwargs)
        writes = []
        if name in _INPLACE_METHODS:
            writes.append(self.writable(array))
        if kwargs.get("out") is not None:
            writes.append(self.writable(kwargs["out"]))
        value = getattr(np.ndarray, name)(plain_self, *plain_args, **plain_kw)
        node = _Draft(
            "method",
            name,
            (ref_self, *refs_args),
            tuple(refs_kw.items()),
            writes=tuple(w for w in writes if w is not None),
        )
        if kwargs.get("out") is not None:
            self.emit(node)
            return kwargs["out"]
        traced = self.result(node, value, [(array, plain_self)])
        if name == "nonzero":
            self.shape_guard(traced)
        return traced

    def getitem(self, array: Any, index: Any) -> Any:
        plain_self, ref_self = self.split(array)
        plain_index, ref_index = self.split(index)
        value = plain_self[plain_index]
        traced = self.result(
            _Draft("getitem", None, (ref_self, ref_index)), value, [(array, plain_self)]
        )
        if _has_mask(plain_index):
            self.shape_guard(traced)
        return traced

    def setitem(self, array: Any, index: Any, value: Any) -> None:
        slot = self.writable(array)
        plain_self, ref_self = self.split(array)
        plain_index, ref_index = self.split(index)
        plain_value, ref_value = self.split(value)
        plain_self[plain_index] = plain_value
        self.emit(
            _Draft("setitem", None, (ref_self, ref_index, ref_value), writes=(slot,))
        )

    def shape_guard(self, traced: Any) -> None:
        for item in traced if isinstance(traced, (tuple, list)) else (traced,):
            if isinstance(item, TracedArray):
                self.emit(
                    _Draft("guard", "shape", (Ref(item._slot),), expected=item.shape)
                )

    def convert(self, array: Any, how: Any, what: str, args: tuple = ()) -> Any:
        """A Python value out of traced data: refused in user code, else a guard."""
        if _called_from_user():
            raise refusal(what)
        plain, ref = self.split(array)
        value = getattr(plain, how)(*args) if isinstance(how, str) else how(plain)
        if how in (float, "item") and _reported_only():
            return value
        target = how
        if args:
            self.poison(f"{what} with arguments")
        self.emit(_Draft("guard", target, (ref,), expected=value))
        return value

    def scalar(self, op: Any, args: tuple) -> Any:
        plain, refs = self.split(args)
        value = op(*plain)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.poison(f"scalar arithmetic gave {type(value).__name__}")
            return value
        out = self.traced_scalar(value)
        self.emit(_Draft("scalar", op, refs, outs=(out._slot,)))
        return out

    def scalar_guard(self, op: Any, args: tuple) -> bool:
        plain, refs = self.split(args)
        value = op(*plain)
        slot = self.new_slot(value, "test")
        self.emit(_Draft("scalar", op, refs, outs=(slot,)))
        self.emit(_Draft("guard", "value", (Ref(slot),), expected=value))
        return value

    # ---------------------------------------------------------- Tensors
    def location(self, t: Any) -> Location:
        index = self.arg_tensors.get(id(t))
        if index is not None:
            return Location("arg", index=index)
        owner = self.grad_origin.get(id(t))
        if owner is not None:
            return Location("grad", owner=self.location(owner))
        return Location("root", owner=t)

    def lift(self, t: Any, raw: np.ndarray) -> TracedArray:
        """Make the data of a Tensor from before the step a program input."""
        location = self.location(t)
        traced = self.add_input(raw, location, "input")
        self.lifted[id(t)] = (t, raw, traced)
        self.checks.append(
            ("tensor", location, (raw.shape, raw.dtype, t._requires_grad))
        )
        _DATA.__set__(t, traced)
        return traced

    def read_data(self, t: Any) -> Any:
        value = _DATA.__get__(t, Tensor)
        if type(value) is not np.ndarray or id(t) in self.created:
            return value
        return self.lift(t, value)

    def write_data(self, t: Any, value: Any) -> None:
        try:
            _GRAD.__get__(t, Tensor)
        except AttributeError:
            self.created.add(id(t))  # a Tensor being constructed
        else:
            if id(t) not in self.created:
                self.data_written[id(t)] = t
        _DATA.__set__(t, value)

    def read_grad(self, t: Any) -> Any:
        value = _GRAD.__get__(t, Tensor)
        key = id(t)
        if key in self.created or key in self.grad_written or key in self.grad_read:
            return value
        self.grad_read[key] = (t, value)
        raw = None if value is None else _DATA.__get__(value, Tensor)
        expected = None if raw is None else (raw.shape, raw.dtype)
        self.checks.append(("grad", self.location(t), expected))
        if value is not None:
            self.grad_origin[id(value)] = t
        return value

    def write_grad(self, t: Any, value: Any) -> None:
        if id(t) not in self.created:
            self.grad_written[id(t)] = t
        _GRAD.__set__(t, value)

    # ------------------------------------------------------ optimizers
    def adopt_optimizer(self, opt: Any) -> None:
        """Make an optimizer's numeric hyper-parameters and state program inputs."""
        if id(opt) in self.optimizers:
            return
        saved_groups = []
        for g, group in enumerate(opt.param_groups):
            saved_groups.append(dict(group))
            for key, value in list(group.items()):
                if key == "params":
                    continue
                name = _identifier(key) + (str(g) if g else "")
                if _is_number(value):
                    group[key] = self.add_input(
                        value, Location("hyper", opt, g, key), name
                    )
                elif isinstance(value, tuple) and all(_is_number(v) for v in value):
                    group[key] = tuple(
                        self.add_input(
                            v, Location("hyper", opt, g, key, i), f"{name}_{i}"
                        )
                        for i, v in enumerate(value)
                    )
                else:
                    self.checks.append(("hyper", (opt, g, key), value))
                self.lifted_groups[(id(group), key)] = group[key]
        saved_state = {}
        params = [p for group in opt.param_groups for p in group["params"]]
        layout = tuple(tuple(opt.state[p]) if p in opt.state else None for p in params)
        self.checks.append(("state", opt, layout))
        for p in params:
            state = opt.state.get(p)
            if state is None:
                continue
            saved_state[id(p)] = (p, dict(state))
            for key, value in list(state.items()):
                location = Location("state", opt, p, key)
                if isinstance(value, np.ndarray):
                    self.checks.append(
                        ("state_array", location, (value.shape, value.dtype))
                    )
                if isinstance(value, np.ndarray) or _is_number(value):
                    state[key] = self.add_input(value, location, _identifier(key))
                    self.lifted_state[id(state[key])] = (state[key], value)
                else:
                    self.checks.append(("state_value", location, value))
        self.optimizers[id(opt)] = (opt, saved_groups, saved_state)

    # ------------------------------------------------------------ hooks
    def __enter__(self) -> Tracer:
        from ..nn.module import Module
        from ..optim.optimizer import Optimizer

        if Tracer.active is not None:
            raise RuntimeError(
                "compile: a compiled function was called while another one is being "
                "traced; call it outside, or compile only the outer function"
            )
        tracer = self
        plain_apply = Tensor._apply
        plain_backward = Tensor.backward
        plain_step = Optimizer.step
        plain_call = Module.__call__
        plain_rng = _config._rng

        def apply(op: Any, *args: Any, **params: Any) -> Any:
            if _State.enabled and tracer.section != "forward":
                tracer.section = "forward"
            label = _snake(op.__name__)
            if tracer.labels and tracer.labels[-1].startswith("backward of"):
                label = tracer.labels[-1]
            tracer.labels.append(label)
            try:
                out = plain_apply(op, *args, **params)
            finally:
                tracer.labels.pop()
            fn = out.grad_fn
            if fn is not None and "backward" not in fn.__dict__:
                fn.backward = _labelled_backward(tracer, fn, _snake(op.__name__))
            return out

        def backward(self, gradient=None, retain_graph=False, create_graph=False):
            if create_graph:
                raise RuntimeError(
                    "compile: backward(create_graph=True) is refused inside a compiled "
                    "step (higher-order gradients are not compiled); run it eagerly"
                )
            return plain_backward(self, gradient, retain_graph, create_graph)

        def step(opt, closure=None):
            tracer.adopt_optimizer(opt)
            tracer.section = "update"
            tracer.labels.append(f"{type(opt).__name__} step")
            try:
                return plain_step(opt, closure)
            finally:
                tracer.labels.pop()

        def call(module, *args, **kwargs):
            if id(module) not in tracer.modules:
                tracer.modules[id(module)] = module
                tracer.checks.append(("training", module, module.training))
            return plain_call(module, *args, **kwargs)

        self._swap(Tensor, "_apply", staticmethod(apply))
        self._swap(Tensor, "backward", backward)
        self._swap(Tensor, _DATA_SLOT, property(self.read_data, self.write_data))
        self._swap(Tensor, "grad", property(self.read_grad, self.write_grad))
        for name, what in (
            ("item", ".item()"),
            ("tolist", ".tolist()"),
            ("numpy", ".numpy()"),
            ("__array__", "np.asarray()"),
            ("__bool__", "bool()"),
        ):
            self._swap(Tensor, name, _refusing(getattr(Tensor, name), what))
        for name in ("__repr__", "__str__", "__format__"):
            if name in Tensor.__dict__:
                self._swap(Tensor, name, _displaying(self, Tensor.__dict__[name]))
        self._swap(Tensor, "__float__", _refusing(None, "float()"))
        self._swap(Tensor, "__int__", _refusing(None, "int()"))
        self._swap(Optimizer, "step", step)
        self._swap(Module, "__call__", call)
        self._swap(_config, "_rng", RecordingGenerator(plain_rng, self))
        for name in ("array", "asarray", "ascontiguousarray"):
            self._swap(np, name, _converter(getattr(np, name), self))
        for name in _CREATORS:
            self._swap(np, name, _creator(getattr(np, name), self))
        for name in _LIBRARY_FUNCTIONS:
            self._swap(_special, name, _library(getattr(_special, name), self))
        Tracer.active = self
        return self

    def _swap(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    def __exit__(self, *exc: Any) -> None:
        Tracer.active = None
        for owner, name, value in reversed(self._saved):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        self._saved.clear()

    # ------------------------------------------------------------ the end
    def finish(self, results: list[Any]) -> tuple[Graph, list[tuple]]:
        """The recorded graph and what each output binds to; puts plain arrays back
        everywhere the step's objects held traced ones. `results` are the Tensors
        the step returned (flattened)."""
        outputs: list[Any] = []
        bindings: list[tuple] = []
        for r in results:
            outputs.append(self.output(None if r is None else _DATA.__get__(r, Tensor)))
        for t in self.data_written.values():
            final = _DATA.__get__(t, Tensor)
            entry = self.lifted.get(id(t))
            if entry is not None and final is entry[2]:
                continue
            bindings.append(("data", self.location(t), self.output(final)))
        for t in self.grad_written.values():
            final = _GRAD.__get__(t, Tensor)
            read = self.grad_read.get(id(t))
            if read is not None and final is read[1] and final is not None:
                continue
            value = None if final is None else self.output(_DATA.__get__(final, Tensor))
            bindings.append(("grad", self.location(t), value))
            if final is not None:
                _DATA.__set__(final, _plain(_DATA.__get__(final, Tensor)))
        for opt, saved_groups, saved_state in self.optimizers.values():
            for group, saved in zip(opt.param_groups, saved_groups):
                for key, original in saved.items():
                    current = group.get(key)
                    if key == "params" or current is self.lifted_groups.get(
                        (id(group), key)
                    ):
                        group[key] = original
                        continue
                    # the step itself changed a setting (a scheduler inside it,
                    # say): Python that the program would not replay
                    self.poison(f"the step changed the optimizer's {key!r}")
                    group[key] = (
                        tuple(_plain(v) for v in current)
                        if isinstance(current, tuple)
                        else _plain(current)
                    )
            for p, state in opt.state.items():
                before = saved_state.get(id(p), (None, {}))[1]
                for key, value in list(state.items()):
                    original = before.get(key, _MISSING)
                    entry = self.lifted_state.get(id(value))
                    if entry is not None and entry[0] is value and entry[1] is original:
                        state[key] = original  # updated in place, if at all
                        continue
                    if original is value:
                        continue
                    bindings.append(
                        ("state", Location("state", opt, p, key), self.output(value))
                    )
                    state[key] = _plain(value)
        for t, raw, traced in self.lifted.values():
            if _DATA.__get__(t, Tensor) is traced:
                _DATA.__set__(t, raw)
        for t in self.data_written.values():
            _DATA.__set__(t, _plain(_DATA.__get__(t, Tensor)))
        outputs.extend(b[2] for b in bindings)
        graph = Graph(self.nodes, [s for s, _ in self.inputs], outputs, self.info)
        return graph, bindings

    def output(self, value: Any) -> Any:
        if isinstance(value, (TracedArray, _TracedScalar)):
            if value._tracer is self and value._slot is not None:
                return Ref(value._slot)
            self.poison("an output was computed outside the recorder")
            return _plain(value)
        if isinstance(value, np.ndarray):
            slot = self.slot_of_plain(value)
            return Ref(slot) if slot is not None else value.copy()
        return value


_MISSING = object()


def _plain(value: Any) -> Any:
    if isinstance(value, TracedArray):
        return np.ndarray.view(value, np.ndarray)
    if isinstance(value, _TracedScalar):
        return value._plain()
    return value


def _has_mask(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype == bool for i in items)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _identifier(text: Any) -> str:
    return _NON_WORD.sub("_", str(text)).strip("_") or "v"


def _with_outs(draft: _Draft, outs: tuple[int, ...]) -> _Draft:
    return draft._replace(outs=outs)


def _labelled_backward(tracer: Tracer, fn: Any, name: str) -> Any:
    backward = fn.backward

    def labelled(grad: Any, out: Any) -> Any:
        if _State.enabled:
            raise RuntimeError(
                "compile: create_graph=True (tinygrad_bp.func's transforms use it) is "
                "refused inside a compiled step "
                "(higher-order gradients are not compiled); run it eagerly"
            )
        tracer.section = "backward"
        tracer.labels.append(f"backward of {name}")
        try:
            return backward(grad, out)
        finally:
            tracer.labels.pop()

    return labelled


def _displaying(tracer: Tracer, method: Any) -> Any:
    """A Tensor's repr/str/format that reads the values without recording them: a
    print in the step shows the trace-time values (a side effect, at trace time only)
    and is no guard."""

    def display(self, *args: Any) -> Any:
        before, tracer.displaying = tracer.displaying, True
        try:
            return method(self, *args)
        finally:
            tracer.displaying = before

    return display


def _refusing(method: Any, what: str) -> Any:
    def refusing(self, *args: Any, **kwargs: Any) -> Any:
        data = _DATA.__get__(self, Tensor)
        if type(data) is TracedArray and _called_from_user():
            raise refusal(what)
        if method is None:
            raise TypeError(f"{what} of a Tensor: use .item()")
        return method(self, *args, **kwargs)

    return refusing


def _converter(original: Any, tracer: Tracer) -> Any:
    """np.array / np.asarray that keep traced arrays traced (recording a copy or a
    cast when they make one)."""
    name = original.__name__
    asarray = name == "asarray"

    def convert(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(obj) is TracedArray and not args and not kwargs and asarray:
            return obj  # the library's np.asarray of a traced array: itself
        if isinstance(obj, Tensor):
            obj = obj.__array__()  # refused in user code while tracing
        if not _holds_traced(obj):
            return original(obj, *args, **kwargs)
        plain, ref = tracer.split(obj)
        value = original(plain, *args, **kwargs)
        if type(obj) is TracedArray and value is plain:
            return obj  # asarray of an array already right: the same array
        node = _Draft("function", original, (ref, *args), tuple(kwargs.items()))
        return tracer.result(node, value, [])

    convert.__name__ = name
    return convert


def _creator(original: Any, tracer: Tracer) -> Any:
    """np.zeros & co. that record the new array, which the step may fill in place
    (calls from inside NumPy itself stay plain: they never see traced arrays)."""

    def create(*args: Any, **kwargs: Any) -> Any:
        if Tracer.active is not tracer or sys._getframe(1).f_globals.get(
            "__name__", ""
        ).startswith("numpy"):
            return original(*args, **kwargs)
        plain_args, refs_args = tracer.split(args)
        plain_kw, refs_kw = tracer.split(kwargs)
        value = original(*plain_args, **plain_kw)
        node = _Draft("function", original, refs_args, tuple(refs_kw.items()))
        return tracer.result(node, value, [])

    create.__name__ = original.__name__
    return create


def _library(original: Any, tracer: Tracer) -> Any:
    """A library array function (`_special.erf`) recorded as one "function" node
    when it reads traced data, as a NumPy function is; plain otherwise."""

    def call(x: Any) -> Any:
        if (
            Tracer.active is tracer
            and not tracer.displaying
            and (
                _holds_traced(x)
                or (isinstance(x, np.ndarray) and tracer.slot_of_plain(x) is not None)
            )
        ):
            return tracer.function(original, (x,), {})
        return original(x)

    call.__name__ = original.__name__
    call.__doc__ = original.__doc__
    return call


def _holds_traced(obj: Any) -> bool:
    if isinstance(obj, (TracedArray, _TracedScalar)):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_holds_traced(o) for o in obj)
    return False


class RecordingGenerator:
    """The one generator, recording each draw so the program draws again at replay
    (from `get_rng()`, so the numbers equal eager's under the same seed)."""

    def __init__(self, generator: np.random.Generator, tracer: Tracer) -> None:
        self._generator = generator
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._generator, name)
        if not callable(attribute):
            return attribute
        tracer = self._tracer

        def draw(*args: Any, **kwargs: Any) -> Any:
            plain_args, refs_args = tracer.split(args)
            plain_kw, refs_kw = tracer.split(kwargs)
            writes = (tracer.writable(args[0]),) if name == "shuffle" else ()
            value = attribute(*plain_args, **plain_kw)
            node = _Draft("rng", name, refs_args, tuple(refs_kw.items()), writes=writes)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out = tracer.traced_scalar(value, "draw")
                tracer.emit(_with_outs(node, (out._slot,)))
                return out
            if value is None:
                tracer.emit(node)
                return None
            if isinstance(value, (np.ndarray, np.generic)):
                out = tracer.traced(np.asarray(value), "draw")
                tracer.emit(_with_outs(node, (out._slot,)))
                return out
            tracer.poison(f"random draw {name} returned {type(value).__name__}")
            return value

        return draw
