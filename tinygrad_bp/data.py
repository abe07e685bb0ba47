"""Mini-batches and small built-in datasets that need no download.

Every random draw (shuffling, dataset noise, splits) uses the one generator
``tinygrad_bp._config.get_rng()``, so ``tg.manual_seed(n)`` makes it reproducible.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp._config import get_rng

__all__ = [
    "CharDataset",
    "DataLoader",
    "digits",
    "moons",
    "spirals",
    "text",
    "train_test_split",
]


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


def text() -> str:
    """English text that needs no download: Python's own reference documentation.

    The topics of the language reference that ``help()`` shows (``pydoc_data.topics``,
    part of the standard library), joined in the order of their names: about 460,000
    characters of prose and code examples, about 100 distinct characters. The exact
    text follows the Python version. Use it with ``CharDataset`` for a character-level
    language model.

    >>> from tinygrad_bp.data import text
    >>> corpus = text()
    >>> len(corpus) > 300_000, corpus[:22]
    (True, 'The "assert" statement')
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some Linux distributions split pydoc_data off
        raise ImportError(
            "tinygrad_bp.data.text() needs pydoc_data, part of Python's standard "
            "library that this Python installation leaves out"
        ) from e
    return "".join(topics[name] for name in sorted(topics))


class CharDataset:
    """Text as character ids, with an encode/decode vocabulary and next-character batches.

    The vocabulary is the sorted set of characters of ``text`` (or ``vocab``, which
    must contain them all): character ``vocab[i]`` has id ``i``. Window ``i`` is the
    pair ``x = ids[i : i + block_size]``, ``y = ids[i + 1 : i + block_size + 1]``:
    ``y[t]`` is the character that follows the context ``x[: t + 1]``, so ``y[-1]``
    is the next character after the whole window (what a model that reads ``x`` and
    predicts one character learns from) and all of ``y`` is what a causal model is
    trained on, one prediction per position. ``batch`` draws windows at random from
    the one generator, so ``tg.manual_seed`` makes batches reproducible.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.data import CharDataset
    >>> ds = CharDataset("hello world", block_size=4)
    >>> ds.vocab, ds.vocab_size, len(ds)
    (' dehlorw', 8, 7)
    >>> ds.encode("hold").tolist(), ds.decode([3, 5, 4, 1])
    ([3, 5, 4, 1], 'hold')
    >>> x, y = ds[0]
    >>> ds.decode(x), ds.decode(y)
    ('hell', 'ello')
    >>> _ = tg.manual_seed(0)
    >>> xb, yb = ds.batch(3)
    >>> xb.shape, xb.dtype, yb.shape
    ((3, 4), dtype('int64'), (3, 4))
    """

    def __init__(self, text: str, block_size: int, vocab: str | None = None) -> None:
        if not isinstance(text, str):
            raise TypeError(
                f"CharDataset: text must be a str, got {type(text).__name__}"
            )
        _check_positive_int("block_size", block_size)
        if len(text) <= block_size:
            raise ValueError(
                f"CharDataset: text of {len(text)} characters is too short for "
                f"block_size={block_size}: a window needs block_size + 1 characters"
            )
        if vocab is None:
            vocab = "".join(sorted(set(text)))
        elif not isinstance(vocab, str) or len(set(vocab)) != len(vocab) or not vocab:
            raise ValueError(
                f"CharDataset: vocab must be a non-empty str of distinct characters, "
                f"got {vocab!r:.60}"
            )
        self.vocab = vocab
        self.block_size = int(block_size)
        # Code points, sorted, with each one's id: encoding is one searchsorted.
        points = np.array([ord(c) for c in vocab], dtype=np.int64)
        self._order = np.argsort(points)
        self._points = points[self._order]
        self.ids = self.encode(text)

    @property
    def vocab_size(self) -> int:
        """The number of distinct characters, the size of a model's output layer."""
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters, an int64 array.

        >>> from tinygrad_bp.data import CharDataset
        >>> CharDataset("abcab", block_size=2).encode("cab").tolist()
        [2, 0, 1]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        points = points.astype(np.int64)
        where = np.searchsorted(self._points, points)
        where = np.minimum(where, len(self._points) - 1)
        unknown = self._points[where] != points
        if unknown.any():
            position = int(np.argmax(unknown))
            raise ValueError(
                f"encode: character {text[position]!r} at position {position} is not "
                f"in the vocabulary of {self.vocab_size} characters"
            )
        return self._order[where]

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (a list, an array or a Tensor of integers).

        >>> from tinygrad_bp.data import CharDataset
        >>> CharDataset("abcab", block_size=2).decode([2, 0, 1])
        'cab'
        """
        array = np.asarray(ids.data if isinstance(ids, tg.Tensor) else ids)
        if array.size and array.dtype.kind not in "iu":
            raise TypeError(f"decode: ids must be integers, got dtype {array.dtype}")
        outside = (array < 0) | (array >= self.vocab_size)
        if outside.any():
            raise ValueError(
                f"decode: id {int(array[outside][0])} is outside the vocabulary "
                f"(ids 0 to {self.vocab_size - 1})"
            )
        return "".join(self.vocab[i] for i in array.reshape(-1).tolist())

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"CharDataset index must be an int, got {index!r}")
        if not -len(self) <= index < len(self):
            raise IndexError(
                f"CharDataset index {index} is out of range for {len(self)} windows"
            )
        index = int(index) % len(self)
        return (
            self.ids[index : index + self.block_size],
            self.ids[index + 1 : index + self.block_size + 1],
        )

    def windows(
        self, starts: Sequence[int] | np.ndarray
    ) -> tuple[tg.Tensor, tg.Tensor]:
        """The windows beginning at ``starts``, stacked: ``(x, y)`` int64 Tensors.

        >>> from tinygrad_bp.data import CharDataset
        >>> ds = CharDataset("abcdef", block_size=3)
        >>> x, y = ds.windows([0, 2])
        >>> x.tolist(), y.tolist()
        ([[0, 1, 2], [2, 3, 4]], [[1, 2, 3], [3, 4, 5]])
        """
        starts = np.asarray(starts)
        if starts.ndim != 1 or (starts.size and starts.dtype.kind not in "iu"):
            raise ValueError(
                f"windows: starts must be a 1-D sequence of ints, got {starts!r:.60}"
            )
        if starts.size and (starts.min() < 0 or starts.max() >= len(self)):
            raise IndexError(
                f"windows: starts must lie in 0..{len(self) - 1}, got "
                f"{int(starts.min())}..{int(starts.max())}"
            )
        rows = starts[:, None] + np.arange(self.block_size + 1)
        block = self.ids[rows]
        return tg.Tensor(block[:, :-1]), tg.Tensor(block[:, 1:])

    def batch(self, batch_size: int) -> tuple[tg.Tensor, tg.Tensor]:
        """``batch_size`` windows drawn at random: ``(x, y)``, int64, (batch_size, block_size).

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp.data import CharDataset
        >>> ds = CharDataset("abcdef", block_size=3)
        >>> _ = tg.manual_seed(0)
        >>> x, y = ds.batch(2)
        >>> bool((x.numpy()[:, 1:] == y.numpy()[:, :-1]).all())
        True
        """
        _check_positive_int("batch_size", batch_size)
        return self.windows(get_rng().integers(0, len(self), size=int(batch_size)))

    def split(self, held_out: float = 0.1) -> tuple[CharDataset, CharDataset]:
        """The first ``1 - held_out`` of the text and the rest, with this vocabulary.

        A split in the text, not between random windows, so no held-out window
        overlaps a training one (apart from the ``block_size`` characters at the cut).

        >>> from tinygrad_bp.data import CharDataset
        >>> train, val = CharDataset("abcdefghij", block_size=2).split(0.3)
        >>> train.decode(train.ids), val.decode(val.ids), val.vocab_size
        ('abcdefg', 'hij', 10)
        """
        if (
            not isinstance(held_out, numbers.Real)
            or isinstance(held_out, bool)
            or not 0 < held_out < 1
        ):
            raise ValueError(f"held_out must be in (0, 1), got {held_out!r}")
        cut = len(self.ids) - math.ceil(held_out * len(self.ids))
        parts = self.ids[:cut], self.ids[cut:]
        if min(len(part) for part in parts) <= self.block_size:
            raise ValueError(
                f"held_out={held_out!r} of {len(self.ids)} characters leaves a part "
                f"too short for block_size={self.block_size}"
            )
        return tuple(self._with_ids(part) for part in parts)  # type: ignore[return-value]

    def _with_ids(self, ids: np.ndarray) -> CharDataset:
        part = object.__new__(CharDataset)
        part.vocab, part.block_size = self.vocab, self.block_size
        part._order, part._points, part.ids = self._order, self._points, ids
        return part

    def __repr__(self) -> str:
        return (
            f"CharDataset({len(self.ids)} characters, vocab_size={self.vocab_size}, "
            f"block_size={self.block_size})"
        )


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
