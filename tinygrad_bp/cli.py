"""The ``tinygrad-bp`` command (also ``python -m tinygrad_bp``).

- ``train``: fit an MLP on a built-in dataset, print the accuracies and write the
  metrics, the weights and (with the ``demo`` extra) pictures to ``--out``.
- ``seed``: the seed document's toy network, its gradients computed by the four
  hand-derived backprop formulas and by tinygrad_bp's generated pass, side by side.
- ``graph``: the computation graph of that toy network, or of a saved MLP, as DOT
  (and SVG/PNG where Graphviz is installed).

Bad options exit with status 2 and one line on stderr, as argparse does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import DataLoader, train_test_split
from tinygrad_bp.nn import functional as F

__all__ = ["build_mlp", "build_parser", "main", "seed_gradients_by_hand"]

PROG = "tinygrad-bp"
DEMO_HINT = "pip install 'tinygrad_bp[demo]'"
DATA_HINT = "pip install 'tinygrad_bp[data]'"

# Defaults measured on a 2-core machine: spirals reaches 99% test accuracy in ~3 s.
DEFAULT_HIDDEN = (64, 64)
_HIDDEN_TEXT = ",".join(map(str, DEFAULT_HIDDEN))
DEFAULT_EPOCHS = 60
DEFAULT_BATCH_SIZE = 32
DEFAULT_LR = {"adam": 0.01, "sgd": 0.1}
QUICK_EPOCHS = 20

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}
TRAIN_ACTIVATIONS = ("relu", "tanh", "gelu")
SEED_ACTIVATIONS = ("sigmoid", "tanh")


class _UsageError(Exception):
    """A bad option found after parsing; reported like argparse's own errors."""


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
    except _UsageError as error:
        args.parser.error(str(error))
        raise  # unreachable: error() exits


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``tinygrad-bp`` and its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="tinygrad_bp: a small NumPy autograd. Train a demo network, "
        "compare hand-written backprop with the generated pass, draw a graph.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {tg.__version__}"
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train an MLP on a built-in dataset",
        description="Train an MLP classifier on a built-in dataset, hold out 20% for "
        "testing, and write metrics.json, model.npz and (with the demo extra) "
        "loss.png and decision_boundary.png to --out.",
    )
    train.add_argument(
        "--dataset",
        choices=("spirals", "moons", "digits"),
        default="spirals",
        help="spirals (3 classes) and moons are 2-D; digits needs scikit-learn "
        "(default: spirals)",
    )
    train.add_argument(
        "--hidden",
        type=_hidden_sizes,
        default=DEFAULT_HIDDEN,
        metavar="N,N,...",
        help=f"hidden layer widths (default: {_HIDDEN_TEXT})",
    )
    train.add_argument(
        "--activation",
        choices=TRAIN_ACTIVATIONS,
        default="relu",
        help="(default: relu)",
    )
    train.add_argument(
        "--optimizer", choices=("adam", "sgd"), default="adam", help="(default: adam)"
    )
    train.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="learning rate (default: 0.01 for adam, 0.1 for sgd with momentum 0.9)",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"passes over the data (default: {DEFAULT_EPOCHS}, {QUICK_EPOCHS} with --quick)",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"samples per step (default: {DEFAULT_BATCH_SIZE})",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: runs/<timestamp>)",
    )
    train.add_argument(
        "--quick", action="store_true", help="few epochs on a small sample (tests, CI)"
    )
    train.set_defaults(run=_train, parser=train)

    seed = commands.add_parser(
        "seed",
        help="the seed's toy network: hand-written backprop vs the generated pass",
        description="Compute the gradients of the seed document's one-hidden-layer "
        "network with its four hand-derived formulas and with tinygrad_bp's "
        "generated backward pass, and print them side by side.",
    )
    seed.add_argument(
        "--activation",
        choices=SEED_ACTIVATIONS,
        default="sigmoid",
        help="f of both layers (default: sigmoid)",
    )
    seed.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    seed.set_defaults(run=_seed, parser=seed)

    graph = commands.add_parser(
        "graph",
        help="write a computation graph as DOT (and SVG/PNG with Graphviz)",
        description="Write the computation graph of the seed's toy network (or, with "
        "--model, of a saved MLP on a sample input) as Graphviz DOT.",
    )
    graph.add_argument(
        "--out",
        type=Path,
        default=Path("graph.dot"),
        help="DOT file to write (default: graph.dot)",
    )
    graph.add_argument(
        "--format",
        choices=("dot", "svg", "png"),
        default="dot",
        help="also render to this format next to --out (needs Graphviz)",
    )
    graph.add_argument(
        "--model", type=Path, default=None, help="model.npz written by train"
    )
    graph.add_argument(
        "--hidden",
        type=_hidden_sizes,
        default=DEFAULT_HIDDEN,
        metavar="N,N,...",
        help=f"hidden widths of --model (default: {_HIDDEN_TEXT})",
    )
    graph.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default=None,
        help="default: sigmoid for the toy network, relu for --model",
    )
    graph.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    graph.set_defaults(run=_graph, parser=graph)
    return parser


