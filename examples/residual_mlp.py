"""A network of your own: a residual MLP Module with a custom loss, trained on spirals.

Shows what writing a model looks like: Modules nest (their parameters register
themselves), `forward` is ordinary Tensor code, and a loss is just a function of
Tensors, here a label-smoothed cross-entropy that nothing in the library provides.
Its gradient is checked with `tinygrad_bp.testing.gradcheck` before training.

    python examples/residual_mlp.py
    python examples/residual_mlp.py --quick    # or TINYGRAD_BP_QUICK=1
"""

from __future__ import annotations

import os
import sys

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import DataLoader, train_test_split
from tinygrad_bp.nn import functional as F
from tinygrad_bp.testing import gradcheck

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]


class ResidualBlock(nn.Module):
    """x + W2 gelu(LayerNorm(x) W1): a pre-norm residual block."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, hidden)
        self.project = nn.Linear(hidden, width)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return x + self.project(self.expand(self.norm(x)).gelu())


class ResidualMLP(nn.Module):
    """Linear embedding, `depth` residual blocks, LayerNorm, then a linear head."""

    def __init__(self, in_features: int, width: int, depth: int, classes: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(
            *[ResidualBlock(width, 2 * width) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return self.head(self.norm(self.blocks(self.embed(x))))


def label_smoothed_cross_entropy(
    logits: tg.Tensor, target: np.ndarray, smoothing: float = 0.1
) -> tg.Tensor:
    """Mean of (1 - s) * (-log p[target]) + s * mean_k(-log p[k]), p = softmax(logits).

    The target distribution puts 1 - s + s/K on the true class and s/K elsewhere,
    which keeps the logits from growing without bound.
    """
    log_p = logits.log_softmax(axis=-1)
    nll = -log_p[np.arange(len(target)), target]
    uniform = -log_p.mean(axis=-1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def check_loss() -> None:
    """The custom loss: right gradient, and plain cross-entropy when s = 0."""
    logits = tg.randn(5, 3, dtype=np.float64, requires_grad=True)
    target = np.array([0, 2, 1, 1, 0])
    assert gradcheck(lambda z: label_smoothed_cross_entropy(z, target), [logits])
    plain = label_smoothed_cross_entropy(logits, target, smoothing=0.0)
    assert np.isclose(plain.item(), F.cross_entropy(logits, target).item())
    print("label-smoothed cross-entropy: gradcheck passed")


def main() -> None:
    tg.manual_seed(0)
    check_loss()
    X, y = tg.data.spirals(n_per_class=60 if QUICK else 200, classes=3)
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    model = ResidualMLP(in_features=2, width=32, depth=2 if QUICK else 3, classes=3)
    print(model)
    print(f"{sum(p.data.size for p in model.parameters())} parameters")

    epochs = 8 if QUICK else 60
    optimizer = tg.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    schedule = tg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = DataLoader(X_train, y_train, batch_size=32)
    for epoch in range(1, epochs + 1):
        for xb, yb in loader:
            loss = label_smoothed_cross_entropy(model(xb), yb.numpy())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        if epoch % max(epochs // 5, 1) == 0:
            print(f"epoch {epoch:3d}  last batch loss {loss.item():.4f}")

    with tg.no_grad():
        predicted = model(tg.Tensor(X_test)).argmax(axis=1).numpy()
    print(f"test accuracy: {(predicted == y_test).mean():.3f}")


if __name__ == "__main__":
    main()
