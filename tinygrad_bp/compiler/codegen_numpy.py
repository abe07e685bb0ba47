"""codegen_numpy: turn a program's nodes into one Python function of NumPy calls.

The text is for people first: one statement per line in execution order, slots named
after what they hold, the Tensor operation each line comes from as a trailing
comment, a banner where the backward pass and the update begin, in-place writes
visible (`np.subtract(w0, ..., out=w0)` comes out of the optimizer as it is). The
function is compiled once and its text registered with `linecache`, so tracebacks
and `pdb` show the generated lines.
"""

from __future__ import annotations

import builtins
import keyword
import linecache
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _special
from .ir import Graph, Node, Ref
from .passes import ALIGNMENT, empty_like_layout


def _single(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 1


class GuardFailed(Exception):
    """Raised by a program when a value the step branched on has changed."""


_BINARY = {
    np.add: "+",
    np.subtract: "-",
    np.multiply: "*",
    np.true_divide: "/",
    np.floor_divide: "//",
    np.remainder: "%",
    np.power: "**",
    np.matmul: "@",
    np.greater: ">",
    np.greater_equal: ">=",
    np.less: "<",
    np.less_equal: "<=",
    np.equal: "==",
    np.not_equal: "!=",
    np.bitwise_and: "&",
    np.bitwise_or: "|",
    np.bitwise_xor: "^",
}
_UNARY = {np.negative: "-", np.invert: "~"}
_REDUCTIONS = {
    np.sum: "np.add.reduce",
    np.max: "np.maximum.reduce",
    np.min: "np.minimum.reduce",
    np.prod: "np.multiply.reduce",
}
_SCALAR = {
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.truediv: "/",
    operator.floordiv: "//",
    operator.mod: "%",
    operator.pow: "**",
    operator.eq: "==",
    operator.ne: "!=",
    operator.lt: "<",
    operator.le: "<=",
    operator.gt: ">",
    operator.ge: ">=",
}
# The library's own functions the trace records as one node each, by the name the
# program calls them (bound in its namespace).
_LIBRARY = {_special.erf: "erf", _special.erfc: "erfc"}
_RESERVED = {"np", "rng", "get_rng", "GuardFailed", "operator", "float", "int", "bool"}
_RESERVED.update(_LIBRARY.values())
_MODULES = (
    ("np", np),
    ("np.linalg", np.linalg),
    ("np.lib.stride_tricks", np.lib.stride_tricks),
)


@dataclass
class Program:
    """Generated code: its text, the compiled function, and the file name it has."""

    source: str
    function: Callable[..., tuple]
    filename: str


class _Writer:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names: dict[int, str] = {}
        self.taken = set(_RESERVED) | set(dir(builtins))
        self.counters: dict[str, int] = {}
        self.namespace: dict[str, Any] = {
            "np": np,
            "operator": operator,
            "GuardFailed": GuardFailed,
        }
        self.constants: dict[int, str] = {}
        self.buffers: dict[tuple, str] = {}
        self.planned: dict[str, tuple] = {}  # name -> (arena offset, slot info)

    # ------------------------------------------------------------- naming
    def name(self, slot: int) -> str:
        found = self.names.get(slot)
        if found is None:
            info = self.graph.info.get(slot)
            hint, exact = (info.name, info.exact) if info else ("v", False)
            found = self.names[slot] = self.fresh(hint, exact)
        return found

    def fresh(self, hint: str, exact: bool = False) -> str:
        base = re.sub(r"\W+", "_", hint).strip("_") or "v"
        if base[0].isdigit():
            base = "v" + base
        if exact and base not in self.taken and not keyword.iskeyword(base):
            self.taken.add(base)
            return base
        while True:
            n = self.counters.get(base, 0)
            self.counters[base] = n + 1
            candidate = f"{base}{n}" if base[-1].isalpha() else f"{base}_{n}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate

    def constant(self, value: Any, hint: str = "c") -> str:
        key = id(value)
        found = self.constants.get(key)
        if found is None:
            found = self.constants[key] = self.fresh(hint)
            self.namespace[found] = value
        return found

    def buffer(self, node: Node) -> str:
        """The name of the preallocated array a planned node writes into."""
        info = self.graph.info[node.outs[0]]
        key = (node.buffer, info.shape, np.dtype(info.dtype).str, info.strides)
        found = self.buffers.get(key)
        if found is None:
            found = self.buffers[key] = f"_buf{len(self.buffers)}"
            self.planned[found] = (node.buffer, info)
        return found

    # ------------------------------------------------------------- values
    def value(self, value: Any) -> str:
        if isinstance(value, Ref):
            return self.name(value.slot)
        if value is None or isinstance(value, (bool, str)):
            return repr(value)
        if isinstance(value, int):
            return repr(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return repr(value)
            return f"float({str(value)!r})"
        if isinstance(value, np.generic) and not isinstance(value, np.void):
            kind = type(value).__name__
            if getattr(np, kind, None) is type(value):
                return f"np.{kind}({self.value(value.item())})"
        if isinstance(value, np.dtype):
            kind = value.type.__name__
            if getattr(np, kind, None) is value.type and value.byteorder in "=|":
                return f"np.{kind}"
        if isinstance(value, type):
            if getattr(builtins, value.__name__, None) is value:
                return value.__name__
            if getattr(np, value.__name__, None) is value:
                return f"np.{value.__name__}"
        if isinstance(value, tuple):
            items = [self.value(v) for v in value]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, list):
            return "[" + ", ".join(self.value(v) for v in value) + "]"
        if isinstance(value, dict):
            return (
                "{"
                + ", ".join(
                    f"{self.value(k)}: {self.value(v)}" for k, v in value.items()
                )
                + "}"
            )
        if isinstance(value, slice):
            return (
                f"slice({self.value(value.start)}, {self.value(value.stop)}, "
                f"{self.value(value.step)})"
            )
        if value is Ellipsis:
            return "..."
        if callable(value):
            return self.callable(value)
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return self.value(value[()])  # a NumPy scalar computes as a 0-d array
        return self.constant(value, "c")

    def callable(self, func: Any) -> str:
        library = next((n for f, n in _LIBRARY.items() if f is func), None)
        if library is not None:
            self.namespace[library] = func
            return library
        name = getattr(func, "__name__", None)
        if name:
            for prefix, module in _MODULES:
                if getattr(module, name, None) is func:
                    return f"{prefix}.{name}"
        return self.constant(func, f"f_{name or 'call'}")

    def index(self, index: Any) -> str:
        items = index if isinstance(index, tuple) else (index,)
        parts = []
        for item in items:
            if isinstance(item, slice):
                start = "" if item.start is None else self.value(item.start)
                stop = "" if item.stop is None else self.value(item.stop)
                part = f"{start}:{stop}"
                if item.step is not None:
                    part += f":{self.value(item.step)}"
                parts.append(part)
            else:
                parts.append(self.value(item))
        if not isinstance(index, tuple):
            return parts[0]
        if not parts:
            return "()"
        return ", ".join(parts) + ("," if len(parts) == 1 else "")

    def call_args(self, node: Node, extra: str = "") -> str:
        parts = [self.value(a) for a in node.args]
        parts += [
            f"{k}={self.value(v[0] if k == 'out' and _single(v) else v)}"
            for k, v in node.kwargs
        ]
        if extra:
            parts.append(extra)
        return ", ".join(parts)

    def operand(self, value: Any) -> str:
        text = self.value(value)
        if not re.fullmatch(r"[\w.]+(\(.*\))?", text) or text.startswith("-"):
            return f"({text})"
        return text

    # ------------------------------------------------------------- statements
    def statement(self, node: Node, index: int) -> str | None:
        kind = node.kind
        target = ", ".join(self.name(s) for s in node.outs)
        lhs = f"{target} = " if node.outs else ""
        buffer = "" if node.buffer is None else f"out={self.buffer(node)}"
        if kind == "const":
            (slot,) = node.outs
            value = node.target
            if isinstance(value, (np.generic, int, float)) or (
                isinstance(value, np.ndarray) and value.ndim == 0
            ):
                self.names[slot] = self.operand(value)
            else:
                self.names[slot] = self.constant(value, self.graph.info[slot].name)
            return None
        if kind == "ufunc":
            if (
                node.method == "__call__"
                and not node.kwargs
                and not buffer
                and node.outs
            ):
                if node.target in _BINARY and len(node.args) == 2:
                    a, b = (self.operand(v) for v in node.args)
                    return f"{lhs}{a} {_BINARY[node.target]} {b}"
                if node.target in _UNARY and len(node.args) == 1:
                    return f"{lhs}{_UNARY[node.target]}{self.operand(node.args[0])}"
            func = self.callable(node.target)
            if node.method != "__call__":
                func = f"{func}.{node.method}"
            return f"{lhs}{func}({self.call_args(node, buffer)})"
        if kind == "function":
            reduce = _REDUCTIONS.get(node.target)
            if (
                reduce
                and len(node.args) == 1
                and isinstance(node.args[0], Ref)
                and self.graph.info[node.args[0].slot].kind == "array"
                and all(k in ("axis", "keepdims") for k, _ in node.kwargs)
            ):
                # what np.sum & co. call for an ndarray, without their Python wrapper
                return f"{lhs}{reduce}({self.call_args(node, buffer)})"
            return f"{lhs}{self.callable(node.target)}({self.call_args(node, buffer)})"
        if kind == "method":
            obj = self.operand(node.args[0])
            rest = Node(kind, node.target, node.args[1:], node.kwargs)
            return f"{lhs}{obj}.{node.target}({self.call_args(rest)})"
        if kind == "getitem":
            obj = self.operand(node.args[0])
            return f"{lhs}{obj}[{self.index(node.args[1])}]"
        if kind == "setitem":
            obj = self.operand(node.args[0])
            return f"{obj}[{self.index(node.args[1])}] = {self.value(node.args[2])}"
        if kind == "scalar":
            if node.target in _SCALAR and len(node.args) == 2:
                a, b = (self.operand(v) for v in node.args)
                return f"{lhs}{a} {_SCALAR[node.target]} {b}"
            if node.target is operator.neg:
                return f"{lhs}-{self.operand(node.args[0])}"
            if node.target is operator.truth:
                return f"{lhs}bool({self.value(node.args[0])})"
            if node.target is operator.abs:
                return f"{lhs}abs({self.value(node.args[0])})"
            return f"{lhs}{self.callable(node.target)}({self.call_args(node)})"
        if kind == "rng":
            return f"{lhs}rng.{node.target}({self.call_args(node)})"
        if kind == "guard":
            subject = self.value(node.args[0])
            how = node.target
            if how == "value":
                got = subject
            elif how == "shape":
                got = f"{subject}.shape"
            elif how in ("item", "tolist"):
                got = f"{subject}.{how}()"
            elif how is operator.index:
                got = f"operator.index({subject})"
            else:
                got = f"{how.__name__}({subject})"
            return (
                f"if {got} != {self.value(node.expected)}: raise GuardFailed({index})"
            )
        raise ValueError(f"no NumPy code for a {kind} node")


def generate(
    graph: Graph, name: str = "program", namespace: dict | None = None
) -> Program:
    """The NumPy function for `graph`: `name(*inputs) -> tuple of outputs`.

    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {0: SlotInfo("x", (2,), np.float64, exact=True),
    ...         1: SlotInfo("tanh", (2,), np.float64)}
    >>> graph = Graph([Node("ufunc", np.tanh, (Ref(0),), outs=(1,), comment="tanh")],
    ...               [0], [Ref(1)], info)
    >>> program = generate(graph, "f")
    >>> print(program.source.splitlines()[2])
        tanh0 = np.tanh(x)  # tanh
    >>> program.function(np.zeros(2))[0].tolist()
    [0.0, 0.0]
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        name = "program"  # a lambda's "<lambda>", say
    writer = _Writer(graph)
    if namespace:
        writer.namespace.update(namespace)
        writer.taken.update(namespace)
    params = [writer.name(s) for s in graph.inputs]
    body: list[str] = []
    section = None
    uses_rng = any(n.kind == "rng" for n in graph.nodes)
    uses = _use_counts(graph)
    nodes = graph.nodes
    skip = False
    for i, node in enumerate(nodes):
        if skip:
            skip = False
            continue
        if node.section != section:
            if section is not None:
                body.append("")
            body.append(f"# ---- {node.section}")
            section = node.section
        line = None
        if _inline_test(node, nodes[i + 1] if i + 1 < len(nodes) else None, uses):
            # `test = a != b; if test != False: raise` reads better as one line
            a, b = (writer.operand(v) for v in node.args)
            test = f"{a} {_SCALAR[node.target]} {b}"
            line = f"if {'not ' if nodes[i + 1].expected else ''}{test}"
            line = line.replace("not " + test, f"not ({test})")
            line += f": raise GuardFailed({i + 1})"
            skip = True
        else:
            line = writer.statement(node, i)
        if line is None:
            continue
        if node.comment:
            line = f"{line}  # {node.comment}"
        body.append(line)
    constants = [
        f"# {writer.names[n.outs[0]]}: a constant array {n.target.shape} "
        f"{n.target.dtype} (computed when compiling)"
        for n in nodes
        if n.kind == "const"
        and isinstance(n.target, np.ndarray)
        and n.target.ndim
        and n.outs[0] in writer.names
    ]
    body = constants + body
    if writer.planned:
        size = max(
            offset + np.dtype(info.dtype).itemsize * max(1, int(np.prod(info.shape)))
            for offset, info in writer.planned.values()
        )
        raw = np.empty(size + ALIGNMENT, np.uint8)  # one block for every result
        arena = raw[-raw.ctypes.data % ALIGNMENT :]
        for buffer, (offset, info) in writer.planned.items():
            writer.namespace[buffer] = empty_like_layout(info, arena[offset:])
    returned = [writer.value(out) for out in graph.outputs]
    saved = _saved_inputs(graph)
    lines = [f"def {name}({', '.join(params)}):"]
    head = []
    if uses_rng:
        head.append("rng = get_rng()")
    guarded = bool(saved) or (uses_rng and _draws_before_guard(graph))
    indent = "    "
    if guarded:
        if saved:
            head.append(
                "_saved = ["
                + ", ".join(f"{writer.name(s)}.copy()" for s in saved)
                + "]"
            )
        if uses_rng:
            head.append("_rng_state = rng.bit_generator.state")
        head.append("try:")
    lines += [f"    {h}" for h in head]
    if guarded:
        indent = "        "
    lines += [f"{indent}{line}" if line else "" for line in body]
    if guarded:
        lines.append("    except GuardFailed:")
        for k, s in enumerate(saved):
            lines.append(f"        np.copyto({writer.name(s)}, _saved[{k}])")
        if uses_rng:
            lines.append("        rng.bit_generator.state = _rng_state")
        lines.append("        raise")
    lines.append(
        f"    return ({', '.join(returned)}{',' if len(returned) == 1 else ''})"
    )
    source = "\n".join(lines) + "\n"
    filename = f"<tinygrad_bp.compile:{name}:{id(graph):x}>"
    code = builtins.compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, writer.namespace)
    return Program(source, writer.namespace[name], filename)


def _use_counts(graph: Graph) -> dict[int, int]:
    counts: dict[int, int] = {}
    for node in graph.nodes:
        for s in node.reads():
            counts[s] = counts.get(s, 0) + 1
    for out in graph.outputs:
        if isinstance(out, Ref):
            counts[out.slot] = counts.get(out.slot, 0) + 1
    return counts


def _inline_test(node: Node, following: Node | None, uses: dict[int, int]) -> bool:
    """A scalar comparison read only by the guard right after it."""
    return (
        node.kind == "scalar"
        and node.target in _SCALAR
        and _SCALAR[node.target] in ("==", "!=", "<", "<=", ">", ">=")
        and len(node.args) == 2
        and following is not None
        and following.kind == "guard"
        and following.target == "value"
        and following.args == (Ref(node.outs[0]),)
        and isinstance(following.expected, bool)
        and uses.get(node.outs[0], 0) == 1
    )


def _saved_inputs(graph: Graph) -> list[int]:
    """Inputs written in place before the last guard: a failed guard puts them back."""
    guards = [i for i, n in enumerate(graph.nodes) if n.kind == "guard"]
    if not guards:
        return []
    inputs = {
        graph.buffer_of(s): s for s in graph.inputs if graph.info[s].kind == "array"
    }
    saved = []
    for node in graph.nodes[: guards[-1]]:
        for s in node.writes:
            owner = inputs.get(graph.buffer_of(s))
            if owner is not None and owner not in saved:
                saved.append(owner)
    return saved


def _draws_before_guard(graph: Graph) -> bool:
    kinds = [n.kind for n in graph.nodes]
    return (
        "rng" in kinds
        and "guard" in kinds
        and kinds.index("rng") < (len(kinds) - 1 - kinds[::-1].index("guard"))
    )
