"""The ``tinygrad-bp`` command (also ``python -m tinygrad_bp``).

One module per command, each adding its own subparser: ``train`` (an MLP, a CNN or a
small GPT from the ``models`` registry, on a built-in dataset), ``seed`` (the seed's
hand-derived gradients next to the generated ones) and ``graph`` (a computation graph
as DOT). Bad options exit with status 2 and one line on stderr, as argparse does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import tinygrad_bp as tg

from . import graph, seed, train
from ._common import UsageError

__all__ = ["build_parser", "main"]

PROG = "tinygrad-bp"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # Messages may quote multi-line text (a load error, say): keep it one line.
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the status.

    >>> from tinygrad_bp.cli import main
    >>> main(["seed", "--activation", "tanh"])  # doctest: +ELLIPSIS
    The seed's toy network: a[0] (4, 3) -> tanh -> ...
    largest absolute difference: ...
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        args.parser.error(str(error))
        raise  # unreachable: error() exits


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``tinygrad-bp`` and its subcommands.

    >>> from tinygrad_bp.cli import build_parser
    >>> args = build_parser().parse_args(["train", "--model", "gpt", "--quick"])
    >>> args.model, args.quick
    ('gpt', True)
    """
    parser = _Parser(
        prog=PROG,
        description="tinygrad_bp: a small NumPy autograd. Train a demo network, "
        "compare hand-written backprop with the generated pass, draw a graph.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {tg.__version__}"
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", required=True, parser_class=_Parser
    )
    for command in (train, seed, graph):
        command.add_parser(commands)
    return parser