def build_mlp(
    in_features: int, hidden: Sequence[int], classes: int, activation: str = "relu"
) -> nn.Sequential:
    """Linear -> activation for each hidden width, then a Linear to ``classes`` logits.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.cli import build_mlp
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


# ------------------------------------------------------------------ option types
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, got {text!r}"
        ) from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 64,64, got {text!r}"
        )
    return sizes


def _writable_folder(path: Path, option: str) -> Path:
    """Create ``path`` (and its parents) or say why it cannot be written to."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _UsageError(
            f"{option} {str(path)!r} cannot be created: {error.strerror}"
        ) from None
    if not os.access(path, os.W_OK):
        raise _UsageError(f"{option} {str(path)!r} is not writable")
    return path


# ------------------------------------------------------------------------ train
def _load_dataset(name: str, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    if name == "spirals":
        return tg.data.spirals(n_per_class=50 if quick else 200, classes=3)
    if name == "moons":
        return tg.data.moons(n=150 if quick else 600)
    try:
        X, y = tg.data.digits()
    except ImportError:
        raise _UsageError(f"--dataset digits needs scikit-learn: {DATA_HINT}") from None
    return (X[:300], y[:300]) if quick else (X, y)


def _accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with tg.no_grad():
        predicted = model(tg.Tensor(X)).argmax(axis=1).numpy()
    return float((predicted == y).mean())


class _Progress:
    """A tqdm bar over epochs when tqdm is installed, else one printed line per epoch."""

    def __init__(self, epochs: int, tqdm: Any) -> None:
        self.epochs = epochs
        self.bar = tqdm(total=epochs, desc="train", unit="epoch") if tqdm else None

    def update(
        self, epoch: int, loss: float, accuracy: float, test_accuracy: float
    ) -> None:
        if self.bar is None:
            print(
                f"epoch {epoch}/{self.epochs}  loss {loss:.4f}  "
                f"accuracy {accuracy:.3f}  test accuracy {test_accuracy:.3f}",
                flush=True,
            )
            return
        postfix = {
            "loss": f"{loss:.4f}",
            "acc": f"{accuracy:.3f}",
            "test_acc": f"{test_accuracy:.3f}",
        }
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _optional_tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _optional_matplotlib() -> Any:
    """matplotlib's Figure class drawn with the Agg canvas, or None without matplotlib."""
    try:
        import matplotlib  # noqa: F401  (fails first when matplotlib is missing)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None

    def new_figure(**kwargs: Any) -> Any:
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)  # Agg, whatever the user's default backend is
        return figure

    return new_figure


