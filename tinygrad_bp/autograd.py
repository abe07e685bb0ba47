"""The engine: sort the recorded graph, then apply the chain rule once per node.

Every backward pass in tinygrad_bp is this one loop. It never looks at what an op is:
it asks each node for the gradients of its inputs given the gradient of its output
(`Function.backward`), sums them back to the inputs' shapes, and adds up the
contributions of every path. Tensors are handled only through their public methods,
so this module imports neither `tensor` nor `ops`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._grad_mode import _State

SECOND_BACKWARD = (
    "Trying to backward through the graph a second time: its saved values were freed "
    "by the first backward. Pass retain_graph=True to the first backward (or "
    "tinygrad_bp.grad) if you need to backward through it again."
)


def toposort(roots: Sequence[Any]) -> list[Any]:
    """Tensors that lead to `roots` (and need grad), each after all of its inputs.

    An iterative depth-first search with an explicit stack, so a graph of any depth
    is sorted without recursion.
    """
    order: list[Any] = []
    visited: set[Any] = set()
    stack = [(root, False) for root in roots]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if tensor in visited:
            continue
        visited.add(tensor)
        stack.append((tensor, True))
        fn = tensor.grad_fn
        if fn is None:
            continue
        if fn.inputs is None:
            raise RuntimeError(SECOND_BACKWARD)
        if tensor._data is not fn._output:  # checked before any backward runs
            raise RuntimeError(_replaced(fn))
        for x in fn.inputs:
            if x._requires_grad and x not in visited:
                stack.append((x, False))
    return order


def _replaced(fn: Any) -> str:
    return (
        f"the data of a result of {fn.name} (shape {fn._output.shape}) was replaced "
        "after the forward pass; the gradient would be wrong. Run backward before "
        "changing the tensor, or redo the forward pass."
    )


def backprop(
    roots: Sequence[Any],
    seeds: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Any] | None = None,
) -> list[Any] | None:
    """Propagate `seeds` (dL/droot) back through the graph.

    With `inputs=None` (`Tensor.backward`), gradients accumulate into `.grad` of the
    leaves and of tensors that `retain_grad()`. Otherwise (`tinygrad_bp.grad`) no
    `.grad` is touched and the gradient of each of `inputs` is returned (None where
    no path leads to it). With `create_graph` the pass itself is recorded.
    """
    grads: dict[Any, Any] = {}
    for root, seed in zip(roots, seeds):
        grads[root] = grads[root] + seed if root in grads else seed
    wanted = None if inputs is None else dict.fromkeys(inputs)
    written: set[int] = set()  # arrays already handed to a .grad in this pass
    previous_mode, _State.enabled = _State.enabled, create_graph
    try:
        order = toposort(roots)
        leads_to_inputs = None if wanted is None else _leading_to(order, wanted)
        while order:  # popped, so each result not held elsewhere is freed once done
            tensor = order.pop()
            fn = tensor.grad_fn
            grad = grads.pop(tensor, None)
            if leads_to_inputs is not None and tensor not in leads_to_inputs:
                grad = None  # tinygrad_bp.grad runs only the part that reaches inputs
            if grad is not None:
                if tensor._hooks:
                    grad = _run_hooks(tensor, grad)
                if wanted is None:
                    if fn is None or tensor._retains_grad:
                        _accumulate(tensor, grad, create_graph, written)
                elif tensor in wanted:
                    wanted[tensor] = grad
                if fn is not None:
                    _propagate(fn, grad, tensor, grads)
            if fn is not None and not retain_graph:
                fn.release()
    finally:
        _State.enabled = previous_mode
    return None if wanted is None else [wanted[x] for x in inputs]


def _leading_to(order: list[Any], targets: dict[Any, Any]) -> set[Any]:
    """The tensors in `order` (inputs first) from which a path leads to `targets`."""
    reach: set[Any] = set()
    for tensor in order:
        fn = tensor.grad_fn
        if tensor in targets or (fn is not None and any(x in reach for x in fn.inputs)):
            reach.add(tensor)
    return reach


def _propagate(fn: Any, grad: Any, out: Any, grads: dict[Any, Any]) -> None:
    """Apply one node's chain rule and add each input's share into `grads`."""
    if fn.saved_leaves is not None:
        fn.saved_leaves.check(fn)
    input_grads = fn.backward(grad, out)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(fn.inputs):
        raise RuntimeError(
            f"{fn.name}.backward returned {len(input_grads)} gradients for "
            f"{len(fn.inputs)} inputs"
        )
    for x, grad_x, needed in zip(fn.inputs, input_grads, fn.needs_input_grad):
        if grad_x is None or not needed:
            continue
        if grad_x._data.shape != x._data.shape:
            grad_x = grad_x.sum_to(x._data.shape)
        if grad_x._data.dtype != x._data.dtype:
            grad_x = grad_x.astype(x._data.dtype)
        earlier = grads.get(x)
        grads[x] = grad_x if earlier is None else earlier + grad_x


def _run_hooks(tensor: Any, grad: Any) -> Any:
    for hook in tensor._hooks:
        replaced = hook(grad)
        if replaced is not None:
            if replaced.shape != grad.shape:
                raise ValueError(
                    f"hook {hook!r} returned a gradient of shape {replaced.shape} "
                    f"for a tensor of shape {grad.shape}"
                )
            grad = replaced
    return grad


def _accumulate(tensor: Any, grad: Any, create_graph: bool, written: set[int]) -> None:
    """Add `grad` into `tensor.grad`, giving each `.grad` an array of its own."""
    if tensor.grad is not None:
        tensor.grad = tensor.grad + grad
        return
    if not create_graph and (
        not grad._data.flags.writeable or id(grad._data) in written
    ):
        # a broadcast view, or an array another .grad already holds (z = a + b)
        grad = type(grad)(grad._data)  # Tensor() copies
    written.add(id(grad._data))
    tensor.grad = grad
