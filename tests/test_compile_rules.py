"""One test per rule of tinygrad_bp.compile (API.md, "Compile"): tracing, guards and
re-tracing, the program cap and `strict`, hyper-parameters read at every call, random
draws, fresh results, refusals, side effects, the eager switches, custom Functions,
`step.source`/`step.programs`, and the generated lines in tracebacks."""

from __future__ import annotations

import ast
import linecache
import traceback
from pathlib import Path

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

GOLDEN = Path(__file__).parent / "golden" / "compile_seed_step.txt"


def make(optimizer=lambda p: tg.optim.SGD(p, lr=0.1), dropout=0.0, seed=0):
    tg.manual_seed(seed)
    layers = [nn.Linear(3, 6), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers, nn.Linear(6, 2))
    opt = optimizer(model.parameters())

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(tg.Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss

    return model, opt, step


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)).astype(np.float32), rng.integers(0, 2, n)


def params(model):
    return [p.data.copy() for p in model.parameters()]


def test_the_tracing_call_gives_eagers_exact_results():
    model_e, _, step_e = make()
    model_c, _, step_c = make()
    compiled = tg.compile(step_c)
    x, y = batch()
    assert step_e(x, y).item() == compiled(x, y).item()
    for a, b in zip(params(model_e), params(model_c)):
        np.testing.assert_array_equal(a, b)
    for p, q in zip(model_e.parameters(), model_c.parameters()):
        np.testing.assert_array_equal(p.grad.data, q.grad.data)


def test_same_guard_reuses_its_program_and_a_new_shape_traces_again():
    _, _, step = make()
    compiled = tg.compile(step)
    assert compiled.programs == 0 and compiled.source == ""
    for seed in range(3):
        compiled(*batch(4, seed))
    assert compiled.programs == 1
    compiled(*batch(5))
    assert compiled.programs == 2
    compiled(*batch(4, 9))
    assert compiled.programs == 2
    x, y = batch(4)
    compiled(x.astype(np.float64), y)  # a new dtype is a new guard
    assert compiled.programs == 3


def test_non_array_arguments_grad_mode_and_train_flags_are_guards():
    model, _, _ = make()

    @tg.compile
    def forward(x, scale):
        return model(tg.Tensor(x)) * scale

    x, _ = batch()
    forward(x, 2.0)
    forward(x, 2.0)
    assert forward.programs == 1
    np.testing.assert_allclose(
        forward(x, 3.0).numpy(), model(tg.Tensor(x)).numpy() * 3.0, rtol=1e-6
    )
    assert forward.programs == 2
    with tg.no_grad():
        forward(x, 2.0)
    assert forward.programs == 3
    model.eval()
    forward(x, 2.0)
    assert forward.programs == 4
    model.train()
    forward(x, 2.0)
    assert forward.programs == 4


def test_past_max_programs_runs_eagerly_with_a_warning_and_strict_refuses():
    _, _, step = make()
    compiled = tg.compile(step, max_programs=2)
    compiled(*batch(2))
    compiled(*batch(3))
    with pytest.warns(UserWarning, match="max_programs=2"):
        loss = compiled(*batch(4))
    assert compiled.programs == 2 and not loss.requires_grad
    strict = tg.compile(make()[2], strict=True, max_programs=1)
    strict(*batch(2))
    with pytest.raises(RuntimeError, match="strict=True"):
        strict(*batch(3))


