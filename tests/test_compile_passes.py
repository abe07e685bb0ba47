"""The IR passes on their own: dead code, constant folding, duplicates, hoisting and
buffer planning (each `list[Node] -> list[Node]`), and the NumPy code generator."""

from __future__ import annotations

import ast
import operator

import numpy as np

from tinygrad_bp.compiler import passes
from tinygrad_bp.compiler.codegen_numpy import GuardFailed, generate
from tinygrad_bp.compiler.ir import Graph, Node, Ref, SlotInfo


def array_info(n, shape=(3,), dtype=np.float64, **kw):
    strides = np.empty(shape, dtype).strides
    return {
        i: SlotInfo(f"s{i}", shape, np.dtype(dtype), strides=strides, **kw)
        for i in range(n)
    }


def test_dead_code_keeps_draws_guards_and_writes_into_inputs():
    info = array_info(6)
    nodes = [
        Node("ufunc", np.exp, (Ref(0),), outs=(1,)),  # dead
        Node("rng", "random", ((3,),), outs=(2,)),  # a draw: kept
        Node("ufunc", np.add, (Ref(0), 1.0), (("out", (Ref(0),)),), writes=(0,)),
        Node("ufunc", np.tanh, (Ref(0),), outs=(3,)),
        Node("guard", "shape", (Ref(3),), expected=(3,)),
        Node("getitem", None, (Ref(1), 0), outs=(4,)),  # dead view of dead
    ]
    kept = passes.eliminate_dead_code(nodes, Graph(nodes, [0], [], info))
    assert [n.kind for n in kept] == ["rng", "ufunc", "ufunc", "guard"]


def test_dead_code_keeps_a_buffer_written_through_a_view():
    info = array_info(4)
    info[2].view_of = 1
    nodes = [
        Node("function", np.zeros, ((3,),), outs=(1,)),
        Node("getitem", None, (Ref(1), slice(None)), outs=(2,)),
        Node("setitem", None, (Ref(2), 0, Ref(0)), writes=(2,)),
        Node("ufunc", np.negative, (Ref(1),), outs=(3,)),
    ]
    kept = passes.eliminate_dead_code(nodes, Graph(nodes, [0], [Ref(3)], info))
    assert len(kept) == 4


def test_fold_constants_leaves_written_and_returned_arrays_alone():
    info = array_info(5)
    nodes = [
        Node("function", np.zeros, ((3,),), outs=(1,)),  # written later: stays
        Node("function", np.ones, ((3,),), outs=(2,)),  # read only: folded
        Node("function", np.zeros_like, (Ref(0),), outs=(3,)),  # shape only: folded
        Node("ufunc", np.add, (Ref(1), Ref(2)), (("out", (Ref(1),)),), writes=(1,)),
        Node("ufunc", np.add, (Ref(0), Ref(3)), outs=(4,)),
    ]
    folded = passes.fold_constants(nodes, Graph(nodes, [0], [Ref(4), Ref(1)], info))
    assert [n.kind for n in folded] == ["function", "const", "const", "ufunc", "ufunc"]
    np.testing.assert_array_equal(folded[2].target, np.zeros(3))


def test_merge_duplicates_and_hoisting_move_scalar_tests_first():
    info = array_info(2)
    info.update(
        {
            2: SlotInfo("wd", kind="scalar"),
            3: SlotInfo("t", kind="scalar"),
            4: SlotInfo("t", kind="scalar"),
        }
    )
    nodes = [
        Node("ufunc", np.negative, (Ref(0),), (("out", (Ref(0),)),), writes=(0,)),
        Node("scalar", operator.ne, (Ref(2), 0), outs=(3,)),
        Node("guard", "value", (Ref(3),), expected=False),
        Node("ufunc", np.negative, (Ref(0),), outs=(1,)),
        Node("scalar", operator.ne, (Ref(2), 0), outs=(4,)),
        Node("guard", "value", (Ref(4),), expected=False),
    ]
    graph = Graph(nodes, [0, 2], [Ref(1)], info)
    merged = passes.merge_duplicates(nodes, graph)
    assert len(merged) == 4
    hoisted = passes.hoist_scalar_checks(merged, graph)
    assert [n.kind for n in hoisted] == ["scalar", "guard", "ufunc", "ufunc"]
    assert hoisted[0].section == "checks"


def test_plan_buffers_reuses_dead_buffers_and_never_plans_inputs_outputs_or_views():
    info = array_info(6)
    info[4].view_of = 3
    nodes = [
        Node("ufunc", np.exp, (Ref(0),), outs=(1,)),
        Node("ufunc", np.tanh, (Ref(1),), outs=(2,)),  # in place into 1's buffer
        Node("ufunc", np.negative, (Ref(2),), outs=(3,)),
        Node("getitem", None, (Ref(3), slice(None)), outs=(4,)),
        Node("ufunc", np.exp, (Ref(0),), outs=(5,)),  # 3 is alive through its view
    ]
    graph = Graph(nodes, [0], [Ref(4), Ref(5)], info)
    planned = passes.plan_buffers(nodes, graph)
    assert [n.buffer for n in planned] == [0, 0, None, None, None]


def test_plan_buffers_keeps_the_memory_layout_eager_mode_had():
    shape = (2, 3)
    info = {
        0: SlotInfo("x", shape, np.dtype(np.float32), strides=(12, 4)),
        1: SlotInfo("y", shape, np.dtype(np.float32), strides=(4, 8)),  # transposed
        2: SlotInfo("z", shape, np.dtype(np.float32), strides=(12, 4)),
    }
    nodes = [
        Node("ufunc", np.exp, (Ref(0),), outs=(1,)),
        Node("ufunc", np.negative, (Ref(1),), outs=(2,)),
    ]
    graph = Graph(nodes, [0], [Ref(2)], info)
    planned = passes.plan_buffers(nodes, graph)
    assert planned[0].buffer == 0
    assert passes.empty_like_layout(info[1]).strides == (4, 8)


def test_generated_code_parses_runs_and_raises_on_a_failed_guard():
    info = array_info(3)
    info[0].exact = True
    info[2] = SlotInfo("flag", kind="scalar")
    nodes = [
        Node("method", "any", (Ref(0),), outs=(1,)),
        Node("guard", bool, (Ref(1),), expected=True, comment="backward of pow"),
        Node("ufunc", np.multiply, (Ref(0), 2.0), outs=(2,), comment="mul"),
    ]
    info[1] = SlotInfo("any", (), np.dtype(bool))
    info[2] = SlotInfo("mul", (3,), np.dtype(np.float64), strides=(8,))
    program = generate(Graph(nodes, [0], [Ref(2)], info), "f")
    ast.parse(program.source)
    assert "# backward of pow" in program.source
    np.testing.assert_array_equal(program.function(np.ones(3))[0], [2.0, 2.0, 2.0])
    try:
        program.function(np.zeros(3))
    except GuardFailed:
        pass
    else:
        raise AssertionError("the guard did not fire")
