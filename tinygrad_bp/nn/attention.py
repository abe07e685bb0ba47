"""Multi-head attention, as PyTorch's `nn.MultiheadAttention` with our weight layout.

The functional core, `nn.functional.scaled_dot_product_attention`, lives with the
other stateless functions; this module holds the layer that projects queries, keys
and values, splits them into heads and mixes the heads back.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

import tinygrad_bp as tg

from . import functional as F
from . import init
from .layers import Linear
from .module import Module, Parameter

__all__ = ["MultiheadAttention"]

Tensor = tg.Tensor


def _additive_mask(mask: Any, dtype: np.dtype, name: str) -> Tensor | None:
    """PyTorch's mask convention as a float mask of `dtype` to add to the scores: a
    boolean mask marks with True what may NOT be attended (-inf); a float mask is
    added as it is."""
    if mask is None:
        return None
    if isinstance(mask, Tensor) and mask.dtype.kind == "f" and mask.requires_grad:
        return mask
    array = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if array.dtype.kind == "b":
        array = np.where(array, -np.inf, 0.0)
    elif array.dtype.kind != "f":
        raise TypeError(
            f"MultiheadAttention: {name} must be boolean or floating, got dtype "
            f"{array.dtype}"
        )
    return tg.Tensor(array.astype(dtype, copy=False))


class MultiheadAttention(Module):
    """Multi-head attention: project query, key and value, attend in `num_heads`
    heads of size embed_dim / num_heads, concatenate and project with `out_proj`.

    Parameters: `in_proj_weight` (E, 3E), whose column blocks project the query, the
    key and the value (PyTorch's weight transposed), `in_proj_bias` (3E,) and
    `out_proj`, a `Linear(E, E)`. Initialised as PyTorch: Glorot-uniform projection,
    zero biases.

    `forward(query, key, value, attn_mask=None, need_weights=True, is_causal=False,
    key_padding_mask=None, average_attn_weights=True)` takes (batch, L, E) query and
    (batch, S, E) key and value (sequence first with `batch_first=False`; (L, E)
    unbatched) and returns (output, weights): output shaped as the query, weights
    (batch, L, S) averaged over heads ((batch, heads, L, S) without averaging), or
    None when `need_weights=False`. Masks follow PyTorch's rule for this layer: a
    boolean `attn_mask` ((L, S) or (batch*heads, L, S)) or `key_padding_mask`
    ((batch, S)) is True where attending is NOT allowed; a float mask is added to the
    scores. `is_causal=True` also masks the future (PyTorch requires a causal
    `attn_mask` with it; here either alone is enough). `dropout` drops attention
    weights in training.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> mha = nn.MultiheadAttention(8, num_heads=2)
    >>> x = tg.randn(3, 5, 8)
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape, mha.in_proj_weight.shape
    ((3, 5, 8), (3, 5, 5), (8, 24))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(
                    f"MultiheadAttention: {name} must be a positive int, got {value!r}"
                )
            if value < 1:
                raise ValueError(
                    f"MultiheadAttention: {name} must be a positive int, got {value!r}"
                )
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim {embed_dim} is not divisible by "
                f"num_heads {num_heads}"
            )
        if not (isinstance(dropout, numbers.Real) and 0 <= dropout < 1):
            raise ValueError(
                f"MultiheadAttention: dropout must be a probability in [0, 1), got "
                f"{dropout!r}"
            )
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.batch_first = bool(batch_first)
        self.dropout = dropout
        dtype = tg.get_default_dtype()
        self.in_proj_weight = init.xavier_uniform_(
            Parameter(np.zeros((self.embed_dim, 3 * self.embed_dim), dtype=dtype))
        )
        self.register_parameter("in_proj_bias", None)
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * self.embed_dim, dtype=dtype))
        self.out_proj = Linear(self.embed_dim, self.embed_dim, bias=bias)
        if bias:
            init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, block: int) -> Tensor:
        """x @ (query, key or value block of in_proj) + bias, split into heads:
        (batch, length, E) -> (batch, heads, length, head_dim)."""
        columns = slice(block * self.embed_dim, (block + 1) * self.embed_dim)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[columns]
        out = F.linear(x, self.in_proj_weight[:, columns], bias)
        batch, length = out.shape[0], out.shape[1]
        out = out.reshape(batch, length, self.num_heads, self.head_dim)
        return out.transpose(0, 2, 1, 3)

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        attn_mask: Any = None,
        need_weights: bool = True,
        is_causal: bool = False,
        key_padding_mask: Any = None,
        average_attn_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        query, key, value = (F._tensor(t) for t in (query, key, value))
        unbatched = query.ndim == 2
        if not (
            query.ndim in (2, 3)
            and key.ndim == value.ndim == query.ndim
            and query.shape[-1] == key.shape[-1] == value.shape[-1] == self.embed_dim
            and key.shape[:-1] == value.shape[:-1]
        ):
            raise ValueError(
                f"MultiheadAttention: expected query, key and value of shape "
                f"{'(batch, L, E)' if self.batch_first else '(L, batch, E)'} or "
                f"(L, E) with E = {self.embed_dim} and key, value of the same length, "
                f"got query {query.shape}, key {key.shape}, value {value.shape}"
            )
        if unbatched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (t.swapaxes(0, 1) for t in (query, key, value))
        if query.shape[0] != key.shape[0]:
            raise ValueError(
                f"MultiheadAttention: query and key have different batch sizes "
                f"{query.shape[0]} and {key.shape[0]}"
            )
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]
        mask = self._mask(
            attn_mask,
            key_padding_mask,
            is_causal,
            (batch, length, source),
            unbatched,
            query.dtype,
        )
        q, k, v = (self._project(t, i) for i, t in enumerate((query, key, value)))
        weights = F._attention_weights(q, k, mask, False, None, "MultiheadAttention")
        if self.dropout and self.training:
            weights = F.dropout(weights, self.dropout)
        heads = weights @ v  # (batch, heads, L, head_dim)
        out = self.out_proj(
            heads.transpose(0, 2, 1, 3).reshape(batch, length, self.embed_dim)
        )
        if not need_weights:
            weights = None
        elif average_attn_weights:
            weights = weights.mean(axis=1)
        if unbatched:
            out = out.squeeze(0)
            weights = None if weights is None else weights.squeeze(0)
        elif not self.batch_first:
            out = out.swapaxes(0, 1)
        return out, weights

    def _mask(
        self,
        attn_mask: Any,
        key_padding_mask: Any,
        is_causal: bool,
        sizes: tuple[int, int, int],
        unbatched: bool,
        dtype: np.dtype,
    ) -> Tensor | None:
        """attn_mask, key_padding_mask and the causal mask as one float mask that
        broadcasts to the scores (batch, heads, L, S); `sizes` is (batch, L, S)."""
        batch, length, source = sizes
        mask = _additive_mask(attn_mask, dtype, "attn_mask")
        if mask is not None:
            per_head = (batch * self.num_heads, length, source)
            if mask.shape == per_head:
                mask = mask.reshape(batch, self.num_heads, length, source)
            elif mask.shape != (length, source):
                raise ValueError(
                    f"MultiheadAttention: attn_mask must have shape (L, S) = "
                    f"{(length, source)} or (batch*heads, L, S) = {per_head}, got "
                    f"{mask.shape}"
                )
        padding = _additive_mask(key_padding_mask, dtype, "key_padding_mask")
        if padding is not None:
            expected = (source,) if unbatched else (batch, source)
            if padding.shape != expected:
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask must have shape (batch, S) "
                    f"= {expected}, got {padding.shape}"
                )
            padding = padding.reshape(batch, 1, 1, source)
            mask = padding if mask is None else mask + padding
        if is_causal:
            future = ~np.tril(np.ones((length, source), dtype=bool))
            causal = _additive_mask(future, dtype, "causal mask")
            mask = causal if mask is None else mask + causal
        return mask

    def extra_repr(self) -> str:
        text = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if not self.batch_first:
            text += ", batch_first=False"
        return text
