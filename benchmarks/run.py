"""Time tinygrad_bp against hand-written NumPy backprop, PyTorch, MyGrad and HIPS autograd.

    python benchmarks/run.py [--quick | --smoke] [--json PATH] [--no-write] [--only W1,W2]

Per workload: build every contender from the same float32 weights and data, check they
reach the same loss after 3 SGD steps (fail loudly otherwise), then time them
interleaved round by round (A B C A B C ...) and report medians and the median of the
per-round ratios to `numpy_manual`. Memory probes run in fresh subprocesses. The
markdown table goes to stdout and into benchmarks/README.md between its markers; the
raw numbers go to benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (
    None,
    "",
):  # run as a script: make `benchmarks` and the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks import machine, memory
from benchmarks.contenders import BASELINE, CONTENDERS, Contender, Trainer
from benchmarks.workloads import (
    DEEP,
    GPT,
    MLP,
    WORKLOADS,
    Chain,
    init_params,
    make_data,
)

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results.json"
START, END = "<!-- results:start -->", "<!-- results:end -->"

CHECK_STEPS = 3
LOSS_RTOL = 1e-4
PARAM_RTOL, PARAM_ATOL = 1e-4, 1e-6
# The deep chains are checked on their first ops only: same code path, a fraction of
# the time; depth itself is exercised by the timed runs.
DEEP_CHECK_LENGTH = 1_000
MEMORY_STEP_WORKLOADS = ("W3", "W4", "W7")
GROWTH_WORKLOAD = "W2"


class EqualWorkError(RuntimeError):
    """Contenders disagree on the loss or weights after the same SGD steps."""


@dataclass(frozen=True)
class Plan:
    """Steps timed per sample, warm-up rounds, timed rounds."""

    steps: int
    warmup: int
    rounds: int


PLANS: dict[str, dict[str, Plan]] = {
    "full": {
        "W1": Plan(50, 3, 30),
        "W2": Plan(20, 3, 30),
        "W3": Plan(5, 2, 20),
        "W4": Plan(1, 2, 10),
        "W5": Plan(2, 2, 20),
        "W6-100k": Plan(1, 1, 3),
        "W6-1M": Plan(1, 0, 2),
        "W7": Plan(3, 2, 20),
    },
    "quick": {
        "W1": Plan(20, 1, 7),
        "W2": Plan(10, 1, 7),
        "W3": Plan(3, 1, 5),
        "W4": Plan(1, 0, 3),
        "W5": Plan(1, 1, 7),
        "W6-100k": Plan(1, 0, 1),
        "W7": Plan(2, 1, 7),
    },
    "smoke": {
        "W1": Plan(2, 0, 2),
        "W2": Plan(2, 0, 2),
        "W3": Plan(1, 0, 1),
        "W4": Plan(1, 0, 1),
        "W5": Plan(1, 0, 2),
        "W6-100k": Plan(1, 0, 1),
        "W7": Plan(1, 0, 1),
    },
}
GROWTH_STEPS = {"full": (100, 10_000), "quick": (100, 2_000), "smoke": (10, 50)}
SMOKE_ONLY = ("W1", "W2", "W5")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="fewer rounds, no W6-1M (<1 min)"
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help="tiny CI run: implies --no-write and, unless --only, W1,W2,W5",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help=f"results file (default {RESULTS})"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="write neither JSON nor README"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit NumPy's BLAS (via threadpoolctl) and torch to N threads in the timed runs",
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated workloads, e.g. W1,W3,W6"
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: must be at least 1, got {args.threads}")
    if args.threads is not None and not machine.can_limit_threads():
        parser.error("--threads: needs threadpoolctl (pip install threadpoolctl)")
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.no_write = args.no_write or args.smoke
    plan = PLANS[args.mode]
    if args.only is None:
        args.workloads = list(SMOKE_ONLY if args.smoke else plan)
        return args
    args.workloads = []
    for name in (n.strip() for n in args.only.split(",") if n.strip()):
        # "W6" means every deep chain the mode runs.
        matches = [w for w in plan if w == name or (name == "W6" and w in DEEP)]
        if not matches:
            if name in WORKLOADS:
                parser.error(f"--only: {name!r} is not run in {args.mode} mode")
            parser.error(
                f"--only: unknown workload {name!r}; choose from {[*WORKLOADS, 'W6']}"
            )
        args.workloads += [w for w in matches if w not in args.workloads]
    if not args.workloads:
        parser.error(f"--only: no workload named in {args.only!r}")
    return args


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(
        f"[{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True
    )


# --- equal work --------------------------------------------------------------------------


def check_equal_work(
    workload: MLP | Chain,
    contenders: list[Contender],
    params: list[np.ndarray],
    data: Any,
) -> dict[str, Any]:
    """Run CHECK_STEPS SGD steps per contender; raise EqualWorkError if losses or weights differ.

    Each contender records the loss of CHECK_STEPS + 1 forwards, the last one being the
    loss after CHECK_STEPS updates; all are compared to the first contender's.
    """
    losses: dict[str, list[float]] = {}
    weights: dict[str, list[np.ndarray]] = {}
    for c in contenders:
        trainer = c.build(workload, params, data)
        losses[c.name] = [trainer.step() for _ in range(CHECK_STEPS + 1)]
        weights[c.name] = [np.array(p, copy=True) for p in trainer.params()]
    return compare_runs(workload.name, losses, weights)


def compare_runs(
    workload: str, losses: dict[str, list[float]], weights: dict[str, list[np.ndarray]]
) -> dict[str, Any]:
    """Raise EqualWorkError naming the contender and numbers unless all runs agree.

    >>> compare_runs("W0", {"a": [1.0, 0.5], "b": [1.0, 0.50001]}, {})["passed"]
    True
    """
    ref, *others = list(losses)
    for name in others:
        if not np.allclose(losses[name], losses[ref], rtol=LOSS_RTOL, atol=0):
            raise EqualWorkError(
                f"{workload}: {name} losses {losses[name]} differ from {ref} losses "
                f"{losses[ref]} (rtol {LOSS_RTOL}); the contenders do not do the same work"
            )
        for i, (p, q) in enumerate(zip(weights.get(name, []), weights.get(ref, []))):
            if p.shape != q.shape or not np.allclose(
                p, q, rtol=PARAM_RTOL, atol=PARAM_ATOL
            ):
                worst = np.max(np.abs(p - q)) if p.shape == q.shape else "shape"
                raise EqualWorkError(
                    f"{workload}: {name} parameter {i} {p.shape} differs from {ref}'s "
                    f"{q.shape} after the check steps (max abs diff {worst})"
                )
    return {
        "passed": True,
        "steps": CHECK_STEPS,
        "rtol": LOSS_RTOL,
        "final_loss": {name: values[-1] for name, values in losses.items()},
    }


# --- timing ------------------------------------------------------------------------------


def time_interleaved(
    trainers: dict[str, Trainer], plan: Plan
) -> dict[str, list[float]]:
    """Seconds per step, one sample per contender per round, contenders interleaved."""
    for _ in range(plan.warmup):
        for trainer in trainers.values():
            for _ in range(plan.steps):
                trainer.step()
    samples: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(plan.rounds):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(plan.steps):
                trainer.step()
            samples[name].append((time.perf_counter() - start) / plan.steps)
    return samples


def summarize(
    workload: MLP | Chain | GPT, samples: dict[str, list[float]], plan: Plan
) -> dict[str, Any]:
    """Median per contender; median of the per-round ratios to the baseline (and, as
    `vs_torch`, to PyTorch eager where it ran).

    >>> w = WORKLOADS["W1"]
    >>> s = summarize(w, {"numpy_manual": [1.0, 2.0], "x": [3.0, 4.0]}, Plan(1, 0, 2))
    >>> s["x"]["median_s"], s["x"]["ratio"]
    (3.5, 2.5)
    """
    base = samples.get(BASELINE)
    torch = samples.get("torch")
    out = {}
    for name, times in samples.items():
        ratios = [t / b for t, b in zip(times, base)] if base else None
        to_torch = [t / u for t, u in zip(times, torch)] if torch else None
        out[name] = {
            "median_s": statistics.median(times),
            "ratio": statistics.median(ratios) if ratios else None,
            "vs_torch": statistics.median(to_torch) if to_torch else None,
            "us_per_op": statistics.median(times) / workload.length * 1e6
            if isinstance(workload, Chain)
            else None,
            "steps_per_sample": plan.steps,
            "samples_s": times,
        }
    return out


def bench_workload(
    name: str, contenders: list[Contender], plan: Plan
) -> dict[str, Any]:
    workload = WORKLOADS[name]
    params = init_params(workload)
    data = None if isinstance(workload, Chain) else make_data(workload)
    if name in DEEP:
        contenders = [c for c in contenders if c.deep]
    contenders = [c for c in contenders if c.runs(workload)]
    checked = workload
    if name in DEEP:
        checked = dataclasses.replace(workload, length=DEEP_CHECK_LENGTH)
    check = check_equal_work(checked, contenders, init_params(checked), data)
    log(f"{name}: equal-loss check passed ({', '.join(check['final_loss'])})")
    trainers = {c.name: c.build(workload, params, data) for c in contenders}
    gc.collect()
    log(f"{name}: timing {plan.rounds} rounds x {plan.steps} steps")
    timing = summarize(workload, time_interleaved(trainers, plan), plan)
    return {"label": workload.label, "check": check, "timing": timing}


# --- memory ------------------------------------------------------------------------------


def run_memory(
    mode: str, workloads: list[str], contenders: list[Contender]
) -> dict[str, Any]:
    result: dict[str, Any] = {"step": {}, "deep": {}, "growth": {}}
    for name in (w for w in workloads if w in MEMORY_STEP_WORKLOADS):
        log(f"{name}: peak RSS of one step, fresh process per contender")
        result["step"][name] = {
            c.name: memory.measure("step", name, c.name)
            for c in contenders
            if c.runs(WORKLOADS[name])
        }
    for name in (w for w in workloads if w in DEEP):
        log(f"{name}: graph memory per node, fresh process per contender")
        result["deep"][name] = {
            c.name: memory.measure("deep", name, c.name) for c in contenders if c.deep
        }
    if GROWTH_WORKLOAD in workloads and "tinygrad_bp" in {c.name for c in contenders}:
        steps = GROWTH_STEPS[mode]
        log(f"{GROWTH_WORKLOAD}: tinygrad_bp RSS after {steps} steps")
        result["growth"][GROWTH_WORKLOAD] = {
            "tinygrad_bp": memory.measure(
                "growth", GROWTH_WORKLOAD, "tinygrad_bp", *steps
            )
        }
    return result


# --- report ------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    """Seconds with a readable unit.

    >>> fmt_time(0.000123), fmt_time(2.5)
    ('123.0 µs', '2.50 s')
    """
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def render(results: dict[str, Any]) -> str:
    """The markdown report: machine, checks, timing table, memory tables."""
    m = results["machine"]
    env = ", ".join(f"{k}={v}" for k, v in m["blas_env"].items()) or "none set"
    torch = f"torch {m['torch']}" if m.get("torch") else "torch not installed"
    threads = f"NumPy BLAS threads {m['numpy_blas_threads']}"
    if m.get("torch_threads") is not None:
        threads += f", torch threads {m['torch_threads']} (interop {m['torch_interop_threads']})"
    if results.get("threads_limit") is not None:
        threads += f" (set by --threads {results['threads_limit']}; memory probes use defaults)"
    note = " Quick/smoke numbers are rough." if results["mode"] != "full" else ""
    lines = [
        f"Mode **{results['mode']}**, {results['date']}, {results['seconds']:.0f} s.{note}",
        "",
        f"- Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable)",
        f"- Python {m['python']}, NumPy {m['numpy']} (BLAS: {m['blas']}), "
        f"tinygrad_bp {m.get('tinygrad_bp')}, {torch}, "
        f"MyGrad {m.get('mygrad') or 'absent'}, autograd {m.get('autograd') or 'absent'}",
        f"- Threads: {threads}; BLAS environment: {env}",
    ]
    if results["skipped"]:
        skipped = ", ".join(f"{k} ({v})" for k, v in results["skipped"].items())
        lines.append(f"- Skipped contenders: {skipped}")
    checked = ", ".join(results["workloads"])
    lines += [
        f"- Equal-work check passed for {checked}: same loss after {CHECK_STEPS} SGD steps "
        f"(rtol {LOSS_RTOL}) and same weights",
        "",
        f"| workload | contender | median / step | vs {BASELINE} | µs / op |",
        "|---|---|---:|---:|---:|",
    ]
    for name in results["workloads"]:
        bench = results["benchmarks"][name]
        for i, (contender, t) in enumerate(bench["timing"].items()):
            label = bench["label"] if i == 0 else ""
            ratio = f"{t['ratio']:.2f}×" if t["ratio"] is not None else "n/a"
            per_op = f"{t['us_per_op']:.2f}" if t["us_per_op"] is not None else ""
            lines.append(
                f"| {label} | {contender} | {fmt_time(t['median_s'])} | {ratio} | {per_op} |"
            )
    for name in results["workloads"]:  # eager vs eager: the ratio that is the target
        if isinstance(WORKLOADS[name], GPT):
            for contender, t in results["benchmarks"][name]["timing"].items():
                if contender != "torch" and t.get("vs_torch") is not None:
                    lines.append(
                        f"\n{name}: {contender} / torch eager = {t['vs_torch']:.2f}× "
                        "(median of the per-round ratios)"
                    )
    lines += render_memory(results["memory"])
    return "\n".join(lines) + "\n"


def render_memory(mem: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if mem["step"]:
        lines += [
            "",
            "Peak RSS of one training step, fresh process per contender:",
            "",
            "| workload | contender | RSS after setup | peak | peak − setup |",
            "|---|---|---:|---:|---:|",
        ]
        for name, per in mem["step"].items():
            for contender, r in per.items():
                if "error" in r:
                    lines.append(f"| {name} | {contender} | error: {r['error']} | | |")
                    continue
                lines.append(
                    f"| {name} | {contender} | {fmt_mib(r['setup_kib'])} | "
                    f"{fmt_mib(r['peak_kib'])} | {fmt_mib(r['delta_kib'])} |"
                )
    if mem["deep"]:
        lines += [
            "",
            "Deep chains (W6), fresh process per contender; bytes per node above setup RSS:",
            "",
            "| workload | contender | live graph, B/node | peak incl. backward, B/node |",
            "|---|---|---:|---:|",
        ]
        for name, per in mem["deep"].items():
            for contender, r in per.items():
                if "error" in r:
                    lines.append(f"| {name} | {contender} | error: {r['error']} | |")
                    continue
                lines.append(
                    f"| {name} | {contender} | {r['graph_bytes_per_node']:.0f} | "
                    f"{r['peak_bytes_per_node']:.0f} |"
                )
    for name, per in mem["growth"].items():
        for contender, r in per.items():
            if "error" in r:
                lines += ["", f"{name} RSS growth, {contender}: error: {r['error']}"]
                continue
            first, last = r["steps"][0], r["steps"][-1]
            lines += [
                "",
                f"{name} RSS growth, {contender}: {fmt_mib(r['rss_kib'][0])} after {first:,} "
                f"steps, {fmt_mib(r['rss_kib'][-1])} after {last:,} "
                f"(growth {r['growth_kib'] / 1024:+.1f} MiB).",
            ]
    return lines


def update_readme(table: str, path: Path = README) -> None:
    """Replace the text between the results markers, keeping the rest of the README."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{table}{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (
            text.rstrip("\n")
            + ("\n\n" if text else "")
            + "## Results\n\n"
            + block
            + "\n"
        )
    path.write_text(text)


