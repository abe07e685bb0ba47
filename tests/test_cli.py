"""The tinygrad-bp command line: train (mlp, cnn, gpt), seed and graph, their outputs
and their errors."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp.cli import main
from tinygrad_bp.cli.models import GPT, MODELS, build_cnn, build_mlp, generate

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
        "model": "mlp",
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


# -------------------------------------------------------------------- train cnn
@pytest.mark.skipif(not HAS_SKLEARN, reason="needs scikit-learn")
def test_train_cnn_quick_on_digits(tmp_path, capsys):
    code, _out, err = run(
        ["train", "--model", "cnn", "--quick", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["options"] == {
        "model": "cnn",
        "dataset": "digits",
        "channels": 32,
        "lr_schedule": "cosine",
        "optimizer": "adam",
        "lr": 0.003,
        "epochs": 2,
        "batch_size": 32,
        "seed": 0,
        "quick": True,
    }
    assert metrics["samples"] == {"train": 240, "test": 60, "classes": 10}
    assert metrics["test_accuracy"] > 0.3  # two epochs on 240 images; chance is 0.1
    state = tg.load(tmp_path / "model.npz")
    assert {k: v.shape for k, v in state.items()} == {
        "0.weight": (32, 1, 3, 3),
        "0.bias": (32,),
        "3.weight": (64, 32, 3, 3),
        "3.bias": (64,),
        "7.weight": (256, 10),
        "7.bias": (10,),
    }
    model = build_cnn((1, 8, 8), 10, channels=32)
    model.load_state_dict(state)
    assert not (tmp_path / "decision_boundary.png").exists()
    if HAS_DEMO:
        assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")
        assert "2/2" in err


@pytest.mark.skipif(not HAS_SKLEARN, reason="needs scikit-learn")
def test_train_cnn_defaults_reach_97_percent_on_digits(tmp_path, capsys):
    code, out, _ = run(["train", "--model", "cnn", "--out", str(tmp_path)], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["options"]["epochs"] == 15 and metrics["samples"]["test"] == 360
    assert metrics["test_accuracy"] >= 0.97
    assert final_accuracies(out)[1] >= 0.97


def test_cnn_registry_builds_from_options():
    args = build_parser_args(["train", "--model", "cnn", "--channels", "4"])
    model = MODELS["cnn"](args, {"image_shape": (1, 8, 8), "classes": 3})
    assert model(tg.zeros(2, 1, 8, 8)).shape == (2, 3)
    assert model.state_dict()["0.weight"].shape == (4, 1, 3, 3)


def build_parser_args(argv):
    from tinygrad_bp.cli import build_parser
    from tinygrad_bp.cli.train import _resolve_options

    args = build_parser().parse_args(argv)
    _resolve_options(args)
    return args


# -------------------------------------------------------------------- train gpt
TINY_GPT = "--steps 6 --dim 16 --heads 2 --layers 1 --block-size 16 --batch-size 4"


def test_train_gpt_quick_writes_samples_and_plot(tmp_path, capsys):
    code, out, err = run(
        ["train", "--model", "gpt", "--quick", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    options = metrics["options"]
    assert (options["model"], options["dataset"], options["steps"]) == (
        "gpt",
        "text",
        20,
    )
    assert (options["dim"], options["heads"], options["layers"]) == (64, 4, 2)
    assert (options["block_size"], options["batch_size"]) == (64, 16)
    assert (options["temperature"], options["top_k"]) == (0.8, 10)
    assert metrics["history"]["step"] == list(range(1, 21))
    held_out = metrics["evaluations"]["held_out_loss"]
    assert (
        metrics["evaluations"]["step"][-1] == 20
        and held_out[-1] == metrics["held_out_loss"]
    )
    # 20 steps from log(vocab_size) ~ 4.6 nats: learning has begun
    assert (
        held_out[-1] < held_out[0] < math.log(metrics["characters"]["vocab_size"]) + 0.2
    )
    assert re.search(r"^final held-out loss (\S+) nats per character$", out, re.M)

    samples = (tmp_path / "samples.txt").read_text()
    assert samples.startswith("3 samples of 40 characters")
    assert "temperature 0.8, top-k 10" in samples
    parts = samples.split("-" * 72 + "\n")[1:-1]
    prompts = ("The ", "A list ", "def ")
    assert [p[: len(prompt)] for p, prompt in zip(parts, prompts)] == list(prompts)
    assert [len(p) for p in parts] == [len(prompt) + 40 + 1 for prompt in prompts]
    assert "after the prompts 'The ', 'A list ', 'def '" in samples
    assert samples.strip() in out  # printed as well as written
    assert set(samples) <= set(metrics["vocab"]) | {"\n"}

    state = tg.load(tmp_path / "model.npz")
    assert state["token.weight"].shape == (metrics["characters"]["vocab_size"], 64)
    assert not any("head" in name for name in state)  # the output head is tied
    if HAS_DEMO:
        assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")
        assert "20/20" in err and "loss=" in err  # tqdm's bar, with the loss


def test_train_gpt_options_are_used_and_recorded(tmp_path, capsys):
    argv = f"train --model gpt {TINY_GPT} --lr 0.01 --temperature 0.5 --top-k 3"
    argv += f" --sample-length 12 --seed 4 --out {tmp_path}"
    code, _out, _ = run(argv.split(), capsys)
    assert code == 0
    options = json.loads((tmp_path / "metrics.json").read_text())["options"]
    assert options | {"warmup_steps": None} == {
        "model": "gpt",
        "dataset": "text",
        "block_size": 16,
        "dim": 16,
        "heads": 2,
        "layers": 1,
        "steps": 6,
        "batch_size": 4,
        "lr": 0.01,
        "weight_decay": 0.1,
        "warmup_steps": None,
        "temperature": 0.5,
        "top_k": 3,
        "sample_length": 12,
        "seed": 4,
        "quick": False,
    }
    state = tg.load(tmp_path / "model.npz")
    assert state["position.weight"].shape == (16, 16)
    assert state["blocks.0.attention.qkv.weight"].shape == (16, 48)
    assert "blocks.1.norm1.weight" not in state
    assert (
        (tmp_path / "samples.txt").read_text().startswith("3 samples of 12 characters")
    )


def test_train_gpt_is_reproducible_under_seed(tmp_path, capsys):
    texts = []
    for name in ("a", "b"):
        argv = (
            f"train --model gpt {TINY_GPT} --sample-length 20 --out {tmp_path / name}"
        )
        assert run(argv.split(), capsys)[0] == 0
        texts.append((tmp_path / name / "samples.txt").read_text())
    assert texts[0] == texts[1]


def test_train_gpt_without_demo_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, _ = run(
        ["train", "--model", "gpt", *TINY_GPT.split(), "--out", str(tmp_path)], capsys
    )
    assert code == 0
    assert out.count("pip install 'tinygrad_bp[demo]'") == 1
    assert re.findall(r"^step (\d+)/6  loss \S+  held out \S+$", out, re.M) == [
        str(i) for i in range(1, 7)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "model.npz",
        "samples.txt",
    ]


def test_gpt_attention_is_causal():
    tg.manual_seed(0)
    model = GPT(vocab_size=7, block_size=6, dim=8, heads=2, layers=2)
    ids = np.array([[1, 2, 3, 4, 5, 6]])
    changed = ids.copy()
    changed[0, 4] = 0
    with tg.no_grad():
        before, after = model(ids).numpy(), model(changed).numpy()
    np.testing.assert_allclose(before[:, :4], after[:, :4], rtol=1e-6)
    assert not np.allclose(before[:, 4:], after[:, 4:])


def test_gpt_head_is_tied_and_decay_is_on_matrices_only():
    tg.manual_seed(0)
    model = GPT(vocab_size=7, block_size=6, dim=8, heads=2, layers=1)
    decay, no_decay = model.parameter_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(
        list(model.parameters())
    )
    logits = model(np.array([[1, 2]]))
    logits[0, -1, 3].backward()
    assert np.abs(model.token.weight.grad.numpy()[3]).sum() > 0  # the head's row 3
    with pytest.raises(ValueError, match="longer than block_size 6"):
        model(np.zeros((1, 7), dtype=np.int64))


def test_generate_top_k_and_temperature():
    tg.manual_seed(0)
    model = GPT(vocab_size=9, block_size=4, dim=8, heads=2, layers=1)
    greedy = generate(model, [1, 2, 3, 4, 5], length=6, top_k=1)
    assert greedy[:5].tolist() == [1, 2, 3, 4, 5] and len(greedy) == 11
    with tg.no_grad():  # top-1 is the argmax after the last block_size tokens
        expected = int(model(greedy[None, 1:5]).numpy()[0, -1].argmax())
    assert greedy[5] == expected
    tg.manual_seed(1)
    a = generate(model, [0], length=20, temperature=2.0, top_k=3)
    tg.manual_seed(1)
    assert (
        generate(model, [0], length=20, temperature=2.0, top_k=3).tolist() == a.tolist()
    )
    assert model.training  # generate restores the mode it found
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(model, [0], length=1, temperature=0.0)
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [], length=1)


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
    ("train --model rnn", "argument --model: invalid choice: 'rnn'"),
    (
        "train --dataset text",
        "--model mlp trains on --dataset spirals or moons or digits",
    ),
    ("train --model cnn --dataset spirals", "--model cnn trains on --dataset digits"),
    ("train --model gpt --dataset digits", "--model gpt trains on --dataset text"),
    ("train --model gpt --hidden 8", "--hidden applies to --model mlp, not gpt"),
    ("train --model cnn --activation tanh", "--activation applies to --model mlp"),
    ("train --model gpt --epochs 3", "--epochs applies to --model mlp or cnn, not gpt"),
    ("train --model gpt --optimizer sgd", "--optimizer applies to --model mlp or cnn"),
    ("train --steps 5", "--steps applies to --model gpt, not mlp"),
    ("train --model cnn --top-k 5", "--top-k applies to --model gpt, not cnn"),
    ("train --channels 8", "--channels applies to --model cnn, not mlp"),
    ("train --model gpt --heads 3", "--heads 3 must divide --dim 64"),
    ("train --model gpt --steps 0", "argument --steps: expected a positive integer"),
    (
        "train --model gpt --temperature 0",
        "argument --temperature: expected a positive",
    ),
    ("train --model gpt --top-k -1", "argument --top-k: expected a positive integer"),
    (
        "train --model gpt --dim x",
        "argument --dim: expected a positive integer, got 'x'",
    ),
    ("train --model cnn --channels 0", "argument --channels: expected a positive"),
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
    code, out, _ = run(["train", "--help"], capsys)
    assert all(f"--{o}" in out for o in ("model", "steps", "top-k", "temperature"))
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


# -------------------------------------------------------------------- --export-onnx
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
ONNX_LINE = (
    r"^model\.onnx: ONNX Runtime vs tinygrad_bp at batch sizes (\d+) and (\d+): max "
    r"abs difference (\S+) OK$"
)


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra (onnx, onnxruntime)")
@pytest.mark.parametrize(
    "argv",
    [
        "--model mlp --quick --epochs 2",
        "--model gpt --quick --steps 2 --block-size 8 --dim 16 --heads 2 --layers 1 "
        "--sample-length 5",
    ],
    ids=["mlp", "gpt"],
)
def test_train_export_onnx_writes_and_checks_the_file(argv, tmp_path, capsys):
    code, out, _ = run(
        ["train", *argv.split(), "--export-onnx", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    found = re.search(ONNX_LINE, out, re.M)
    assert found, out
    assert found[1] != found[2] and float(found[3]) < 1e-4
    assert (tmp_path / "model.onnx").stat().st_size > 0
    assert "model.onnx" in out.splitlines()[-1]  # the "wrote ..." line


def test_train_export_onnx_without_the_extra_says_so_before_training(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    out_dir = tmp_path / "run"
    code, out, err = run(
        ["train", "--quick", "--export-onnx", "--out", str(out_dir)], capsys
    )
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--export-onnx" in err and "pip install 'tinygrad_bp[onnx]'" in err
    assert not out_dir.exists()  # nothing trained, nothing written
