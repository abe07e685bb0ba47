"""The benchmark workloads and the one source of their initial weights and data.

Every contender starts from the arrays made here, so all of them do identical work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

LR = 0.01
SEED = 0


@dataclass(frozen=True)
class MLP:
    """A fully connected network trained by plain SGD; hidden layers use `activation`.

    The output layer is linear: `mse` is the seed's loss
    ``E = mean(sum(0.5 * (a - Y)**2, axis=1))`` and `ce` is mean softmax cross-entropy.
    """

    name: str
    batch: int
    sizes: tuple[int, ...]
    activation: str
    loss: str

    @property
    def label(self) -> str:
        arch = "→".join(str(s) for s in self.sizes)
        return (
            f"{self.name}: batch {self.batch}, {arch}, {self.activation}, {self.loss}"
        )


@dataclass(frozen=True)
class Chain:
    """A chain of `length` elementwise ops on a `size`-element leaf, then sum and backward.

    `ops` is one cycle of ``(kind, constant)`` pairs, repeated until `length` ops ran;
    kind is ``mul`` (x * c), ``add`` (x + c) or ``tanh``. Each step also takes one SGD
    step on the leaf, so the equal-loss check sees the gradient.
    """

    name: str
    size: int
    length: int
    ops: tuple[tuple[str, float], ...]

    def sequence(self) -> list[tuple[str, float]]:
        """The `length` ops in order, so no contender times the cycling arithmetic.

        >>> WORKLOADS["W5"].sequence()[2:4]
        [('tanh', 0.0), ('mul', 1.0001)]
        """
        return [self.ops[i % len(self.ops)] for i in range(self.length)]

    @property
    def label(self) -> str:
        kinds = ", ".join(k for k, _ in self.ops)
        return f"{self.name}: {self.length:,} ops ({kinds}) on {self.size} element(s)"


@dataclass(frozen=True)
class GPT:
    """A small character-level GPT trained by plain SGD on the corpus of `corpus()`.

    Token and position embeddings, `layers` pre-LayerNorm blocks (causal self-attention
    in `heads` heads from one qkv projection, then a tanh-GELU MLP of 4x the width),
    a final LayerNorm and an output head tied to the token embedding
    (logits = h @ tok_embᵀ); mean cross-entropy of the next character at every
    position of `batch` windows of `context` characters.
    """

    name: str
    batch: int
    context: int
    layers: int
    width: int
    heads: int

    @property
    def vocab(self) -> int:
        return len(vocabulary())

    @property
    def label(self) -> str:
        return (
            f"{self.name}: GPT, batch {self.batch}, context {self.context}, "
            f"{self.layers} layers, width {self.width}, {self.heads} heads, "
            f"vocabulary {self.vocab}"
        )


@functools.cache
def corpus() -> str:
    """The text of `tinygrad_bp.data.text()`, read from the same standard-library
    source here, so a contender's process imports no other library for it."""
    from pydoc_data.topics import topics

    return "".join(topics[name] for name in sorted(topics))


@functools.cache
def vocabulary() -> str:
    """The sorted distinct characters of the corpus: character i has id i."""
    return "".join(sorted(set(corpus())))


def corpus_ids() -> np.ndarray:
    """The corpus as int64 character ids (sorted vocabulary: ids follow code points)."""
    codes = np.frombuffer(corpus().encode("utf-32-le"), dtype=np.uint32)
    vocab = np.frombuffer(vocabulary().encode("utf-32-le"), dtype=np.uint32)
    return np.searchsorted(vocab, codes).astype(np.int64)


# tanh keeps W5 honest about unary ops that save their output; W6 avoids tanh because
# 30,000 tanh derivatives in a row underflow the gradient to denormals, whose slow
# arithmetic would then dominate the timing. Its multipliers multiply to ~1, so x and
# its gradient stay near their starting size over a million ops.
_W5_OPS = (("mul", 1.0001), ("add", 0.0001), ("tanh", 0.0))
_W6_OPS = (("mul", 1.0001), ("add", 0.0001), ("mul", 0.9999), ("add", -0.0001))

WORKLOADS: dict[str, MLP | Chain | GPT] = {
    w.name: w
    for w in (
        MLP("W1", 32, (2, 16, 16, 1), "tanh", "mse"),
        MLP("W2", 64, (64, 128, 10), "relu", "ce"),
        MLP("W3", 128, (784, 512, 256, 10), "relu", "ce"),
        MLP("W4", 256, (2048, 2048, 2048, 10), "relu", "ce"),
        Chain("W5", 16, 1_000, _W5_OPS),
        Chain("W6-100k", 1, 100_000, _W6_OPS),
        Chain("W6-1M", 1, 1_000_000, _W6_OPS),
        GPT("W7", batch=16, context=32, layers=2, width=64, heads=4),
    )
}
DEEP = ("W6-100k", "W6-1M")