def test_leaves_are_read_at_every_call_so_in_place_edits_and_load_state_dict_count():
    model, _, step = make()
    compiled = tg.compile(step)
    x, y = batch()
    compiled(x, y)
    compiled(x, y)
    state = {k: np.zeros_like(v) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    model_e, _, step_e = make()
    model_e.load_state_dict(state)
    assert compiled(x, y).item() == pytest.approx(step_e(x, y).item(), rel=1e-6)
    for a, b in zip(params(model_e), params(model)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_parameter_whose_shape_changes_is_a_new_guard():
    w = tg.Tensor(np.ones((2, 2)), requires_grad=True)

    @tg.compile
    def f():
        return (w * w).sum()

    assert f().item() == 4.0
    w.data = np.ones((3, 3))
    assert f().item() == 9.0
    assert f.programs == 2


def test_hyperparameters_are_read_at_every_call_without_retracing():
    for optimizer in (
        lambda p: tg.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: tg.optim.Adam(p, lr=0.01),
        lambda p: tg.optim.RMSprop(p, lr=0.01),
    ):
        model_e, opt_e, step_e = make(optimizer)
        model_c, opt_c, step_c = make(optimizer)
        sched_e = tg.optim.lr_scheduler.StepLR(opt_e, step_size=1, gamma=0.5)
        sched_c = tg.optim.lr_scheduler.StepLR(opt_c, step_size=1, gamma=0.5)
        compiled = tg.compile(step_c)
        for i in range(5):
            x, y = batch(4, i)
            if i == 3:  # a manual change too
                for opt in (opt_e, opt_c):
                    opt.param_groups[0]["lr"] = 0.3
                    if "betas" in opt.param_groups[0]:
                        opt.param_groups[0]["betas"] = (0.5, 0.9)
            assert compiled(x, y).item() == pytest.approx(step_e(x, y).item(), rel=1e-5)
            sched_e.step()
            sched_c.step()
            for a, b in zip(params(model_e), params(model_c)):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
        assert compiled.programs == 2  # no state yet, then state: never for an lr


def test_a_hyperparameter_that_changes_a_branch_retraces():
    model_e, opt_e, step_e = make(lambda p: tg.optim.SGD(p, lr=0.1))
    model_c, opt_c, step_c = make(lambda p: tg.optim.SGD(p, lr=0.1))
    compiled = tg.compile(step_c)
    for i in range(4):
        if i == 2:
            for opt in (opt_e, opt_c):
                opt.param_groups[0]["weight_decay"] = 0.1
        x, y = batch(4, i)
        compiled(x, y)
        step_e(x, y)
        for a, b in zip(params(model_e), params(model_c)):
            np.testing.assert_allclose(b, a, rtol=1e-6)
    assert compiled.programs == 2


def test_random_draws_are_fresh_and_equal_to_eagers_under_the_same_seed():
    @tg.compile
    def draw(x):
        return x * tg.randn(3), F.dropout(tg.ones(8), 0.5)

    ones = tg.ones(3)
    tg.manual_seed(1)
    compiled = [tuple(t.numpy() for t in draw(ones)) for _ in range(4)]

    def eager(x):
        return x * tg.randn(3), F.dropout(tg.ones(8), 0.5)

    tg.manual_seed(1)
    expected = [tuple(t.numpy() for t in eager(ones)) for _ in range(4)]
    for got, want in zip(compiled, expected):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(compiled[1][0], compiled[2][0])
    assert draw.programs == 1


def test_results_are_new_tensors_that_do_not_require_grad():
    _, _, step = make()
    compiled = tg.compile(step)
    first = compiled(*batch(4, 0))
    second = compiled(*batch(4, 1))
    third = compiled(*batch(4, 2))
    assert third is not second and not third.requires_grad and third.is_leaf
    value = second.item()
    third.data[...] = 100.0  # writing a result changes nothing the program holds
    compiled(*batch(4, 3))
    assert second.item() == value and first.item() != value


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (lambda loss: loss.item(), r"\.item\(\)"),
        (lambda loss: float(loss), r"float\(\)"),
        (lambda loss: int(loss), r"int\(\)"),
        (lambda loss: bool(loss > 0), r"bool\(\)"),
        (lambda loss: loss.tolist(), r"\.tolist\(\)"),
        (lambda loss: loss.numpy(), r"\.numpy\(\)"),
        (lambda loss: np.asarray(loss), r"np\.asarray\(\)"),
    ],
)
def test_data_dependent_python_is_refused_with_a_message_that_names_it(body, name):
    w = tg.Tensor([1.0, 2.0], requires_grad=True)

    @tg.compile
    def step(x):
        loss = (w * x).sum()
        body(loss)
        return loss

    with pytest.raises(RuntimeError, match=name) as info:
        step(np.ones(2, np.float32))
    assert "return the value" in str(info.value).lower()
    assert w.data.dtype == np.float32 and type(w.data) is np.ndarray  # restored