# --- main --------------------------------------------------------------------------------


def available_contenders() -> tuple[list[Contender], dict[str, str]]:
    found, skipped = [], {}
    for c in CONTENDERS.values():
        if c.version() is None:
            skipped[c.name] = f"{c.module} not importable"
        else:
            found.append(c)
    if BASELINE not in {c.name for c in found}:
        raise RuntimeError(f"the baseline {BASELINE} cannot run")
    return found, skipped


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the results (also printed and, unless --no-write, saved)."""
    args = parse_args(argv)
    with machine.blas_thread_limit(args.threads):
        results = _run(args)
    table = render(results)
    print(table)
    if not args.no_write:
        path = args.json or RESULTS
        path.write_text(json.dumps(results, indent=1) + "\n")
        update_readme(table)
        log(f"wrote {path} and {README}")
    log(f"done in {results['seconds']} s")
    return results


def _run(args: argparse.Namespace) -> dict[str, Any]:
    contenders, skipped = available_contenders()
    log(
        f"mode {args.mode}: {', '.join(args.workloads)} with {', '.join(c.name for c in contenders)}"
    )
    started = time.perf_counter()
    benchmarks = {
        name: bench_workload(name, contenders, PLANS[args.mode][name])
        for name in args.workloads
    }
    results = {
        "mode": args.mode,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "workloads": args.workloads,
        "skipped": skipped,
        "plans": {w: dataclasses.asdict(PLANS[args.mode][w]) for w in args.workloads},
        "benchmarks": benchmarks,
        "memory": run_memory(args.mode, args.workloads, contenders),
        # After the torch trainers were built, so their thread setting is what is shown.
        "machine": machine.describe(),
        "threads_limit": args.threads,
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


if __name__ == "__main__":
    run()
