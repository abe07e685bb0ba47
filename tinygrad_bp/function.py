"""Function: one node of the recorded graph, and the way every op is written.

An op subclasses `Function` with two methods:

- `forward(self, *arrays, **params) -> np.ndarray`: NumPy in, NumPy out. It may keep
  piecewise-constant things (shapes, masks, indices) on `self`.
- `backward(self, grad, out)`: the gradient of the loss with respect to each input,
  written with Tensor operations (so `create_graph=True` can record it too), given
  `grad`, the gradient with respect to the output `out`. Return one Tensor (or `None`)
  per input, in the output's broadcast shape: the engine sums it back to the input's shape.

`MyOp.apply(*tensors, **params)` runs `forward` and records the node.
"""

from __future__ import annotations

import abc
from typing import Any


class Function(abc.ABC):
    """Base class of every differentiable operation, built-in or user-written.

    >>> import numpy as np, tinygrad_bp as tg
    >>> class Cube(tg.Function):
    ...     '''y = x**3; dy/dx = 3*x**2'''
    ...     def forward(self, x):
    ...         return x**3
    ...     def backward(self, grad, out):
    ...         (x,) = self.inputs
    ...         return grad * 3 * x * x
    >>> x = tg.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward()
    >>> x.grad.item()
    12.0
    """

    # Set when the node is recorded: `inputs` (None once the node has been released by
    # a backward without retain_graph, so a second backward fails loudly),
    # `needs_input_grad`, `saved_leaves`, the read-only locks on the leaf arrays this
    # node saved (see SavedLeaves) or None, `_output`, the array it computed (later
    # nodes and this one's backward read it, so the engine checks that it was not
    # replaced), and `_output_lock`, an OutputLock once that array has been handed out
    # (`Tensor.data`) while the node lives. Slots, because every op makes a node; what
    # an op keeps for its backward (masks, shapes) goes in its __dict__.
    __slots__ = (
        "__dict__",
        "_output",
        "_output_lock",
        "inputs",
        "needs_input_grad",
        "saved_leaves",
    )
    # Whether the node depends on its inputs' values after forward: its `backward`
    # reads them (Mul does) or its output is a view of them (reshape, transpose,
    # getitem: a write into the input would show through the output that later nodes
    # read). Only then are the arrays of leaf inputs kept read-only while the node
    # lives (SavedLeaves). True unless an op says otherwise (Add, Sum: new arrays,
    # and a backward that reads at most shapes).
    reads_inputs: bool = True
    inputs: tuple[Any, ...] | None
    needs_input_grad: tuple[bool, ...]
    saved_leaves: SavedLeaves | None
    _output: Any
    _output_lock: OutputLock | None

    @abc.abstractmethod
    def forward(self, *arrays: Any, **params: Any) -> Any:
        """Compute the output array from the input arrays."""

    @abc.abstractmethod
    def backward(self, grad: Any, out: Any) -> Any:
        """Gradients with respect to the inputs, as Tensors (or None), one per input."""

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Any:
        """Run the op on Tensors (or scalars, arrays) and record it in the graph."""
        # Deferred import: tensor.py builds on this module, and Tensor._apply is the
        # one recording point for built-in and user-written ops alike.
        from .tensor import Tensor

        return Tensor._apply(cls, *inputs, **params)

    def release(self) -> None:
        """Drop everything saved for backward; a later backward through here raises."""
        self.inputs = None
        self.saved_leaves = None  # unlocks the leaves' arrays
        self.__dict__.clear()
        self._output_lock = None  # makes the output writable again

    @property
    def name(self) -> str:
        """The op's name as shown in errors and graph pictures."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _unlock(array: Any) -> None:
    try:  # noqa: SIM105 (hot path: a plain try is cheaper)
        array.setflags(True)  # write=True (positional is cheaper)
    except ValueError:
        pass  # a view of an array that is itself still locked stays read-only


class OutputLock:
    """Keeps a recorded node's output array read-only while the node is alive.

    Taken when the array is first handed out (`Tensor.data`, `numpy()`, `detach()`,
    `np.asarray`) while the graph needs it: the library itself never writes into a
    result, so arrays nobody looked at need no lock, and the hot path pays nothing.
    Released with the node (by backward) or when the graph is garbage-collected.
    """

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        # a view of an array that is already read-only is born read-only: no lock
        self.array = array if array.flags.writeable else None
        if self.array is not None:
            array.setflags(False)  # write=False (positional is cheaper)

    def __del__(self) -> None:
        if self.array is not None:
            _unlock(self.array)


class SavedLeaves:
    """Keeps the arrays of a node's leaf inputs read-only while the node is alive.

    Backward reads the inputs' arrays, so a write in between (`w.data[...] = 0`, or an
    optimizer step before backward) would give a silently wrong gradient. NumPy refuses
    such a write with "assignment destination is read-only" instead. When the node is
    released by backward, or garbage-collected with its graph, the arrays become
    writable again. A leaf's `_lock` is None or `[number of live nodes, array we made
    read-only (None if it already was)]`. A leaf needs this count because many nodes
    share it; an intermediate result belongs to the one node that computed it, which
    locks it when the array is handed out (see OutputLock).
    """

    __slots__ = ("arrays", "leaves")

    def __init__(self, leaves: list[Any]) -> None:
        self.leaves = leaves
        self.arrays = [t._data for t in leaves]
        for t, array in zip(leaves, self.arrays):
            lock = t._lock
            if lock is not None:
                lock[0] += 1
            elif array.flags.writeable:
                array.setflags(write=False)
                t._lock = [1, array]
            else:
                t._lock = [1, None]

    def check(self, fn: Function) -> None:
        """Raise if a leaf's `.data` was replaced since the forward pass."""
        for i, (t, array) in enumerate(zip(self.leaves, self.arrays)):
            if t._data is not array:
                raise RuntimeError(
                    f"{fn.name}: the data of its input {i} (a leaf of shape {array.shape}) "
                    "was replaced after the forward pass; the gradient would be wrong. "
                    "Run backward before changing the tensor, or redo the forward pass."
                )

    def __del__(self) -> None:
        for t in self.leaves:
            lock = t._lock
            if lock[0] > 1:
                lock[0] -= 1
                continue
            t._lock = None
            if lock[1] is not None:
                _unlock(lock[1])
