"""Memory probes, each run in a fresh subprocess so earlier work cannot hide in the peak.

Subprocess entry (prints one JSON object on its last stdout line)::

    python -m benchmarks.memory step   W3 torch          # peak RSS of one training step
    python -m benchmarks.memory deep   W6-100k torch     # bytes per node of a deep graph
    python -m benchmarks.memory growth W2 tinygrad_bp 100 10000   # RSS after k steps

"Setup" RSS is taken after imports, data and weights exist and `gc.collect()` ran. The
peak comes from VmHWM, reset just before the measured work by writing 5 to
/proc/self/clear_refs (Linux >= 4.0); where that is refused the peak also covers the
setup, and the result says so (``peak_reset: false``).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kib() -> int:
    """Resident set size now, in KiB (VmRSS; the peak where /proc is missing).

    >>> rss_kib() > 0
    True
    """
    rss = _status_kib("VmRSS")
    return rss if rss is not None else peak_kib()


def peak_kib() -> int:
    """Peak resident set size since start or the last `reset_peak`, in KiB.

    >>> peak_kib() >= rss_kib() - 1024
    True
    """
    hwm = _status_kib("VmHWM")
    # ru_maxrss is in KiB on Linux (bytes on macOS, where /proc is absent anyway).
    return (
        hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _setup(workload_name: str, contender_name: str) -> tuple[Any, Any]:
    from benchmarks.contenders import CONTENDERS
    from benchmarks.workloads import WORKLOADS, Chain, init_params, make_data

    workload = WORKLOADS[workload_name]
    data = None if isinstance(workload, Chain) else make_data(workload)
    trainer = CONTENDERS[contender_name].build(workload, init_params(workload), data)
    gc.collect()
    return workload, trainer


def probe_step(workload_name: str, contender_name: str) -> dict[str, Any]:
    """Peak RSS of one training step: absolute, and above the RSS after setup."""
    _, trainer = _setup(workload_name, contender_name)
    setup = rss_kib()
    reset = reset_peak()
    trainer.step()
    peak = peak_kib()
    return {
        "setup_kib": setup,
        "peak_kib": peak,
        "delta_kib": peak - setup,
        "peak_reset": reset,
    }


def probe_deep(workload_name: str, contender_name: str) -> dict[str, Any]:
    """Bytes per node of a chain's live graph, and of the peak through its backward."""
    workload, trainer = _setup(workload_name, contender_name)
    setup = rss_kib()
    reset = reset_peak()
    loss = trainer.forward()
    graph = rss_kib()
    trainer.backward(loss)
    peak = peak_kib()
    n = workload.length
    return {
        "nodes": n,
        "setup_kib": setup,
        "graph_kib": graph,
        "peak_kib": peak,
        "graph_bytes_per_node": (graph - setup) * 1024 / n,
        "peak_bytes_per_node": (peak - setup) * 1024 / n,
        "peak_reset": reset,
    }


def probe_growth(
    workload_name: str, contender_name: str, *checkpoints: int
) -> dict[str, Any]:
    """RSS after each checkpoint's number of steps; a freed graph means no growth."""
    _, trainer = _setup(workload_name, contender_name)
    steps = sorted(checkpoints)
    rss = []
    done = 0
    for target in steps:
        for _ in range(target - done):
            trainer.step()
        done = target
        rss.append(rss_kib())
    return {"steps": steps, "rss_kib": rss, "growth_kib": rss[-1] - rss[0]}


PROBES = {"step": probe_step, "deep": probe_deep, "growth": probe_growth}


def measure(
    probe: str, workload: str, contender: str, *args: int, timeout: float = 900
) -> dict[str, Any]:
    """Run one probe in a fresh interpreter; on failure, a dict with an ``error`` key.

    >>> measure("step", "W1", "numpy_manual")["delta_kib"] >= 0
    True
    """
    if probe not in PROBES:
        raise ValueError(
            f"probe: unknown probe {probe!r}; choose from {sorted(PROBES)}"
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        probe,
        workload,
        contender,
        *map(str, args),
    ]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    probe, workload, contender, *rest = argv
    print(json.dumps(PROBES[probe](workload, contender, *map(int, rest))))


if __name__ == "__main__":
    main(sys.argv[1:])
