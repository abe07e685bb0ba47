"""The benchmark harness runs, checks equal work, and reports; no timing assertions."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ is not part of the installed package; it is importable from the repo root,
# which plain `pytest` (unlike `python -m pytest`) does not put on sys.path.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import contenders, machine, memory, run  # noqa: E402
from benchmarks.numpy_manual import ManualMLP  # noqa: E402
from benchmarks.workloads import WORKLOADS, init_params, make_data  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """One in-process `--smoke` run, with the write targets moved out of the repo."""
    out = tmp_path_factory.mktemp("bench")
    patch = pytest.MonkeyPatch()
    patch.setattr(run, "README", out / "README.md")
    patch.setattr(run, "RESULTS", out / "results.json")
    # One thread: two busy BLAS pools on a shared CI box can turn seconds into minutes.
    argv = ["--smoke", "--threads", "1"] if machine.can_limit_threads() else ["--smoke"]
    torch = sys.modules.get("torch") or _try_import("torch")
    torch_threads = torch.get_num_threads() if torch else None
    try:
        results = run.run(argv)
    finally:
        patch.undo()
        if torch:  # the run sets torch's process-wide thread count; give it back
            torch.set_num_threads(torch_threads)
    assert not list(out.iterdir()), "--smoke must not write files"
    return results, run.render(results)


def _try_import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def test_smoke_runs_the_smoke_workloads_with_every_importable_contender(smoke):
    results, _ = smoke
    assert results["workloads"] == ["W1", "W2", "W5"]
    ran = set(results["benchmarks"]["W1"]["timing"])
    assert {"numpy_manual", "tinygrad_bp"} <= ran
    assert ran | set(results["skipped"]) == set(contenders.CONTENDERS)


def test_smoke_equal_loss_check_passed_for_every_workload(smoke):
    results, _ = smoke
    for name in results["workloads"]:
        check = results["benchmarks"][name]["check"]
        assert check["passed"] is True
        assert set(check["final_loss"]) == set(results["benchmarks"][name]["timing"])


def test_smoke_produces_the_table(smoke):
    results, table = smoke
    assert (
        "| workload | contender | median / step | vs numpy_manual | µs / op |" in table
    )
    for name in results["workloads"]:
        assert WORKLOADS[name].label in table
    assert "Equal-work check passed for W1, W2, W5" in table
    assert "W2 RSS growth, tinygrad_bp" in table


def test_smoke_ratios_are_relative_to_the_baseline(smoke):
    results, _ = smoke
    timing = results["benchmarks"]["W2"]["timing"]
    assert timing["numpy_manual"]["ratio"] == pytest.approx(1.0)
    assert all(t["median_s"] > 0 for t in timing.values())
    assert timing["tinygrad_bp"]["us_per_op"] is None
    assert results["benchmarks"]["W5"]["timing"]["tinygrad_bp"]["us_per_op"] > 0


class _SkipsBiasUpdate(ManualMLP):
    """The baseline with one bug: biases never move."""

    def step(self) -> float:
        biases = [b.copy() for b in self.b]
        loss = super().step()
        for b, old in zip(self.b, biases):
            b[...] = old
        return loss


def test_equal_work_check_catches_a_wrong_update():
    workload = WORKLOADS["W1"]
    buggy = contenders.Contender(
        "buggy", "numpy", _SkipsBiasUpdate, contenders.ManualChain, deep=False
    )
    field = [contenders.CONTENDERS["numpy_manual"], buggy]
    with pytest.raises(run.EqualWorkError, match="buggy"):
        run.check_equal_work(
            workload, field, init_params(workload), make_data(workload)
        )


def test_equal_work_check_passes_for_identical_work():
    workload = WORKLOADS["W2"]
    field = [
        contenders.CONTENDERS["numpy_manual"],
        contenders.CONTENDERS["tinygrad_bp"],
    ]
    result = run.check_equal_work(
        workload, field, init_params(workload), make_data(workload)
    )
    losses = list(result["final_loss"].values())
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_compare_runs_names_the_mismatched_weight():
    same = {"a": [1.0, 0.5], "b": [1.0, 0.5]}
    weights = {"a": [np.zeros(3)], "b": [np.full(3, 1e-3)]}
    with pytest.raises(run.EqualWorkError, match=r"b parameter 0 \(3,\)"):
        run.compare_runs("W0", same, weights)


def test_missing_library_is_skipped_cleanly(monkeypatch):
    ghost = contenders.Contender(
        "ghost",
        "no_such_module_for_bench",
        ManualMLP,
        contenders.ManualChain,
        deep=False,
    )
    monkeypatch.setitem(contenders.CONTENDERS, "ghost", ghost)
    found, skipped = run.available_contenders()
    assert "ghost" not in {c.name for c in found}
    assert "no_such_module_for_bench" in skipped["ghost"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--only", "W1,W3"], ["W1", "W3"]),
        (["--only", "W6"], ["W6-100k", "W6-1M"]),
        (["--quick", "--only", "W6"], ["W6-100k"]),
        (["--smoke"], ["W1", "W2", "W5"]),
    ],
)
def test_only_selects_workloads(argv, expected):
    assert run.parse_args(argv).workloads == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "W9"], "unknown workload 'W9'"),
        (["--quick", "--only", "W6-1M"], "'W6-1M' is not run in quick mode"),
        (["--only", ","], "no workload named"),
        (["--quick", "--smoke"], "not allowed with"),
        (["--threads", "0"], "--threads: must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        run.parse_args(argv)
    assert message in capsys.readouterr().err


def test_smoke_implies_no_write():
    assert run.parse_args(["--smoke"]).no_write
    assert not run.parse_args(["--quick"]).no_write


def test_update_readme_replaces_only_the_results_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\n{run.START}\nold\n{run.END}\n\n## Where the time goes\n"
    )
    run.update_readme("| new |\n", readme)
    run.update_readme("| newer |\n", readme)
    text = readme.read_text()
    assert (
        text
        == f"# Title\n\n{run.START}\n| newer |\n{run.END}\n\n## Where the time goes\n"
    )


def test_update_readme_appends_markers_when_missing(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    run.update_readme("| t |\n", readme)
    assert (
        readme.read_text()
        == f"# Title\n\n## Results\n\n{run.START}\n| t |\n{run.END}\n"
    )


def test_memory_step_probe_runs_in_a_subprocess():
    r = memory.measure("step", "W1", "numpy_manual")
    assert "error" not in r, r
    assert r["peak_kib"] >= r["setup_kib"] > 0
    assert r["delta_kib"] == r["peak_kib"] - r["setup_kib"]


def test_memory_probe_reports_a_failing_subprocess():
    assert "error" in memory.measure("step", "no-such-workload", "numpy_manual")


def test_memory_rejects_an_unknown_probe():
    with pytest.raises(ValueError, match="'heap'"):
        memory.measure("heap", "W1", "numpy_manual")


def test_threads_flag_limits_blas_and_is_reported(smoke):
    results, table = smoke
    if results["threads_limit"] is None:
        pytest.skip("threadpoolctl is not installed")
    assert results["machine"]["numpy_blas_threads"] == 1
    assert "set by --threads 1" in table


def test_memory_deep_probe_counts_bytes_per_node():
    r = memory.measure("deep", "W5", "tinygrad_bp")
    assert "error" not in r, r
    assert r["nodes"] == 1_000
    assert r["graph_kib"] >= r["setup_kib"]
    assert r["peak_bytes_per_node"] >= r["graph_bytes_per_node"] >= 0


def test_memory_tables_render_results_and_errors():
    step = {"setup_kib": 2048, "peak_kib": 3072, "delta_kib": 1024, "peak_reset": True}
    deep = {"graph_bytes_per_node": 700.4, "peak_bytes_per_node": 812.6}
    growth = {"steps": [100, 10_000], "rss_kib": [40_960, 41_984], "growth_kib": 1024}
    lines = run.render_memory(
        {
            "step": {"W3": {"numpy_manual": step, "torch": {"error": "exit 1: boom"}}},
            "deep": {"W6-100k": {"tinygrad_bp": deep}},
            "growth": {"W2": {"tinygrad_bp": growth}},
        }
    )
    text = "\n".join(lines)
    assert "| W3 | numpy_manual | 2.0 MiB | 3.0 MiB | 1.0 MiB |" in text
    assert "| W3 | torch | error: exit 1: boom | | |" in text
    assert "| W6-100k | tinygrad_bp | 700 | 813 |" in text
    assert "40.0 MiB after 100 steps, 41.0 MiB after 10,000 (growth +1.0 MiB)" in text
