"""Mini-batches and small built-in datasets that need no download.

Every random draw (shuffling, dataset noise, splits) uses the one generator
``tinygrad_bp._config.get_rng()``, so ``tg.manual_seed(n)`` makes it reproducible.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp._config import get_rng

__all__ = ["DataLoader", "digits", "moons", "spirals", "train_test_split"]


class DataLoader:
    """Iterate over ``(X[batch], y[batch])`` as ``(Tensor, Tensor)`` mini-batches.

    With ``shuffle=True`` the order is redrawn at the start of every epoch from the
    one generator, so ``tg.manual_seed(n)`` fixes it. The last batch is smaller when
    ``batch_size`` does not divide ``len(X)``, unless ``drop_last=True`` skips it;
    ``len(loader)`` is the number of batches. Batches never require grad, and keep
    the dtypes of ``X`` and ``y`` (int64 class indices stay int64).

    >>> import numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp.data import DataLoader
    >>> X, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    >>> loader = DataLoader(X, y, batch_size=2, shuffle=False)
    >>> len(loader), [yb.tolist() for _, yb in loader]
    (3, [[0, 1], [2, 3], [4]])
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        X, y = _as_arrays(X, y)
        _check_positive_int("batch_size", batch_size)
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.X) // self.batch_size
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[tg.Tensor, tg.Tensor]]:
        n = len(self.X)
        # Drawn here, not lazily, so the epoch's order is fixed when it begins.
        order = get_rng().permutation(n) if self.shuffle else np.arange(n)
        return self._batches(order)

    def _batches(self, order: np.ndarray) -> Iterator[tuple[tg.Tensor, tg.Tensor]]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield tg.Tensor(self.X[index]), tg.Tensor(self.y[index])


def spirals(
    n_per_class: int = 100, classes: int = 3, noise: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spiral arms, one per class: ``X`` (N, 2) float32, ``y`` (N,).

    Point i of class k sits at radius r = (i + 1) / n_per_class and angle
    theta = 2*pi*k/classes + 4*r + noise * N(0, 1), i.e. ``(r sin theta, r cos theta)``.
    Not linearly separable, but a small MLP fits it.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.data import spirals
    >>> _ = tg.manual_seed(0)
    >>> X, y = spirals(n_per_class=50, classes=3)
    >>> X.shape, X.dtype, y.shape, y.dtype, sorted(set(y.tolist()))
    ((150, 2), dtype('float32'), (150,), dtype('int64'), [0, 1, 2])
    """
    _check_positive_int("n_per_class", n_per_class)
    _check_positive_int("classes", classes)
    _check_noise(noise)
    rng = get_rng()
    # Starting just off the origin keeps the arms' first points apart, so no two
    # classes share a point and a perfect fit exists.
    r = np.tile(np.arange(1, n_per_class + 1) / n_per_class, classes)
    y = np.repeat(np.arange(classes, dtype=np.int64), n_per_class)
    theta = 2 * np.pi * y / classes + 4 * r + noise * rng.standard_normal(r.shape)
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
    return X.astype(np.float32), y


def moons(n: int = 200, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, ``n`` points in all: ``X`` (n, 2) float32, ``y``.

    Class 0 lies on (cos t, sin t) and class 1 on (1 - cos t, 1/2 - sin t) for
    t in [0, pi], with Gaussian noise of standard deviation ``noise`` added to
    both coordinates; class 0 gets ``ceil(n / 2)`` points, class 1 ``floor(n / 2)``.

    >>> import numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp.data import moons
    >>> _ = tg.manual_seed(0)
    >>> X, y = moons(n=7)
    >>> X.shape, X.dtype, np.bincount(y).tolist()
    ((7, 2), dtype('float32'), [4, 3])
    """
    _check_positive_int("n", n)
    _check_noise(noise)
    t0 = np.linspace(0.0, np.pi, n - n // 2)
    t1 = np.linspace(0.0, np.pi, n // 2)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower]) + noise * get_rng().standard_normal((n, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), [len(t0), len(t1)])
    return X.astype(np.float32), y


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits (1797 images) from scikit-learn, no download needed.

    ``X`` is (1797, 64) float32 with pixels scaled from 0..16 to [0, 1] (reshape to
    (-1, 1, 8, 8) for ``Conv2d``); ``y`` is the digit, int64 in 0..9. Needs
    scikit-learn: ``pip install 'tinygrad_bp[data]'``.

    >>> from tinygrad_bp.data import digits
    >>> X, y = digits()  # doctest: +SKIP
    >>> X.shape, float(X.max()), y.shape  # doctest: +SKIP
    ((1797, 64), 1.0, (1797,))
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "tinygrad_bp.data.digits() needs scikit-learn; install it with "
            "pip install 'tinygrad_bp[data]'"
        ) from e
    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def train_test_split(
    X: Any, y: Any, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle and split into ``X_train, X_test, y_train, y_test`` (NumPy arrays).

    The test set gets ``ceil(test_fraction * len(X))`` samples; both sets must be
    non-empty.

    >>> import numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp.data import train_test_split
    >>> _ = tg.manual_seed(0)
    >>> X_tr, X_te, y_tr, y_te = train_test_split(np.zeros((10, 2)), np.arange(10))
    >>> X_tr.shape, X_te.shape, sorted(y_tr.tolist() + y_te.tolist()) == list(range(10))
    ((8, 2), (2, 2), True)
    """
    X, y = _as_arrays(X, y)
    if (
        not isinstance(test_fraction, numbers.Real)
        or isinstance(test_fraction, bool)
        or not 0 < test_fraction < 1
    ):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n = len(X)
    n_test = math.ceil(test_fraction * n)
    if not 0 < n_test < n:
        raise ValueError(
            f"test_fraction={test_fraction!r} of {n} samples leaves an empty "
            f"train or test set"
        )
    order = get_rng().permutation(n)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def _as_arrays(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """X and y as arrays (a Tensor gives its data) with one first dimension."""
    X, y = (t.data if isinstance(t, tg.Tensor) else np.asarray(t) for t in (X, y))
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(
            f"X and y must have the same first (sample) dimension, got X of shape "
            f"{X.shape} and y of shape {y.shape}"
        )
    return X, y


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_noise(noise: Any) -> None:
    if (
        not isinstance(noise, numbers.Real)
        or isinstance(noise, bool)
        or not 0 <= noise < math.inf
    ):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