def _train(args: argparse.Namespace) -> int:
    tg.manual_seed(args.seed)
    X, y = _load_dataset(args.dataset, args.quick)
    out = _writable_folder(
        args.out or Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S"),
        "--out",
    )
    options = {
        "dataset": args.dataset,
        "hidden": list(args.hidden),
        "activation": args.activation,
        "optimizer": args.optimizer,
        "lr": args.lr or DEFAULT_LR[args.optimizer],
        "epochs": args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS),
        "batch_size": args.batch_size,
        "seed": args.seed,
        "quick": args.quick,
    }
    tqdm, new_figure = _optional_tqdm(), _optional_matplotlib()
    missing = [
        name
        for name, found in (("tqdm", tqdm), ("matplotlib", new_figure))
        if found is None
    ]
    if missing:
        print(
            f"note: {' and '.join(missing)} not installed, so no progress bar or "
            f"pictures (loss.png, decision_boundary.png); {DEMO_HINT} adds them",
            flush=True,
        )

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.2)
    classes = int(y.max()) + 1
    model = build_mlp(X.shape[1], args.hidden, classes, args.activation)
    start = time.perf_counter()
    history = _fit(model, options, (X_train, y_train), (X_test, y_test), tqdm)
    seconds = time.perf_counter() - start
    train_accuracy = _accuracy(model, X_train, y_train)
    test_accuracy = _accuracy(model, X_test, y_test)
    print(f"final train accuracy {train_accuracy:.4f}")
    print(f"final test accuracy {test_accuracy:.4f}")

    metrics = {
        "options": options,
        "samples": {"train": len(y_train), "test": len(y_test), "classes": classes},
        # train_accuracy per epoch is counted over the epoch's batches as they go
        "history": history,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": round(seconds, 3),  # the training loop, without data and plots
        "tinygrad_bp_version": tg.__version__,
    }
    (out / "metrics.json").write_text(
        json.dumps(metrics, indent=2) + "\n", encoding="utf-8"
    )
    tg.save(model.state_dict(), out / "model.npz")
    written = ["metrics.json", "model.npz"]
    if new_figure is not None:
        _plot_history(new_figure, history, out / "loss.png")
        written.append("loss.png")
        if X.shape[1] == 2:
            title = f"{args.dataset}: test accuracy {test_accuracy:.1%}"
            _plot_decision_boundary(
                new_figure, model, X, y, title, out / "decision_boundary.png"
            )
            written.append("decision_boundary.png")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


def _fit(
    model: nn.Module,
    options: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    tqdm: Any,
) -> dict[str, list[float]]:
    """Minimise the cross-entropy; per epoch: mean loss, train and test accuracy."""
    if options["optimizer"] == "adam":
        optimizer = tg.optim.Adam(model.parameters(), lr=options["lr"])
    else:
        optimizer = tg.optim.SGD(model.parameters(), lr=options["lr"], momentum=0.9)
    loader = DataLoader(*train, batch_size=options["batch_size"], shuffle=True)
    epochs = options["epochs"]
    history: dict[str, list[float]] = {
        "epoch": [],
        "loss": [],
        "train_accuracy": [],
        "test_accuracy": [],
    }
    progress = _Progress(epochs, tqdm)
    for epoch in range(1, epochs + 1):
        total_loss, correct = 0.0, 0
        for xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(yb)
            correct += int((logits.argmax(axis=1).numpy() == yb.numpy()).sum())
        history["epoch"].append(epoch)
        history["loss"].append(total_loss / len(train[1]))
        history["train_accuracy"].append(correct / len(train[1]))
        history["test_accuracy"].append(_accuracy(model, *test))
        progress.update(
            epoch,
            history["loss"][-1],
            history["train_accuracy"][-1],
            history["test_accuracy"][-1],
        )
    progress.close()
    return history


