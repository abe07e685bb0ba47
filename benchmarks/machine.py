"""What the numbers were measured on: CPU, versions, BLAS and thread settings."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import platform
from typing import Any

import numpy as np

# Environment variables that change BLAS speed; recorded, never set by the harness.
BLAS_ENV = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def _threadpool_info() -> list[dict[str, Any]] | None:
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_info()


def can_limit_threads() -> bool:
    """Whether threadpoolctl is there to cap NumPy's BLAS threads at run time."""
    return _threadpool_info() is not None


def blas_thread_limit(threads: int | None) -> contextlib.AbstractContextManager:
    """Cap NumPy's BLAS at `threads` inside the block (None: leave it alone).

    torch follows, because its trainers copy `blas_threads()` when they are built.

    >>> with blas_thread_limit(None):
    ...     blas_threads() >= 1
    True
    """
    if threads is None:
        return contextlib.nullcontext()
    import threadpoolctl

    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


def blas_threads() -> int:
    """How many threads NumPy's BLAS uses (threadpoolctl if present, else the env vars).

    >>> blas_threads() >= 1
    True
    """
    for pool in _threadpool_info() or []:
        if pool.get("user_api") == "blas":
            return int(pool["num_threads"])
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows elsewhere.

    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    """The installed version of `name`, or None when it cannot be imported.

    >>> package_version("numpy") == np.__version__
    True
    """
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken install is as absent as a missing one
        return None
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def _blas_summary() -> str:
    pools = [p for p in _threadpool_info() or [] if p.get("user_api") == "blas"]
    if pools:
        p = pools[0]
        return f"{p['internal_api']} {p['version']} ({p.get('architecture', '?')})"
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # NumPy < 1.25 can only print its config
        config = {}
    blas = (config or {}).get("Build Dependencies", {}).get("blas", {})
    return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()


def describe() -> dict[str, Any]:
    """CPU, core counts, versions, BLAS, thread counts and the BLAS environment.

    >>> sorted(describe())[:3]
    ['autograd', 'blas', 'blas_env']
    """
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_summary(),
        "numpy_blas_threads": blas_threads(),
        "blas_env": {k: os.environ[k] for k in BLAS_ENV if k in os.environ},
    }
    for name in ("tinygrad_bp", "torch", "mygrad", "autograd"):
        info[name] = package_version(name)
    if info["torch"] is not None:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    return info
