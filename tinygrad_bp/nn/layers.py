"""Layers: Modules that hold parameters (and buffers) and call `nn.functional`.

Parameters are created in the default dtype (`tinygrad_bp.get_default_dtype()`) and
initialised as PyTorch initialises the same layer, from the generator that
`tinygrad_bp.manual_seed` seeds.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import tinygrad_bp as tg

from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = [
    "ELU",
    "GELU",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "GroupNorm",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]


def _positive_int(value: Any, name: str, caller: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{caller}: {name} must be a positive int, got {value!r}")
    return int(value)


def _empty(*shape: int) -> Parameter:
    """A parameter of `shape` in the default dtype, to be filled by an `init` function."""
    return Parameter(np.zeros(shape, dtype=tg.get_default_dtype()))


# ------------------------------------------------------------------------- containers
class Sequential(Module):
    """Modules applied one after another; children are named "0", "1", ...
    (or by the keys of a single mapping argument).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.Tanh())
    >>> print(model)
    Sequential(
      (0): Linear(in_features=2, out_features=16, bias=True)
      (1): Tanh()
    )
    >>> len(model), model(tg.ones(3, 2)).shape
    (2, (3, 16))
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            named = list(modules[0].items())
        else:
            named = [(str(i), module) for i, module in enumerate(modules)]
        for name, module in named:
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential: argument {name} is a {type(module).__name__}, "
                    "not a Module"
                )
            self.add_module(name, module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module: Module) -> Sequential:
        """Add `module` at the end; returns self."""
        if not isinstance(module, Module):
            raise TypeError(
                f"Sequential.append: expected a Module, got {type(module).__name__}"
            )
        self.add_module(str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(dict(list(self._modules.items())[index]))
        if not isinstance(index, numbers.Integral):
            raise TypeError(
                f"Sequential indices must be ints or slices, got {type(index).__name__}"
            )
        if not -len(modules) <= index < len(modules):
            raise IndexError(
                f"Sequential index {index} is out of range for {len(modules)} modules"
            )
        return modules[index]


class ModuleList(Module):
    """A list of Modules whose parameters are registered; children are named
    "0", "1", ... in list order (renumbered after `insert` or `del`).

    It has no `forward`: iterate over it in the forward pass of the Module holding it.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
    >>> _ = blocks.append(nn.Tanh())
    >>> len(blocks), len(list(blocks.parameters())), type(blocks[-1]).__name__
    (4, 6, 'Tanh')
    >>> x = tg.ones(2, 4)
    >>> for block in blocks:
    ...     x = block(x)
    >>> x.shape
    (2, 4)
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @staticmethod
    def _checked(module: Any, caller: str) -> Module:
        if not isinstance(module, Module):
            raise TypeError(
                f"ModuleList.{caller}: expected a Module, got {type(module).__name__}"
            )
        return module

    def _renumber(self, modules: list[Module]) -> None:
        self._modules.clear()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def _position(self, index: Any, caller: str) -> int:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(
                f"ModuleList.{caller}: indices must be ints or slices, got "
                f"{type(index).__name__}"
            )
        n = len(self)
        if not -n <= index < n:
            raise IndexError(
                f"ModuleList index {index} is out of range for {n} modules"
            )
        return int(index) % n

    def __getitem__(self, index: int | slice) -> Any:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[self._position(index, "__getitem__")]

    def __setitem__(self, index: int, module: Module) -> None:
        position = self._position(index, "__setitem__")
        self.add_module(str(position), self._checked(module, "__setitem__"))

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[self._position(index, "__delitem__")]
        self._renumber(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> ModuleList:
        """Add `module` at the end; returns self."""
        self.add_module(str(len(self)), self._checked(module, "append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append each of `modules` (checked first: a non-Module changes nothing);
        returns self."""
        if isinstance(modules, Module) and not isinstance(modules, ModuleList):
            raise TypeError(
                "ModuleList.extend: expected an iterable of Modules, got a "
                f"{type(modules).__name__} (use append for one module)"
            )
        new = [self._checked(module, "extend") for module in modules]
        for module in new:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert `module` before position `index` (as `list.insert`)."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(
                f"ModuleList.insert: index must be an int, got {type(index).__name__}"
            )
        modules = list(self._modules.values())
        modules.insert(int(index), self._checked(module, "insert"))
        self._renumber(modules)