def _plot_history(new_figure: Any, history: dict[str, list[float]], path: Path) -> None:
    figure = new_figure(figsize=(9, 3.5), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = history["epoch"]
    loss_axes.plot(epochs, history["loss"])
    loss_axes.set(title="training loss (cross-entropy)", xlabel="epoch", yscale="log")
    accuracy_axes.plot(epochs, history["train_accuracy"], label="train")
    accuracy_axes.plot(epochs, history["test_accuracy"], label="test")
    accuracy_axes.set(title="accuracy", xlabel="epoch", ylim=(0, 1.02))
    accuracy_axes.legend(loc="lower right")
    figure.savefig(path, dpi=100)


def _plot_decision_boundary(
    new_figure: Any,
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    title: str,
    path: Path,
) -> None:
    low, high = X.min(axis=0) - 0.3, X.max(axis=0) + 0.3
    xs, ys = np.meshgrid(
        np.linspace(low[0], high[0], 200), np.linspace(low[1], high[1], 200)
    )
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(X.dtype)
    with tg.no_grad():
        regions = model(tg.Tensor(grid)).argmax(axis=1).numpy().reshape(xs.shape)
    figure = new_figure(figsize=(5, 5), layout="constrained")
    axes = figure.subplots()
    classes = int(y.max()) + 1
    levels = np.arange(classes + 1) - 0.5
    axes.contourf(
        xs, ys, regions, levels=levels, cmap="tab10", vmin=0, vmax=9, alpha=0.3
    )
    axes.scatter(
        X[:, 0],
        X[:, 1],
        c=y,
        cmap="tab10",
        vmin=0,
        vmax=9,
        s=10,
        edgecolors="k",
        linewidths=0.3,
    )
    axes.set(title=title, aspect="equal")
    figure.savefig(path, dpi=100)


# ------------------------------------------------------------------------- seed
def _seed_network(activation: str, seed: int) -> dict[str, np.ndarray]:
    """Input, target and parameters of the seed's toy network (float64 arrays).

    a[0] is 4 samples of 3 features, the hidden layer has 4 units, the output 2.
    """
    tg.manual_seed(seed)
    rng = tg.get_rng()
    low, high = (0.0, 1.0) if activation == "sigmoid" else (-0.9, 0.9)
    return {
        "a[0]": rng.standard_normal((4, 3)),
        "Y": rng.uniform(low, high, size=(4, 2)),
        "w[0]": rng.standard_normal((3, 4)),
        "b[0]": rng.standard_normal(4),
        "w[1]": rng.standard_normal((4, 2)),
        "b[1]": rng.standard_normal(2),
    }


SEED_PARAMETERS = ("w[0]", "b[0]", "w[1]", "b[1]")


def _seed_forward(t: dict[str, tg.Tensor], activation: str) -> dict[str, tg.Tensor]:
    """The seed's forward pass, recorded, with its names: z[0], a[1], z[1], a[2] and E.

    E = mean(sum(0.5 * (a[2] - Y)**2, axis=1)), the seed's loss.
    """
    f = tg.Tensor.sigmoid if activation == "sigmoid" else tg.Tensor.tanh
    z0 = t["a[0]"] @ t["w[0]"] + t["b[0]"]
    a1 = f(z0)
    z1 = a1 @ t["w[1]"] + t["b[1]"]
    a2 = f(z1)
    E = (0.5 * (a2 - t["Y"]) ** 2).sum(axis=1).mean(axis=0)
    return {"z[0]": z0, "a[1]": a1, "z[1]": z1, "a[2]": a2, "E": E}


def _seed_tensors(arrays: dict[str, np.ndarray]) -> dict[str, tg.Tensor]:
    return {
        name: tg.Tensor(array, requires_grad=name in SEED_PARAMETERS)
        for name, array in arrays.items()
    }


def seed_gradients_by_hand(
    arrays: dict[str, np.ndarray], activation: str
) -> tuple[float, dict[str, np.ndarray]]:
    """The seed's loss and its four per-layer backprop formulas, in NumPy (L = 2).

    d[1] = dE/da[2] * f'(z[1]);  d[0] = (d[1] @ w[1].T) * f'(z[0]);
    dw[i] = a[i].T @ d[i];  db[i] = d[i].sum(axis=0), with dE/da[2] = (a[2] - Y) / N.

    ``arrays`` holds "a[0]", "Y", "w[0]", "b[0]", "w[1]", "b[1]"; ``activation`` is
    "sigmoid" or "tanh" (both layers). Returns E and the gradients by parameter name.

    >>> import numpy as np
    >>> from tinygrad_bp.cli import seed_gradients_by_hand
    >>> rng = np.random.default_rng(0)
    >>> arrays = {"a[0]": rng.normal(size=(2, 3)), "Y": np.zeros((2, 1)),
    ...           "w[0]": rng.normal(size=(3, 4)), "b[0]": np.zeros(4),
    ...           "w[1]": rng.normal(size=(4, 1)), "b[1]": np.zeros(1)}
    >>> E, grads = seed_gradients_by_hand(arrays, "tanh")
    >>> {name: g.shape for name, g in grads.items()}
    {'w[0]': (3, 4), 'b[0]': (4,), 'w[1]': (4, 1), 'b[1]': (1,)}
    """
    a0, Y, w0, b0, w1, b1 = (arrays[k] for k in ("a[0]", "Y", *SEED_PARAMETERS))
    if activation == "sigmoid":

        def f(z: np.ndarray) -> np.ndarray:
            return 1 / (1 + np.exp(-z))

        def df(z: np.ndarray) -> np.ndarray:
            return f(z) * (1 - f(z))

    else:
        f = np.tanh

        def df(z: np.ndarray) -> np.ndarray:
            return 1 - np.tanh(z) ** 2

    z0 = a0 @ w0 + b0
    a1 = f(z0)
    z1 = a1 @ w1 + b1
    a2 = f(z1)
    E = np.mean(np.sum(0.5 * (a2 - Y) ** 2, axis=1), axis=0)
    dE_da2 = (a2 - Y) / len(a0)  # the 1/N of the mean, which the seed leaves out
    d1 = dE_da2 * df(z1)
    d0 = (d1 @ w1.T) * df(z0)
    grads = {
        "w[0]": a0.T @ d0,
        "b[0]": d0.sum(axis=0),
        "w[1]": a1.T @ d1,
        "b[1]": d1.sum(axis=0),
    }
    return float(E), grads


def _seed(args: argparse.Namespace) -> int:
    arrays = _seed_network(args.activation, args.seed)
    loss_by_hand, by_hand = seed_gradients_by_hand(arrays, args.activation)
    tensors = _seed_tensors(arrays)
    loss = _seed_forward(tensors, args.activation)["E"]
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
    for name in SEED_PARAMETERS:
        generated = tensors[name].grad.numpy()
        for index in np.ndindex(generated.shape):
            difference = abs(by_hand[name][index] - generated[index])
            largest = max(largest, difference)
            label = f"d{name}[{', '.join(map(str, index))}]"
            print(
                f"{label:<12}{by_hand[name][index]:>26.15f}{generated[index]:>26.15f}{difference:>14.1e}"
            )
    print(f"largest absolute difference: {largest:.3e}")
    return 0


# ------------------------------------------------------------------------ graph
def _graph(args: argparse.Namespace) -> int:
    from tinygrad_bp import viz

    if args.model is None:
        activation = args.activation or "sigmoid"
        if activation not in SEED_ACTIVATIONS:
            raise _UsageError(
                f"--activation {activation} applies to --model; the seed's toy network "
                f"uses {' or '.join(SEED_ACTIVATIONS)}"
            )
        tensors = _seed_tensors(_seed_network(activation, args.seed))
        params = {**tensors, **_seed_forward(tensors, activation)}
        output = params["E"]
        what = "the seed's toy network and its loss E"
    else:
        output, params = _saved_mlp_output(args)
        what = f"{args.model} on a sample input"

    dot = viz.to_dot(output, params=params)
    _writable_folder(args.out.resolve().parent, "--out")
    try:
        args.out.write_text(dot + "\n", encoding="utf-8")
    except OSError as error:
        raise _UsageError(
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
        raise _UsageError(
            f"--model {str(args.model)!r} cannot be read: {error}"
        ) from None
    first, last = state.get("0.weight"), state.get(f"{2 * len(args.hidden)}.weight")
    if first is None or last is None:
        raise _UsageError(
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
        raise _UsageError(
            f"--model {str(args.model)!r} does not match --hidden "
            f"{','.join(map(str, args.hidden))}: {message}"
        ) from None
    return model(tg.randn(4, first.shape[0])), model
