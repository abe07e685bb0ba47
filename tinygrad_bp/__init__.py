"""tinygrad_bp: a small NumPy autograd. Record the graph, generate the backward pass.

>>> import tinygrad_bp as tg
>>> w = tg.tensor([[0.5], [-1.0]], requires_grad=True)
>>> loss = (tg.tensor([[1.0, 2.0]]) @ w).tanh().sum()
>>> loss.backward()
>>> w.grad.shape
(2, 1)
"""

from ._config import get_default_dtype, get_rng, manual_seed, set_default_dtype
from ._grad_mode import enable_grad, is_grad_enabled, no_grad
from .anomaly import detect_anomaly
from .function import Function
from .serialization import load, save
from .tensor import (
    Tensor,
    arange,
    concatenate,
    einsum,
    eye,
    full,
    grad,
    linspace,
    maximum,
    minimum,
    multinomial,
    ones,
    ones_like,
    pad,
    rand,
    randint,
    randn,
    stack,
    take_along_axis,
    tensor,
    tril,
    triu,
    where,
    zeros,
    zeros_like,
)

# isort: split
# The subpackages are built on the public names above, so they come last.
from . import (
    data,
    func,
    nn,
    onnx,  # export to ONNX (its `onnx` package is imported on use)
    optim,
    testing,
    viz,
)
from .compiler import compile

__version__ = "0.1.0"

__all__ = [
    "Function",
    "Tensor",
    "arange",
    "compile",
    "concatenate",
    "data",
    "detect_anomaly",
    "einsum",
    "enable_grad",
    "eye",
    "full",
    "func",
    "get_default_dtype",
    "get_rng",
    "grad",
    "is_grad_enabled",
    "linspace",
    "load",
    "manual_seed",
    "maximum",
    "minimum",
    "multinomial",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "onnx",
    "optim",
    "pad",
    "rand",
    "randint",
    "randn",
    "save",
    "set_default_dtype",
    "stack",
    "take_along_axis",
    "tensor",
    "testing",
    "tril",
    "triu",
    "viz",
    "where",
    "zeros",
    "zeros_like",
]
