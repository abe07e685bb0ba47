"""Neural-network layers, losses and initialisers built on the public Tensor API.

>>> import tinygrad_bp as tg
>>> from tinygrad_bp import nn
>>> _ = tg.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
>>> loss = nn.functional.cross_entropy(model(tg.randn(4, 2)), [0, 2, 1, 0])
>>> loss.backward()
>>> model[0].weight.grad.shape
(2, 8)
"""

from . import functional, init, utils
from .layers import *  # noqa: F403 (every layer; layers.__all__ is the one list of them)
from .layers import __all__ as _layer_names
from .module import Module, Parameter

__all__ = ["Module", "Parameter", "functional", "init", "utils", *_layer_names]
