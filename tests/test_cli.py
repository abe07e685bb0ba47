"""The tinygrad-bp command line: train, seed and graph, their outputs and their errors."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp.cli import build_mlp, main, seed_gradients_by_hand

ROOT = Path(__file__).resolve().parents[1]
HAS_DEMO = all(importlib.util.find_spec(m) for m in ("tqdm", "matplotlib"))
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) in this process: (exit status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def final_accuracies(out: str) -> tuple[float, float]:
    train = re.search(r"^final train accuracy (\S+)$", out, re.M)
    test = re.search(r"^final test accuracy (\S+)$", out, re.M)
    return float(train[1]), float(test[1])


# ------------------------------------------------------------------------ train
def test_train_quick_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run(
        ["train", "--quick", "--seed", "3", "--out", str(out_dir)], capsys
    )
    assert code == 0
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["options"] == {
        "dataset": "spirals",
        "hidden": [64, 64],
        "activation": "relu",
        "optimizer": "adam",
        "lr": 0.01,
        "epochs": 20,
        "batch_size": 32,
        "seed": 3,
        "quick": True,
    }
    history = metrics["history"]
    assert history["epoch"] == list(range(1, 21))
    assert all(
        len(history[k]) == 20 for k in ("loss", "train_accuracy", "test_accuracy")
    )
    assert all(
        0 <= a <= 1 for a in history["train_accuracy"] + history["test_accuracy"]
    )
    assert history["loss"][-1] < history["loss"][0]
    assert history["test_accuracy"][-1] == metrics["test_accuracy"]
    assert metrics["samples"] == {"train": 120, "test": 30, "classes": 3}
    assert metrics["seconds"] > 0
    assert final_accuracies(out) == pytest.approx(
        (metrics["train_accuracy"], metrics["test_accuracy"]), abs=1e-4
    )

    # The saved weights reproduce the reported accuracies on the regenerated data.
    state = tg.load(out_dir / "model.npz")
    model = build_mlp(2, [64, 64], 3)
    model.load_state_dict(state)
    tg.manual_seed(3)
    X, y = tg.data.spirals(n_per_class=50, classes=3)
    with tg.no_grad():
        correct = (model(tg.Tensor(X)).argmax(axis=1).numpy() == y).sum()
    reported = metrics["train_accuracy"] * 120 + metrics["test_accuracy"] * 30
    assert correct == round(reported)

    if HAS_DEMO:
        for picture in ("loss.png", "decision_boundary.png"):
            assert (out_dir / picture).read_bytes().startswith(b"\x89PNG")
        assert "epoch 1/" not in out and "tinygrad_bp[demo]" not in out
        assert "20/20" in err  # tqdm's bar, on stderr


def test_train_defaults_reach_95_percent_on_spirals(tmp_path, capsys):
    code, out, _ = run(["train", "--out", str(tmp_path)], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["options"]["epochs"] == 60 and not metrics["options"]["quick"]
    assert metrics["test_accuracy"] >= 0.95
    assert final_accuracies(out)[1] >= 0.95


def test_train_options_are_used_and_recorded(tmp_path, capsys):
    argv = "train --dataset moons --hidden 8,5 --activation tanh --optimizer sgd"
    argv += f" --lr 0.05 --epochs 3 --batch-size 16 --quick --out {tmp_path}"
    code, _, _ = run(argv.split(), capsys)
    assert code == 0
    options = json.loads((tmp_path / "metrics.json").read_text())["options"]
    assert options["dataset"] == "moons" and options["hidden"] == [8, 5]
    assert (options["activation"], options["optimizer"]) == ("tanh", "sgd")
    assert (options["lr"], options["epochs"], options["batch_size"]) == (0.05, 3, 16)
    state = tg.load(tmp_path / "model.npz")
    assert {k: v.shape for k, v in state.items()} == {
        "0.weight": (2, 8),
        "0.bias": (8,),
        "2.weight": (8, 5),
        "2.bias": (5,),
        "4.weight": (5, 2),
        "4.bias": (2,),
    }


@pytest.mark.skipif(not HAS_SKLEARN, reason="needs scikit-learn")
def test_train_digits_has_no_decision_boundary(tmp_path, capsys):
    argv = f"train --dataset digits --quick --epochs 1 --out {tmp_path}".split()
    code, _, _ = run(argv, capsys)
    assert code == 0
    assert tg.load(tmp_path / "model.npz")["0.weight"].shape == (64, 64)
    assert not (tmp_path / "decision_boundary.png").exists()
    assert (tmp_path / "loss.png").exists() == HAS_DEMO


def test_train_without_demo_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, _ = run(
        ["train", "--quick", "--epochs", "4", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    assert out.count("pip install 'tinygrad_bp[demo]'") == 1
    epoch_lines = re.findall(
        r"^epoch (\d+)/4  loss \S+  accuracy \S+  test accuracy \S+$", out, re.M
    )
    assert epoch_lines == ["1", "2", "3", "4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model.npz"]


def test_train_digits_without_scikit_learn_exits_2(tmp_path, capsys, monkeypatch):
    # both, in case another test imported scikit-learn already
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    out_dir = tmp_path / "never"
    code, out, err = run(
        ["train", "--dataset", "digits", "--out", str(out_dir)], capsys
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "pip install 'tinygrad_bp[data]'" in err
    assert not out_dir.exists()


BAD_OPTIONS = [
    ("train --dataset mnist", "argument --dataset: invalid choice: 'mnist'"),
    ("train --lr -0.1", "argument --lr: expected a positive number, got '-0.1'"),
    ("train --lr 0", "argument --lr: expected a positive number, got '0'"),
    ("train --lr nan", "argument --lr: expected a positive number, got 'nan'"),
    ("train --lr fast", "argument --lr: expected a positive number, got 'fast'"),
    ("train --hidden 64,0", "argument --hidden: expected comma-separated positive"),
    ("train --hidden 64,x", "argument --hidden: .* got '64,x'"),
    ("train --hidden 6.5", "argument --hidden: .* got '6.5'"),
    ("train --hidden ,", "argument --hidden: .* got ','"),
    ("train --epochs 0", "argument --epochs: expected a positive integer, got '0'"),
    ("train --batch-size -4", "argument --batch-size: expected a positive integer"),
    ("train --activation swish", "argument --activation: invalid choice: 'swish'"),
    ("train --optimizer lbfgs", "argument --optimizer: invalid choice: 'lbfgs'"),
    ("seed --activation relu", "argument --activation: invalid choice: 'relu'"),
    ("graph --hidden 0", "argument --hidden: .* got '0'"),
    ("graph --format pdf", "argument --format: invalid choice: 'pdf'"),
    ("graph --activation relu", "--activation relu applies to --model"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
    ("", "the following arguments are required: command"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS)
def test_bad_options_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, not even here
    code, out, err = run(argv.split(), capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.match(r"tinygrad-bp( \w+)?: error: ", err)
    assert re.search(message, err)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for argv in (
        ["train", "--quick", "--out", str(blocker / "run")],
        ["graph", "--out", str(blocker / "g.dot")],
    ):
        code, out, err = run(argv, capsys)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "--out" in err and "cannot be created" in err


def test_bad_model_file_exits_2(tmp_path, capsys):
    code, _, err = run(["graph", "--model", str(tmp_path / "missing.npz")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--model" in err
    tg.manual_seed(0)
    tg.save(build_mlp(2, [8], 3).state_dict(), tmp_path / "m.npz")
    for hidden, why in (("8,8", "does not hold an MLP"), ("5", "shape mismatch")):
        argv = ["graph", "--model", str(tmp_path / "m.npz"), "--hidden", hidden]
        argv += ["--out", str(tmp_path / "g.dot")]
        code, _, err = run(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and why in err
    assert not (tmp_path / "g.dot").exists()


def test_help_on_every_command(capsys):
    for argv in ([], ["train"], ["seed"], ["graph"]):
        code, out, _ = run([*argv, "--help"], capsys)
        assert code == 0 and out.startswith("usage: tinygrad-bp")
    code, out, _ = run(["--help"], capsys)
    assert all(name in out for name in ("train", "seed", "graph"))


def test_python_dash_m_runs_the_cli():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "tinygrad_bp", "train", "--lr", "-1"]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "argument --lr" in result.stderr


# ------------------------------------------------------------------------- seed
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_seed_hand_and_generated_gradients_agree(activation, capsys):
    code, out, _ = run(["seed", "--activation", activation, "--seed", "1"], capsys)
    assert code == 0
    largest = float(re.search(r"^largest absolute difference: (\S+)$", out, re.M)[1])
    assert largest < 1e-6
    rows = re.findall(r"^d(\S+)\[[\d, ]+\]\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
    assert len(rows) == 3 * 4 + 4 + 4 * 2 + 2  # every element of w[0], b[0], w[1], b[1]
    assert {name for name, *_ in rows} == {"w[0]", "b[0]", "w[1]", "b[1]"}
    assert max(abs(float(h) - float(g)) for _, h, g, _ in rows) < 1e-12
    assert f"-> {activation} ->" in out


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_seed_hand_formulas_match_finite_differences(activation):
    # Independent of the generated pass: the four formulas against central differences.
    rng = np.random.default_rng(7)
    arrays = {
        "a[0]": rng.standard_normal((4, 3)),
        "Y": rng.uniform(0, 1, (4, 2)),
        "w[0]": rng.standard_normal((3, 4)),
        "b[0]": rng.standard_normal(4),
        "w[1]": rng.standard_normal((4, 2)),
        "b[1]": rng.standard_normal(2),
    }
    _, grads = seed_gradients_by_hand(arrays, activation)
    eps = 1e-6
    for name, grad in grads.items():
        for index in np.ndindex(grad.shape):
            shifted = {}
            for sign in (1, -1):
                moved = dict(arrays, **{name: arrays[name].copy()})
                moved[name][index] += sign * eps
                shifted[sign] = seed_gradients_by_hand(moved, activation)[0]
            numeric = (shifted[1] - shifted[-1]) / (2 * eps)
            assert grad[index] == pytest.approx(numeric, abs=1e-8), (name, index)


# ------------------------------------------------------------------------ graph
def test_graph_of_the_seed_network(tmp_path, capsys):
    path = tmp_path / "sub" / "graph.dot"
    code, out, _ = run(["graph", "--activation", "tanh", "--out", str(path)], capsys)
    assert code == 0 and str(path) in out
    dot = path.read_text()
    assert dot.startswith("digraph tinygrad_bp {")
    for text in (
        "w[0]\\n(3, 4) float64",
        "b[1]\\n(2,) float64",
        "a[0]\\n(4, 3)",
        "Y\\n(4, 2)",
    ):
        assert text in dot
    assert dot.count("a[1] = Tanh") == 1 and dot.count("MatMul") == 2
    assert re.search(r'label="E = \w+\\n\(\) float64", peripheries=2', dot)


def test_graph_of_a_saved_model(tmp_path, capsys):
    tg.manual_seed(0)
    tg.save(build_mlp(3, [6, 5], 4, "tanh").state_dict(), tmp_path / "model.npz")
    argv = ["graph", "--model", str(tmp_path / "model.npz"), "--hidden", "6,5"]
    code, _, _ = run(
        [*argv, "--activation", "tanh", "--out", str(tmp_path / "m.dot")], capsys
    )
    assert code == 0
    dot = (tmp_path / "m.dot").read_text()
    assert "0.weight\\n(3, 6) float32" in dot and "4.bias\\n(4,) float32" in dot
    assert dot.count("Tanh\\n") == 2
    assert re.search(
        r'\\n\(4, 4\) float32", peripheries=2', dot
    )  # 4 samples, 4 classes


def test_graph_png_without_graphviz_writes_dot_and_explains(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    path = tmp_path / "g.dot"
    code, out, _ = run(["graph", "--format", "png", "--out", str(path)], capsys)
    assert code == 0 and path.read_text().startswith("digraph")
    assert f"dot -Tpng {path} -o {tmp_path / 'g.png'}" in out
    assert "pip install 'tinygrad_bp[demo]'" in out
    assert not (tmp_path / "g.png").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
def test_graph_svg_with_graphviz(tmp_path, capsys):
    pytest.importorskip("graphviz")
    code, _, _ = run(
        ["graph", "--format", "svg", "--out", str(tmp_path / "g.dot")], capsys
    )
    assert code == 0
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "w[0]" in svg
