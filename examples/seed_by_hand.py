"""The seed's backprop written by hand for any depth, next to tinygrad_bp's generated pass.

The seed document (see SEED.md) derives, for a fully connected network in the
row-batch layout ``z[l] = a[l] @ w[l] + b[l]``, ``a[l+1] = f[l](z[l])`` and the loss
``E = mean(sum(0.5 * (a[L] - Y)**2, axis=1))``, the per-layer backward pass

    d[L-1] = dE/da[L] * f'[L-1](z[L-1])            with dE/da[L] = (a[L] - Y) / N
    d[i]   = (d[i+1] @ w[i+1].T) * f'[i](z[i])     for i = L-2 ... 0
    dw[i]  = a[i].T @ d[i]
    db[i]  = d[i].sum(axis=0)

`backprop_by_hand` applies exactly those lines, coded in NumPy in
``tinygrad_bp.seed.backward_by_hand``, to a network of three layers with a different
activation in each. `backprop_generated` writes only the forward pass
with Tensors and calls ``backward()``: the chain rule is applied for it. Both train the
same network on the spirals by plain gradient descent; at every step the two gradients
are compared.

    python examples/seed_by_hand.py            # 400 steps
    python examples/seed_by_hand.py --quick    # or TINYGRAD_BP_QUICK=1: 20 steps
"""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import seed

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]


# The hand-derived formulas live in tinygrad_bp.seed, the one copy that the tutorial,
# `tinygrad-bp seed` and the tests use too; each activation is a pair (f, f').
TENSOR_ACTIVATIONS = {
    "tanh": tg.Tensor.tanh,
    "relu": tg.Tensor.relu,
    "sigmoid": tg.Tensor.sigmoid,
}
SIZES = [2, 32, 32, 3]
LAYER_ACTIVATIONS = ["tanh", "relu", "sigmoid"]  # f[0], f[1], f[2]
F = [seed.ACTIVATIONS[name] for name in LAYER_ACTIVATIONS]


def backprop_by_hand(
    w: list[np.ndarray], b: list[np.ndarray], X: np.ndarray, Y: np.ndarray
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """The seed's loss and gradients, every layer's formula written out by hand."""
    a, z = seed.forward_by_hand(X, w, b, F)
    _, dw, db = seed.backward_by_hand(a, z, w, F, Y)
    return seed.seed_loss(a[-1], Y), dw, db


def backprop_generated(
    w: list[np.ndarray], b: list[np.ndarray], X: np.ndarray, Y: np.ndarray
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """The same loss and gradients: the forward pass only, then backward()."""
    w_t = [tg.Tensor(w_l, requires_grad=True) for w_l in w]
    b_t = [tg.Tensor(b_l, requires_grad=True) for b_l in b]
    a = tg.Tensor(X)
    for w_l, b_l, name in zip(w_t, b_t, LAYER_ACTIVATIONS):
        a = TENSOR_ACTIVATIONS[name](a @ w_l + b_l)
    E = (0.5 * (a - Y) ** 2).sum(axis=1).mean(axis=0)
    E.backward()
    return E.item(), [t.grad.numpy() for t in w_t], [t.grad.numpy() for t in b_t]


def main() -> None:
    tg.manual_seed(0)
    rng = tg.get_rng()
    X, labels = tg.data.spirals(n_per_class=40 if QUICK else 100, classes=3)
    X = X.astype(np.float64)
    Y = np.eye(3)[labels]  # one-hot targets for the seed's squared error
    w = [rng.normal(0, 1 / np.sqrt(m), (m, n)) for m, n in itertools.pairwise(SIZES)]
    b = [np.zeros(n) for n in SIZES[1:]]

    steps, lr = (20, 2.0) if QUICK else (400, 2.0)
    largest = 0.0
    print(
        f"network {SIZES} with activations {LAYER_ACTIVATIONS}, "
        f"{len(X)} samples, {steps} steps of gradient descent"
    )
    for step in range(1, steps + 1):
        E_hand, dw_hand, db_hand = backprop_by_hand(w, b, X, Y)
        E_gen, dw_gen, db_gen = backprop_generated(w, b, X, Y)
        differences = [abs(E_hand - E_gen)]
        differences += [
            np.abs(h - g).max() for h, g in zip(dw_hand + db_hand, dw_gen + db_gen)
        ]
        largest = max(largest, *differences)
        if step == 1 or step % max(steps // 5, 1) == 0:
            print(f"step {step:4d}  E by hand {E_hand:.6f}  generated {E_gen:.6f}")
        for i in range(len(w)):
            w[i] = w[i] - lr * dw_hand[i]
            b[i] = b[i] - lr * db_hand[i]

    a, _ = seed.forward_by_hand(X, w, b, F)
    accuracy = float((a[-1].argmax(axis=1) == labels).mean())
    print(f"training accuracy after {steps} steps: {accuracy:.3f}")
    print(
        f"largest difference between hand-written and generated gradients: {largest:.2e}"
    )
    if largest > 1e-9:
        sys.exit("the two backward passes disagree")


if __name__ == "__main__":
    main()
