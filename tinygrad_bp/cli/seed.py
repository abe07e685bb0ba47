"""``tinygrad-bp seed``: the seed's toy network, hand-derived vs generated gradients."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from tinygrad_bp import seed as toy

ACTIVATIONS = ("sigmoid", "tanh")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``seed`` and its options on the subcommand action ``commands``."""
    parser = commands.add_parser(
        "seed",
        help="the seed's toy network: hand-written backprop vs the generated pass",
        description="Compute the gradients of the seed document's one-hidden-layer "
        "network with its four hand-derived formulas and with tinygrad_bp's "
        "generated backward pass, and print them side by side.",
    )
    parser.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default="sigmoid",
        help="f of both layers (default: sigmoid)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--source",
        action="store_true",
        help="also print the flat NumPy program tinygrad_bp.compile generates for "
        "the network's whole training step (forward, backward, SGD)",
    )
    parser.set_defaults(run=run, parser=parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the loss and every gradient element both ways, and their largest gap."""
    arrays = toy.toy_network(args.activation, args.seed)
    loss_by_hand, by_hand = toy.toy_gradients_by_hand(arrays, args.activation)
    tensors = toy.toy_tensors(arrays)
    loss = toy.toy_forward(tensors, args.activation)["E"]
    loss.backward()

    f = args.activation
    print(
        f"The seed's toy network: a[0] (4, 3) -> {f} -> a[1] (4, 4) -> {f} -> a[2] (4, 2), "
        "E = mean(sum(0.5*(a[2] - Y)**2, axis=1)), float64"
    )
    print(f"loss E: by hand {loss_by_hand:.15f}, generated {loss.item():.15f}")
    print(
        f"{'gradient':<12}{'by hand (seed formulas)':>26}{'generated (backward)':>26}{'|difference|':>14}"
    )
    largest = 0.0
    for name in toy.TOY_PARAMETERS:
        generated = tensors[name].grad.numpy()
        for index in np.ndindex(generated.shape):
            difference = abs(by_hand[name][index] - generated[index])
            largest = max(largest, difference)
            label = f"d{name}[{', '.join(map(str, index))}]"
            print(
                f"{label:<12}{by_hand[name][index]:>26.15f}{generated[index]:>26.15f}{difference:>14.1e}"
            )
    print(f"largest absolute difference: {largest:.3e}")
    if args.source:
        _print_source(arrays, args.activation)
    return 0


def _print_source(arrays: dict[str, np.ndarray], activation: str) -> None:
    """The seed's formulas, then the compiled training step that replaces them."""
    step, _ = toy.toy_compiled_step(arrays, activation)
    step(arrays["a[0]"], arrays["Y"])  # traces
    print()
    print("The seed's hand-derived formulas (L = 2, d[i] = dE/dz[i]):")
    print("    d[1]  = (a[2] - Y) / N * f'(z[1])")
    print("    d[0]  = (d[1] @ w[1].T) * f'(z[0])")
    print("    dw[i] = a[i].T @ d[i];  db[i] = d[i].sum(axis=0);  w[i] -= lr * dw[i]")
    print()
    print("The training step under tinygrad_bp.compile, as the program it generates:")
    print(step.source, end="")
