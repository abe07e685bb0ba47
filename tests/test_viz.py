"""tinygrad_bp.viz: the DOT text of a recorded graph, and rendering it."""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.viz import draw, to_dot

NODE = re.compile(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r"^  (n\d+) -> (n\d+);$")


def parse(dot: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]]]:
    """Nodes {id: (label, other attributes)} and edges [(from, to)] of our DOT text."""
    lines = dot.splitlines()
    assert lines[0] == "digraph tinygrad_bp {" and lines[-1] == "}"
    nodes: dict[str, tuple[str, str]] = {}
    edges: list[tuple[str, str]] = []
    for line in lines[2:-1]:
        if match := NODE.match(line):
            assert match[1] not in nodes, f"duplicate node id {match[1]}"
            nodes[match[1]] = (match[2], match[3])
        else:
            match = EDGE.match(line)
            assert match, f"unexpected DOT line {line!r}"
            edges.append((match[1], match[2]))
    return nodes, edges


def node_with(nodes: dict[str, tuple[str, str]], title: str) -> tuple[str, str, str]:
    """The one node whose label's first line is `title`: (id, label, attributes)."""
    found = [(k, v[0], v[1]) for k, v in nodes.items() if v[0].split("\\n")[0] == title]
    assert len(found) == 1, f"{len(found)} nodes titled {title!r}"
    return found[0]


@pytest.fixture
def mlp_loss():
    """A one-layer tanh network's loss with its leaves, as a dict."""
    tg.manual_seed(0)
    x = tg.randn(5, 3)
    w = tg.randn(3, 4, requires_grad=True)
    b = tg.zeros(4, dtype=np.float64, requires_grad=True)
    loss = (x @ w + b).tanh().sum()
    return {"x": x, "w": w, "b": b, "loss": loss}


def test_nodes_show_op_shape_and_dtype(mlp_loss):
    nodes, edges = parse(to_dot(mlp_loss["loss"]))
    # x, w, x@w, b, +b, tanh, sum: one node per tensor
    assert len(nodes) == 7 and len(edges) == 6
    matmul, matmul_label, _ = node_with(nodes, "MatMul")
    assert matmul_label == "MatMul\\n(5, 4) float32"
    add, add_label, _ = node_with(nodes, "Add")
    assert add_label == "Add\\n(5, 4) float64"  # float32 + float64 promotes
    tanh, tanh_label, _ = node_with(nodes, "Tanh")
    total, total_label, total_attributes = node_with(nodes, "Sum")
    assert tanh_label == "Tanh\\n(5, 4) float64"
    assert total_label == "Sum\\n() float64"
    assert "peripheries=2" in total_attributes  # the tensor asked about
    assert {(matmul, add), (add, tanh), (tanh, total)} <= set(edges)
    assert sum(1 for _, to in edges if to == matmul) == 2


def test_leaves_that_require_grad_stand_out(mlp_loss):
    nodes, _ = parse(to_dot(mlp_loss["loss"]))
    leaves = {k: v for k, v in nodes.items() if "shape=box" in v[1]}
    assert len(leaves) == 3
    grad_leaves = sorted(v[0] for v in leaves.values() if "#9ecae1" in v[1])
    plain_leaves = [v[0] for v in leaves.values() if "#e8e8e8" in v[1]]
    assert grad_leaves == ["leaf\\n(3, 4) float32", "leaf\\n(4,) float64"]
    assert plain_leaves == ["leaf\\n(5, 3) float32"]


def test_scalar_constants_show_their_value():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    nodes, _ = parse(to_dot(x * 2.5))
    assert node_with(nodes, "constant 2.5")[1] == "constant 2.5\\n() float32"


def test_params_dict_names_leaves_and_intermediates(mlp_loss):
    names = {name: mlp_loss[name] for name in ("x", "w", "b", "loss")}
    nodes, _ = parse(to_dot(mlp_loss["loss"], params=names))
    assert node_with(nodes, "w")[1] == "w\\n(3, 4) float32"
    assert node_with(nodes, "b")[1] == "b\\n(4,) float64"
    assert node_with(nodes, "x")[1] == "x\\n(5, 3) float32"
    assert node_with(nodes, "loss = Sum")[1] == "loss = Sum\\n() float64"


def test_params_module_names_its_parameters():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    nodes, _ = parse(to_dot(model(tg.ones(4, 2)).sum(), params=model))
    titles = {label.split("\\n")[0] for label, _ in nodes.values()}
    assert {"0.weight", "0.bias", "2.weight", "2.bias"} <= titles
    assert node_with(nodes, "0.weight")[1] == "0.weight\\n(2, 3) float32"