def test_a_compiled_function_called_while_another_traces_is_refused():
    inner = tg.compile(lambda x: x * 2)

    @tg.compile
    def outer(x):
        return inner(x) + 1

    with pytest.raises(RuntimeError, match="while another compiled function"):
        outer(tg.ones(2))


def test_create_graph_is_refused():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)

    @tg.compile
    def step():
        (w**3).sum().backward(create_graph=True)
        return w.grad

    with pytest.raises(RuntimeError, match="create_graph=True"):
        step()

    @tg.compile
    def step2():
        (g,) = tg.grad((w**3).sum(), [w], create_graph=True)
        return g

    with pytest.raises(RuntimeError, match="create_graph=True"):
        step2()


def test_other_argument_and_result_types_are_refused():
    compiled = tg.compile(lambda x: 3.0)
    with pytest.raises(TypeError, match="returned a float"):
        compiled(tg.ones(1))
    compiled = tg.compile(lambda x: x)
    with pytest.raises(TypeError, match="cannot guard on an argument"):
        compiled(object())


def test_python_side_effects_run_at_trace_time_only():
    log = []
    w = tg.Tensor([1.0], requires_grad=True)

    @tg.compile
    def step(x):
        log.append("called")
        print("tracing")
        return w * x

    for _ in range(3):
        step(tg.ones(1))
    assert log == ["called"]


def test_the_environment_switch_and_detect_anomaly_run_eagerly(monkeypatch):
    log = []

    @tg.compile
    def step(x):
        log.append(1)
        return x * 2

    monkeypatch.setenv("TINYGRAD_BP_COMPILE", "0")
    step(tg.ones(1))
    step(tg.ones(1))
    assert step.programs == 0 and len(log) == 2
    monkeypatch.delenv("TINYGRAD_BP_COMPILE")
    with tg.detect_anomaly():
        step(tg.ones(1))
    assert step.programs == 0 and len(log) == 3
    step(tg.ones(1))
    assert step.programs == 1


def test_custom_functions_compile_and_recompute_their_masks():
    class Hinge(tg.Function):
        """y = max(x, 0) with a saved mask; dy/dx = [x > 0]"""

        def forward(self, x):
            self.mask = x > 0
            return np.where(self.mask, x, 0)

        def backward(self, grad, out):
            return grad * self.mask

    w = tg.Tensor([[1.0, -1.0], [0.5, 2.0]], requires_grad=True, dtype=np.float64)

    @tg.compile
    def step(x):
        w.grad = None
        loss = Hinge.apply(x @ w).sum()
        loss.backward()
        return loss, w.grad

    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((3, 2))
        _, grad = step(x)
        w.grad = None
        Hinge.apply(tg.Tensor(x) @ w).sum().backward()
        np.testing.assert_allclose(grad.numpy(), w.grad.numpy(), rtol=1e-12)
    assert step.programs == 1


def test_a_data_dependent_branch_in_the_library_is_a_guard():
    # Pow's backward branches on zeros in its base; clip_grad_norm_ on the norm
    w = tg.Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)

    def loss_of(x):
        return (x**w).sum() + ((w - x) ** 2.0).sum() + (w * x).abs().sum()

    @tg.compile
    def step(x):
        w.grad = None
        loss_of(x).backward()
        nn.utils.clip_grad_norm_([w], 3.0)
        return w.grad

    cases = [
        np.array([0.0, 0.5]),
        np.array([1.0, 0.5]),
        np.array([0.3, 0.4]),
        np.array([1.0, 2.0]),
    ]
    for x in cases * 2:
        got = step(x).numpy()
        w.grad = None
        loss_of(tg.Tensor(x)).backward()
        nn.utils.clip_grad_norm_([w], 3.0)
        np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-12)
    assert step.programs >= 2


