"""Process-wide settings: the default floating dtype and the one random generator."""

from __future__ import annotations

import numpy as np

_default_dtype: np.dtype = np.dtype(np.float32)
_rng: np.random.Generator = np.random.default_rng()


def set_default_dtype(dtype) -> None:
    """Set the dtype that Python floats, lists and factories become.

    >>> import numpy as np, tinygrad_bp as tg
    >>> tg.set_default_dtype(np.float64); tg.tensor(1.0).dtype
    dtype('float64')
    >>> tg.set_default_dtype(np.float32)
    """
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"default dtype must be a floating dtype, got {dtype}")
    _default_dtype = dtype


def get_default_dtype() -> np.dtype:
    """The dtype that Python floats, lists and factories become (float32 unless set)."""
    return _default_dtype


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the one generator behind every random draw (factories, init, dropout, shuffling).

    >>> import tinygrad_bp as tg
    >>> _ = tg.manual_seed(0); a = tg.rand(2).tolist()
    >>> _ = tg.manual_seed(0); a == tg.rand(2).tolist()
    True
    """
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng() -> np.random.Generator:
    """The generator every random draw in tinygrad_bp uses."""
    return _rng