def test_shared_tensors_are_one_node_and_ids_are_stable():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    h = x.exp()
    y = (h * h + h).sum()  # h feeds two ops, one of them twice
    dot = to_dot(y)
    nodes, edges = parse(dot)
    assert len(nodes) == 5  # x, h, h*h, +, sum
    exp_node = node_with(nodes, "Exp")[0]
    assert sum(1 for source, _ in edges if source == exp_node) == 3
    assert to_dot(y) == dot
    assert list(nodes) == [f"n{i}" for i in range(5)]
    # post-order: every edge goes from a lower id to a higher one
    assert all(int(a[1:]) < int(b[1:]) for a, b in edges)


def test_names_are_escaped():
    w = tg.tensor([1.0], requires_grad=True)
    dot = to_dot(w * 2, params={'my "w"\\': w})
    assert 'label="my \\"w\\"\\\\\\n(1,) float32"' in dot
    parse(dot)


def test_leaf_alone():
    nodes, edges = parse(to_dot(tg.tensor([1.0, 2.0], requires_grad=True)))
    assert len(nodes) == 1 and edges == []


def test_100k_op_chain_without_recursion():
    x = tg.tensor(0.1, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = -y
    dot = to_dot(y)
    assert dot.count(" -> ") == 100_000
    assert dot.count("Neg\\n() float32") == 100_000


def test_released_graph_stops_with_a_note(mlp_loss):
    loss = mlp_loss["loss"]
    loss.backward(retain_graph=True)
    assert len(parse(to_dot(loss))[0]) == 7  # retained: still whole
    loss.backward()
    nodes, edges = parse(to_dot(loss))
    assert edges == []
    ((label, attributes),) = nodes.values()
    assert label.startswith("Sum\\n() float64\\ninputs released by backward()")
    assert "retain_graph=True" in label and "style=dashed" in attributes


@pytest.mark.parametrize(
    ("t", "params", "match"),
    [
        (np.zeros(2), None, "t must be a Tensor, got ndarray"),
        (tg.ones(2), 42, "params must be a Module or a dict .*got int"),
        (
            tg.ones(2),
            {"w": np.zeros(2)},
            r"params\['w'\] must be a Tensor, got ndarray",
        ),
    ],
)
def test_bad_arguments_raise_type_error(t, params, match):
    with pytest.raises(TypeError, match=match):
        to_dot(t, params=params)


def test_draw_dot_needs_no_graphviz(tmp_path, monkeypatch, mlp_loss):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if not installed
    path = draw(mlp_loss["loss"], tmp_path / "g.dot", params={"w": mlp_loss["w"]})
    assert path == tmp_path / "g.dot"
    assert (
        path.read_text() == to_dot(mlp_loss["loss"], params={"w": mlp_loss["w"]}) + "\n"
    )
    other = draw(mlp_loss["loss"], tmp_path / "g.txt", format="gv")
    assert other.read_text() == to_dot(mlp_loss["loss"]) + "\n"


def test_draw_without_graphviz_package_names_the_extra(tmp_path, monkeypatch, mlp_loss):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad_bp\[demo\]'.*'dot'"):
        draw(mlp_loss["loss"], tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


def test_draw_without_dot_binary_names_it(tmp_path, monkeypatch, mlp_loss):
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` in there
    with pytest.raises(
        RuntimeError, match=r"'dot' program was not found.*tinygrad_bp\[demo\]"
    ):
        draw(mlp_loss["loss"], tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_draw_needs_a_known_format(tmp_path, mlp_loss):
    with pytest.raises(ValueError, match="cannot tell the format of .*graph'"):
        draw(mlp_loss["loss"], tmp_path / "graph")
    pytest.importorskip("graphviz")
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        draw(mlp_loss["loss"], tmp_path / "graph.nope")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
def test_draw_renders_svg_and_png(tmp_path, mlp_loss):
    pytest.importorskip("graphviz")
    svg = draw(mlp_loss["loss"], tmp_path / "g.svg", params={"w": mlp_loss["w"]})
    text = svg.read_text()
    assert "<svg" in text and "MatMul" in text and ">w</text>" in text
    png = draw(mlp_loss["loss"], tmp_path / "g.out", format="png")
    assert png.read_bytes().startswith(b"\x89PNG")
