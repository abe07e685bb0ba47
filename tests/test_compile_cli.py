"""The command line's compiled mode: `train --compile` and `seed --source`."""

from __future__ import annotations

import ast
import json

import pytest

from tinygrad_bp.cli import main


def test_train_compile_trains_the_same_model_and_reports_the_speed(tmp_path, capsys):
    assert (
        main(["train", "--quick", "--epochs", "3", "--out", str(tmp_path / "e")]) == 0
    )
    eager = capsys.readouterr().out
    argv = [
        "train",
        "--quick",
        "--epochs",
        "3",
        "--compile",
        "--out",
        str(tmp_path / "c"),
    ]
    assert main(argv) == 0
    compiled = capsys.readouterr().out
    assert "compiled:" in compiled and "x eager" in compiled
    accuracy = [line for line in eager.splitlines() if "accuracy" in line]
    assert accuracy == [line for line in compiled.splitlines() if "accuracy" in line]
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["options"]["compile"] is True
    assert (
        metrics["compiled"]["programs"] >= 1 and metrics["compiled"]["steps_per_s"] > 0
    )


def test_train_compile_is_refused_for_gpt(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "gpt", "--compile", "--quick"])
    assert "--compile applies to --model mlp or cnn" in capsys.readouterr().err


def test_seed_source_prints_the_formulas_then_the_generated_program(capsys):
    assert main(["seed", "--activation", "tanh", "--source"]) == 0
    out = capsys.readouterr().out
    formulas = out.index("hand-derived formulas")
    program = out.index("def train_step(")
    assert formulas < program
    ast.parse(out[program:])
    assert "# backward of tanh" in out and "np.subtract(w0," in out
