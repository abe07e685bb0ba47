"""End to end: real networks trained with nn + optim + data reach real accuracies."""

import time

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import DataLoader, digits, spirals, train_test_split


def train(model, X, y, epochs, lr, batch_size):
    opt = tg.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for xb, yb in DataLoader(X, y, batch_size=batch_size):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def accuracy(model, X, y):
    model.eval()
    with tg.no_grad():
        return float((model(tg.Tensor(X)).argmax(axis=1).numpy() == y).mean())


def test_mlp_with_adam_fits_spirals():
    tg.manual_seed(0)
    X, y = spirals(n_per_class=100, classes=3)
    model = nn.Sequential(
        nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)
    )
    start = time.perf_counter()
    train(model, X, y, epochs=150, lr=0.01, batch_size=32)
    elapsed = time.perf_counter() - start
    assert accuracy(model, X, y) >= 0.95
    assert elapsed < 30  # "within a few seconds" on an idle machine; generous for CI


def test_mlp_with_adam_classifies_held_out_digits():
    pytest.importorskip("sklearn", reason="digits() needs scikit-learn (extra 'data')")
    tg.manual_seed(0)
    X, y = digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.2)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    train(model, X_train, y_train, epochs=10, lr=0.005, batch_size=64)
    assert accuracy(model, X_test, y_test) >= 0.95


def test_trained_model_round_trips_through_save_and_load(tmp_path):
    tg.manual_seed(1)
    X, y = spirals(n_per_class=30, classes=2)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    train(model, X, y, epochs=5, lr=0.01, batch_size=16)
    tg.save(model.state_dict(), tmp_path / "model.npz")
    clone = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    clone.load_state_dict(tg.load(tmp_path / "model.npz"))
    with tg.no_grad():
        np.testing.assert_array_equal(
            model(tg.Tensor(X)).data, clone(tg.Tensor(X)).data
        )
