"""Passes over a traced program: each takes the node list and gives a new one.

- `eliminate_dead_code`: drop what no output, input write, draw or guard needs (a
  frozen layer's weight-gradient matmul, a value computed and never read).
- `fold_constants`: compute once, when compiling, what depends on no input (an
  `np.eye` mask, zeros that are only read, shape-only `zeros_like`), so the program
  only names the result.
- `plan_buffers`: give each fresh elementwise or matmul result a preallocated buffer
  that it writes with `out=`, reusing a buffer as soon as every slot that views it
  is dead (in place when an operand dies at that very node).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .ir import Graph, Node, Ref

_SHAPE_ONLY = {np.zeros_like, np.ones_like, np.empty_like, np.full_like}


def eliminate_dead_code(nodes: list[Node], graph: Graph) -> list[Node]:
    """Keep only nodes whose results lead to an output, an input written in place,
    a random draw or a guard.

    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {i: SlotInfo(f"s{i}", (2,), np.float64) for i in range(3)}
    >>> nodes = [Node("ufunc", np.exp, (Ref(0),), outs=(1,)),
    ...          Node("ufunc", np.tanh, (Ref(0),), outs=(2,))]
    >>> graph = Graph(nodes, [0], [Ref(2)], info)
    >>> [n.target.__name__ for n in eliminate_dead_code(nodes, graph)]
    ['tanh']
    """
    needed = graph.pinned()
    kept: list[Node] = []
    for node in reversed(nodes):
        touched = [graph.buffer_of(s) for s in (*node.outs, *node.writes)]
        if node.kind in ("rng", "guard") or any(b in needed for b in touched):
            kept.append(node)
            needed.update(graph.buffer_of(s) for s in node.reads())
            needed.update(graph.buffer_of(s) for s in node.writes)
    kept.reverse()
    return kept


def evaluate(node: Node, args: tuple, kwargs: dict) -> Any:
    """Run one node on concrete values (what the NumPy code generator would emit).

    >>> evaluate(Node("function", np.eye, (2,)), (2,), {}).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if node.kind == "ufunc":
        return getattr(node.target, node.method)(*args, **kwargs)
    if node.kind == "function":
        return node.target(*args, **kwargs)
    if node.kind == "method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.kind == "getitem":
        return args[0][args[1]]
    if node.kind == "scalar":
        return node.target(*args)
    raise ValueError(f"cannot evaluate a {node.kind} node")


def _substitute(value: Any, known: dict[int, Any]) -> Any:
    if isinstance(value, Ref):
        return known[value.slot]
    if isinstance(value, (tuple, list)):
        return type(value)(_substitute(v, known) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, known) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*_substitute((value.start, value.stop, value.step), known))
    return value


def fold_constants(nodes: list[Node], graph: Graph) -> list[Node]:
    """Replace nodes that depend on no program input by `const` nodes.

    A result that is written in place later, or handed back, stays computed at
    every call (each call needs a fresh array).

    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {0: SlotInfo("x", (2,), np.float64), 1: SlotInfo("e", (2, 2), bool),
    ...         2: SlotInfo("y", (2,), np.float64)}
    >>> nodes = [Node("function", np.eye, (2,), (("dtype", bool),), outs=(1,)),
    ...          Node("ufunc", np.multiply, (Ref(0), 2.0), outs=(2,))]
    >>> [n.kind for n in fold_constants(nodes, Graph(nodes, [0], [Ref(2)], info))]
    ['const', 'ufunc']
    """
    fixed = graph.pinned()
    for node in nodes:
        fixed.update(graph.buffer_of(s) for s in node.writes)
    known: dict[int, Any] = {}
    folded: list[Node] = []
    for node in nodes:
        reads = node.reads()
        foldable = (
            node.kind in ("ufunc", "function", "method", "getitem", "scalar")
            and not node.writes
            and len(node.outs) == 1
            and not any(graph.buffer_of(s) in fixed for s in node.outs)
        )
        shape_only = node.kind == "function" and node.target in _SHAPE_ONLY
        if foldable and (shape_only or all(s in known for s in reads)):
            stand_ins = dict(known)
            if shape_only:
                for s in reads:
                    if s not in known:
                        info = graph.info[s]
                        stand_ins[s] = np.zeros(info.shape, info.dtype)
            try:
                value = evaluate(
                    node,
                    _substitute(node.args, stand_ins),
                    _substitute(dict(node.kwargs), stand_ins),
                )
            except Exception:
                folded.append(node)
                continue
            (slot,) = node.outs
            known[slot] = value
            folded.append(
                Node(
                    "const",
                    value,
                    outs=node.outs,
                    comment=node.comment,
                    section=node.section,
                )
            )
            continue
        if node.kind == "guard" and reads and all(s in known for s in reads):
            continue  # decided when compiling (a guard on a constant holds)
        folded.append(node)
    return folded


