"""A small convolutional network on scikit-learn's 8x8 handwritten digits.

Conv2d -> ReLU -> MaxPool2d twice, then a Linear layer: about 98% test accuracy
after 15 epochs (an MLP gets ~97%, see digits_classifier.py). Needs scikit-learn
(``pip install 'tinygrad_bp[data]'``); without it the script says so and exits cleanly.

    python examples/digits_cnn.py
    python examples/digits_cnn.py --quick    # or TINYGRAD_BP_QUICK=1: 500 images, 2 epochs
"""

from __future__ import annotations

import os
import sys

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import DataLoader, train_test_split
from tinygrad_bp.nn import functional as F

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1),  # (N, 32, 8, 8)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 32, 4, 4)
        nn.Conv2d(32, 64, kernel_size=3, padding=1),  # (N, 64, 4, 4)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 64, 2, 2)
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 10),
    )


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with tg.no_grad():
        return float((model(tg.Tensor(X)).argmax(axis=1).numpy() == y).mean())


def main() -> None:
    try:
        X, y = tg.data.digits()
    except ImportError as error:
        print(f"skipped: {error}")
        return
    X = X.reshape(-1, 1, 8, 8)  # NCHW: one grey channel per image
    if QUICK:
        X, y = X[:500], y[:500]
    tg.manual_seed(0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.2)
    model = make_model()
    epochs = 2 if QUICK else 15
    optimizer = tg.optim.Adam(model.parameters(), lr=3e-3)
    schedule = tg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = DataLoader(X_train, y_train, batch_size=32, shuffle=True)
    for epoch in range(1, epochs + 1):
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        schedule.step()
        print(
            f"epoch {epoch:2d}  loss {total / len(y_train):.4f}  "
            f"test accuracy {accuracy(model, X_test, y_test):.3f}"
        )
    print(f"test accuracy: {accuracy(model, X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
