"""ONNX export: trace an inference call once and write it as a standard ONNX model.

`export` runs the call under `no_grad` with the compile tracer (the one that
`tinygrad_bp.compile` uses), so the file holds exactly the array operations this
call made, mapped to ONNX operators of opset 18 by
`tinygrad_bp.compiler.codegen_onnx`. Parameters and buffers become initializers
with their current values. Modules are traced in the mode they are in: call
`model.eval()` first (dropout off, BatchNorm on its running statistics).

Needs the `onnx` extra (`pip install 'tinygrad_bp[onnx]'`, the `onnx` and
`onnxruntime` packages); the rest of the library does not.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp.compiler import codegen_onnx, passes
from tinygrad_bp.compiler.codegen_onnx import OPSET, SUPPORTED, supported_table
from tinygrad_bp.compiler.ir import Ref
from tinygrad_bp.compiler.trace import _DATA, Location, Tracer

__all__ = [
    "OPSET",
    "SUPPORTED",
    "Verification",
    "available",
    "export",
    "supported_table",
    "verify",
]

EXTRA_HINT = "install the onnx extra: pip install 'tinygrad_bp[onnx]'"


def _require(package: str) -> Any:
    """Import `package` (onnx or onnxruntime), or say which extra provides it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(
            f"tinygrad_bp.onnx needs the {package!r} package; {EXTRA_HINT}"
        ) from None


def available() -> bool:
    """Whether both `onnx` and `onnxruntime` can be imported (the `onnx` extra).

    >>> isinstance(available(), bool)
    True
    """
    try:
        importlib.import_module("onnx")
        importlib.import_module("onnxruntime")
    except ImportError:
        return False
    return True


def _arrays(example_inputs: Any) -> list[np.ndarray]:
    items = (
        list(example_inputs)
        if isinstance(example_inputs, (tuple, list))
        else [example_inputs]
    )
    arrays = []
    for i, item in enumerate(items):
        if isinstance(item, tg.Tensor):
            arrays.append(np.array(item.numpy()))
        elif isinstance(item, np.ndarray):
            arrays.append(item)
        else:
            raise TypeError(
                f"onnx export: example input {i} is a {type(item).__name__}; pass "
                "Tensors or NumPy arrays (other values can be closed over)"
            )
    return arrays


def _flatten(value: Any, found: list[Any]) -> None:
    if isinstance(value, tg.Tensor):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _flatten(item, found)
    elif value is not None:
        raise TypeError(
            f"onnx export: the call returned a {type(value).__name__}; return a "
            "Tensor or a tuple/list of Tensors"
        )


def _trace(fn: Callable[..., Any], arrays: list[np.ndarray]):
    """Trace one inference call: (graph, nodes, input slots, initializers, whether a
    module ran in training mode)."""
    tracer = Tracer({})
    try:
        with tg.no_grad(), tracer:
            traced = [
                tracer.add_input(a, Location("array", index=i), f"input{i}")
                for i, a in enumerate(arrays)
            ]
            args = [tg.Tensor(t) for t in traced]  # arrays arrive as Tensors
            out = fn(*args)
    except BaseException:
        tracer.finish([])
        raise
    results: list[Any] = []
    try:
        _flatten(out, results)
    except TypeError:
        tracer.finish([])
        raise
    if not results:
        tracer.finish([])
        raise TypeError("onnx export: the call returned no Tensor")
    graph, bindings = tracer.finish(results)
    if tracer.poisoned:
        raise NotImplementedError(
            f"onnx export: could not trace the call ({tracer.poisoned})"
        )
    training = bool(bindings) and any(m.training for m in tracer.modules.values())
    if training:
        warnings.warn(
            "onnx export: the call wrote module state (BatchNorm running statistics "
            "in training mode?); the export's tracing calls updated it as any call "
            "would, and the file leaves the writes out. Call model.eval() before "
            "exporting for inference.",
            UserWarning,
            stacklevel=3,
        )
    graph.outputs = graph.outputs[: len(results)]
    for i, out in enumerate(graph.outputs):
        if not isinstance(out, Ref):
            raise ValueError(
                f"onnx export: output {i} was not computed by recorded operations (a "
                "Tensor made from .data or .numpy()?); build it with Tensor operations"
            )
    user_inputs = [slot for slot, location in tracer.inputs if location.kind == "array"]
    initializers = {}
    for slot, location in tracer.inputs:
        if location.kind == "array":
            continue
        if location.kind != "root":
            raise NotImplementedError(
                f"onnx export: the call read {location.kind} state (an optimizer "
                "step or a gradient); export an inference call"
            )
        initializers[slot] = np.array(_DATA.__get__(location.owner, tg.Tensor))
    nodes = [n for n in graph.nodes if n.kind != "guard"]
    nodes = passes.fold_constants(nodes, graph)
    nodes = passes.eliminate_dead_code(nodes, graph)
    read = {s for node in nodes for s in node.reads()}
    read.update(out.slot for out in graph.outputs if isinstance(out, Ref))
    initializers = {s: v for s, v in initializers.items() if s in read}
    return graph, nodes, user_inputs, initializers, training


def _batch_sized(arrays: list[np.ndarray], size: int) -> list[np.ndarray]:
    """The example inputs with `size` rows (repeating the existing ones)."""
    return [np.resize(a, (size, *a.shape[1:])).astype(a.dtype) for a in arrays]