class ModuleDict(Module):
    """A dict of Modules whose parameters are registered, in insertion order; the
    keys are the children's names.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "reg": nn.Linear(4, 1)})
    >>> list(heads.keys()), "cls" in heads, len(heads)
    (['cls', 'reg'], True, 2)
    >>> heads["reg"](tg.ones(2, 4)).shape
    (2, 1)
    """

    def __init__(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r}; keys: {list(self)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(
                f"ModuleDict: the value for {key!r} is a {type(module).__name__}, "
                "not a Module"
            )
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r}; keys: {list(self)}")
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> list[str]:
        """The keys, in insertion order."""
        return list(self._modules)

    def values(self) -> list[Module]:
        """The modules, in insertion order."""
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        """(key, module) pairs, in insertion order."""
        return list(self._modules.items())

    def pop(self, key: str) -> Module:
        """Remove the module under `key` and return it."""
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        """Remove every module."""
        self._modules.clear()

    def update(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]
    ) -> None:
        """Add (or replace) the modules of a mapping or of (key, module) pairs; every
        entry is checked first, so a bad one changes nothing."""
        if isinstance(modules, Module) and not isinstance(modules, ModuleDict):
            raise TypeError(
                "ModuleDict.update: expected a mapping or (key, module) pairs, got a "
                f"{type(modules).__name__}"
            )
        if isinstance(modules, (Mapping, ModuleDict)):
            modules = modules.items()
        pairs = list(modules)
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError(
                    f"ModuleDict.update: expected (key, module) pairs, got {pair!r}"
                )
            key, module = pair
            if not isinstance(module, Module):
                raise TypeError(
                    f"ModuleDict: the value for {key!r} is a {type(module).__name__}, "
                    "not a Module"
                )
            self._check_new_name(key, "module")
        for key, module in pairs:
            self.add_module(key, module)


class Identity(Module):
    """Returns its input unchanged (a placeholder layer).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.Identity()(tg.tensor([1.0]))
    Tensor([1.])
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return x


# ------------------------------------------------------------------------------ affine
class Linear(Module):
    """y = x @ weight + bias, weight of shape (in_features, out_features).

    weight and bias start from U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's
    default (kaiming_uniform_ with a = sqrt(5)).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> _ = tg.manual_seed(0)
    >>> layer = nn.Linear(3, 2)
    >>> layer.weight.shape, layer.bias.shape, layer(tg.ones(5, 3)).shape
    ((3, 2), (2,), (5, 2))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        self.weight = init.kaiming_uniform_(
            _empty(self.in_features, self.out_features), a=math.sqrt(5)
        )
        self.register_parameter("bias", None)
        if bias:
            bound = 1 / math.sqrt(self.in_features)
            self.bias = init.uniform_(_empty(self.out_features), -bound, bound)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Embedding(Module):
    """A lookup table: row i of `weight` (num_embeddings, embedding_dim) for index i.

    weight starts from N(0, 1), as PyTorch. With `padding_idx` (negative counts from
    the end), that row starts at zero and never receives a gradient, so it stays
    whatever it is set to (PyTorch's rule).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> _ = tg.manual_seed(0)
    >>> emb = nn.Embedding(10, 3, padding_idx=0)
    >>> out = emb([[1, 2], [4, 0]])
    >>> out.shape, out[1, 1].tolist()
    ((2, 2, 3), [0.0, 0.0, 0.0])
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None
    ) -> None:
        super().__init__()
        self.num_embeddings = _positive_int(
            num_embeddings, "num_embeddings", "Embedding"
        )
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(
                padding_idx, numbers.Integral
            ):
                raise TypeError(
                    f"Embedding: padding_idx must be an int or None, got {padding_idx!r}"
                )
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} is out of range for "
                    f"{self.num_embeddings} embeddings"
                )
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        weight = init.normal_(_empty(self.num_embeddings, self.embedding_dim))
        if padding_idx is not None:
            weight.data[padding_idx] = 0
        self.weight = weight

    def forward(self, indices: Any) -> tg.Tensor:
        indices = np.asarray(
            indices.data if isinstance(indices, tg.Tensor) else indices
        )
        if indices.dtype.kind not in "iu":
            raise TypeError(
                f"Embedding: indices must be integers, got dtype {indices.dtype}"
            )
        outside = (indices < 0) | (indices >= self.num_embeddings)
        if outside.any():
            position = tuple(int(i) for i in np.argwhere(outside)[0])
            raise IndexError(
                f"Embedding: index {int(indices[position])} at position {position} is "
                f"out of range for {self.num_embeddings} embeddings"
            )
        out = self.weight[indices]
        if self.padding_idx is None:
            return out
        # the padding rows' values pass, their gradient does not
        padding = (indices == self.padding_idx)[..., None]
        return tg.where(padding, out.detach(), out)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text


class Conv1d(Module):
    """1-D convolution (cross-correlation) of NCL input, weight (out_ch, in_ch, k) as
    PyTorch; see `functional.conv1d`.

    weight and bias start from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_ch*k,
    PyTorch's default.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> conv = nn.Conv1d(3, 8, kernel_size=3, padding=1)
    >>> conv.weight.shape, conv(tg.ones(2, 3, 10)).shape
    ((8, 3, 3), (2, 8, 10))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv1d")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv1d")
        self.kernel_size = F._single(kernel_size, "Conv1d: kernel_size", 1)
        self.stride = F._single(stride, "Conv1d: stride", 1)
        self.padding = F._single(padding, "Conv1d: padding", 0)
        self.weight = init.kaiming_uniform_(
            _empty(self.out_channels, self.in_channels, self.kernel_size),
            a=math.sqrt(5),
        )
        self.register_parameter("bias", None)
        if bias:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size)
            self.bias = init.uniform_(_empty(self.out_channels), -bound, bound)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding:
            text += f", padding={self.padding}"
        return text if self.bias is not None else text + ", bias=False"