ALIGNMENT = 64  # bytes: every planned array starts on a cache line


def plan_buffers(nodes: list[Node], graph: Graph) -> list[Node]:
    """Place fresh ufunc results in one preallocated arena (`Node.buffer` is the
    byte offset), reusing memory as soon as it is dead: a result is dead after the
    last node that reads or writes any slot that is it or a view of it. An
    elementwise result may take the place of an operand that dies at that node (in
    place; NumPy handles overlapping operands). Inputs and outputs are never planned.

    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {i: SlotInfo(f"s{i}", (3,), np.dtype(np.float64), strides=(8,))
    ...         for i in range(4)}
    >>> nodes = [Node("ufunc", np.exp, (Ref(0),), outs=(1,)),
    ...          Node("ufunc", np.tanh, (Ref(1),), outs=(2,)),
    ...          Node("ufunc", np.negative, (Ref(2),), outs=(3,))]
    >>> [n.buffer for n in plan_buffers(nodes, Graph(nodes, [0], [Ref(3)], info))]
    [0, 0, None]
    """
    pinned = graph.pinned()
    last_use: dict[int, int] = {}
    touched = [
        {graph.buffer_of(s) for s in (*node.reads(), *node.writes, *node.outs)}
        for node in nodes
    ]
    for i, buffers in enumerate(touched):
        for b in buffers:
            last_use[b] = i
    live: list[tuple[int, int, int, tuple]] = []  # offset, size, last use, layout
    planned: list[Node] = []
    for i, node in enumerate(nodes):
        slot = _plannable(node, graph, pinned)
        if slot is not None:
            info = graph.info[slot]
            layout = (info.shape, np.dtype(info.dtype).str, info.strides)
            size = -(-np.dtype(info.dtype).itemsize * _count(info.shape) // ALIGNMENT)
            size *= ALIGNMENT
            elementwise = getattr(node.target, "signature", None) is None
            offset = None
            if elementwise:  # in place of an operand that dies here
                for start, length, end, kind in live:
                    if end == i and length == size and kind == layout:
                        offset = start
                        break
            if offset is None:
                busy = sorted(
                    (start, length)
                    for start, length, end, _ in live
                    if end > i or (end == i and not elementwise)
                )
                offset = 0
                for start, length in busy:
                    if offset + size <= start:
                        break
                    offset = max(offset, start + length)
            live.append((offset, size, last_use.get(slot, i), layout))
            node = replace(node, buffer=offset)
        live = [a for a in live if a[2] > i]
        planned.append(node)
    return planned


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for side in shape:
        n *= side
    return n


def _plannable(node: Node, graph: Graph, pinned: set[int]) -> int | None:
    """The slot a node could write into a planned buffer, or None."""
    if len(node.outs) != 1 or node.writes:
        return None
    if node.kind != "ufunc" or node.method != "__call__" or node.target.nout != 1:
        return None
    if any(key in ("out", "where") for key, _ in node.kwargs):
        return None
    (slot,) = node.outs
    info = graph.info.get(slot)
    if (
        info is None
        or info.kind != "array"
        or not info.shape
        or info.view_of is not None
    ):
        return None
    if slot in pinned or graph.buffer_of(slot) != slot:
        return None
    if np.dtype(info.dtype).hasobject or not _permuted_contiguous(info):
        return None
    return slot


def _permuted_contiguous(info: Any) -> bool:
    """Whether a slot's strides are those of a contiguous array with permuted axes."""
    if info.strides is None:
        return True
    expected = np.dtype(info.dtype).itemsize
    for i in sorted(range(len(info.shape)), key=lambda i: info.strides[i]):
        if info.shape[i] != 1 and info.strides[i] != expected:
            return False
        expected *= info.shape[i]
    return True


def empty_like_layout(info: Any, memory: np.ndarray | None = None) -> np.ndarray:
    """An array with the shape, dtype and memory layout (axis order) a slot had when
    traced (a permuted contiguous one), new or on the bytes `memory`.

    The layout matters: NumPy gives a fresh elementwise result the layout of its
    operands, and a later reduction sums in memory order, so float rounding follows.

    >>> from tinygrad_bp.compiler.ir import SlotInfo
    >>> empty_like_layout(SlotInfo("t", (2, 3), np.float32, strides=(4, 8))).strides
    (4, 8)
    """
    shape, strides, dtype = info.shape, info.strides, np.dtype(info.dtype)
    if strides is None:
        strides = np.empty(shape, dtype).strides
    order = sorted(range(len(shape)), key=lambda i: -strides[i])
    permuted = [shape[i] for i in order]
    if memory is None:
        base = np.empty(permuted, dtype)
    else:
        base = memory[: dtype.itemsize * _count(shape)].view(dtype).reshape(permuted)
    return base.transpose(np.argsort(order))


def merge_duplicates(nodes: list[Node], graph: Graph) -> list[Node]:
    """Compute each scalar test once: a second `weight_decay != 0` (one per parameter
    in an optimizer's loop) reuses the first, and a repeated guard is dropped.

    >>> import operator
    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {i: SlotInfo(f"s{i}", kind="scalar") for i in range(3)}
    >>> nodes = [Node("scalar", operator.ne, (Ref(0), 0), outs=(1,)),
    ...          Node("scalar", operator.ne, (Ref(0), 0), outs=(2,)),
    ...          Node("guard", "value", (Ref(1),), expected=False),
    ...          Node("guard", "value", (Ref(2),), expected=False)]
    >>> [n.kind for n in merge_duplicates(nodes, Graph(nodes, [0], [], info))]
    ['scalar', 'guard']
    """
    renamed: dict[int, int] = {}
    seen: dict[Any, int] = {}
    guards: set[Any] = set()
    merged: list[Node] = []
    for node in nodes:
        if renamed:
            node = _renamed(node, renamed)
        if node.kind == "scalar" and len(node.outs) == 1:
            key = _key(node)
            if key is not None and key in seen:
                renamed[node.outs[0]] = seen[key]
                continue
            if key is not None:
                seen[key] = node.outs[0]
        elif node.kind == "guard":
            key = _key(node)
            if key is not None and key in guards:
                continue
            if key is not None:
                guards.add(key)
        merged.append(node)
    for i, out in enumerate(graph.outputs):
        if isinstance(out, Ref) and out.slot in renamed:
            graph.outputs[i] = Ref(renamed[out.slot])
    return merged


def _key(node: Node) -> Any:
    try:
        key = (node.kind, node.target, node.args, node.expected)
        hash(key)
    except TypeError:
        return None
    return key


def _renamed(node: Node, renamed: dict[int, int]) -> Node:
    def swap(value: Any) -> Any:
        if isinstance(value, Ref):
            return Ref(renamed.get(value.slot, value.slot))
        if isinstance(value, (tuple, list)):
            return type(value)(swap(v) for v in value)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return Node(
        node.kind,
        node.target,
        swap(node.args),
        swap(node.kwargs),
        node.outs,
        node.writes,
        node.method,
        node.comment,
        node.section,
        node.expected,
        node.buffer,
    )


def hoist_scalar_checks(nodes: list[Node], graph: Graph) -> list[Node]:
    """Move the arithmetic and guards that read only scalar inputs (hyper-parameter
    tests such as `momentum != 0`, bias corrections) to the start of the program, so
    a failed check stops it before anything was written in place.

    >>> import operator
    >>> from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo
    >>> info = {0: SlotInfo("x", (2,), np.float64), 1: SlotInfo("m", kind="scalar"),
    ...         2: SlotInfo("t", kind="scalar")}
    >>> nodes = [Node("ufunc", np.negative, (Ref(0),), writes=(0,)),
    ...          Node("scalar", operator.ne, (Ref(1), 0), outs=(2,)),
    ...          Node("guard", "value", (Ref(2),), expected=False)]
    >>> [n.kind for n in hoist_scalar_checks(nodes, Graph(nodes, [0, 1], [], info))]
    ['scalar', 'guard', 'ufunc']
    """
    early = {s for s in graph.inputs if graph.info[s].kind == "scalar"}
    hoisted: list[Node] = []
    rest: list[Node] = []
    for node in nodes:
        reads = node.reads()
        if (
            node.kind in ("scalar", "guard")
            and not node.writes
            and all(s in early for s in reads)
        ):
            hoisted.append(replace(node, section="checks"))
            early.update(node.outs)
        else:
            rest.append(node)
    return hoisted + rest
