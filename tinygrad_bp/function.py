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

    # Set when the node is recorded. `inputs` becomes None once the node has been
    # released (backward without retain_graph), which makes a second backward fail loudly.
    inputs: tuple[Any, ...] | None
    needs_input_grad: tuple[bool, ...]

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
        self.__dict__.clear()
        self.inputs = None

    @property
    def name(self) -> str:
        """The op's name as shown in errors and graph pictures."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}>"