class Conv2d(Module):
    """2-D convolution (cross-correlation) of NCHW input, weight (out_ch, in_ch, kh, kw)
    as PyTorch; see `functional.conv2d`.

    weight and bias start from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_ch*kh*kw,
    PyTorch's default.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    >>> conv.weight.shape, conv(tg.ones(2, 3, 5, 5)).shape
    ((8, 3, 3, 3), (2, 8, 5, 5))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv2d")
        self.kernel_size = F._pair(kernel_size, "Conv2d: kernel_size", 1)
        self.stride = F._pair(stride, "Conv2d: stride", 1)
        self.padding = F._pair(padding, "Conv2d: padding", 0)
        self.weight = init.kaiming_uniform_(
            _empty(self.out_channels, self.in_channels, *self.kernel_size),
            a=math.sqrt(5),
        )
        self.register_parameter("bias", None)
        if bias:
            bound = 1 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
            self.bias = init.uniform_(_empty(self.out_channels), -bound, bound)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        return text if self.bias is not None else text + ", bias=False"


# ------------------------------------------------------------------------------ pooling
class MaxPool2d(Module):
    """Maximum over kh×kw windows of the last two axes; stride defaults to kernel_size.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.MaxPool2d(2)(tg.ones(1, 3, 4, 6)).shape
    (1, 3, 2, 3)
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = F._pair(kernel_size, "MaxPool2d: kernel_size", 1)
        self.stride = (
            self.kernel_size
            if stride is None
            else F._pair(stride, "MaxPool2d: stride", 1)
        )

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class AvgPool2d(MaxPool2d):
    """Mean over kh×kw windows of the last two axes; stride defaults to kernel_size.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.AvgPool2d(2)(tg.ones(1, 1, 4, 4)).tolist()
    [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride)


# ------------------------------------------------------------------------ activations
class ReLU(Module):
    """max(x, 0), elementwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.ReLU()(tg.tensor([-1.0, 1.0]))
    Tensor([0., 1.])
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.relu(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.Sigmoid()(tg.tensor([0.0]))
    Tensor([0.5])
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x), elementwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.Tanh()(tg.tensor([0.0]))
    Tensor([0.])
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.tanh(x)


