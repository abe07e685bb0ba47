"""codegen_onnx: turn a traced inference program's nodes into an ONNX graph.

The second code generator over the IR (the first writes NumPy text): each node, a
NumPy-level call the trace recorded, becomes one or a few standard ONNX operators of
opset `OPSET`. `RULES` maps every NumPy operation it knows to a function that emits
them, and `SUPPORTED` (made from the same registrations) says which ONNX operators
each one becomes, so the documentation's table cannot drift from the code.

Sliding windows (convolution and pooling) are built with `Gather` over an index
table and then go through the same matmul, max or sum the trace recorded, so a
window op needs no pattern matching and stays exact. A symbolic batch axis comes
from `unify`: the program traced at two batch sizes differs only in the integers
that depend on the batch (reshape targets), which become `Batch` markers computed
from the first input's shape at run time.

This module imports only `ir` and `passes`; the `onnx` package is handed in by the
caller (`tinygrad_bp.onnx`), so nothing here needs it to be importable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ir import Graph, Node, Ref

OPSET = 18
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Batch:
    """An integer that is `scale * batch + offset` at run time (a reshape target's
    first entry, say), found by `unify`."""

    scale: int
    offset: int


# ---------------------------------------------------------------- the rules
RULES: dict[Any, Callable[..., Any]] = {}
SUPPORTED: dict[str, str] = {}


def _rule(keys: Any, title: str, onnx_ops: str) -> Callable:
    """Register one emitter for the dispatch `keys` and its row of the table."""

    def register(emit: Callable) -> Callable:
        for key in keys if isinstance(keys, list) else [keys]:
            RULES[key] = emit
        SUPPORTED[title] = onnx_ops
        return emit

    return register


def key_of(node: Node) -> Any:
    """The dispatch key of a node in `RULES` (None for a kind with no rule)."""
    if node.kind == "ufunc":
        return ("ufunc", node.target.__name__, node.method)
    if node.kind == "function":
        return ("function", getattr(node.target, "__name__", str(node.target)))
    if node.kind == "method":
        return ("method", node.target)
    if node.kind in ("getitem", "const"):
        return (node.kind,)
    return None


def describe(node: Node) -> str:
    """A readable name for the NumPy operation a node records (for errors)."""
    if node.kind == "ufunc":
        name = f"np.{node.target.__name__}"
        return name if node.method == "__call__" else f"{name}.{node.method}"
    if node.kind == "function":
        name = getattr(node.target, "__name__", node.target)
        module = getattr(node.target, "__module__", None) or "numpy"
        return f"np.{name}" if module.startswith("numpy") else f"{name} ({module})"
    if node.kind == "method":
        return f"ndarray.{node.target}"
    if node.kind == "rng":
        return f"random draw {node.target!r} (a Dropout in training mode? eval() it)"
    if node.kind == "setitem":
        return "item assignment (x[i] = v)"
    if node.kind == "scalar":
        return f"Python scalar arithmetic ({getattr(node.target, '__name__', '?')})"
    return f"{node.kind} node"


def unsupported(nodes: list[Node]) -> list[str]:
    """The NumPy operations in `nodes` that have no ONNX rule, each named once.

    >>> from tinygrad_bp.compiler.ir import Node, Ref
    >>> unsupported([Node("ufunc", np.tanh, (Ref(0),), outs=(1,)),
    ...              Node("ufunc", np.arctan2, (Ref(0), Ref(1)), outs=(2,))])
    ['np.arctan2']
    """
    found: list[str] = []
    for node in nodes:
        if node.kind == "guard":
            continue
        key = key_of(node)
        if key is None or key not in RULES:
            name = describe(node)
            if name not in found:
                found.append(name)
    return found


def supported_table() -> str:
    """The table of supported operations as Markdown (generated, for the docs).

    >>> print(supported_table().splitlines()[0])
    | NumPy operation (as traced) | ONNX operators |
    """
    rows = ["| NumPy operation (as traced) | ONNX operators |", "|---|---|"]
    for title, onnx_ops in sorted(SUPPORTED.items()):
        names, _, note = title.partition(" (")
        if names.startswith("x["):
            cell = f"`{names}`"
        else:
            cell = ", ".join(f"`{n.strip()}`" for n in names.split(","))
        rows.append(f"| {cell}{' (' + note if note else ''} | {onnx_ops} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- batch axis
def unify(first: list[Node], second: list[Node], batch: tuple[int, int]) -> list[Node]:
    """Merge the same program traced at two batch sizes `batch` = (b1, b2): integers
    that differ become `Batch` markers; anything else that differs is refused.

    >>> from tinygrad_bp.compiler.ir import Node, Ref
    >>> a = [Node("method", "reshape", (Ref(0), (2, 5, -1)), outs=(1,))]
    >>> b = [Node("method", "reshape", (Ref(0), (3, 5, -1)), outs=(1,))]
    >>> unify(a, b, (2, 3))[0].args[1]
    (Batch(scale=1, offset=0), 5, -1)
    """
    if len(first) != len(second):
        raise NotImplementedError(
            "onnx export: the traced program has a different number of operations "
            f"at batch sizes {batch[0]} and {batch[1]}; export with "
            "dynamic_batch=False"
        )
    merged = []
    for one, two in zip(first, second):
        same = (one.kind, one.method, one.outs, one.writes) == (
            two.kind,
            two.method,
            two.outs,
            two.writes,
        ) and (one.target is two.target or _equal(one.target, two.target))
        if not same and one.kind == "const":
            filled = _filled(one.target, two.target, batch)
            if filled is not None:
                merged.append(Node("const", filled, outs=one.outs, comment=one.comment))
                continue
            raise NotImplementedError(
                f"onnx export: a constant ({one.comment or 'array'}) depends on the "
                "batch size; export with dynamic_batch=False"
            )
        if not same:
            raise NotImplementedError(
                f"onnx export: {describe(one)} differs between batch sizes "
                f"{batch[0]} and {batch[1]}; export with dynamic_batch=False"
            )
        try:
            args = _merge(one.args, two.args, batch)
            kwargs = _merge(one.kwargs, two.kwargs, batch)
        except ValueError:
            raise NotImplementedError(
                f"onnx export: an argument of {describe(one)} depends on the batch "
                "size in a way this exporter cannot express; export with "
                "dynamic_batch=False"
            ) from None
        merged.append(
            Node(
                one.kind,
                one.target,
                args,
                kwargs,
                one.outs,
                one.writes,
                one.method,
                one.comment,
                one.section,
                one.expected,
            )
        )
    return merged


@dataclass(frozen=True)
class Filled:
    """A constant array holding one value everywhere, its shape following the batch
    (an RNN's zero initial state): `shape` may hold `Batch` markers."""

    value: Any
    dtype: np.dtype
    shape: tuple


def _filled(a: Any, b: Any, batch: tuple[int, int]) -> Filled | None:
    """Two constants that hold one same value everywhere, in shapes that differ by
    the batch, as a `Filled` (None when they are anything else)."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return None
    if a.dtype != b.dtype or a.ndim != b.ndim or not a.size or not b.size:
        return None
    first = a.flat[0]
    if not (np.all(a == first) and np.all(b == first)):
        return None
    try:
        shape = _merge(tuple(a.shape), tuple(b.shape), batch)
    except ValueError:
        return None
    return Filled(first, a.dtype, shape)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def _merge(a: Any, b: Any, batch: tuple[int, int]) -> Any:
    if type(a) is not type(b):
        raise ValueError("types differ")
    if isinstance(a, (tuple, list)):
        if len(a) != len(b):
            raise ValueError("lengths differ")
        return type(a)(_merge(x, y, batch) for x, y in zip(a, b))
    if isinstance(a, slice):
        return slice(
            *_merge((a.start, a.stop, a.step), (b.start, b.stop, b.step), batch)
        )
    if isinstance(a, int) and not isinstance(a, bool) and a != b:
        scale, left = divmod(b - a, batch[1] - batch[0])
        if left:
            raise ValueError("not linear in the batch size")
        return Batch(scale, a - scale * batch[0])
    if a is b or _equal(a, b):
        return a
    raise ValueError("values differ")


# ---------------------------------------------------------------- the builder
class Builder:
    """Collects ONNX nodes and initializers while the rules emit them."""

    def __init__(self, onnx: Any, graph: Graph, first_input: str | None) -> None:
        self.onnx = onnx
        self.helper = onnx.helper
        self.graph = graph
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()
        self.first_input = first_input
        self._batch: str | None = None
        self._consts: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in hint) or "v"
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(
            self.helper.make_node(op_type, inputs, [out], name=out, **attrs)
        )
        return out

    def const(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        found = self._consts.get(key)
        if found is None:
            found = self._consts[key] = self.fresh(hint)
            self.initializers.append(
                self.onnx.numpy_helper.from_array(np.array(array, order="C"), found)
            )
        return found

    def initializer(self, name: str, array: np.ndarray) -> None:
        self.taken.add(name)
        self.initializers.append(
            self.onnx.numpy_helper.from_array(np.array(array, order="C"), name)
        )

    # --------------------------------------------------------- values
    def dtype(self, value: Any) -> np.dtype:
        """The dtype of an argument (a slot's, as traced, or a constant's)."""
        if isinstance(value, Ref):
            info = self.graph.info[value.slot]
            if info.kind != "array":
                raise NotImplementedError(
                    "onnx export: a Python scalar computed in the trace "
                    f"({info.name}) has no ONNX equivalent"
                )
            return np.dtype(info.dtype)
        return np.asarray(value).dtype

    def read(self, value: Any, dtype: Any = None) -> str:
        """The ONNX name of an argument (a slot or a constant), cast to `dtype`."""
        if isinstance(value, Ref):
            name = self.names[value.slot]
            if dtype is not None and np.dtype(dtype) != self.dtype(value):
                return self.op("Cast", [name], "cast", to=self.code(dtype))
            return name
        return self.const(value, dtype)

    def code(self, dtype: Any) -> int:
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def out_dtype(self, node: Node) -> np.dtype:
        """The dtype of what `node` computes (its result, or the array it writes)."""
        slot = node.outs[0] if node.outs else node.writes[0]
        return np.dtype(self.graph.info[slot].dtype)

    def ints(self, values: Any) -> str:
        """A 1-D int64 tensor of `values` (ints and `Batch` markers)."""
        values = list(values)
        if not any(isinstance(v, Batch) for v in values):
            return self.const(np.array(values, dtype=np.int64), hint="ints")
        pieces, run = [], []
        for v in values:
            if isinstance(v, Batch):
                if run:
                    pieces.append(self.const(np.array(run, np.int64), hint="ints"))
                    run = []
                piece = self.batch()
                if v.scale != 1:
                    piece = self.op("Mul", [piece, self.const([v.scale], np.int64)])
                if v.offset:
                    piece = self.op("Add", [piece, self.const([v.offset], np.int64)])
                pieces.append(piece)
            else:
                run.append(int(v))
        if run:
            pieces.append(self.const(np.array(run, np.int64), hint="ints"))
        if len(pieces) == 1:
            return pieces[0]
        return self.op("Concat", pieces, "shape", axis=0)

    def batch(self) -> str:
        """The batch size (a 1-element int64 tensor), from the first input's shape."""
        if self._batch is None:
            if self.first_input is None:
                raise NotImplementedError(
                    "onnx export: a shape depends on the batch size but no input has "
                    "a batch axis; export with dynamic_batch=False"
                )
            self._batch = self.op("Shape", [self.first_input], "batch", start=0, end=1)
        return self._batch


def _static(value: Any, what: str) -> Any:
    if isinstance(value, Batch) or (
        isinstance(value, (tuple, list)) and any(isinstance(v, Batch) for v in value)
    ):
        raise NotImplementedError(
            f"onnx export: {what} depends on the batch size; export with "
            "dynamic_batch=False"
        )
    return value


def _axes(axis: Any, ndim: int) -> list[int] | None:
    if axis is None:
        return None
    axis = _static(axis, "a reduction axis")
    axes = list(axis) if isinstance(axis, (tuple, list)) else [axis]
    return [int(a) % ndim if ndim else int(a) for a in axes]


def _ndim(b: Builder, value: Any) -> int:
    if isinstance(value, Ref):
        return len(b.graph.info[value.slot].shape)
    return np.ndim(value)


# ---------------------------------------------------------------- elementwise
_BINARY = {
    "add": "Add",
    "subtract": "Sub",
    "multiply": "Mul",
    "divide": "Div",
    "power": "Pow",
    "maximum": "Max",
    "minimum": "Min",
    "matmul": "MatMul",
}
_COMPARE = {
    "less": "Less",
    "less_equal": "LessOrEqual",
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
    "equal": "Equal",
}
_LOGICAL = {
    "logical_and": "And",
    "logical_or": "Or",
    "logical_xor": "Xor",
    "bitwise_and": "And",
    "bitwise_or": "Or",
    "bitwise_xor": "Xor",
}
_UNARY = {
    "negative": "Neg",
    "exp": "Exp",
    "log": "Log",
    "tanh": "Tanh",
    "sqrt": "Sqrt",
    "absolute": "Abs",
    "sign": "Sign",
    "floor": "Floor",
    "ceil": "Ceil",
    "sin": "Sin",
    "cos": "Cos",
    "reciprocal": "Reciprocal",
    "rint": "Round",
    "isnan": "IsNaN",
    "isinf": "IsInf",
}


def _emit_binary(op_type: str) -> Callable:
    def emit(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
        dtype = b.out_dtype(node)
        return b.op(op_type, [b.read(args[0], dtype), b.read(args[1], dtype)])

    return emit


for _name, _op in _BINARY.items():
    _title = "np.true_divide" if _name == "divide" else f"np.{_name}"
    _rule(("ufunc", _name, "__call__"), _title, f"`{_op}`")(_emit_binary(_op))


def _common(b: Builder, args: tuple) -> np.dtype:
    """The dtype NumPy compares two operands in (Python scalars weakly typed)."""
    return np.result_type(
        *[
            b.dtype(a) if isinstance(a, (Ref, np.ndarray, np.generic)) else a
            for a in args
        ]
    )


def _emit_compare(op_type: str, negate: bool = False) -> Callable:
    def emit(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
        dtype = _common(b, args)
        out = b.op(op_type, [b.read(args[0], dtype), b.read(args[1], dtype)])
        return b.op("Not", [out]) if negate else out

    return emit


for _name, _op in _COMPARE.items():
    _rule(("ufunc", _name, "__call__"), f"np.{_name}", f"`{_op}`")(_emit_compare(_op))
_rule(("ufunc", "not_equal", "__call__"), "np.not_equal", "`Equal`, `Not`")(
    _emit_compare("Equal", negate=True)
)


def _emit_logical(op_type: str) -> Callable:
    def emit(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
        if b.out_dtype(node) != np.bool_:
            raise NotImplementedError(
                f"onnx export: {describe(node)} on integers has no ONNX rule here"
            )
        return b.op(op_type, [b.read(a, np.bool_) for a in args])

    return emit


for _name, _op in _LOGICAL.items():
    _rule(("ufunc", _name, "__call__"), f"np.{_name} (booleans)", f"`{_op}`")(
        _emit_logical(_op)
    )
_rule(
    [("ufunc", "logical_not", "__call__"), ("ufunc", "invert", "__call__")],
    "np.logical_not, np.invert (booleans)",
    "`Not`",
)(_emit_logical("Not"))


def _emit_unary(op_type: str) -> Callable:
    def emit(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
        return b.op(op_type, [b.read(args[0], b.dtype(args[0]))])

    return emit


for _name, _op in _UNARY.items():
    _rule(("ufunc", _name, "__call__"), f"np.{_name}", f"`{_op}`")(_emit_unary(_op))


@_rule(
    ("ufunc", "isfinite", "__call__"), "np.isfinite", "`IsInf`, `IsNaN`, `Or`, `Not`"
)
def _isfinite(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    x = b.read(args[0])
    bad = b.op("Or", [b.op("IsInf", [x]), b.op("IsNaN", [x])])
    return b.op("Not", [bad], "finite")


@_rule(("ufunc", "square", "__call__"), "np.square", "`Mul`")
def _square(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    x = b.read(args[0], b.out_dtype(node))
    return b.op("Mul", [x, x])


@_rule(("ufunc", "log1p", "__call__"), "np.log1p", "`Add`, `Log`")
def _log1p(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    dtype = b.out_dtype(node)
    return b.op("Log", [b.op("Add", [b.read(args[0], dtype), b.const(1, dtype)])])


@_rule(("ufunc", "expm1", "__call__"), "np.expm1", "`Exp`, `Sub`")
def _expm1(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    dtype = b.out_dtype(node)
    return b.op("Sub", [b.op("Exp", [b.read(args[0], dtype)]), b.const(1, dtype)])


@_rule(
    [("function", "erf"), ("function", "erfc")],
    "erf, erfc (the library's, one traced node each: the exact GELU's)",
    "`Erf` (erfc: `Sub` from 1; a float64 one through float32, for ONNX Runtime)",
)
def _erf(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    # ONNX Runtime implements Erf in float32 only (float64 is in the standard but
    # not in its kernels), so other dtypes compute in float32 and cast back.
    dtype = b.out_dtype(node)
    compute = dtype if dtype == np.float32 else np.dtype(np.float32)
    out = b.op("Erf", [b.read(args[0], compute)], node.target.__name__)
    if node.target.__name__ == "erfc":
        # 1 - erf: its absolute error stays that of float32 erf (below 1e-7), while
        # its relative error grows where erfc is tiny (the exact GELU's far left
        # tail, where x erfc is then below 1e-6 anyway)
        out = b.op("Sub", [b.const(1, compute), out], "erfc")
    if compute != dtype:
        out = b.op("Cast", [out], "cast", to=b.code(dtype))
    return out


@_rule(
    ("ufunc", "logaddexp", "__call__"),
    "np.logaddexp",
    "`Max`, `Sub`, `Abs`, `Neg`, `Exp`, `Add`, `Log`",
)
def _logaddexp(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    dtype = b.out_dtype(node)
    x, y = b.read(args[0], dtype), b.read(args[1], dtype)
    top = b.op("Max", [x, y])
    gap = b.op("Neg", [b.op("Abs", [b.op("Sub", [x, y])])])
    tail = b.op("Log", [b.op("Add", [b.const(1, dtype), b.op("Exp", [gap])])])
    return b.op("Add", [top, tail])


@_rule(("function", "where"), "np.where (three arguments)", "`Where`")
def _where(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    if len(args) != 3:
        raise NotImplementedError("onnx export: np.where with one argument")
    dtype = b.out_dtype(node)
    condition = b.read(args[0], np.bool_)
    return b.op("Where", [condition, b.read(args[1], dtype), b.read(args[2], dtype)])


@_rule([("function", "clip"), ("method", "clip")], "np.clip", "`Clip`")
def _clip(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    dtype = b.out_dtype(node)
    low = kwargs.get("a_min", kwargs.get("min", args[1] if len(args) > 1 else None))
    high = kwargs.get("a_max", kwargs.get("max", args[2] if len(args) > 2 else None))
    inputs = [b.read(args[0], dtype)]
    inputs.append("" if low is None else b.read(low, dtype))
    inputs.append("" if high is None else b.read(high, dtype))
    return b.op("Clip", inputs)


# ---------------------------------------------------------------- reductions
_REDUCE = {
    "sum": "ReduceSum",
    "max": "ReduceMax",
    "min": "ReduceMin",
    "mean": "ReduceMean",
    "prod": "ReduceProd",
    "amax": "ReduceMax",
    "amin": "ReduceMin",
}


def _emit_reduce(op_type: str) -> Callable:
    def emit(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
        for unusual in ("where", "initial"):
            if kwargs.get(unusual) is not None:
                raise NotImplementedError(
                    f"onnx export: {describe(node)} with {unusual}="
                )
        axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
        keep = int(bool(kwargs.get("keepdims", False)))
        ndim = _ndim(b, args[0])
        dtype = b.out_dtype(node)
        x = b.read(args[0], dtype if op_type in ("ReduceSum", "ReduceMean") else None)
        axes = _axes(axis, ndim)
        inputs = [x] if axes is None else [x, b.const(np.array(axes, np.int64))]
        out = b.op(op_type, inputs, op_type.lower(), keepdims=keep)
        if b.dtype(args[0]) != dtype and op_type not in ("ReduceSum", "ReduceMean"):
            out = b.op("Cast", [out], "cast", to=b.code(dtype))
        return out

    return emit


for _name, _op in _REDUCE.items():
    _rule(
        [("function", _name), ("method", _name)],
        f"np.{_name}" + ("" if _name.startswith("a") else f", ndarray.{_name}"),
        f"`{_op}`",
    )(_emit_reduce(_op))


# ---------------------------------------------------------------- shapes
def _shape_arg(args: tuple, kwargs: dict) -> tuple:
    shape = kwargs.get("shape", kwargs.get("newshape"))
    if shape is None:
        shape = args[1] if len(args) == 2 else tuple(args[1:])
    return tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)


@_rule(
    [("method", "reshape"), ("function", "reshape")],
    "ndarray.reshape, np.reshape",
    "`Reshape` (batch-sized entries computed with `Shape`, `Mul`, `Concat`)",
)
def _reshape(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    if kwargs.get("order", "C") != "C":
        raise NotImplementedError("onnx export: reshape with order other than 'C'")
    return b.op("Reshape", [b.read(args[0]), b.ints(_shape_arg(args, kwargs))])


@_rule(
    [("method", "ravel"), ("method", "flatten"), ("function", "ravel")],
    "ndarray.ravel, ndarray.flatten",
    "`Reshape`",
)
def _ravel(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    return b.op("Reshape", [b.read(args[0]), b.ints([-1])])


@_rule(
    [("function", "transpose"), ("method", "transpose")],
    "np.transpose, ndarray.transpose",
    "`Transpose`",
)
def _transpose(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    ndim = _ndim(b, args[0])
    axes = kwargs.get("axes", args[1] if len(args) == 2 else tuple(args[1:]) or None)
    if axes is None or axes == ():
        perm = list(range(ndim))[::-1]
    else:
        perm = [int(a) % ndim for a in _static(axes, "a transpose")]
    return b.op("Transpose", [b.read(args[0])], perm=perm)


@_rule(
    [("function", "swapaxes"), ("method", "swapaxes")],
    "np.swapaxes, ndarray.swapaxes",
    "`Transpose`",
)
def _swapaxes(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    ndim = _ndim(b, args[0])
    perm = list(range(ndim))
    i, j = int(args[1]) % ndim, int(args[2]) % ndim
    perm[i], perm[j] = perm[j], perm[i]
    return b.op("Transpose", [b.read(args[0])], perm=perm)


@_rule(
    [("function", "squeeze"), ("method", "squeeze")],
    "np.squeeze, ndarray.squeeze",
    "`Squeeze`",
)
def _squeeze(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    ndim = _ndim(b, args[0])
    if axis is None:
        shape = b.graph.info[args[0].slot].shape if isinstance(args[0], Ref) else ()
        axis = [i for i, n in enumerate(shape) if n == 1]
    axes = _axes(axis, ndim)
    return b.op("Squeeze", [b.read(args[0]), b.const(np.array(axes, np.int64))])


@_rule(("function", "expand_dims"), "np.expand_dims", "`Unsqueeze`")
def _expand_dims(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    axes = _axes(axis, len(b.graph.info[node.outs[0]].shape))
    return b.op("Unsqueeze", [b.read(args[0]), b.const(np.array(axes, np.int64))])


@_rule(("function", "broadcast_to"), "np.broadcast_to", "`Expand`")
def _broadcast_to(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    return b.op("Expand", [b.read(args[0]), b.ints(_shape_arg(args, kwargs))])


@_rule(("function", "concatenate"), "np.concatenate", "`Concat`")
def _concatenate(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
    dtype = b.out_dtype(node)
    ndim = len(b.graph.info[node.outs[0]].shape)
    return b.op("Concat", [b.read(a, dtype) for a in args[0]], axis=int(axis) % ndim)


@_rule(("function", "stack"), "np.stack", "`Unsqueeze`, `Concat`")
def _stack(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
    dtype = b.out_dtype(node)
    ndim = len(b.graph.info[node.outs[0]].shape)
    axes = b.const(np.array([int(axis) % ndim], np.int64))
    parts = [b.op("Unsqueeze", [b.read(a, dtype), axes]) for a in args[0]]
    return b.op("Concat", parts, axis=int(axis) % ndim)


@_rule(
    [
        ("function", "array"),
        ("function", "asarray"),
        ("function", "ascontiguousarray"),
        ("function", "copy"),
        ("method", "copy"),
        ("method", "astype"),
    ],
    "np.array, np.asarray, np.ascontiguousarray, np.copy, ndarray.copy, ndarray.astype",
    "`Identity` or `Cast`",
)
def _copy(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    dtype = b.out_dtype(node)
    if b.dtype(args[0]) != dtype:
        return b.op("Cast", [b.read(args[0])], "cast", to=b.code(dtype))
    return b.op("Identity", [b.read(args[0])], "copy")


@_rule(("function", "pad"), "np.pad (constant)", "`Pad`")
def _pad(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    if mode != "constant":
        raise NotImplementedError(f"onnx export: np.pad with mode={mode!r}")
    ndim = _ndim(b, args[0])
    width = np.broadcast_to(np.asarray(_static(args[1], "a pad width")), (ndim, 2))
    pads = [int(w) for w in width[:, 0]] + [int(w) for w in width[:, 1]]
    dtype = b.dtype(args[0])
    value = kwargs.get("constant_values", 0)
    return b.op("Pad", [b.read(args[0]), b.ints(pads), b.read(value, dtype)])


@_rule(
    ("function", "sliding_window_view"),
    "np.lib.stride_tricks.sliding_window_view",
    "`Gather` (an index table per axis), `Transpose`",
)
def _windows(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    x = args[0]
    shape = list(b.graph.info[x.slot].shape)
    ndim = len(shape)
    window = kwargs.get("window_shape", args[1] if len(args) > 1 else None)
    window = list(window) if isinstance(window, (tuple, list)) else [window]
    axis = kwargs.get("axis", args[2] if len(args) > 2 else None)
    axes = list(range(ndim)) if axis is None else _axes(axis, ndim)
    _static(window, "a window shape")
    # labels: ("a", i) for data axis i, ("w", j) for the j-th window axis
    labels: list[tuple[str, int]] = [("a", i) for i in range(ndim)]
    out = b.read(x)
    for j, (a, k) in enumerate(zip(axes, window)):
        if a == 0:
            raise NotImplementedError("onnx export: windows along the batch axis")
        n = shape[a] - int(k) + 1
        table = np.arange(n)[:, None] + np.arange(int(k))[None, :]
        position = labels.index(("a", a))
        out = b.op(
            "Gather", [out, b.const(table.astype(np.int64))], "windows", axis=position
        )
        labels.insert(position + 1, ("w", j))
    order = [i for i, (kind, _) in enumerate(labels) if kind == "a"]
    order += sorted(
        (i for i, (kind, _) in enumerate(labels) if kind == "w"),
        key=lambda i: labels[i][1],
    )
    if order != list(range(len(labels))):
        out = b.op("Transpose", [out], "windows", perm=order)
    return out


@_rule(
    [("function", "cumsum"), ("method", "cumsum")],
    "np.cumsum, ndarray.cumsum",
    "`CumSum`",
)
def _cumsum(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    x = b.read(args[0], b.out_dtype(node))
    if axis is None:
        x, axis = b.op("Reshape", [x, b.ints([-1])]), 0
    axis = int(axis) % max(_ndim(b, args[0]), 1)
    return b.op("CumSum", [x, b.const(np.array(axis, np.int64))])


def _emit_arg(op_type: str) -> Callable:
    def emit(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
        axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
        keep = int(bool(kwargs.get("keepdims", False)))
        x = b.read(args[0])
        if axis is None:
            x, axis = b.op("Reshape", [x, b.ints([-1])]), 0
        axis = int(axis) % max(_ndim(b, args[0]), 1)
        return b.op(op_type, [x], op_type.lower(), axis=axis, keepdims=keep)

    return emit


for _name, _op in (("argmax", "ArgMax"), ("argmin", "ArgMin")):
    _rule(
        [("function", _name), ("method", _name)],
        f"np.{_name}, ndarray.{_name}",
        f"`{_op}`",
    )(_emit_arg(_op))


@_rule(("function", "flip"), "np.flip", "`Slice`")
def _flip(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    ndim = _ndim(b, args[0])
    axes = list(range(ndim)) if axis is None else _axes(axis, ndim)
    count = len(axes)
    return b.op(
        "Slice",
        [
            b.read(args[0]),
            b.ints([-1] * count),
            b.ints([INT64_MIN] * count),
            b.ints(axes),
            b.ints([-1] * count),
        ],
        "flip",
    )


@_rule(("function", "einsum"), "np.einsum", "`Einsum`")
def _einsum(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    if not isinstance(args[0], str):
        raise NotImplementedError("onnx export: np.einsum without a subscripts string")
    dtype = b.out_dtype(node)
    return b.op(
        "Einsum",
        [b.read(a, dtype) for a in args[1:]],
        equation=args[0].replace(" ", ""),
    )


@_rule([("function", "take"), ("method", "take")], "np.take", "`Gather`")
def _take(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    axis = kwargs.get("axis", args[2] if len(args) > 2 else None)
    data = b.read(args[0])
    if axis is None:
        data = b.op("Reshape", [data, b.ints([-1])])
        axis = 0
    index = b.read(args[1], np.int64)
    return b.op("Gather", [data, index], axis=int(axis) % _ndim(b, args[0]))


@_rule(
    ("getitem",),
    "x[index] (ints, slices, None, ..., one integer array)",
    "`Slice`, `Gather`, `Unsqueeze`",
)
def _getitem(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    x, index = args
    ndim = _ndim(b, x)
    items = list(index) if isinstance(index, tuple) else [index]
    if any(isinstance(i, np.ndarray) and i.dtype == bool for i in items) or any(
        isinstance(i, Ref) and b.dtype(i) == np.bool_ for i in items
    ):
        raise NotImplementedError("onnx export: indexing with a boolean mask")
    explicit = sum(1 for i in items if i is not None and i is not Ellipsis)
    at = next((i for i, item in enumerate(items) if item is Ellipsis), None)
    if at is not None:
        items[at : at + 1] = [slice(None)] * (ndim - explicit)
    else:
        items += [slice(None)] * (ndim - explicit)
    arrays = [i for i in items if isinstance(i, (Ref, np.ndarray))]
    numbers = [i for i in items if isinstance(i, (int, np.integer))]
    if arrays and (len(arrays) > 1 or numbers or any(i is None for i in items)):
        raise NotImplementedError(
            "onnx export: indexing with an integer array mixed with other integers, "
            "arrays or None"
        )
    out = b.read(x)
    starts, ends, steps, axes = [], [], [], []
    gathers: list[tuple[int, Any]] = []
    news: list[int] = []
    axis = 0  # axis of x
    position = 0  # axis of the result
    for item in items:
        if item is None:
            news.append(position)
            position += 1
            continue
        if isinstance(item, slice):
            if item != slice(None):
                step = 1 if item.step is None else item.step
                start = item.start
                stop = item.stop
                if start is None:
                    start = 0 if step > 0 else -1
                if stop is None:
                    stop = INT64_MAX if step > 0 else INT64_MIN
                starts.append(start)
                ends.append(stop)
                steps.append(step)
                axes.append(axis)
            position += 1
        else:
            gathers.append((axis, item))
        axis += 1
    if starts:
        out = b.op(
            "Slice",
            [out, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)],
            "slice",
        )
    # the last axis first, so the earlier axes keep their numbers
    for a, item in sorted(gathers, key=lambda g: -g[0]):
        if isinstance(item, Ref):
            index = b.read(item, np.int64)
        else:
            index = b.const(np.asarray(item, np.int64))
        out = b.op("Gather", [out, index], "gather", axis=a)
    if news:
        out = b.op("Unsqueeze", [out, b.const(np.array(news, np.int64))])
    return out


@_rule(
    [
        ("function", "zeros"),
        ("function", "ones"),
        ("function", "full"),
        ("function", "empty"),
    ],
    "np.zeros, np.ones, np.full, np.empty",
    "`Expand` of a one-element initializer",
)
def _creation(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    name = node.target.__name__
    shape = kwargs.get("shape", args[0] if args else ())
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if name == "full":
        value = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
        if isinstance(value, Ref):
            raise NotImplementedError("onnx export: np.full with a computed value")
    else:
        value = 1 if name == "ones" else 0  # np.empty: any value will do
    one = b.const(np.asarray(value, b.out_dtype(node)), hint="fill")
    return b.op("Expand", [one, b.ints(shape)], name)


@_rule(
    ("const",),
    "constants (folded when compiling)",
    "initializers, `Identity`, `Expand`",
)
def _const(b: Builder, node: Node, args: tuple, kwargs: dict) -> str:
    value = node.target
    if isinstance(value, Filled):
        one = b.const(np.asarray(value.value, value.dtype), hint="fill")
        return b.op("Expand", [one, b.ints(value.shape)], "filled")
    if not isinstance(value, np.ndarray):
        value = np.asarray(value, dtype=b.out_dtype(node))
    return b.op("Identity", [b.const(value, hint="table")], "const")


# ---------------------------------------------------------------- the program
def generate(
    onnx: Any,
    graph: Graph,
    nodes: list[Node],
    inputs: list[tuple[int, str]],
    outputs: list[tuple[Any, str]],
    initializers: dict[int, np.ndarray],
    symbolic_outputs: list[dict[int, str]],
    dynamic_batch: bool,
    name: str = "tinygrad_bp",
) -> Any:
    """Build an ONNX `ModelProto` for `nodes` (checked with `unsupported` first).

    `inputs` pairs each input slot with its name, `outputs` each output (a `Ref` or a
    constant) with its name, `initializers` gives the values of the other program
    inputs (parameters and buffers), `symbolic_outputs` names each output's axes that
    follow the batch (`{0: "batch"}`). `onnx` is the imported `onnx` package.

    >>> import importlib.util, pytest
    >>> if importlib.util.find_spec("onnx") is None:
    ...     pytest.skip("needs the onnx extra")
    >>> import onnx
    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {0: SlotInfo("x", (2, 3), np.float32), 1: SlotInfo("y", (2, 3), np.float32)}
    >>> nodes = [Node("ufunc", np.tanh, (Ref(0),), outs=(1,))]
    >>> model = generate(onnx, Graph(nodes, [0], [Ref(1)], info), nodes, [(0, "x")],
    ...                  [(Ref(1), "y")], {}, [{0: "batch"}], dynamic_batch=True)
    >>> [n.op_type for n in model.graph.node], model.opset_import[0].version
    (['Tanh', 'Identity'], 18)
    """
    missing = unsupported(nodes)
    if missing:
        raise NotImplementedError("onnx export: no ONNX rule for " + ", ".join(missing))
    helper = onnx.helper
    first = (
        next((n for s, n in inputs if graph.info[s].shape), None)
        if dynamic_batch
        else None
    )
    b = Builder(onnx, graph, first)
    value_inputs = []
    for slot, input_name in inputs:
        b.taken.add(input_name)
        b.names[slot] = input_name
        info = graph.info[slot]
        shape = list(info.shape)
        if dynamic_batch and shape:
            shape[0] = "batch"
        value_inputs.append(
            helper.make_tensor_value_info(input_name, b.code(info.dtype), shape)
        )
    for _, output_name in outputs:
        b.taken.add(output_name)
    for slot, array in initializers.items():
        init_name = b.fresh(graph.info[slot].name or "param")
        b.names[slot] = init_name
        b.initializer(init_name, np.asarray(array))
    for node in nodes:
        if node.kind == "guard":
            continue
        args = tuple(node.args)
        kwargs = dict(node.kwargs)
        out_refs = kwargs.pop("out", None)
        if node.kind == "ufunc":
            kwargs.pop("dtype", None)  # the result's dtype comes from the trace
        if node.kind == "ufunc" and "where" in kwargs:
            raise NotImplementedError(f"onnx export: {describe(node)} with where=")
        emit = RULES[key_of(node)]
        if node.kind == "ufunc" and node.target.nout != 1:
            raise NotImplementedError(f"onnx export: {describe(node)} (two results)")
        result = emit(b, node, args, kwargs)
        targets = node.outs
        if out_refs is not None:
            refs = out_refs if isinstance(out_refs, tuple) else (out_refs,)
            targets = tuple(r.slot for r in refs)
            _check_unaliased(graph, nodes, node, targets)
        for slot in targets:
            b.names[slot] = result
    value_outputs = []
    for (value, output_name), axes in zip(outputs, symbolic_outputs):
        if isinstance(value, Ref):
            info = graph.info[value.slot]
            source, dtype, shape = b.names[value.slot], info.dtype, list(info.shape)
        else:
            array = np.asarray(value)
            source, dtype, shape = b.const(array), array.dtype, list(array.shape)
        b.nodes.append(helper.make_node("Identity", [source], [output_name]))
        for axis, dim in axes.items():
            shape[axis] = dim
        value_outputs.append(
            helper.make_tensor_value_info(output_name, b.code(dtype), shape)
        )
    onnx_graph = helper.make_graph(
        b.nodes, name, value_inputs, value_outputs, initializer=b.initializers
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tinygrad_bp",
    )
    model.ir_version = min(model.ir_version, 8)
    return model


def _check_unaliased(
    graph: Graph, nodes: list[Node], node: Node, targets: tuple
) -> None:
    """An in-place write becomes a new value; refuse it when another slot views the
    same memory and is read later (its readers would not see the write)."""
    at = nodes.index(node)
    earlier = {s for n in nodes[:at] for s in n.outs} | set(graph.inputs)
    later = nodes[at + 1 :]
    for slot in targets:
        owner = graph.buffer_of(slot)
        others = {
            s for s in earlier if s != slot and graph.buffer_of(s) == owner
        }  # views made before the write (a later view sees the new value)
        if others and any(others.intersection(n.reads()) for n in later):
            raise NotImplementedError(
                f"onnx export: {describe(node)} writes in place into an array that "
                "another value views"
            )
