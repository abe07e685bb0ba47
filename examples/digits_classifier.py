"""Classify scikit-learn's 8x8 handwritten digits with an MLP, then save and reload it.

Needs scikit-learn (``pip install 'tinygrad_bp[data]'``); without it the script says so
and exits cleanly. About 97% test accuracy after 12 epochs.

    python examples/digits_classifier.py
    python examples/digits_classifier.py --quick    # or TINYGRAD_BP_QUICK=1: 500 images, 2 epochs
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import DataLoader, train_test_split
from tinygrad_bp.nn import functional as F

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10)
    )


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    model.eval()  # no dropout while measuring
    with tg.no_grad():
        predicted = model(tg.Tensor(X)).argmax(axis=1).numpy()
    model.train()
    return float((predicted == y).mean())


def main() -> None:
    try:
        X, y = tg.data.digits()
    except ImportError as error:
        print(f"skipped: {error}")
        return

    if QUICK:
        X, y = X[:500], y[:500]
    tg.manual_seed(0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.2)
    model = make_model()
    optimizer = tg.optim.Adam(model.parameters(), lr=3e-3)
    epochs = 2 if QUICK else 12
    loader = DataLoader(X_train, y_train, batch_size=64, shuffle=True)
    for epoch in range(1, epochs + 1):
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        print(
            f"epoch {epoch:2d}  loss {total / len(y_train):.4f}  "
            f"test accuracy {accuracy(model, X_test, y_test):.3f}"
        )

    # The weights round-trip through a pickle-free .npz file.
    path = os.path.join(tempfile.mkdtemp(), "digits.npz")
    tg.save(model.state_dict(), path)
    restored = make_model()
    restored.load_state_dict(tg.load(path))
    print(f"test accuracy: {accuracy(model, X_test, y_test):.3f}")
    print(f"reloaded from {path}: {accuracy(restored, X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
