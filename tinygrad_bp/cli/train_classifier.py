"""``tinygrad-bp train --model mlp|cnn``: fit a classifier, report its accuracy.

20% of the samples are held out for testing; the outputs are ``metrics.json``,
``model.npz`` and (with the demo extra) ``loss.png`` and, for 2-D data,
``decision_boundary.png``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import DataLoader, train_test_split
from tinygrad_bp.nn import functional as F

from ._common import (
    DATA_HINT,
    Progress,
    UsageError,
    note_missing_extras,
    optional_matplotlib,
    optional_tqdm,
    out_folder,
    write_json,
    write_onnx,
)
from .models import MODELS


def _load_dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    name, quick = args.dataset, args.quick
    if name == "spirals":
        return tg.data.spirals(n_per_class=50 if quick else 200, classes=3)
    if name == "moons":
        return tg.data.moons(n=150 if quick else 600)
    try:
        X, y = tg.data.digits()
    except ImportError:
        raise UsageError(f"--dataset digits needs scikit-learn: {DATA_HINT}") from None
    if args.model == "cnn":
        X = X.reshape(-1, 1, 8, 8)  # NCHW images for the convolutions
    return (X[:300], y[:300]) if quick else (X, y)


def _accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with tg.no_grad():
        predicted = model(tg.Tensor(X)).argmax(axis=1).numpy()
    model.train()
    return float((predicted == y).mean())


def train_classifier(args: argparse.Namespace) -> int:
    """Train ``--model`` (mlp or cnn) on ``--dataset``; write the outputs; return 0."""
    tg.manual_seed(args.seed)
    X, y = _load_dataset(args)
    out = out_folder(args)
    options: dict[str, Any] = {"model": args.model, "dataset": args.dataset}
    if args.model == "mlp":
        options |= {"hidden": list(args.hidden), "activation": args.activation}
    else:
        options |= {"channels": args.channels, "lr_schedule": "cosine"}
    options |= {
        "optimizer": args.optimizer,
        "lr": args.lr,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "quick": args.quick,
    }
    if args.compile:
        options["compile"] = True
    tqdm, new_figure = optional_tqdm(), optional_matplotlib()
    note_missing_extras(tqdm, new_figure, "loss.png, decision_boundary.png")

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.2)
    classes = int(y.max()) + 1
    data = {"features": X.shape[1], "classes": classes, "image_shape": X.shape[1:]}
    model = MODELS[args.model](args, data)
    start = time.perf_counter()
    history = _fit(model, options, (X_train, y_train), (X_test, y_test), tqdm)
    seconds = time.perf_counter() - start
    compiled = history.pop("compiled", None)
    if compiled is not None:
        replay = compiled["replay_steps_per_s"]
        print(
            f"compiled: {compiled['steps_per_s']:.0f} steps/s, "
            f"{compiled['speedup']:.1f}x eager ({compiled['eager_steps_per_s']:.0f} "
            f"steps/s); {compiled['programs']} programs traced"
            + (f", {replay:.0f} steps/s between traces" if replay else "")
        )
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
        **({"compiled": compiled} if compiled is not None else {}),
        "tinygrad_bp_version": tg.__version__,
    }
    write_json(out / "metrics.json", metrics)
    tg.save(model.state_dict(), out / "model.npz")
    written = ["metrics.json", "model.npz"]
    status = 0
    if args.export_onnx:
        if not write_onnx(model, X_test[:4], X_test[4:11], out / "model.onnx"):
            status = 1
        written.append("model.onnx")
    if new_figure is not None:
        _plot_history(new_figure, history, out / "loss.png")
        written.append("loss.png")
        if X.ndim == 2 and X.shape[1] == 2:
            title = f"{args.dataset}: test accuracy {test_accuracy:.1%}"
            _plot_decision_boundary(
                new_figure, model, X, y, title, out / "decision_boundary.png"
            )
            written.append("decision_boundary.png")
    print(f"wrote {', '.join(written)} to {out}")
    return status


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
    schedule = None
    if options.get("lr_schedule") == "cosine":  # settles the CNN at its best accuracy
        schedule = tg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history: dict[str, list[float]] = {
        "epoch": [],
        "loss": [],
        "train_accuracy": [],
        "test_accuracy": [],
    }

    def train_step(xb: tg.Tensor, yb: tg.Tensor) -> tuple[tg.Tensor, tg.Tensor]:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss, logits.argmax(axis=1)

    step = tg.compile(train_step) if options.get("compile") else train_step
    eager_rate = (
        _eager_steps_per_s(model, optimizer, loader) if step is not train_step else 0
    )
    steps, step_seconds, replays, replay_seconds = 0, 0.0, 0, 0.0
    progress = Progress(epochs, "epoch", tqdm)
    for epoch in range(1, epochs + 1):
        total_loss, correct = 0.0, 0
        for xb, yb in loader:
            started = time.perf_counter()
            programs = getattr(step, "programs", 0)
            loss, predicted = step(xb, yb)
            elapsed = time.perf_counter() - started
            step_seconds += elapsed
            steps += 1
            if getattr(step, "programs", 0) == programs:  # not a tracing call
                replay_seconds += elapsed
                replays += 1
            total_loss += loss.item() * len(yb)
            correct += int((predicted.numpy() == yb.numpy()).sum())
        if schedule is not None:
            schedule.step()
        history["epoch"].append(epoch)
        history["loss"].append(total_loss / len(train[1]))
        history["train_accuracy"].append(correct / len(train[1]))
        history["test_accuracy"].append(_accuracy(model, *test))
        progress.update(
            epoch,
            loss=f"{history['loss'][-1]:.4f}",
            accuracy=f"{history['train_accuracy'][-1]:.3f}",
            test_accuracy=f"{history['test_accuracy'][-1]:.3f}",
        )
    progress.close()
    if step is not train_step:
        rate = steps / step_seconds
        history["compiled"] = {
            "steps_per_s": round(rate, 1),
            "replay_steps_per_s": round(replays / replay_seconds, 1)
            if replays
            else None,
            "eager_steps_per_s": round(eager_rate, 1),
            "speedup": round(rate / eager_rate, 2),
            "programs": step.programs,
        }
    return history


def _eager_steps_per_s(model: nn.Module, optimizer: Any, loader: DataLoader) -> float:
    """Training steps per second in eager mode, measured on a copy of the model (so
    the compiled run trains the very same model from the same start)."""
    twin = copy.deepcopy(model)
    twin_optimizer = type(optimizer)(twin.parameters(), **optimizer.defaults)
    state = tg.get_rng().bit_generator.state  # the copy's draws are not the run's
    batches = list(loader)
    batches = (batches * (1 + 33 // len(batches)))[:33]
    for i, (xb, yb) in enumerate(batches):
        if i == 3:  # the first steps warm up
            started = time.perf_counter()
        loss = F.cross_entropy(twin(xb), yb)
        twin_optimizer.zero_grad()
        loss.backward()
        twin_optimizer.step()
        loss.item()
    elapsed = time.perf_counter() - started
    tg.get_rng().bit_generator.state = state
    return (len(batches) - 3) / elapsed


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
