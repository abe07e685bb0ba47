"""``tinygrad-bp graph``: the computation graph of the seed's toy network or a saved MLP."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp import seed as toy

from ._common import UsageError, hidden_sizes, writable_folder
from .models import ACTIVATIONS, DEFAULT_HIDDEN, build_mlp
from .seed import ACTIVATIONS as SEED_ACTIVATIONS


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``graph`` and its options on the subcommand action ``commands``."""
    parser = commands.add_parser(
        "graph",
        help="write a computation graph as DOT (and SVG/PNG with Graphviz)",
        description="Write the computation graph of the seed's toy network (or, with "
        "--model, of a saved MLP on a sample input) as Graphviz DOT.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("graph.dot"),
        help="DOT file to write (default: graph.dot)",
    )
    parser.add_argument(
        "--format",
        choices=("dot", "svg", "png"),
        default="dot",
        help="also render to this format next to --out (needs Graphviz)",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="model.npz written by train"
    )
    hidden_text = ",".join(map(str, DEFAULT_HIDDEN))
    parser.add_argument(
        "--hidden",
        type=hidden_sizes,
        default=DEFAULT_HIDDEN,
        metavar="N,N,...",
        help=f"hidden widths of --model (default: {hidden_text})",
    )
    parser.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default=None,
        help="default: sigmoid for the toy network, relu for --model",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(run=run, parser=parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the DOT file, and render it when asked and Graphviz is there."""
    from tinygrad_bp import viz

    if args.model is None:
        activation = args.activation or "sigmoid"
        if activation not in SEED_ACTIVATIONS:
            raise UsageError(
                f"--activation {activation} applies to --model; the seed's toy network "
                f"uses {' or '.join(SEED_ACTIVATIONS)}"
            )
        tensors = toy.toy_tensors(toy.toy_network(activation, args.seed))
        params = {**tensors, **toy.toy_forward(tensors, activation)}
        output = params["E"]
        what = "the seed's toy network and its loss E"
    else:
        output, params = _saved_mlp_output(args)
        what = f"{args.model} on a sample input"

    dot = viz.to_dot(output, params=params)
    writable_folder(args.out.resolve().parent, "--out")
    try:
        args.out.write_text(dot + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"--out {str(args.out)!r} cannot be written: {error.strerror}"
        ) from None
    print(f"wrote the graph of {what} to {args.out} ({dot.count(' [label=')} nodes)")
    if args.format == "dot":
        return 0
    picture = args.out.with_suffix(f".{args.format}")
    try:
        viz.draw(output, picture, params=params)
    except (ImportError, RuntimeError) as error:
        print(f"could not render {picture}: {error}")
        print(f"render it yourself with: dot -T{args.format} {args.out} -o {picture}")
        return 0
    print(f"wrote {picture}")
    return 0


def _saved_mlp_output(args: argparse.Namespace) -> tuple[tg.Tensor, nn.Module]:
    """Rebuild the MLP saved by ``train`` and run it on a random sample batch."""
    try:
        state = tg.load(args.model)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--model {str(args.model)!r} cannot be read: {error}"
        ) from None
    first, last = state.get("0.weight"), state.get(f"{2 * len(args.hidden)}.weight")
    if first is None or last is None:
        raise UsageError(
            f"--model {str(args.model)!r} does not hold an MLP with --hidden "
            f"{','.join(map(str, args.hidden))} (keys: {', '.join(sorted(state))})"
        )
    tg.manual_seed(args.seed)
    model = build_mlp(
        first.shape[0], args.hidden, last.shape[1], args.activation or "relu"
    )
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as error:
        message = str(error).strip("'\"")
        raise UsageError(
            f"--model {str(args.model)!r} does not match --hidden "
            f"{','.join(map(str, args.hidden))}: {message}"
        ) from None
    return model(tg.randn(4, first.shape[0])), model