@dataclass(frozen=True)
class Data:
    """Inputs and targets: `Y` is float32 (batch, out) for mse, int64 labels for ce."""

    X: np.ndarray
    Y: np.ndarray


def init_params(workload: MLP | Chain | GPT, seed: int = SEED) -> list[np.ndarray]:
    """Initial float32 parameters: PyTorch's Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    For an MLP the list is ``[w0, b0, w1, b1, ...]`` with ``w[l]`` of shape (in, out);
    for a chain it is the one leaf, drawn from U(-1, 1).

    >>> [p.shape for p in init_params(WORKLOADS["W1"])]
    [(2, 16), (16,), (16, 16), (16,), (16, 1), (1,)]
    """
    rng = np.random.default_rng(seed)
    if isinstance(workload, GPT):
        return gpt_params(workload, rng)
    if isinstance(workload, Chain):
        return [rng.uniform(-1.0, 1.0, workload.size).astype(np.float32)]
    params = []
    for fan_in, fan_out in zip(workload.sizes[:-1], workload.sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return params


GPT_BLOCK = (
    "ln1.weight",
    "ln1.bias",
    "qkv.weight",
    "qkv.bias",
    "proj.weight",
    "proj.bias",
    "ln2.weight",
    "ln2.bias",
    "fc.weight",
    "fc.bias",
    "out.weight",
    "out.bias",
)


def gpt_param_names(workload: GPT) -> list[str]:
    """The names of `init_params(gpt)`'s arrays, in order.

    >>> gpt_param_names(WORKLOADS["W7"])[:4]
    ['tok_emb', 'pos_emb', 'blocks.0.ln1.weight', 'blocks.0.ln1.bias']
    """
    blocks = [f"blocks.{i}.{n}" for i in range(workload.layers) for n in GPT_BLOCK]
    return ["tok_emb", "pos_emb", *blocks, "ln.weight", "ln.bias"]


def gpt_params(workload: GPT, rng: np.random.Generator) -> list[np.ndarray]:
    """Embeddings N(0, 0.02²), LayerNorms 1 and 0, Linear layers as PyTorch's init;
    matrices in our (in, out) layout (PyTorch's Linear holds the transpose)."""
    E = workload.width
    params = [
        rng.normal(0.0, 0.02, (workload.vocab, E)).astype(np.float32),
        rng.normal(0.0, 0.02, (workload.context, E)).astype(np.float32),
    ]

    def linear(fan_in: int, fan_out: int) -> list[np.ndarray]:
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
        return [w, rng.uniform(-bound, bound, fan_out).astype(np.float32)]

    def norm() -> list[np.ndarray]:
        return [np.ones(E, np.float32), np.zeros(E, np.float32)]

    for _ in range(workload.layers):
        params += norm() + linear(E, 3 * E) + linear(E, E)
        params += norm() + linear(E, 4 * E) + linear(4 * E, E)
    return params + norm()


def make_data(workload: MLP | GPT, seed: int = SEED) -> Data:
    """One fixed batch: standard-normal inputs, and targets the loss can fit.

    >>> d = make_data(WORKLOADS["W2"])
    >>> d.X.shape, d.X.dtype, d.Y.shape, int(d.Y.max()) < 10
    ((64, 64), dtype('float32'), (64,), True)
    """
    # A different stream from init_params, so data and weights are not correlated.
    rng = np.random.default_rng(seed + 1)
    if isinstance(workload, GPT):
        # `batch` windows of the corpus; Y[t] is the character after X[t]
        ids = corpus_ids()
        starts = rng.integers(0, len(ids) - workload.context - 1, workload.batch)
        rows = starts[:, None] + np.arange(workload.context)
        return Data(ids[rows], ids[rows + 1])
    n_in, n_out = workload.sizes[0], workload.sizes[-1]
    X = rng.standard_normal((workload.batch, n_in)).astype(np.float32)
    if workload.loss == "mse":
        Y = np.sin(X.sum(axis=1, keepdims=True) * np.ones((1, n_out), np.float32))
        return Data(X, Y.astype(np.float32))
    return Data(X, rng.integers(0, n_out, workload.batch).astype(np.int64))
