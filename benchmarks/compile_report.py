"""tinygrad_bp.compile against its targets on W1–W4: trace time, steps per second, peak RSS.

    python benchmarks/compile_report.py [--threads 1] [--rounds 7] [--only W1,W3]

For each workload: the first (tracing) call of the compiled step in eager steps, the
seconds per step of numpy_manual, tinygrad_bp (eager), tinygrad_bp_compiled and,
when installed, jax_jit (with its jit time), interleaved round by round; the ratios
to numpy_manual; and, for W3 and W4, the peak RSS of one step in a fresh process.
Targets (issue 9): compiled <= 1.0x numpy_manual on W1–W4, faster than jax_jit on
W2–W4, first call <= 10 eager steps, W3 peak RSS <= 1.1x numpy_manual's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine, memory
from benchmarks.contenders import CONTENDERS
from benchmarks.workloads import WORKLOADS, init_params, make_data

NAMES = ("numpy_manual", "tinygrad_bp", "tinygrad_bp_compiled", "jax_jit")
STEPS = {"W1": 200, "W2": 100, "W3": 20, "W4": 3}


def seconds_per_step(trainers: dict, steps: int, rounds: int) -> dict[str, float]:
    """Median seconds per step of each trainer, rounds interleaved."""
    for trainer in trainers.values():
        trainer.step()
    samples: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(steps):
                trainer.step()
            samples[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(s) for name, s in samples.items()}


def report(workload_name: str, rounds: int) -> dict:
    workload = WORKLOADS[workload_name]
    params, data = init_params(workload), make_data(workload)
    names = [n for n in NAMES if CONTENDERS[n].version() is not None]
    trainers = {n: CONTENDERS[n].build(workload, params, data) for n in names}
    times = seconds_per_step(trainers, STEPS[workload_name], rounds)
    # the first trace in a process also pays one-time costs (first calls, caches)
    first = trainers["tinygrad_bp_compiled"]
    again = [
        CONTENDERS["tinygrad_bp_compiled"].build(workload, params, data)
        for _ in range(1 if workload_name == "W4" else 5)
    ]
    row = {
        "times": times,
        "first_trace_s": first.trace_s,
        "trace_s": statistics.median(t.trace_s for t in again),
        "codegen_s": statistics.median(t.codegen_s for t in again),
        "jit_s": getattr(trainers.get("jax_jit"), "trace_s", None),
    }
    if workload_name in ("W3", "W4"):
        row["peak_kib"] = {
            n: memory.measure("step", workload_name, n).get("peak_kib") for n in names
        }
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="W1,W2,W3,W4")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()}, BLAS threads {args.threads}")
    with machine.blas_thread_limit(args.threads):
        for name in args.only.split(","):
            row = report(name, args.rounds)
            t = row["times"]
            base, eager = t["numpy_manual"], t["tinygrad_bp"]
            line = [f"{name}: manual {base * 1e6:9.1f} us"]
            for n in NAMES[1:]:
                if n in t:
                    line.append(f"{n} {t[n] * 1e6:9.1f} us ({t[n] / base:.2f}x)")
            print(" | ".join(line))
            print(
                f"    tracing call {row['trace_s'] * 1e3:.1f} ms = "
                f"{row['trace_s'] / eager:.1f} eager steps (the first in the process "
                f"{row['first_trace_s'] / eager:.1f}; code generation at the first "
                f"replay {row['codegen_s'] * 1e3:.1f} ms); compiled "
                f"{1 / t['tinygrad_bp_compiled']:.0f} steps/s, "
                f"{eager / t['tinygrad_bp_compiled']:.1f}x eager"
                + (f"; jax jit {row['jit_s'] * 1e3:.0f} ms" if row["jit_s"] else "")
            )
            if "peak_kib" in row:
                peaks = row["peak_kib"]
                print(
                    "    peak RSS of a step (MiB): "
                    + ", ".join(
                        f"{n} {v / 1024:.1f}" for n, v in peaks.items() if v is not None
                    )
                    + f"; compiled/manual {peaks['tinygrad_bp_compiled'] / peaks['numpy_manual']:.3f}"
                )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