def _symbolic_axes(shape: tuple, other: tuple, batch: int) -> dict[int, str]:
    """The axes of an output that follow the batch, with their ONNX dimension names:
    `batch`, or `batch*k` for an axis k times as long (a flattened batch)."""
    found = {}
    for axis, (a, b) in enumerate(zip(shape, other)):
        if a != b:
            found[axis] = "batch" if a == batch else f"batch*{a // batch}"
    return found


def export(
    model_or_fn: Callable[..., Any],
    example_inputs: Any,
    path: str | os.PathLike,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
) -> Path:
    """Trace `model_or_fn(*example_inputs)` and write it to `path` as an ONNX model.

    The call runs once (twice with `dynamic_batch`, at a second batch size, to find
    which shapes follow the batch) under `no_grad`, in the modules' current mode,
    with each example input (a Tensor or an array) handed over as a Tensor.
    With `dynamic_batch` the first axis of every input is the symbolic `batch`, and
    so is every output axis that follows it (an output's first, usually). An operation with no ONNX rule raises `NotImplementedError` naming it
    before anything is written. Returns the path written.

    >>> import tempfile, numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> import tinygrad_bp.onnx as tonnx
    >>> if not tonnx.available():
    ...     import pytest; pytest.skip("needs the onnx extra")
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).eval()
    >>> x = np.ones((2, 3), np.float32)
    >>> path = tonnx.export(model, x, tempfile.mkdtemp() + "/model.onnx")
    >>> tonnx.verify(path, model, np.ones((5, 3), np.float32)).ok
    True
    """
    onnx = _require("onnx")
    arrays = _arrays(example_inputs)
    if not arrays:
        raise ValueError("onnx export: give at least one example input")
    count = len(arrays)
    input_names = (
        list(input_names)
        if input_names is not None
        else (["input"] if count == 1 else [f"input{i}" for i in range(count)])
    )
    if len(input_names) != count or len(set(input_names)) != count:
        raise ValueError(
            f"onnx export: {len(input_names)} input names for {count} inputs "
            "(they must be distinct)"
        )
    if dynamic_batch:
        sizes = {a.shape[0] if a.ndim else None for a in arrays}
        if None in sizes or len(sizes) != 1:
            raise ValueError(
                "onnx export: dynamic_batch needs every input to have the same "
                f"first axis (the batch), got shapes {[a.shape for a in arrays]}"
            )
    graph, nodes, slots, initializers, training = _trace(model_or_fn, arrays)
    missing = codegen_onnx.unsupported(nodes)
    if missing:
        raise NotImplementedError("onnx export: no ONNX rule for " + ", ".join(missing))
    outputs = graph.outputs
    symbolic: list[dict[int, str]] = [{} for _ in outputs]
    if dynamic_batch:
        batch = arrays[0].shape[0]
        other = batch + 1
        second, nodes2, *_ = _trace(model_or_fn, _batch_sized(arrays, other))
        try:
            nodes = codegen_onnx.unify(nodes, nodes2, (batch, other))
        except NotImplementedError as error:
            if training:  # a module in training mode wrote state: BatchNorm
                raise NotImplementedError(
                    f"{error} (modules in training mode, such as a BatchNorm using "
                    "batch statistics, depend on the batch: call model.eval() first)"
                ) from None
            raise
        symbolic = [
            _symbolic_axes(graph.info[a.slot].shape, second.info[b.slot].shape, batch)
            for a, b in zip(outputs, second.outputs)
        ]
    count = len(outputs)
    output_names = (
        list(output_names)
        if output_names is not None
        else (["output"] if count == 1 else [f"output{i}" for i in range(count)])
    )
    if len(output_names) != count or set(output_names) & set(input_names):
        raise ValueError(
            f"onnx export: {len(output_names)} output names for {count} outputs "
            "(distinct from the input names)"
        )
    name = type(model_or_fn).__name__
    if name in ("function", "method"):
        name = getattr(model_or_fn, "__name__", "model")
    model = codegen_onnx.generate(
        onnx,
        graph,
        nodes,
        list(zip(slots, input_names)),
        list(zip(outputs, output_names)),
        initializers,
        symbolic,
        dynamic_batch,
        name=name,
    )
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


class Verification(NamedTuple):
    """What `verify` found: the largest absolute difference over all outputs, and
    whether every output matched within the tolerances."""

    max_abs_difference: float
    ok: bool


def verify(
    path: str | os.PathLike,
    model_or_fn: Callable[..., Any],
    inputs: Any,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> Verification:
    """Run the ONNX file with ONNX Runtime and the library on `inputs`; compare.

    `inputs` is one Tensor or array, or a tuple of them, fed to the file's inputs in
    order and to `model_or_fn` as Tensors (under `no_grad`). Outputs agree when
    `np.allclose(theirs, ours, rtol, atol)` holds for each.

    >>> import tinygrad_bp.onnx as tonnx
    >>> tonnx.Verification(0.0, True).ok
    True
    """
    ort = _require("onnxruntime")
    arrays = _arrays(inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    theirs = session.run(None, feed)
    found: list[Any] = []
    with tg.no_grad():  # the inputs as Tensors, as `export` hands them over
        _flatten(model_or_fn(*[tg.Tensor(a) for a in arrays]), found)
    ours = [t.numpy() for t in found]
    worst, ok = 0.0, len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        if a.shape != b.shape:
            return Verification(float("inf"), False)
        if a.size:
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))))
        ok = ok and bool(np.allclose(b, a, rtol=rtol, atol=atol))
    return Verification(worst, ok)
