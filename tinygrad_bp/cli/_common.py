"""What the commands share: usage errors, option types, output folders, optional extras."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

DEMO_HINT = "pip install 'tinygrad_bp[demo]'"
DATA_HINT = "pip install 'tinygrad_bp[data]'"


class UsageError(Exception):
    """A bad option found after parsing; reported like argparse's own errors."""


def positive_int(text: str) -> int:
    """An option value that must be an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An option value that must be a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, got {text!r}"
        ) from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def hidden_sizes(text: str) -> tuple[int, ...]:
    """Comma-separated positive layer widths such as ``64,64``."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 64,64, got {text!r}"
        )
    return sizes


def writable_folder(path: Path, option: str) -> Path:
    """Create ``path`` (and its parents) or say why it cannot be written to."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"{option} {str(path)!r} cannot be created: {error.strerror}"
        ) from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"{option} {str(path)!r} is not writable")
    return path


def optional_tqdm() -> Any:
    """tqdm's progress bar class, or None without the demo extra."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def optional_matplotlib() -> Any:
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


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Limit NumPy's BLAS to one thread where threadpoolctl (scikit-learn's) exists.

    These models multiply small matrices, where threads gain little; and on a
    machine whose cores are busy with other work, OpenBLAS threads that wait for
    each other made the GPT's steps more than ten times slower (2 cores shared
    with other jobs: 250 steps in 217 s with two threads, 16 s with one).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def out_folder(args: argparse.Namespace) -> Path:
    """``--out``, or ``runs/<timestamp>``, created and writable."""
    default = Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return writable_folder(args.out or default, "--out")


def note_missing_extras(tqdm: Any, new_figure: Any, pictures: str) -> None:
    """Say once which demo extras are missing and what that leaves out."""
    missing = [
        name
        for name, found in (("tqdm", tqdm), ("matplotlib", new_figure))
        if found is None
    ]
    if missing:
        print(
            f"note: {' and '.join(missing)} not installed, so no progress bar or "
            f"pictures ({pictures}); {DEMO_HINT} adds them",
            flush=True,
        )


def write_json(path: Path, value: dict) -> None:
    """``value`` as indented JSON text with a final newline."""
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


class Progress:
    """A tqdm bar when tqdm is installed, else one printed line per update."""

    def __init__(self, total: int, unit: str, tqdm: Any) -> None:
        self.total = total
        self.unit = unit
        self.bar = tqdm(total=total, desc="train", unit=unit) if tqdm else None

    def update(self, done: int, **values: str) -> None:
        """``done`` of ``total`` finished; show ``values`` (loss, accuracy, ...)."""
        if self.bar is None:
            shown = "  ".join(
                f"{name.replace('_', ' ')} {v}" for name, v in values.items()
            )
            print(f"{self.unit} {done}/{self.total}  {shown}", flush=True)
            return
        self.bar.set_postfix(values, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


ONNX_HINT = "pip install 'tinygrad_bp[onnx]'"


def onnx_available() -> bool:
    """Whether the onnx extra (onnx and onnxruntime) is installed."""
    from tinygrad_bp import onnx as tonnx

    return tonnx.available()


def write_onnx(model: Any, example: Any, other: Any, path: Path) -> bool:
    """Export ``model`` (put in eval mode) traced on ``example`` to ``path``, run it
    with ONNX Runtime on ``example`` and on ``other`` (another batch size), print the
    largest absolute difference from the library's outputs and OK or FAIL; whether
    it was OK."""
    from tinygrad_bp import onnx as tonnx

    model.eval()
    tonnx.export(model, example, path)
    checks = [tonnx.verify(path, model, x) for x in (example, other)]
    worst = max(check.max_abs_difference for check in checks)
    ok = all(check.ok for check in checks)
    print(
        f"{path.name}: ONNX Runtime vs tinygrad_bp at batch sizes {len(example)} and "
        f"{len(other)}: max abs difference {worst:.3g} {'OK' if ok else 'FAIL'}"
    )
    return ok
