"""Weight initialisation, in place, with PyTorch's names, arguments and formulas.

Fan convention (deliberately different from PyTorch for 2-D weights): our `Linear`
weight is laid out (in_features, out_features) because layers compute `x @ w + b`, so a
2-D tensor has fan_in = shape[0] and fan_out = shape[1]. Tensors with more than two
axes follow PyTorch's convolution layout (out_ch, in_ch, *kernel): fan_in =
shape[1] * prod(kernel), fan_out = shape[0] * prod(kernel). Either way, a layer of
ours gets exactly the bounds PyTorch gives the same layer.

Every function writes a new array of the tensor's dtype into `.data` (never into the
old array, which a pending backward pass may hold) and returns the tensor. Random
values come from the generator that `tinygrad_bp.manual_seed` seeds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import tinygrad_bp as tg

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_GAINS = {
    "linear": 1.0,
    "identity": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4,
}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table); for leaky_relu
    sqrt(2 / (1 + slope²)) with slope = param (default 0.01).

    >>> from tinygrad_bp.nn import init
    >>> round(init.calculate_gain("tanh"), 4)
    1.6667
    """
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(
                f"calculate_gain: negative slope {slope!r} is not a number"
            )
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _LINEAR_GAINS:
        raise ValueError(
            f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one "
            f"of {[*_LINEAR_GAINS, 'leaky_relu']}"
        )
    return _LINEAR_GAINS[nonlinearity]


def _fans(tensor: tg.Tensor, caller: str) -> tuple[int, int]:
    """(fan_in, fan_out) under the convention in the module docstring."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(
            f"{caller}: fan in and fan out need a tensor with at least 2 dimensions, "
            f"got shape {shape}"
        )
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _fill(tensor: tg.Tensor, values: Any) -> tg.Tensor:
    tensor.data = np.asarray(values, dtype=tensor.dtype)
    return tensor


def _check_tensor(tensor: Any, caller: str) -> None:
    if not isinstance(tensor, tg.Tensor):
        raise TypeError(f"{caller}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise TypeError(
            f"{caller}: expected a floating-point tensor, got dtype {tensor.dtype}"
        )


def uniform_(tensor: tg.Tensor, a: float = 0.0, b: float = 1.0) -> tg.Tensor:
    """Fill with samples from U(a, b).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> w = init.uniform_(tg.zeros(1000), -2.0, 3.0)
    >>> bool(w.data.min() >= -2.0 and w.data.max() < 3.0)
    True
    """
    _check_tensor(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a!r}, b={b!r}")
    return _fill(tensor, tg.get_rng().uniform(a, b, tensor.shape))


def normal_(tensor: tg.Tensor, mean: float = 0.0, std: float = 1.0) -> tg.Tensor:
    """Fill with samples from N(mean, std²).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> _ = tg.manual_seed(0)
    >>> round(float(init.normal_(tg.zeros(10000), 3.0, 0.5).data.mean()), 1)
    3.0
    """
    _check_tensor(tensor, "normal_")
    if not std >= 0:
        raise ValueError(f"normal_: std must be non-negative, got {std!r}")
    return _fill(tensor, tg.get_rng().normal(mean, std, tensor.shape))


def constant_(tensor: tg.Tensor, val: float) -> tg.Tensor:
    """Fill with `val`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> init.constant_(tg.zeros(2), 0.5)
    Tensor([0.5, 0.5])
    """
    _check_tensor(tensor, "constant_")
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor: tg.Tensor) -> tg.Tensor:
    """Fill with 0.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> init.zeros_(tg.ones(2))
    Tensor([0., 0.])
    """
    return constant_(tensor, 0.0)


def ones_(tensor: tg.Tensor) -> tg.Tensor:
    """Fill with 1.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> init.ones_(tg.zeros(2))
    Tensor([1., 1.])
    """
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: tg.Tensor, gain: float = 1.0) -> tg.Tensor:
    """Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> w = init.xavier_uniform_(tg.zeros(3, 5))
    >>> bool(abs(w.data).max() <= (6 / 8) ** 0.5)
    True
    """
    _check_tensor(tensor, "xavier_uniform_")
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: tg.Tensor, gain: float = 1.0) -> tg.Tensor:
    """Glorot normal: N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out)).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> _ = tg.manual_seed(0)
    >>> round(float(init.xavier_normal_(tg.zeros(300, 500)).data.std()), 3)
    0.05
    """
    _check_tensor(tensor, "xavier_normal_")
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(
    tensor: tg.Tensor, a: float, mode: str, nonlinearity: str, caller: str
) -> float:
    """gain / sqrt(fan), fan the layer's fan_in or fan_out."""
    _check_tensor(tensor, caller)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{caller}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, caller)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{caller}: {mode} is 0 for a tensor of shape {tensor.shape}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: tg.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> tg.Tensor:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan), gain from `calculate_gain`
    (`a` the leaky_relu slope) and fan the fan_in or fan_out (`mode`).

    With a = sqrt(5) this is PyTorch's default Linear/Conv init, b = 1 / sqrt(fan_in).

    >>> import math, tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> w = init.kaiming_uniform_(tg.zeros(4, 1000), a=math.sqrt(5))
    >>> bool(abs(w.data).max() <= 0.5)
    True
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: tg.Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> tg.Tensor:
    """He normal: N(0, std²) with std = gain / sqrt(fan) (see `kaiming_uniform_`).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import init
    >>> _ = tg.manual_seed(0)
    >>> w = init.kaiming_normal_(tg.zeros(200, 1000), nonlinearity="relu")
    >>> round(float(w.data.std()), 2)
    0.1
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std)
