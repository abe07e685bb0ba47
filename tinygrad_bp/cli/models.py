"""The models ``tinygrad-bp train`` can build: ``MODELS`` maps a name to its builder.

Each builder takes the parsed options and what the data says (``features``,
``classes``, ``image_shape``, ``vocab_size``) and returns a fresh ``nn.Module``. They
are written with the public API only, the way a user would write them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "GPT",
    "MODELS",
    "Block",
    "CausalSelfAttention",
    "build_cnn",
    "build_mlp",
    "generate",
]

DEFAULT_HIDDEN = (64, 64)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


def build_mlp(
    in_features: int, hidden: Sequence[int], classes: int, activation: str = "relu"
) -> nn.Sequential:
    """Linear -> activation for each hidden width, then a Linear to ``classes`` logits.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.cli.models import build_mlp
    >>> _ = tg.manual_seed(0)
    >>> model = build_mlp(2, [8, 8], 3, "tanh")
    >>> [name for name, _ in model.named_parameters()][-2:], model(tg.ones(5, 2)).shape
    (['4.weight', '4.bias'], (5, 3))
    """
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def build_cnn(
    image_shape: tuple[int, int, int], classes: int, channels: int = 32
) -> nn.Sequential:
    """Two 3x3 convolutions (``channels``, then twice as many), each with ReLU and 2x2
    max pooling, then a Linear to ``classes`` logits, for NCHW images.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.cli.models import build_cnn
    >>> _ = tg.manual_seed(0)
    >>> build_cnn((1, 8, 8), 10)(tg.zeros(5, 1, 8, 8)).shape
    (5, 10)
    """
    depth, height, width = image_shape
    if height < 4 or width < 4:
        raise ValueError(f"build_cnn: images must be at least 4x4, got {image_shape}")
    flat = 2 * channels * (height // 4) * (width // 4)
    return nn.Sequential(
        nn.Conv2d(depth, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, classes),
    )


# ------------------------------------------------------------------------- GPT
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions 0..t only.

    softmax(q kᵀ / √d, masked above the diagonal) v per head, the heads joined
    and projected: written with Tensor operations, a NumPy mask and ``tg.where``.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.cli.models import CausalSelfAttention
    >>> _ = tg.manual_seed(0)
    >>> CausalSelfAttention(8, heads=2)(tg.randn(3, 5, 8)).shape
    (3, 5, 8)
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(
                f"CausalSelfAttention: dim {dim} is not a multiple of heads {heads}"
            )
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        batch, time, dim = x.shape
        head_dim = dim // self.heads
        # (batch, time, 3, heads, head_dim) -> three of (batch, heads, time, head_dim)
        qkv = self.qkv(x).reshape(batch, time, 3, self.heads, head_dim)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(head_dim))
        future = np.triu(np.ones((time, time), dtype=bool), k=1)
        weights = tg.where(future, -1e9, scores).softmax(axis=-1)
        out = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, time, dim)
        return self.proj(out)


class Block(nn.Module):
    """A pre-LayerNorm transformer block: x + attention(norm(x)), then x + MLP(norm(x)),
    the MLP Linear(dim, 4 dim) -> GELU -> Linear(4 dim, dim).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.cli.models import Block
    >>> _ = tg.manual_seed(0)
    >>> Block(8, heads=2)(tg.randn(3, 5, 8)).shape
    (3, 5, 8)
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.out(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    """A small causal transformer over token ids: logits for the next token at every
    position, shape (batch, time, vocab_size).

    Token and position embeddings (N(0, 0.02²)), ``layers`` pre-LayerNorm ``Block``s,
    a final LayerNorm and an output head tied to the token embedding (logits =
    h @ embeddingᵀ). Sequences may be up to ``block_size`` long.

    >>> import numpy as np, tinygrad_bp as tg
    >>> from tinygrad_bp.cli.models import GPT
    >>> _ = tg.manual_seed(0)
    >>> model = GPT(vocab_size=11, block_size=8, dim=16, heads=2, layers=1)
    >>> model(np.zeros((3, 5), dtype=np.int64)).shape
    (3, 5, 11)
    """

    def __init__(
        self, vocab_size: int, block_size: int, dim: int, heads: int, layers: int
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.token = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(block_size, dim)
        for table in (self.token.weight, self.position.weight):
            nn.init.normal_(table, 0.0, 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: tg.Tensor | np.ndarray) -> tg.Tensor:
        time = ids.shape[-1]
        if time > self.block_size:
            raise ValueError(
                f"GPT: sequences of {time} tokens are longer than block_size "
                f"{self.block_size}"
            )
        x = self.token(ids) + self.position(np.arange(time))
        return self.norm(self.blocks(x)) @ self.token.weight.T

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on the matrices (weights, embeddings), none on biases and
        LayerNorm parameters."""
        params = list(self.parameters())
        return [
            {
                "params": [p for p in params if p.ndim >= 2],
                "weight_decay": weight_decay,
            },
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]


def generate(
    model: GPT,
    prompt: Sequence[int] | np.ndarray,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> np.ndarray:
    """Extend ``prompt`` by ``length`` sampled tokens; returns prompt and sample ids.

    Each next token is drawn from softmax(logits / temperature) restricted to the
    ``top_k`` most likely tokens, with the library's one generator (so
    ``tg.manual_seed`` fixes the sample); the model sees the last ``block_size``
    tokens.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.cli.models import GPT, generate
    >>> _ = tg.manual_seed(0)
    >>> model = GPT(vocab_size=5, block_size=4, dim=8, heads=2, layers=1)
    >>> ids = generate(model, [1, 2], length=6, temperature=0.8, top_k=3)
    >>> ids.shape, ids[:2].tolist(), bool(((0 <= ids) & (ids < 5)).all())
    ((8,), [1, 2], True)
    """
    if not temperature > 0:
        raise ValueError(f"generate: temperature must be > 0, got {temperature!r}")
    ids = [int(i) for i in np.asarray(prompt).reshape(-1)]
    if not ids:
        raise ValueError("generate: the prompt needs at least one token")
    rng = tg.get_rng()
    was_training = model.training
    model.eval()
    with tg.no_grad():
        for _ in range(length):
            context = np.array([ids[-model.block_size :]], dtype=np.int64)
            logits = model(context).numpy()[0, -1].astype(np.float64) / temperature
            if top_k is not None and top_k < len(logits):
                cutoff = np.partition(logits, -top_k)[-top_k]
                logits = np.where(logits < cutoff, -np.inf, logits)
            probs = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(probs), p=probs / probs.sum())))
    model.train(was_training)
    return np.array(ids, dtype=np.int64)


# --------------------------------------------------------------------- registry
def _mlp(args: argparse.Namespace, data: dict[str, int]) -> nn.Module:
    return build_mlp(data["features"], args.hidden, data["classes"], args.activation)


def _cnn(args: argparse.Namespace, data: dict) -> nn.Module:
    return build_cnn(data["image_shape"], data["classes"], args.channels)


def _gpt(args: argparse.Namespace, data: dict) -> nn.Module:
    return GPT(data["vocab_size"], args.block_size, args.dim, args.heads, args.layers)


MODELS: dict[str, Callable[[argparse.Namespace, dict], nn.Module]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "gpt": _gpt,
}