def test_a_frozen_layer_gets_no_weight_gradient_matmul():
    tg.manual_seed(0)
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    first.weight.requires_grad_(False)
    first.bias.requires_grad_(False)
    opt = tg.optim.SGD(second.parameters(), lr=0.1)

    @tg.compile
    def step(x):
        opt.zero_grad()
        loss = second(first(x).tanh()).sum()
        loss.backward()
        opt.step()
        return loss

    step(np.ones((5, 3), np.float32))
    backward = step.source.split("# ---- backward")[1].split("# ---- update")[0]
    assert backward.count("@") + backward.count("np.matmul") == 1  # dW of `second` only
    assert first.weight.grad is None


def test_source_parses_names_its_ops_and_shows_in_place_updates():
    _, _, step = make(lambda p: tg.optim.SGD(p, lr=0.1, momentum=0.9))
    compiled = tg.compile(step)
    compiled(*batch())
    compiled(*batch())
    source = compiled.source
    ast.parse(source)
    assert "# ---- forward" in source and "# ---- backward" in source
    assert "# backward of relu" in source and "# matmul" in source
    assert "out=weight0)" in source  # the parameter is updated in place
    assert len(compiled.sources) == compiled.programs == 2


def test_tracebacks_and_linecache_show_the_generated_lines():
    _, _, step = make()
    compiled = tg.compile(step)
    compiled(*batch())
    compiled(*batch())
    program = compiled._latest.program
    lines = program.source.splitlines()
    assert linecache.getline(program.filename, 1).rstrip("\n") == lines[0]
    with pytest.raises(Exception) as info:
        program.function(*([None] * program.function.__code__.co_argcount))
    frames = traceback.extract_tb(info.tb)
    generated = [f for f in frames if f.filename == program.filename]
    assert generated and generated[-1].line in program.source


def test_golden_source_of_the_seed_network():
    # To accept a deliberate change of the generated text, write step.source to
    # tests/golden/compile_seed_step.txt and review the diff.
    from tinygrad_bp.seed import toy_compiled_step, toy_network

    arrays = toy_network("tanh")
    step, _ = toy_compiled_step(arrays, "tanh")
    for _ in range(2):
        step(arrays["a[0]"], arrays["Y"])
    assert step.source == GOLDEN.read_text()


def test_a_guard_after_an_in_place_update_restores_parameters_and_draws():
    # the second loss's Pow checks for zeros in x after opt.step() changed w in
    # place and after a dropout draw: a failed check must undo both before retracing
    def build():
        w = tg.Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
        opt = tg.optim.SGD([w], lr=0.1)

        def step(x):
            opt.zero_grad()
            (F.dropout(w, 0.5) * w).sum().backward()
            opt.step()
            opt.zero_grad()
            (x**w).sum().backward()
            return w.grad

        return w, step

    w_e, step_e = build()
    w_c, step_c = build()
    compiled = tg.compile(step_c)
    xs = [np.array([0.0, 1.0]), np.array([2.0, 1.0]), np.array([0.0, 3.0])] * 2
    tg.manual_seed(3)
    expected = [(step_e(x).numpy(), w_e.data.copy()) for x in xs]
    tg.manual_seed(3)
    for x, (grad, w) in zip(xs, expected):
        np.testing.assert_allclose(compiled(x).numpy(), grad, rtol=1e-12)
        np.testing.assert_allclose(w_c.data, w, rtol=1e-12)
    assert compiled.programs == 2


def test_a_step_that_changes_an_optimizer_setting_runs_eagerly():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1)

    @tg.compile
    def step():
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        opt.param_groups[0]["lr"] = 0.5  # a Python side effect on the optimizer
        return w

    with pytest.warns(UserWarning, match="changed the optimizer's 'lr'"):
        step()
    assert opt.param_groups[0]["lr"] == 0.5
    step()  # eagerly, as the key is marked
    assert step.programs == 0


def test_printing_a_tensor_in_the_step_shows_trace_time_values_and_adds_no_guard(
    capsys,
):
    w = tg.Tensor([1.0, 2.0], requires_grad=True)

    @tg.compile
    def step(x):
        loss = (w * x).sum()
        print(loss, f"{loss:.2f}", repr(loss.data), np.array2string(loss.data))
        return loss

    for k in range(4):
        assert step(np.full(2, k, np.float32)).item() == 3.0 * k
    assert step.programs == 1
    assert capsys.readouterr().out.count("\n") == 1  # printed at trace time only
