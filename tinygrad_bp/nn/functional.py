"""Stateless building blocks: activations, losses, normalisation, convolution, pooling.

Each is a composition of differentiable Tensor operations, so its gradient (of any
order) comes from the engine; nothing here writes a backward pass. The layers in
`tinygrad_bp.nn` are thin Modules that hold parameters and call these.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

import tinygrad_bp as tg

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "elu",
    "gelu",
    "group_norm",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]

Tensor = tg.Tensor
_REDUCTIONS = ("mean", "sum", "none")
# BCE clamps log-probabilities here, as PyTorch does, so p = 0 or 1 gives a finite loss
_LOG_FLOOR = -100.0


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else tg.Tensor(x)


# ------------------------------------------------------------------------ activations
def relu(x: Tensor) -> Tensor:
    """max(x, 0).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.relu(tg.tensor([-1.0, 2.0]))
    Tensor([0., 2.])
    """
    return _tensor(x).relu()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.sigmoid(tg.tensor([0.0]))
    Tensor([0.5])
    """
    return _tensor(x).sigmoid()


def tanh(x: Tensor) -> Tensor:
    """(exp(x) - exp(-x)) / (exp(x) + exp(-x)).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.tanh(tg.tensor([0.0]))
    Tensor([0.])
    """
    return _tensor(x).tanh()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x Φ(x), Φ the standard normal CDF (exact erf form, or `approximate="tanh"`).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> round(F.gelu(tg.tensor(1.0)).item(), 4)
    0.8413
    """
    return _tensor(x).gelu(approximate=approximate)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.leaky_relu(tg.tensor([-2.0, 3.0]), 0.1)
    Tensor([-0.2,  3. ])
    """
    return _tensor(x).leaky_relu(negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> round(F.elu(tg.tensor(-1.0)).item(), 4)
    -0.6321
    """
    return _tensor(x).elu(alpha)


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)), finite for any x.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> round(F.softplus(tg.tensor(0.0)).item(), 4)
    0.6931
    """
    return _tensor(x).softplus()


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> round(F.silu(tg.tensor(1.0)).item(), 4)
    0.7311
    """
    return _tensor(x).silu()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / Σ exp(x) along `axis`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.softmax(tg.tensor([0.0, 0.0]))
    Tensor([0.5, 0.5])
    """
    return _tensor(x).softmax(axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, finite for large |x|.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> [round(v, 3) for v in F.log_softmax(tg.tensor([1000.0, 1000.0])).tolist()]
    [-0.693, -0.693]
    """
    return _tensor(x).log_softmax(axis=axis)


# ---------------------------------------------------------------------------- losses
def _check_reduction(reduction: str, caller: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{caller}: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        )


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _same_shape_target(pred: Tensor, target: Any, caller: str) -> Tensor:
    """`target` as a floating Tensor of `pred`'s shape (integer labels become pred's dtype)."""
    target = _tensor(target)
    if target.shape != pred.shape:
        raise ValueError(
            f"{caller}: input has shape {pred.shape} but target has shape "
            f"{target.shape}; they must match"
        )
    if target.dtype.kind != "f":
        target = target.astype(pred.dtype)
    return target


def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error: (pred - target)², reduced.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.mse_loss(tg.tensor([1.0, 2.0]), tg.tensor([1.0, 4.0])).item()
    2.0
    """
    _check_reduction(reduction, "mse_loss")
    pred = _tensor(pred)
    diff = pred - _same_shape_target(pred, target, "mse_loss")
    return _reduce(diff * diff, reduction)


def _class_indices(
    target: Any, expected_shape: tuple, classes: int, ignore_index: int, caller: str
) -> np.ndarray:
    """`target` checked to be integer class indices in [0, classes) (or
    `ignore_index`), of the right shape."""
    given = target
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    if target.size == 0 and not isinstance(given, (Tensor, np.ndarray)):
        target = target.astype(np.int64)  # `[]` is float64 to NumPy, yet no float
    if target.dtype.kind not in "iu":
        # Floats are refused even when whole: a float target is a probability target
        # in PyTorch, so silently truncating it would hide the mistake.
        raise TypeError(
            f"{caller}: target must hold integer class indices, got dtype "
            f"{target.dtype} (convert with .astype(np.int64) if these are indices)"
        )
    if target.shape != expected_shape:
        raise ValueError(
            f"{caller}: target has shape {target.shape}, but input of this shape needs "
            f"a target of shape {expected_shape} (one class index per sample)"
        )
    if target.size and target.min() >= 0 and target.max() < classes:
        return target  # the common case, in two reductions
    outside = ((target < 0) | (target >= classes)) & (target != ignore_index)
    if outside.any():
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        raise IndexError(
            f"{caller}: target {int(target[position])} at position {position} is out of "
            f"range for {classes} classes (valid: 0 to {classes - 1}, or ignore_index "
            f"{ignore_index})"
        )
    return target


def _check_ignore_index(ignore_index: Any, caller: str) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{caller}: ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


def _nll(
    log_probs: Tensor,
    target: Any,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    caller: str,
) -> Tensor:
    """-log_probs[n, target[n], ...] (mixed with the mean over classes when
    `label_smoothing`), zero where target == ignore_index; the class axis is 1 (or 0
    for one unbatched sample). "mean" averages over the targets not ignored."""
    _check_reduction(reduction, caller)
    ignore_index = _check_ignore_index(ignore_index, caller)
    log_probs = _tensor(log_probs)
    if log_probs.ndim == 0:
        raise ValueError(
            f"{caller}: input must have a class axis, got a 0-d tensor of shape ()"
        )
    class_axis = 1 if log_probs.ndim >= 2 else 0
    classes = log_probs.shape[class_axis]
    expected = log_probs.shape[:class_axis] + log_probs.shape[class_axis + 1 :]
    target = _class_indices(target, expected, classes, ignore_index, caller)
    ignored = target == ignore_index
    # One integer array per axis: sample indices around the class indices, so one
    # differentiable gather picks every target entry (ignored ones pick class 0,
    # zeroed below).
    index = list(np.indices(target.shape, sparse=True))
    index.insert(class_axis, np.where(ignored, 0, target))
    loss = -log_probs[tuple(index)]
    if label_smoothing:
        # PyTorch's smoothing: (1 - eps) * nll + eps * (mean over classes of -log p)
        smooth = log_probs.sum(axis=class_axis) * (-1 / classes)
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    if not ignored.any():
        return _reduce(loss, reduction)
    loss = tg.where(ignored, 0.0, loss)
    if reduction != "mean":
        return _reduce(loss, reduction)
    kept = int((~ignored).sum())
    # all ignored: NaN, as PyTorch (0 / 0), without a division warning
    return loss.sum() * (1 / kept if kept else math.nan)


def nll_loss(
    log_probs: Tensor,
    target: Any,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    """Negative log-likelihood: -log_probs[n, target[n]], reduced.

    `log_probs` has shape (N, C) (or (N, C, d1, ...), or (C,) for one sample) and
    `target` holds integer class indices of shape (N,) (or (N, d1, ...), or ()).
    Targets equal to `ignore_index` contribute 0 and "mean" divides by the number of
    the others, as PyTorch. A floating target is refused with a `TypeError`.

    >>> import numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> logp = tg.tensor(np.log([[0.5, 0.5], [0.25, 0.75]]))
    >>> round(F.nll_loss(logp, [0, 1], reduction="sum").item(), 4)
    0.9808
    >>> round(F.nll_loss(logp, [0, -100]).item(), 4)
    0.6931
    """
    return _nll(log_probs, target, reduction, ignore_index, 0.0, "nll_loss")


def cross_entropy(
    logits: Tensor,
    target: Any,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy: -log_softmax(logits)[n, target[n]], reduced.

    Computed through `log_softmax`, so it stays finite for logits of any size.
    Shapes and `ignore_index` as `nll_loss`. With `label_smoothing` = eps the target
    is mixed with the uniform distribution, as PyTorch:
    loss = (1 - eps) * nll + eps * mean_c(-log_softmax(logits)[n, c]).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> logits = tg.tensor([[1e4, 0.0], [0.0, 0.0]])
    >>> round(F.cross_entropy(logits, [0, 1]).item(), 4)
    0.3466
    >>> round(F.cross_entropy(tg.tensor([[2.0, 0.0]]), [0], label_smoothing=0.1).item(), 4)
    0.2269
    """
    _check_reduction(reduction, "cross_entropy")
    if not (isinstance(label_smoothing, numbers.Real) and 0 <= label_smoothing <= 1):
        raise ValueError(
            f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}"
        )
    logits = _tensor(logits)
    if logits.ndim == 0:
        raise ValueError(
            "cross_entropy: input must have a class axis, got a 0-d tensor of shape ()"
        )
    if logits.ndim == 2 and reduction != "none":
        return _rows_cross_entropy(
            logits, target, reduction, ignore_index, float(label_smoothing)
        )
    axis = 1 if logits.ndim >= 2 else 0
    return _nll(
        logits.log_softmax(axis=axis),
        target,
        reduction,
        ignore_index,
        float(label_smoothing),
        "cross_entropy",
    )


def _rows_cross_entropy(
    logits: Tensor,
    target: Any,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
) -> Tensor:
    """cross_entropy of (N, C) logits reduced to one number: one recorded node
    (`Tensor.softmax_cross_entropy`), ignored targets weighted 0."""
    ignore_index = _check_ignore_index(ignore_index, "cross_entropy")
    target = _class_indices(
        target, logits.shape[:1], logits.shape[1], ignore_index, "cross_entropy"
    )
    ignored = target == ignore_index
    if not ignored.any():
        weights = None if reduction == "mean" else 1.0
        return logits.softmax_cross_entropy(target, weights, label_smoothing)
    kept = int(target.size - ignored.sum())
    if reduction == "mean" and not kept:
        weights = math.nan  # all ignored: NaN, as PyTorch (0 / 0)
    else:
        weights = np.where(ignored, 0.0, 1 / kept if reduction == "mean" else 1.0)
    return logits.softmax_cross_entropy(
        np.where(ignored, 0, target), weights, label_smoothing
    )


def one_hot(indices: Any, num_classes: int = -1) -> Tensor:
    """out[..., c] = 1 where indices[...] == c else 0: an int64 Tensor with one more
    axis than `indices`, of size `num_classes` (-1: the largest index + 1), as PyTorch.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.one_hot(tg.tensor([0, 2]), 3)
    Tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    indices = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got dtype {indices.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes == -1:
        if indices.size == 0:
            raise ValueError(
                "one_hot: cannot infer num_classes from an empty tensor; pass it"
            )
        num_classes = int(indices.max()) + 1
    if num_classes < 1:
        raise ValueError(
            f"one_hot: num_classes must be positive (or -1), got {num_classes}"
        )
    outside = (indices < 0) | (indices >= num_classes)
    if outside.any():
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        raise IndexError(
            f"one_hot: index {int(indices[position])} at position {position} is out "
            f"of range for {num_classes} classes"
        )
    out = (indices[..., None] == np.arange(num_classes)).astype(np.int64)
    return tg.Tensor(out)


def _clamped_log(x: Tensor) -> Tensor:
    """max(log x, -100), with a gradient that is 0 (never NaN) where clamped."""
    # The inner clip keeps log away from 0 (log(0) would give -inf and 0/0 = NaN in the
    # backward); the outer one makes the floor exactly -100 whatever the dtype.
    return x.clip(math.exp(_LOG_FLOOR), None).log().clip(_LOG_FLOOR, None)


def binary_cross_entropy(probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch, reduced.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> round(F.binary_cross_entropy(tg.tensor([0.8]), tg.tensor([1.0])).item(), 4)
    0.2231
    """
    _check_reduction(reduction, "binary_cross_entropy")
    probs = _tensor(probs)
    target = _same_shape_target(probs, target, "binary_cross_entropy")
    outside = ~((probs.data >= 0) & (probs.data <= 1))
    if outside.any():
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"binary_cross_entropy: input must hold probabilities in [0, 1], got "
            f"{probs.data[position].item()!r} at position {position}"
        )
    loss = -(target * _clamped_log(probs) + (1 - target) * _clamped_log(1 - probs))
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    logits: Tensor, target: Any, reduction: str = "mean"
) -> Tensor:
    """binary_cross_entropy(sigmoid(x), y), computed as softplus(x) - y x: finite for
    any x.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.binary_cross_entropy_with_logits(tg.tensor([1000.0]), tg.tensor([0.0])).item()
    1000.0
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    logits = _tensor(logits)
    target = _same_shape_target(logits, target, "binary_cross_entropy_with_logits")
    return _reduce(logits.softplus() - target * logits, reduction)


# ----------------------------------------------------------------------- layers' maths
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight + bias, with weight of shape (in_features, out_features).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.linear(tg.ones(1, 2), tg.ones(2, 3), tg.tensor([0.0, 1.0, 2.0]))
    Tensor([[2., 3., 4.]])
    """
    out = _tensor(x) @ weight
    return out if bias is None else out + bias


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p)
    (inverted dropout); the identity when not training. The mask comes from the
    generator that `tinygrad_bp.manual_seed` seeds.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> _ = tg.manual_seed(0)
    >>> F.dropout(tg.ones(6), p=0.5)
    Tensor([2., 0., 0., 0., 2., 2.])
    """
    if not (isinstance(p, numbers.Real) and 0 <= p < 1):
        raise ValueError(f"dropout: p must be a probability in [0, 1), got {p!r}")
    x = _tensor(x)
    if not training or p == 0:
        return x
    keep = tg.get_rng().random(x.shape) >= p
    return x * (keep / (1 - p)).astype(x.dtype)


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing `normalized_shape`
    axes (biased variance).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.layer_norm(tg.tensor([[1.0, 3.0]]), 2, eps=0.0)
    Tensor([[-1.,  1.]])
    """
    x = _tensor(x)
    shape = _shape_tuple(normalized_shape)
    if not 0 < len(shape) <= x.ndim or x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} does not match the trailing axes of "
            f"input shape {x.shape}"
        )
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(axis=axes, keepdims=True)
    var = (centered * centered).mean(axis=axes, keepdims=True)
    out = centered / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1) of (N, C),
    (N, C, L) or (N, C, H, W) input (statistics over every axis but 1).

    Training uses the batch's mean and biased variance and, when running statistics
    are given, replaces their `.data` with
    `running = (1 - momentum) * running + momentum * batch_stat` (the running variance
    from the unbiased batch variance, as PyTorch). Otherwise the running statistics
    normalise.

    >>> import numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> mean, var = tg.zeros(1), tg.ones(1)
    >>> F.batch_norm(tg.tensor([[1.0], [3.0]]), mean, var, training=True, eps=0.0)
    Tensor([[-1.],
            [ 1.]])
    >>> mean, var
    (Tensor([0.2]), Tensor([1.1]))
    """
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expected input of shape (N, C, ...) with a channel axis, "
            f"got {x.shape}"
        )
    channels = x.shape[1]
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        if stat is not None and stat.shape != (channels,):
            raise ValueError(
                f"batch_norm: {name} has shape {stat.shape}, but the input of shape "
                f"{x.shape} has {channels} channels"
            )
    axes = (0, *range(2, x.ndim))
    per_channel = (channels,) + (1,) * (x.ndim - 2)  # broadcasts against axis 1
    if training:
        count = x.size // channels
        if count < 2:
            raise ValueError(
                f"batch_norm: training needs more than one value per channel, got "
                f"input of shape {x.shape}"
            )
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        out = centered / (var + eps).sqrt()
        if running_mean is not None:
            running_mean.data = (
                (1 - momentum) * running_mean.data + momentum * mean.data.reshape(-1)
            ).astype(running_mean.dtype)
        if running_var is not None:
            unbiased = var.data.reshape(-1) * (count / (count - 1))
            running_var.data = (
                (1 - momentum) * running_var.data + momentum * unbiased
            ).astype(running_var.dtype)
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "batch_norm: running_mean and running_var are needed when not training"
            )
        mean = running_mean.data.reshape(per_channel)
        scale = 1 / np.sqrt(running_var.data.reshape(per_channel) + eps)
        out = (x - mean) * scale.astype(x.dtype)
    if weight is not None:
        out = out * weight.reshape(per_channel)
    return out if bias is None else out + bias.reshape(per_channel)


def group_norm(
    x: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Split the C channels of (N, C, ...) input into `num_groups` groups and normalise
    each sample's group: (x - mean) / sqrt(var + eps) (biased variance), then
    * weight + bias per channel.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.group_norm(tg.tensor([[1.0, 3.0, 5.0, 9.0]]), 2, eps=0.0)
    Tensor([[-1.,  1., -1.,  1.]])
    """
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(
            f"group_norm: expected input of shape (N, C, ...), got {x.shape}"
        )
    channels = x.shape[1]
    if (
        isinstance(num_groups, bool)
        or not isinstance(num_groups, numbers.Integral)
        or num_groups < 1
        or channels % num_groups
    ):
        raise ValueError(
            f"group_norm: num_groups must be a positive int dividing the {channels} "
            f"channels of input {x.shape}, got {num_groups!r}"
        )
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and param.shape != (channels,):
            raise ValueError(
                f"group_norm: {name} has shape {param.shape}, but the input of shape "
                f"{x.shape} has {channels} channels"
            )
    grouped = x.reshape(x.shape[0], num_groups, -1)
    centered = grouped - grouped.mean(axis=2, keepdims=True)
    var = (centered * centered).mean(axis=2, keepdims=True)
    out = (centered / (var + eps).sqrt()).reshape(x.shape)
    per_channel = (channels,) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(per_channel)
    return out if bias is None else out + bias.reshape(per_channel)


def _pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(n, numbers.Integral) and n >= minimum for n in pair
    ):
        raise ValueError(
            f"{name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, numbers.Integral) else tuple(shape)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """2-D cross-correlation of NCHW input with weight (out_ch, in_ch, kh, kw):
    out[n, o, i, j] = Σ_{c,p,q} x[n, c, i*s + p, j*s + q] * w[o, c, p, q] + b[o].

    Vectorised as sliding windows (`Tensor.windows`) and one matrix product; a 3-D
    (C, H, W) input is one unbatched image.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.conv2d(tg.ones(1, 1, 3, 3), tg.ones(1, 1, 2, 2)).tolist()
    [[[[4.0, 4.0], [4.0, 4.0]]]]
    """
    x = _tensor(x)
    if x.ndim == 3:
        return conv2d(x.unsqueeze(0), weight, bias, stride, padding).squeeze(0)
    if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: expected input (N, C, H, W) and weight (out_ch, C, kh, kw) with "
            f"the same C, got input {x.shape} and weight {weight.shape}"
        )
    stride = _pair(stride, "conv2d: stride", 1)
    ph, pw = _pair(padding, "conv2d: padding", 0)
    out_ch, in_ch, kh, kw = weight.shape
    if ph or pw:
        x = tg.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if x.shape[2] < kh or x.shape[3] < kw:
        raise ValueError(
            f"conv2d: kernel {(kh, kw)} is larger than the padded input "
            f"{x.shape[2:]} (input {x.shape}, padding {(ph, pw)})"
        )
    n = x.shape[0]
    windows = x.windows((kh, kw), stride)  # (N, C, H', W', kh, kw)
    rows, cols = windows.shape[2], windows.shape[3]
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, rows, cols, -1)
    out = patches @ weight.reshape(out_ch, in_ch * kh * kw).T  # (N, H', W', out_ch)
    if bias is not None:
        out = out + bias
    return out.transpose(0, 3, 1, 2)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """1-D cross-correlation of NCL input with weight (out_ch, in_ch, k):
    out[n, o, i] = Σ_{c,p} x[n, c, i*stride + p] * w[o, c, p] + b[o].

    Computed as `conv2d` on a height-1 image; a 2-D (C, L) input is one unbatched
    sequence.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.conv1d(tg.ones(1, 1, 4), tg.ones(1, 1, 2), padding=1).tolist()
    [[[1.0, 2.0, 2.0, 2.0, 1.0]]]
    """
    x = _tensor(x)
    if x.ndim == 2:
        return conv1d(x.unsqueeze(0), weight, bias, stride, padding).squeeze(0)
    if x.ndim != 3 or weight.ndim != 3 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv1d: expected input (N, C, L) and weight (out_ch, C, k) with the same "
            f"C, got input {x.shape} and weight {weight.shape}"
        )
    stride = _single(stride, "conv1d: stride", 1)
    padding = _single(padding, "conv1d: padding", 0)
    if x.shape[2] + 2 * padding < weight.shape[2]:
        raise ValueError(
            f"conv1d: kernel {weight.shape[2]} is longer than the padded input "
            f"(input {x.shape}, padding {padding})"
        )
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), (0, padding))
    return out.squeeze(2)


def _single(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _pool_windows(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None,
    caller: str,
) -> Tensor:
    x = _tensor(x)
    kernel = _pair(kernel_size, f"{caller}: kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, f"{caller}: stride", 1)
    if x.ndim not in (3, 4) or x.shape[-2] < kernel[0] or x.shape[-1] < kernel[1]:
        raise ValueError(
            f"{caller}: expected input (N, C, H, W) or (C, H, W) with H, W at least the "
            f"kernel {kernel}, got {x.shape}"
        )
    return x.windows(kernel, stride)


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
) -> Tensor:
    """Maximum over each kh×kw window of the last two axes; stride defaults to the
    kernel size. Tied maxima share the gradient.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.max_pool2d(tg.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    return _pool_windows(x, kernel_size, stride, "max_pool2d").max(axis=(-2, -1))


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
) -> Tensor:
    """Mean over each kh×kw window of the last two axes; stride defaults to the
    kernel size.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> F.avg_pool2d(tg.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _pool_windows(x, kernel_size, stride, "avg_pool2d").mean(axis=(-2, -1))


# ------------------------------------------------------------------------ attention
def _mask_array(mask: Any, dtype: np.dtype, caller: str) -> np.ndarray | Tensor:
    """A boolean mask as an array; a floating one as a Tensor of the scores' `dtype`
    (one that requires grad is kept as it is)."""
    if isinstance(mask, Tensor):
        if mask.dtype.kind == "f" and mask.requires_grad:
            return mask
        mask = mask.data
    mask = np.asarray(mask)
    if mask.dtype.kind == "f":
        return tg.Tensor(mask.astype(dtype, copy=False))
    if mask.dtype.kind != "b":
        raise TypeError(
            f"{caller}: attn_mask must be boolean or floating, got dtype {mask.dtype}"
        )
    return mask


def _attention_weights(
    q: Tensor,
    k: Tensor,
    attn_mask: Any,
    is_causal: bool,
    scale: float | None,
    caller: str,
) -> Tensor:
    """softmax(q kᵀ * scale + mask) over the key axis, shape (..., L, S); a boolean
    mask marks with True the pairs that take part."""
    if q.ndim < 2 or k.ndim < 2 or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{caller}: query (..., L, E) and key (..., S, E) need the same E, got "
            f"query {q.shape} and key {k.shape}"
        )
    length, source = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.swapaxes(-1, -2)) * scale
    if is_causal:
        if attn_mask is not None:
            raise ValueError(
                f"{caller}: pass either attn_mask or is_causal=True, not both"
            )
        attn_mask = np.tril(np.ones((length, source), dtype=bool))
    if attn_mask is not None:
        mask = _mask_array(attn_mask, scores.dtype, caller)
        try:
            np.broadcast_shapes(mask.shape, scores.shape)
        except ValueError:
            raise ValueError(
                f"{caller}: attn_mask of shape {mask.shape} does not broadcast to the "
                f"attention scores' shape {scores.shape} (..., L, S)"
            ) from None
        if isinstance(mask, Tensor):
            scores = scores + mask
        else:
            scores = tg.where(mask, scores, -math.inf)
    return scores.softmax(axis=-1)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(q kᵀ * scale + mask) v on (..., L, E) query, (..., S, E) key and
    (..., S, Ev) value; scale defaults to 1/sqrt(E), as PyTorch.

    A boolean `attn_mask` (broadcastable to (..., L, S)) marks with True the positions
    that take part; a floating one is added to the scores; `is_causal=True` lets
    position i attend only to positions <= i. `dropout_p` drops attention weights
    (always, as PyTorch's functional form: pass 0 in evaluation). A row with every
    position masked gives NaN, as PyTorch.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import functional as F
    >>> q = k = tg.ones(1, 2, 4)
    >>> v = tg.tensor([[[1.0], [3.0]]])
    >>> F.scaled_dot_product_attention(q, k, v).tolist()
    [[[2.0], [2.0]]]
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).tolist()
    [[[1.0], [2.0]]]
    """
    q, k, v = _tensor(q), _tensor(k), _tensor(v)
    if v.ndim < 2 or v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: key (..., S, E) and value (..., S, Ev) need "
            f"the same S, got key {k.shape} and value {v.shape}"
        )
    weights = _attention_weights(
        q, k, attn_mask, is_causal, scale, "scaled_dot_product_attention"
    )
    if dropout_p:
        weights = dropout(weights, dropout_p)
    return weights @ v
