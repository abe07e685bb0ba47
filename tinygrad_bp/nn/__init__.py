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
from .attention import *  # noqa: F403 (each module's __all__ lists its layers)
from .attention import __all__ as _attention_names
from .layers import *  # noqa: F403
from .layers import __all__ as _layer_names
from .module import Module, Parameter
from .recurrent import *  # noqa: F403
from .recurrent import __all__ as _recurrent_names

__all__ = [
    "Module",
    "Parameter",
    "functional",
    "init",
    "utils",
    *_layer_names,
    *_recurrent_names,
    *_attention_names,
]