class GELU(Module):
    """x Φ(x), elementwise (exact, or approximate="tanh").

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.GELU()(tg.tensor(1.0)).item(), 4)
    0.8413
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.LeakyReLU(0.1)(tg.tensor([-1.0, 1.0]))
    Tensor([-0.1,  1. ])
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.ELU()(tg.tensor(-1.0)).item(), 4)
    -0.6321
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + exp(x)), elementwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.Softplus()(tg.tensor(0.0)).item(), 4)
    0.6931
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.softplus(x)


class SiLU(Module):
    """x * sigmoid(x), elementwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.SiLU()(tg.tensor(1.0)).item(), 4)
    0.7311
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.silu(x)


class Softmax(Module):
    """exp(x) / Σ exp(x) along `axis`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.Softmax(axis=0)(tg.tensor([0.0, 0.0]))
    Tensor([0.5, 0.5])
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Softmax):
    """x - logsumexp(x) along `axis`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.LogSoftmax()(tg.tensor([0.0, 0.0])).tolist()
    [-0.6931471824645996, -0.6931471824645996]
    """

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.log_softmax(x, self.axis)


class Flatten(Module):
    """Merge the axes from `start_axis` on into one (by default all but the batch axis).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.Flatten()(tg.ones(2, 3, 4)).shape
    (2, 12)
    """

    def __init__(self, start_axis: int = 1) -> None:
        super().__init__()
        self.start_axis = start_axis

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return x.flatten(self.start_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}"


# ----------------------------------------------------------------- regularisation
class Dropout(Module):
    """Inverted dropout in training (zero with probability p, scale the rest by
    1 / (1 - p)); the identity in eval mode.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> drop = nn.Dropout(0.5).eval()
    >>> drop(tg.ones(3))
    Tensor([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not (isinstance(p, numbers.Real) and 0 <= p < 1):
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` axes, then scale by `weight` (ones)
    and shift by `bias` (zeros); see `functional.layer_norm`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> norm = nn.LayerNorm(2, eps=0.0)
    >>> norm(tg.tensor([[1.0, 3.0]]))
    Tensor([[-1.,  1.]], grad_fn=<Add>)
    """

    def __init__(
        self, normalized_shape: int | Sequence[int], eps: float = 1e-5
    ) -> None:
        super().__init__()
        shape = F._shape_tuple(normalized_shape)
        for n in shape:
            _positive_int(n, "normalized_shape", "LayerNorm")
        if not shape:
            raise ValueError("LayerNorm: normalized_shape must have at least one axis")
        self.normalized_shape = shape
        self.eps = eps
        self.weight = init.ones_(_empty(*shape))
        self.bias = init.zeros_(_empty(*shape))

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, which differ only in the input ranks
    they accept."""

    _input_ndims: tuple[int, ...] = ()
    _input_layouts = ""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = _positive_int(num_features, "num_features", name)
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(
                f"{name}: momentum must be in [0, 1] or None, got {momentum!r}"
            )
        self.eps = eps
        self.momentum = momentum
        self.weight = init.ones_(_empty(num_features))
        self.bias = init.zeros_(_empty(num_features))
        dtype = tg.get_default_dtype()
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        x = F._tensor(x)
        if x.ndim not in self._input_ndims:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape "
                f"{self._input_layouts}, got {x.shape}"
            )
        # kept an array (not int()), so a compiled step counts at every call
        batches = self.num_batches_tracked.data + self.training
        momentum = self.momentum
        if momentum is None:
            momentum = 1 / max(int(batches), 1)
        out = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=self.training,
            momentum=momentum,
            eps=self.eps,
        )
        # counted only once the batch went through: a rejected input changes nothing
        self.num_batches_tracked.data = np.array(batches, dtype=np.int64)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input per channel C.

    Training normalises with the batch's statistics and updates the buffers
    `running = (1 - momentum) * running + momentum * batch_stat` (unbiased variance;
    with momentum=None a cumulative average, as PyTorch); eval mode normalises with the
    running statistics. Parameters `weight` (ones), `bias` (zeros); buffers
    `running_mean`, `running_var`, `num_batches_tracked`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> bn = nn.BatchNorm1d(1)
    >>> _ = bn(tg.tensor([[1.0], [3.0]]))
    >>> bn.running_mean, bn.running_var
    (Tensor([0.2]), Tensor([1.1]))
    """

    _input_ndims = (2, 3)
    _input_layouts = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of NCHW input per channel C, with statistics over N, H and
    W; otherwise as `BatchNorm1d` (same parameters, buffers and momentum rule).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> bn = nn.BatchNorm2d(3)
    >>> bn(tg.randn(4, 3, 5, 5)).shape, bn.running_mean.shape
    ((4, 3, 5, 5), (3,))
    """

    _input_ndims = (4,)
    _input_layouts = "(N, C, H, W)"


class GroupNorm(Module):
    """Group normalisation: the C channels split into `num_groups` groups, each
    sample's group normalised on its own (no running statistics, same in train and
    eval), then scaled by `weight` (ones) and shifted by `bias` (zeros) per channel;
    see `functional.group_norm`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> norm = nn.GroupNorm(2, 4)
    >>> norm.weight.shape, norm(tg.randn(3, 4, 5)).shape
    ((4,), (3, 4, 5))
    """

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True
    ) -> None:
        super().__init__()
        self.num_groups = _positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = _positive_int(num_channels, "num_channels", "GroupNorm")
        if self.num_channels % self.num_groups:
            raise ValueError(
                f"GroupNorm: num_channels {num_channels} is not divisible by "
                f"num_groups {num_groups}"
            )
        self.eps = eps
        self.affine = affine
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if affine:
            self.weight = init.ones_(_empty(self.num_channels))
            self.bias = init.zeros_(_empty(self.num_channels))

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        x = F._tensor(x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm: expected input of shape (N, {self.num_channels}, ...), "
                f"got {x.shape}"
            )
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
            f"affine={self.affine}"
        )


# ----------------------------------------------------------------------------- losses
class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """`functional.mse_loss` as a module.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.MSELoss()(tg.tensor([1.0, 2.0]), tg.tensor([1.0, 4.0])).item()
    2.0
    """

    def forward(self, pred: tg.Tensor, target: Any) -> tg.Tensor:
        return F.mse_loss(pred, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """`functional.cross_entropy` as a module: logits and integer class targets.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.CrossEntropyLoss()(tg.tensor([[0.0, 0.0]]), [1]).item(), 4)
    0.6931
    """

    def __init__(
        self,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        self.ignore_index = F._check_ignore_index(ignore_index, "CrossEntropyLoss")
        if not (
            isinstance(label_smoothing, numbers.Real) and 0 <= label_smoothing <= 1
        ):
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                f"{label_smoothing!r}"
            )
        self.label_smoothing = label_smoothing

    def forward(self, logits: tg.Tensor, target: Any) -> tg.Tensor:
        return F.cross_entropy(
            logits, target, self.reduction, self.ignore_index, self.label_smoothing
        )

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.ignore_index != -100:
            text += f", ignore_index={self.ignore_index}"
        if self.label_smoothing:
            text += f", label_smoothing={self.label_smoothing}"
        return text


class NLLLoss(_Loss):
    """`functional.nll_loss` as a module: log-probabilities and integer class targets.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> nn.NLLLoss()(tg.tensor([[-1.0, -2.0]]), [1]).item()
    2.0
    """

    def __init__(self, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__(reduction)
        self.ignore_index = F._check_ignore_index(ignore_index, "NLLLoss")

    def forward(self, log_probs: tg.Tensor, target: Any) -> tg.Tensor:
        return F.nll_loss(log_probs, target, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.ignore_index != -100:
            text += f", ignore_index={self.ignore_index}"
        return text


class BCELoss(_Loss):
    """`functional.binary_cross_entropy` as a module: probabilities and 0/1 targets.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.BCELoss()(tg.tensor([0.5]), tg.tensor([1.0])).item(), 4)
    0.6931
    """

    def forward(self, probs: tg.Tensor, target: Any) -> tg.Tensor:
        return F.binary_cross_entropy(probs, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """`functional.binary_cross_entropy_with_logits` as a module.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> round(nn.BCEWithLogitsLoss()(tg.tensor([0.0]), tg.tensor([1.0])).item(), 4)
    0.6931
    """

    def forward(self, logits: tg.Tensor, target: Any) -> tg.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, self.reduction)
