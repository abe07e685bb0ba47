"""``tinygrad-bp train --model gpt``: a small causal transformer on the built-in text.

Python's reference documentation (``tg.data.text()``), the last 10% held out, windows
of ``--block-size`` characters; AdamW with weight decay on the matrices only, a
linear warm-up and a cosine decay. It prints and writes ``samples.txt`` (sampled with
temperature and top-k) next to ``metrics.json``, ``model.npz`` and ``loss.png``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.data import CharDataset
from tinygrad_bp.nn import functional as F

from ._common import (
    Progress,
    note_missing_extras,
    optional_matplotlib,
    optional_tqdm,
    out_folder,
    write_json,
    write_onnx,
)
from .models import MODELS, generate

WEIGHT_DECAY = 0.1
WARMUP_STEPS = 50
HELD_OUT = 0.1  # the last 10% of the text
EVAL_WINDOWS = 256  # held-out windows scored at every evaluation
PROMPTS = ("The ", "A list ", "def ")  # every character is in the text


def _gpt_options(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("block_size", "dim", "heads", "layers", "steps", "batch_size", "lr")
    options = {"model": "gpt", "dataset": args.dataset}
    options |= {key: getattr(args, key) for key in keys}
    options |= {
        "weight_decay": WEIGHT_DECAY,
        "warmup_steps": min(WARMUP_STEPS, args.steps),
        "temperature": args.temperature,
        "top_k": args.top_k,
        "sample_length": args.sample_length,
        "seed": args.seed,
        "quick": args.quick,
    }
    return options


def _learning_rate(step: int, options: dict[str, Any]) -> float:
    """Linear warm-up, then a cosine decay to a tenth of ``lr`` at the last step."""
    peak, warmup, steps = options["lr"], options["warmup_steps"], options["steps"]
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _held_out_loss(
    model: nn.Module, held_out: CharDataset, starts: np.ndarray
) -> float:
    """Mean cross-entropy (nats per character) over the fixed held-out windows."""
    model.eval()
    total = 0.0
    with tg.no_grad():
        for chunk in np.array_split(starts, max(len(starts) // 64, 1)):
            x, y = held_out.windows(chunk)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total += loss.item() * len(chunk)
    model.train()
    return total / len(starts)


def train_gpt(args: argparse.Namespace) -> int:
    """Train the GPT of the options on the text; sample; write the outputs; return 0."""
    tg.manual_seed(args.seed)
    text = tg.data.text()
    dataset = CharDataset(text, block_size=args.block_size)
    train, held_out = dataset.split(HELD_OUT)
    out = out_folder(args)
    options = _gpt_options(args)
    tqdm, new_figure = optional_tqdm(), optional_matplotlib()
    note_missing_extras(tqdm, new_figure, "loss.png")

    model = MODELS["gpt"](args, {"vocab_size": dataset.vocab_size})
    optimizer = tg.optim.AdamW(model.parameter_groups(WEIGHT_DECAY), lr=args.lr)
    windows = EVAL_WINDOWS // 8 if args.quick else EVAL_WINDOWS
    starts = tg.get_rng().integers(0, len(held_out), size=windows)
    every = max(args.steps // 8, 1)  # about 8 held-out evaluations, ~1 s each
    parameters = sum(p.data.size for p in model.parameters())
    print(
        f"gpt: {parameters:,} parameters, vocabulary of {dataset.vocab_size} "
        f"characters, {len(train.ids):,} training and {len(held_out.ids):,} held-out "
        f"characters, {args.steps} steps of {args.batch_size} x {args.block_size}",
        flush=True,
    )

    history: dict[str, list[float]] = {"step": [], "loss": [], "seconds": []}
    evaluations: dict[str, list[float]] = {
        "step": [],
        "held_out_loss": [],
        "seconds": [],
    }
    progress = Progress(args.steps, "step", tqdm)
    start = time.perf_counter()
    running = None
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, options)
        x, y = train.batch(args.batch_size)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        history["step"].append(step)
        history["loss"].append(value)
        history["seconds"].append(round(time.perf_counter() - start, 3))
        shown = {"loss": f"{running:.3f}"}
        if step % every == 0 or step == args.steps:
            held = _held_out_loss(model, held_out, starts)
            evaluations["step"].append(step)
            evaluations["held_out_loss"].append(held)
            evaluations["seconds"].append(round(time.perf_counter() - start, 3))
            shown["held_out"] = f"{held:.3f}"
            progress.update(step, **shown)
        elif tqdm is not None:
            progress.update(step, **shown)
    progress.close()
    seconds = time.perf_counter() - start
    final = evaluations["held_out_loss"][-1]
    print(f"final held-out loss {final:.4f} nats per character")
    print(
        f"trained {args.steps} steps in {seconds:.1f} s ({args.steps / seconds:.1f} steps/s)"
    )

    samples = [
        dataset.decode(
            generate(
                model,
                dataset.encode(prompt),
                args.sample_length,
                args.temperature,
                args.top_k,
            )
        )
        for prompt in PROMPTS
    ]
    header = (
        f"{len(PROMPTS)} samples of {args.sample_length} characters after the prompts "
        f"{', '.join(map(repr, PROMPTS))} (temperature {args.temperature}, top-k "
        f"{args.top_k}), held-out loss {final:.4f}"
    )
    rule = "-" * 72
    report = "\n".join([header, *(f"{rule}\n{sample}" for sample in samples), rule])
    print(report)

    below = [
        s
        for s, v in zip(evaluations["seconds"], evaluations["held_out_loss"])
        if v <= 1.6
    ]
    metrics = {
        "options": options,
        "characters": {
            "vocab_size": dataset.vocab_size,
            "train": len(train.ids),
            "held_out": len(held_out.ids),
        },
        "parameters": parameters,
        "history": history,
        "evaluations": evaluations,
        "held_out_loss": final,
        "seconds_to_1.6": below[0] if below else None,
        "seconds": round(seconds, 3),
        "vocab": dataset.vocab,
        "tinygrad_bp_version": tg.__version__,
    }
    write_json(out / "metrics.json", metrics)
    tg.save(model.state_dict(), out / "model.npz")
    (out / "samples.txt").write_text(report + "\n", encoding="utf-8")
    written = ["metrics.json", "model.npz", "samples.txt"]
    status = 0
    if args.export_onnx:
        windows = [held_out.ids[i : i + args.block_size] for i in range(0, 70, 10)]
        example, other = np.stack(windows[:2]), np.stack(windows[2:])
        if not write_onnx(model, example, other, out / "model.onnx"):
            status = 1
        written.append("model.onnx")
    if new_figure is not None:
        _plot_language_model(new_figure, history, evaluations, out / "loss.png")
        written.append("loss.png")
    print(f"wrote {', '.join(written)} to {out}")
    return status


def _plot_language_model(
    new_figure: Any,
    history: dict[str, list[float]],
    evaluations: dict[str, list[float]],
    path: Path,
) -> None:
    figure = new_figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    losses = np.asarray(history["loss"])
    width = min(25, len(losses))
    smooth = np.convolve(losses, np.ones(width) / width, mode="valid")
    axes.plot(
        history["step"], losses, color="0.8", linewidth=0.5, label="training batch"
    )
    axes.plot(history["step"][width - 1 :], smooth, label=f"training (mean of {width})")
    axes.plot(evaluations["step"], evaluations["held_out_loss"], "o-", label="held out")
    axes.axhline(1.6, color="k", linestyle=":", linewidth=0.8)
    axes.set(
        title="gpt on text: cross-entropy", xlabel="step", ylabel="nats per character"
    )
    axes.legend(loc="upper right")
    figure.savefig(path, dpi=100)
