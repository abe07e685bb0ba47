"""A/B: the `tinygrad_bp` training step of two source trees, timed alternately.

For changes to the hot path (`Tensor._apply`, the engine), where the question is "what
did this change cost?": make a checkout of the old revision and compare.

    git worktree add /tmp/before <old-revision>
    python benchmarks/ab.py /tmp/before            # this tree against /tmp/before
    python benchmarks/ab.py /tmp/before --only W1 --rounds 20

Each round runs one child process per tree (old first, then new), each timing
`--samples` samples of `run.py`'s full-plan step count after one warm-up sample; the
round's ratio is new/old of the children's median step times. The table gives the
median step of each tree and the median ratio over rounds, which cancels slow drift of
a shared machine. A child imports `tinygrad_bp` and `benchmarks` from its own tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.run import PLANS

CHILD = """
import json, sys, time
from benchmarks.contenders import TinygradMLP
from benchmarks.workloads import WORKLOADS, init_params, make_data
name, steps, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
workload = WORKLOADS[name]
trainer = TinygradMLP(workload, init_params(workload), make_data(workload))
times = []
for _ in range(samples + 1):
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    times.append((time.perf_counter() - start) / steps)
print(json.dumps(times[1:]))
"""


def child_median(tree: Path, name: str, steps: int, samples: int) -> float:
    """Median seconds per step of `tree`'s tinygrad_bp, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = [sys.executable, "-c", CHILD, name, str(steps), str(samples)]
    result = subprocess.run(
        args, cwd=tree, env=env, capture_output=True, text=True, check=True
    )
    return statistics.median(json.loads(result.stdout))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the tree to compare against")
    parser.add_argument("--new", type=Path, default=Path(__file__).parents[1])
    parser.add_argument("--only", default="W1,W2,W3,W4")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args(argv)
    for tree in (args.old, args.new):
        if not (tree / "tinygrad_bp" / "__init__.py").is_file():
            parser.error(f"{tree} is not a tinygrad_bp source tree")
    print(f"new = {args.new.resolve()}, old = {args.old.resolve()}")
    print("| workload | old step | new step | new/old (median of rounds) |")
    print("|---|---|---|---|")
    for name in args.only.split(","):
        steps = PLANS["full"][name].steps
        old, new, ratios = [], [], []
        for _ in range(args.rounds):
            old.append(child_median(args.old, name, steps, args.samples))
            new.append(child_median(args.new, name, steps, args.samples))
            ratios.append(new[-1] / old[-1])
        print(
            f"| {name} | {statistics.median(old) * 1e3:.3f} ms "
            f"| {statistics.median(new) * 1e3:.3f} ms "
            f"| {statistics.median(ratios):.3f}x |"
        )


if __name__ == "__main__":
    main()
