"""Random programs for differential fuzzing of the autograd engine.

`programs()` is a Hypothesis strategy that draws a `Program`: a small DAG of operations
taken from the op table (`tests/op_specs.py`), with random broadcastable shapes
(0-d included), reused nodes, `no_grad` blocks and `detach()` in the middle, hooks,
`retain_grad`, a backward pass (a loss or `backward(gradient=g)` with ``g`` requiring
grad, once or twice with `retain_graph`) and gradients of second and third order
through `tinygrad_bp.grad(create_graph=True)`, in float32 or float64.

A program is kept as data and rendered to Python text: `Program.to_script()` is a
self-contained script that runs it with tinygrad_bp (and with PyTorch, where every op
has a translation) and prints where the two disagree. `run_ours()` and `run_torch()`
execute the same text, so what a failing test prints is exactly what ran.
`reference_values()` evaluates the program with the table's NumPy references, which
gives the expected values and central differences without any autograd at all.

Ops come from the table's rows, with their input domains (positive for log, off the
kinks of relu, tie-free for max): a row whose inputs are unrestricted (`REAL`) takes
existing nodes, any other input is a fresh leaf drawn from its domain. A few rows of
our own add what the table leaves out on purpose: integer powers of values with exact
zeros, a zero base under a tensor exponent, reductions and `log_softmax` with
``axis=0``/``-1`` on 0-d tensors, `expand` with ``-1`` and shape ops that change
nothing (the risky case inside `no_grad`). A row added to the table is fuzzed too:
without a renderer of its own below it is written as ``OPS["name"](...)``, with no
PyTorch comparison.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.op_specs import (
    OP_SPECS,
    POSITIVE,
    REAL,
    Domain,
    OpSpec,
    _partner,
    _values,
    unary,
)
from tinygrad_bp.testing.strategies import shapes

# Rows left out: a dtype change inside a program would make float64 programs partly
# float32 (too coarse for central differences).
EXCLUDED_ROWS = {"astype[float32]", "astype[float64]"}
MAX_SIDE = 3
# Values beyond this (or not finite) make a step be dropped: central differences and
# float32 comparisons lose their meaning there.
MAX_MAGNITUDE = 1e4

# Leaves of unrestricted domain: the table's reals, with exact zeros and small binary
# fractions mixed in (zero bases of `**`, zero inputs of every op).
FUZZ_REAL = Domain(
    st.one_of(
        st.floats(-3, 3, allow_subnormal=False),
        st.sampled_from([0.0, 0.0, 0.5, -1.0, 1.5, -2.0]),
    )
)
NONNEGATIVE_WITH_ZEROS = Domain(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0, 3.0]))

# Our own rows: what the table leaves out on purpose.
EXTRA_SPECS = [
    OpSpec(
        "pow[x**k]",
        lambda x, k: x**k,
        lambda x, k: x**k,
        unary(),
        REAL,
        lambda _: st.fixed_dictionaries({"k": st.sampled_from([0, 1, 2, 3])}),
    ),
    # a zero base under a tensor exponent; the base is a constant (its own derivative
    # at 0 is infinite for exponents below 1)
    OpSpec(
        "pow[zero_base**b]",
        lambda a, b: a**b,
        lambda a, b: a**b,
        lambda side: st.just(((), ())),
        (NONNEGATIVE_WITH_ZEROS, POSITIVE),
        broadcasts=True,
        constant=(0,),
    ),
]
FUZZ_SPECS = [s for s in OP_SPECS if s.name not in EXCLUDED_ROWS] + EXTRA_SPECS
SPECS = {s.name: s for s in FUZZ_SPECS}
# Every row, and half the time one of those where the engine's special cases live:
# zero bases of powers, shape ops that may change nothing, reductions (0-d included).
RISKY_ROWS = [
    "pow[x**k]",
    "pow[zero_base**b]",
    "pow[x**2]",
    "reshape",
    "expand",
    "squeeze",
    "sum_to",
    "sum",
    "mean",
    "log_softmax",
    "add",
    "mul",
]
ROWS = st.one_of(
    st.sampled_from(FUZZ_SPECS), st.sampled_from([SPECS[name] for name in RISKY_ROWS])
)
REDUCTIONS = {"sum", "mean", "var", "max", "min", "logsumexp"}
AXIS_OPS = {"softmax", "log_softmax"}


# ------------------------------------------------------------------------- the program
@dataclass
class Leaf:
    """An input: its values (already in the program's dtype) and whether it needs grad."""

    name: str
    values: np.ndarray
    requires_grad: bool


@dataclass
class Const:
    """A plain NumPy array argument (a `where` condition, a constant operand)."""

    values: np.ndarray


@dataclass
class Step:
    """``name = row(*inputs, **kwargs)``, recorded (`grad`), inside ``no_grad()``, or
    recorded and then detached (`detach`)."""

    name: str
    row: str
    inputs: list[Any]  # node names (str) or Const
    kwargs: dict[str, Any]
    mode: str
    requires_grad: bool  # what autograd semantics say the result must have
    shape: tuple[int, ...]


@dataclass
class Program:
    """A drawn program and what to do with its output.

    `backward` is ``"loss"`` (``(out * v).sum().backward()``) or ``"gradient"``
    (``out.backward(gradient=g)`` with ``g = v`` as a Tensor that requires grad when
    `gradient_requires_grad`); `twice` runs it a second time (the first with
    ``retain_graph=True``); `order` (1 to 3) is the highest derivative checked.
    """

    dtype: Any
    leaves: list[Leaf]
    steps: list[Step]
    output: str
    v: np.ndarray
    backward: str = "loss"
    gradient_requires_grad: bool = True
    twice: bool = False
    hooks: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)
    order: int = 1
    w: dict[str, np.ndarray] = field(default_factory=dict)  # 2nd-order cotangents
    u: dict[str, np.ndarray] = field(default_factory=dict)  # 3rd-order cotangents

    def __repr__(self) -> str:
        return f"Program({len(self.steps)} steps, see the script)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # what Hypothesis prints for a failing example: the script says it all
        printer.text(repr(self))

    # ------------------------------------------------------------------ properties
    @property
    def nodes(self) -> list[str]:
        return [leaf.name for leaf in self.leaves] + [s.name for s in self.steps]

    @property
    def wrt(self) -> list[str]:
        """The leaves that require grad: whose gradients are checked."""
        return [leaf.name for leaf in self.leaves if leaf.requires_grad]

    def requires_grad(self, name: str) -> bool:
        for leaf in self.leaves:
            if leaf.name == name:
                return leaf.requires_grad
        return next(s.requires_grad for s in self.steps if s.name == name)

    @property
    def differentiable(self) -> bool:
        return bool(self.wrt) and self.requires_grad(self.output)

    @property
    def torch_ok(self) -> bool:
        """Whether every step has a PyTorch translation."""
        return all(_render(s, "torch", self) is not None for s in self.steps)

    # ------------------------------------------------------------------- running
    def run_ours(self) -> dict[str, Any]:
        """Run the program with tinygrad_bp; the results, keyed by what they are."""
        return self.namespace("tg")["run_tg"]()

    def run_torch(self) -> dict[str, Any]:
        """Run the program with PyTorch (only where `torch_ok`)."""
        return self.namespace("torch")["run_torch"]()

    def namespace(self, lib: str, frozen: bool = False) -> dict[str, Any]:
        """The globals of the script's part for `lib`, after running its definitions."""
        namespace: dict[str, Any] = {}
        text = "\n\n".join([HEADER, _literals(self), self.source(lib, frozen)])
        exec(compile(text, "<fuzz program>", "exec"), namespace)
        return namespace

    def to_script(self) -> str:
        """A self-contained Python script that runs the program and shows the results."""
        parts = [HEADER, _literals(self), self.source("tg")]
        with_torch = self.torch_ok
        if with_torch:
            parts.append(self.source("torch"))
        parts.append(_main(with_torch))
        return "\n\n".join(parts) + "\n"

    # ------------------------------------------------------------------ rendering
    def source(self, lib: str, frozen: bool = False) -> str:
        """The function ``run_<lib>()`` (or, with `frozen`, ``program_<lib>(X,
        frozen)``, whose no_grad and detached nodes are given constants) as text."""
        names = LIBS[lib]
        body = [
            f"{leaf.name} = {names['leaf']}(X[{leaf.name!r}]"
            + (", requires_grad=True)" if leaf.requires_grad else ")")
            for leaf in self.leaves
        ]
        for step in self.steps:
            expr = _render(step, lib, self)
            if frozen and step.mode != "grad":
                body.append(f"{step.name} = {names['const']}(frozen[{step.name!r}])")
            elif step.mode == "no_grad":
                body.append(f"with {names['no_grad']}():")
                body.append(f"    {step.name} = {expr}")
            elif step.mode == "detach":
                body.append(f"{step.name} = ({expr}).detach()")
            else:
                body.append(f"{step.name} = {expr}")
        nodes = ", ".join(f"{n!r}: {n}" for n in self.nodes)
        body.append(f"return {{{nodes}}}")
        program = f"def program_{lib}(X, frozen=None):\n" + _indent(body)
        if frozen:
            return program
        return program + "\n\n\n" + self._run_source(lib)

    def _run_source(self, lib: str) -> str:
        names = LIBS[lib]
        const, grad, zeros_like = names["const"], names["grad"], names["zeros_like"]
        lines = [
            f"n = program_{lib}(X)",
            "out = {}",
            "for name, t in n.items():",
            "    out['value ' + name] = t.detach().numpy().copy()",
            "    out['requires_grad ' + name] = t.requires_grad",
        ]
        if not self.differentiable:
            return _function(f"run_{lib}", lines + ["return out"])
        lines.append("hooks = {}")
        for name in self.hooks:
            lines.append(
                f"n[{name!r}].register_hook(lambda g: hooks.setdefault({name!r}, [])"
                ".append(g.detach().numpy().copy()))"
            )
        for name in self.retained:
            lines.append(f"n[{name!r}].retain_grad()")
        output = f"n[{self.output!r}]"
        if self.backward == "gradient":
            flag = ", requires_grad=True" if self.gradient_requires_grad else ""
            lines.append(f"g = {names['leaf']}(V{flag})")
            call, args = f"{output}.backward", ["gradient=g"]
        else:
            lines.append("g = None")
            call, args = f"({output} * {const}(V)).sum().backward", []
        watched = self.wrt + self.retained
        lines.append(f"watched = {watched!r}")
        first = args + (["retain_graph=True"] if self.twice else [])
        lines.append(f"{call}({', '.join(first)})")
        lines.append("record_grads(out, n, watched, g, 'grad ')")
        if self.twice:
            lines.append(f"{call}({', '.join(args)})")
            lines.append("record_grads(out, n, watched, g, 'grad twice ')")
        lines.append("out['hooks'] = hooks")
        if self.order >= 2:
            lines += [
                "# higher order: a fresh graph, no hooks",
                f"n = program_{lib}(X)",
                f"wrt = [n[k] for k in {self.wrt!r}]",
                f"grads = {grad}([n[{self.output!r}]], wrt, grad_outputs=[{const}(V)],"
                " create_graph=True, allow_unused=True)",
            ]
            for order, cotangent in ((2, "W"), (3, "U"))[: self.order - 1]:
                lines += [
                    f"grads = [{zeros_like}(x) if g is None else g"
                    " for x, g in zip(wrt, grads)]",
                    f"s = sum((g * {const}({cotangent}[k])).sum()"
                    f" for k, g in zip({self.wrt!r}, grads))",
                    "if not s.requires_grad:  # the gradient is constant",
                    f"    grads = [{zeros_like}(x) for x in wrt]",
                    "else:",
                    f"    grads = {grad}([s], wrt, create_graph=True, allow_unused=True)",
                    f"grads = [{zeros_like}(x) if g is None else g"
                    " for x, g in zip(wrt, grads)]",
                    f"for k, g in zip({self.wrt!r}, grads):",
                    f"    out['order {order} ' + k] = g.detach().numpy().copy()",
                ]
        return _function(f"run_{lib}", lines + ["return out"])


def _indent(lines: list[str]) -> str:
    return textwrap.indent("\n".join(lines), "    ")


def _function(name: str, lines: list[str]) -> str:
    return f"def {name}():\n" + _indent(lines)


LIBS = {
    "tg": {
        "leaf": "tg.tensor",
        "const": "tg.tensor",
        "no_grad": "tg.no_grad",
        "grad": "tg.grad",
        "zeros_like": "tg.zeros_like",
    },
    "torch": {
        "leaf": "torch.tensor",
        "const": "torch.as_tensor",
        "no_grad": "torch.no_grad",
        "grad": "torch.autograd.grad",
        "zeros_like": "torch.zeros_like",
    },
}

HEADER = '''\
"""A program drawn by tests/fuzz_programs.py; run it from the repository root."""

import numpy as np

import tinygrad_bp as tg
from tests.op_specs import OP_SPECS

OPS = {s.name: s.op for s in OP_SPECS}  # rows without a renderer of their own
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None


def record_grads(out, n, watched, g, prefix):
    """Each watched tensor's .grad, whether it requires grad, whether it is g."""
    for name in watched:
        t = n[name].grad
        out[prefix + name] = None if t is None else t.detach().numpy().copy()
        out[prefix + "requires_grad " + name] = t is not None and t.requires_grad
        out[prefix + "is gradient " + name] = t is not None and t is g


def differs(a, b):
    """Whether two results differ by more than rounding."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(differs(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) != len(b) or any(differs(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5)
    return a != b'''


def _literals(program: Program) -> str:
    """The leaves' values and the cotangents as NumPy literals."""
    arrays = {leaf.name: leaf.values for leaf in program.leaves}
    lines = [f"X = {_dict_literal(arrays)}", f"V = {_array_literal(program.v)}"]
    if program.order >= 2:
        lines.append(f"W = {_dict_literal(program.w)}")
    if program.order >= 3:
        lines.append(f"U = {_dict_literal(program.u)}")
    return "\n".join(lines)


def _main(with_torch: bool) -> str:
    lines = [
        'if __name__ == "__main__":',
        "    ours = run_tg()",
        "    for key, value in ours.items():",
        '        print(key, "=", value)',
    ]
    if with_torch:
        lines += [
            "    if torch is not None:",
            "        theirs = run_torch()",
            '        print("--- where PyTorch differs:")',
            "        for key, value in theirs.items():",
            "            if differs(ours.get(key), value):",
            '                print(key, "ours:", ours.get(key), "torch:", value)',
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- literals
def _array_literal(a: np.ndarray) -> str:
    a = np.asarray(a)
    dtype = {"f": f"np.{a.dtype.name}", "b": "np.bool_", "i": "np.int64"}[a.dtype.kind]
    values = a.tolist()  # Python floats: their repr round-trips exactly
    return f"np.array({values!r}, dtype={dtype})"


def _dict_literal(arrays: dict[str, np.ndarray]) -> str:
    items = ", ".join(f"{k!r}: {_array_literal(a)}" for k, a in arrays.items())
    return "{" + items + "}"


def _value(x: Any, lib: str) -> str:
    """A keyword or index value as source text for `lib` (None: no translation)."""
    if isinstance(x, np.ndarray):
        literal = _array_literal(x)
        return literal if lib == "tg" else f"torch.as_tensor({literal})"
    if isinstance(x, tuple):
        parts = [_value(e, lib) for e in x]
        if None in parts:
            return None
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if x is Ellipsis:
        return "..."
    if isinstance(x, slice):
        if lib == "torch" and x.step is not None and x.step < 0:
            return None  # PyTorch has no negative steps
        return repr(
            slice(*(None if e is None else int(e) for e in (x.start, x.stop, x.step)))
        )
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return repr(x.item())
    return repr(x)


# --------------------------------------------------------------------------- renderers
def _render(step: Step, lib: str, program: Program) -> str | None:
    """`step`'s right-hand side for `lib`, or None where PyTorch has no translation."""
    args = [_value(a.values, lib) if isinstance(a, Const) else a for a in step.inputs]
    if None in args:
        return None
    kw = step.kwargs
    shapes_ = [
        a.values.shape if isinstance(a, Const) else shape_of(program, a)
        for a in step.inputs
    ]
    render = (_TG if lib == "tg" else _TORCH).get(step.row)
    if render is None:
        render = (_TG if lib == "tg" else _TORCH).get(step.row.split("[")[0])
    if render is None:
        if lib == "torch":
            return None
        kwargs = "".join(f", {k}={_value(val, lib)}" for k, val in kw.items())
        return f"OPS[{step.row!r}]({', '.join(args)}{kwargs})"
    return render(args, kw, shapes_, step.row)


def shape_of(program: Program, name: str) -> tuple[int, ...]:
    for leaf in program.leaves:
        if leaf.name == name:
            return leaf.values.shape
    return next(s.shape for s in program.steps if s.name == name)


def _kwargs_text(kw: dict[str, Any], lib: str = "tg") -> str:
    return ", ".join(f"{k}={_value(v, lib)}" for k, v in kw.items())


def _binary(symbol: str):
    return lambda a, kw, s, row: f"{a[0]} {symbol} {a[1]}"


def _method(a, kw, s, row):
    return f"{a[0]}.{row.split('[')[0]}({_kwargs_text(kw)})"


def _shape_args(shape) -> str:
    return ", ".join(str(n) for n in shape)


def _dims(axis: Any, ndim: int) -> str:
    """A reduction's axis for PyTorch: None means every axis."""
    return repr(tuple(range(ndim)) if axis is None else axis)


def _torch_reduction(function: str):
    def render(a, kw, s, row):
        dims = _dims(kw.get("axis"), len(s[0]))
        keep = kw.get("keepdims", False)
        extra = f", correction={kw['ddof']}" if "ddof" in kw else ""
        return f"{function}({a[0]}, dim={dims}{extra}, keepdim={keep})"

    return render


def _torch_pad(a, kw, s, row):
    ndim, width = len(s[0]), kw["pad_width"]
    pairs = [width] * ndim if isinstance(width, int) else width
    if isinstance(width, tuple) and isinstance(width[0], int):
        pairs = [width] * ndim
    pairs = [(p, p) if isinstance(p, int) else p for p in pairs]
    flat = tuple(n for pair in reversed(pairs) for n in pair)
    return f"F.pad({a[0]}, {flat!r}, value={kw.get('value', 0.0)!r}).clone()"


def _torch_windows(a, kw, s, row):
    def pair(v):
        return (v, v) if isinstance(v, int) else v

    (kh, kw_), (sh, sw) = pair(kw["kernel_size"]), pair(kw["stride"])
    return f"{a[0]}.unfold(-2, {kh}, {sh}).unfold(-2, {kw_}, {sw})"


def _torch_squeeze(a, kw, s, row):
    axis = kw.get("axis")
    return f"{a[0]}.squeeze()" if axis is None else f"{a[0]}.squeeze({axis!r})"


def _reversed_axes(ndim: int) -> str:
    return repr(tuple(range(ndim))[::-1])


_TG = {
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "truediv": _binary("/"),
    "pow": _binary("**"),
    "matmul": _binary("@"),
    "neg": lambda a, kw, s, row: f"-{a[0]}",
    "sub[2.0-x]": lambda a, kw, s, row: f"2.0 - {a[0]}",
    "truediv[1/x]": lambda a, kw, s, row: f"1 / {a[0]}",
    "pow[x**2]": lambda a, kw, s, row: f"{a[0]} ** 2",
    "pow[x**-1.5]": lambda a, kw, s, row: f"{a[0]} ** -1.5",
    "pow[2**x]": lambda a, kw, s, row: f"2 ** {a[0]}",
    "pow[x**k]": lambda a, kw, s, row: f"{a[0]} ** {kw['k']}",
    "gelu[tanh]": lambda a, kw, s, row: f"{a[0]}.gelu(approximate='tanh')",
    "maximum": lambda a, kw, s, row: f"tg.maximum({a[0]}, {a[1]})",
    "minimum": lambda a, kw, s, row: f"tg.minimum({a[0]}, {a[1]})",
    "where": lambda a, kw, s, row: f"tg.where({a[0]}, {a[1]}, {a[2]})",
    "reshape": lambda a, kw, s, row: f"{a[0]}.reshape({_shape_args(kw['shape'])})",
    "expand": lambda a, kw, s, row: f"{a[0]}.expand({_shape_args(kw['shape'])})",
    "transpose": lambda a, kw, s, row: (
        f"{a[0]}.transpose()"
        if kw.get("axes") is None
        else f"{a[0]}.transpose({_shape_args(kw['axes'])})"
    ),
    "transpose[T]": lambda a, kw, s, row: f"{a[0]}.T",
    "sum_to": lambda a, kw, s, row: f"{a[0]}.sum_to({kw['shape']!r})",
    "getitem": lambda a, kw, s, row: f"{a[0]}[{_value(kw['index'], 'tg')}]",
    "concatenate": lambda a, kw, s, row: (
        f"tg.concatenate([{', '.join(a)}], axis={kw['axis']})"
    ),
    "stack": lambda a, kw, s, row: f"tg.stack([{', '.join(a)}], axis={kw['axis']})",
    "pad": lambda a, kw, s, row: (
        f"tg.pad({a[0]}, {kw['pad_width']!r}"
        + (f", value={kw['value']!r})" if "value" in kw else ")")
    ),
}
for _name in [
    "exp log sqrt abs sin cos tanh sigmoid relu leaky_relu elu gelu softplus silu",
    "clip erf sum mean var max min logsumexp softmax log_softmax swapaxes flatten",
    "squeeze unsqueeze windows",
]:
    for _op in _name.split():
        _TG[_op] = _method

_TORCH = {
    **{k: _TG[k] for k in ("add", "sub", "mul", "truediv", "pow", "matmul", "neg")},
    **{k: _TG[k] for k in ("sub[2.0-x]", "truediv[1/x]", "pow[x**2]")},
    **{k: _TG[k] for k in ("pow[x**-1.5]", "pow[2**x]", "pow[x**k]")},
    "gelu[tanh]": lambda a, kw, s, row: f"F.gelu({a[0]}, approximate='tanh')",
    "gelu": lambda a, kw, s, row: f"F.gelu({a[0]})",
    "leaky_relu": lambda a, kw, s, row: (
        f"F.leaky_relu({a[0]}, {kw.get('slope', 0.01)!r})"
    ),
    "elu": lambda a, kw, s, row: f"F.elu({a[0]}, alpha={kw.get('alpha', 1.0)!r})",
    "softplus": lambda a, kw, s, row: f"F.softplus({a[0]})",
    "silu": lambda a, kw, s, row: f"F.silu({a[0]})",
    "clip": lambda a, kw, s, row: f"{a[0]}.clamp({kw['lo']!r}, {kw['hi']!r})",
    "maximum": lambda a, kw, s, row: f"torch.maximum({a[0]}, {a[1]})",
    "minimum": lambda a, kw, s, row: f"torch.minimum({a[0]}, {a[1]})",
    "where": lambda a, kw, s, row: f"torch.where({a[0]}, {a[1]}, {a[2]})",
    "sum": _torch_reduction("torch.sum"),
    "mean": _torch_reduction("torch.mean"),
    "var": _torch_reduction("torch.var"),
    "max": _torch_reduction("torch.amax"),
    "min": _torch_reduction("torch.amin"),
    "logsumexp": _torch_reduction("torch.logsumexp"),
    "softmax": lambda a, kw, s, row: f"{a[0]}.softmax(dim={kw['axis']})",
    "log_softmax": lambda a, kw, s, row: f"{a[0]}.log_softmax(dim={kw['axis']})",
    "reshape": lambda a, kw, s, row: f"{a[0]}.reshape({tuple(kw['shape'])!r})",
    "expand": lambda a, kw, s, row: f"{a[0]}.expand({tuple(kw['shape'])!r})",
    "transpose": lambda a, kw, s, row: (
        f"{a[0]}.permute({_reversed_axes(len(s[0]))})"
        if kw.get("axes") is None
        else f"{a[0]}.permute({tuple(kw['axes'])!r})"
    ),
    "transpose[T]": lambda a, kw, s, row: (
        f"{a[0]}.permute({_reversed_axes(len(s[0]))})"
    ),
    "swapaxes": lambda a, kw, s, row: f"{a[0]}.transpose({kw['axis1']}, {kw['axis2']})",
    # flatten with nothing to flatten returns its input itself: clone (see sum_to)
    "flatten": lambda a, kw, s, row: (
        f"{a[0]}.flatten({kw.get('start_axis', 0)}).clone()"
    ),
    "squeeze": _torch_squeeze,
    "unsqueeze": lambda a, kw, s, row: f"{a[0]}.unsqueeze({kw['axis']})",
    # sum_to_size returns its input itself when nothing is summed: clone, so that a
    # hook on the result is a hook on a new node, as ours
    "sum_to": lambda a, kw, s, row: (
        f"{a[0]}.sum_to_size({tuple(kw['shape'])!r}).clone()"
    ),
    "getitem": lambda a, kw, s, row: (
        None
        if _value(kw["index"], "torch") is None
        else f"{a[0]}[{_value(kw['index'], 'torch')}]"
    ),
    "concatenate": lambda a, kw, s, row: (
        f"torch.cat([{', '.join(a)}], dim={kw['axis']})"
    ),
    "stack": lambda a, kw, s, row: f"torch.stack([{', '.join(a)}], dim={kw['axis']})",
    "pad": _torch_pad,
    "windows": _torch_windows,
}
for _op in [
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "erf",
]:
    _TORCH[_op] = _method


# -------------------------------------------------------------------- NumPy references
def reference(
    program: Program,
    leaves: dict[str, np.ndarray] | None = None,
    frozen: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every node's value in float64 by the table's NumPy references.

    `leaves` replaces the leaves' values; `frozen` the values of the nodes made under
    `no_grad` or detached (constants to autograd, so to central differences too).
    """
    values = {
        leaf.name: np.array(leaf.values, dtype=np.float64) for leaf in program.leaves
    }
    values.update(leaves or {})
    for step in program.steps:
        if frozen is not None and step.mode != "grad":
            values[step.name] = frozen[step.name]
            continue
        args = [a.values if isinstance(a, Const) else values[a] for a in step.inputs]
        values[step.name] = _apply_reference(SPECS[step.row], args, step.kwargs)
    return values


def _apply_reference(spec: OpSpec, args: list[np.ndarray], kwargs: dict) -> Any:
    """spec.ref, with what NumPy does not take: ``-1`` in `expand`, an axis on 0-d."""
    kwargs = dict(kwargs)
    if spec.op_name == "expand":
        shape, lead = list(kwargs["shape"]), len(kwargs["shape"]) - args[0].ndim
        kwargs["shape"] = tuple(
            args[0].shape[i - lead] if n == -1 else n for i, n in enumerate(shape)
        )
    if args[0].ndim == 0 and "axis" in kwargs and spec.op_name in REDUCTIONS | AXIS_OPS:
        # NumPy 2 refuses axis=0 on a 0-d array; PyTorch and we take it as the one axis
        result = spec.ref(args[0].reshape(1), **{**kwargs, "axis": 0})
        return np.asarray(result, dtype=np.float64).reshape(())
    with np.errstate(all="ignore"):
        return np.asarray(spec.ref(*args, **kwargs), dtype=np.float64)


# ------------------------------------------------------------------------ the strategy
def _signed_uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> Any:
    # away from 0 and not all ones: a wrong off-diagonal term cannot hide
    values = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return values.astype(dtype)


class _Builder:
    """Draws a program step by step, keeping the NumPy value of every node."""

    def __init__(self, draw: st.DrawFn, dtype: Any) -> None:
        self.draw, self.dtype = draw, dtype
        self.leaves: list[Leaf] = []
        self.steps: list[Step] = []
        self.values: dict[str, np.ndarray] = {}
        self.flags: dict[str, bool] = {}

    def _name(self, prefix: str) -> str:
        return f"{prefix}{len(self.leaves) + len(self.steps)}"

    def leaf(self, domain: Domain, shape: tuple[int, ...], requires_grad=None) -> str:
        values = self.draw(_values(FUZZ_REAL if domain is REAL else domain, shape))
        if requires_grad is None:
            requires_grad = self.draw(st.sampled_from([True, True, False]))
        name = self._name("x")
        values = np.asarray(values).astype(self.dtype)
        self.leaves.append(Leaf(name, values, requires_grad))
        self.values[name] = values.astype(np.float64)
        self.flags[name] = requires_grad
        return name

    def constant(self, domain: Domain, shape: tuple[int, ...]) -> Const:
        values = np.asarray(self.draw(_values(domain, shape)))
        return Const(values if values.dtype == np.bool_ else values.astype(self.dtype))

    def node(self, shape_ok=lambda shape: True) -> str | None:
        """An existing node (float, any shape `shape_ok` accepts), or None."""
        names = [n for n, v in self.values.items() if shape_ok(v.shape)]
        if not names:
            return None
        return names[self.draw(st.integers(0, len(names) - 1))]

    def step(self, spec: OpSpec, mode: str) -> None:
        inputs = self._inputs(spec)
        if inputs is None:
            return
        shapes_ = tuple(
            a.values.shape if isinstance(a, Const) else self.values[a].shape
            for a in inputs
        )
        kwargs = self._kwargs(spec, shapes_)
        if kwargs is None:
            return
        args = [a.values if isinstance(a, Const) else self.values[a] for a in inputs]
        try:
            value = _apply_reference(spec, args, kwargs)
        except Exception:  # kwargs or shapes NumPy refuses: drop the step
            return
        if not np.all(np.isfinite(value)) or np.any(np.abs(value) > MAX_MAGNITUDE):
            return
        if value.dtype.kind != "f" or value.size == 0:
            return
        requires_grad = mode == "grad" and any(
            self.flags[a] for a in inputs if not isinstance(a, Const)
        )
        name = self._name("h")
        self.steps.append(
            Step(name, spec.name, inputs, kwargs, mode, requires_grad, value.shape)
        )
        self.values[name] = value
        self.flags[name] = requires_grad

    def _inputs(self, spec: OpSpec) -> list[Any] | None:
        if spec.broadcasts:
            count = len(spec.domains) if isinstance(spec.domains, tuple) else 2
            return self._broadcasting_inputs(spec, count)
        shapes_ = self.draw(spec.shapes(MAX_SIDE))
        if len(shapes_) == 1 and not spec.constant:
            # the row's shapes say which ranks it takes: an existing node of the drawn
            # rank, else a fresh leaf of the drawn shape
            (shape,) = shapes_
            ndims = {len(shape)}
            if spec.op_name in REDUCTIONS | AXIS_OPS and self.draw(st.booleans()):
                ndims = {0}  # PyTorch's (and our) axis=0 / -1 on a 0-d tensor
            if spec.domain(0) is REAL and self.draw(st.integers(0, 3)) > 0:
                existing = self.node(lambda s: len(s) in ndims)
                if existing is not None:
                    return [existing]
            if ndims == {0}:
                shape = ()
            return [self.leaf(spec.domain(0), shape)]
        # matmul, concatenate, stack...: the row's shapes, existing nodes where they fit
        return [self._input(spec, i, shape) for i, shape in enumerate(shapes_)]

    def _shape_like_a_node(self) -> tuple[int, ...]:
        if self.draw(st.booleans()):
            return self.values[self.node()].shape
        return self.draw(shapes(min_dims=0, max_dims=3, max_side=MAX_SIDE))

    def _input(self, spec: OpSpec, i: int, shape: tuple[int, ...]) -> Any:
        if i in spec.constant:
            return self.constant(spec.domain(i), shape)
        if spec.domain(i) is REAL and self.draw(st.booleans()):
            existing = self.node(lambda s: s == shape)
            if existing is not None:
                return existing
        return self.leaf(spec.domain(i), shape)

    def _broadcasting_inputs(self, spec: OpSpec, count: int) -> list[Any]:
        """Inputs that broadcast together: each is an existing node whose shape fits
        the ones before it, or a fresh leaf of a shape that does."""
        inputs: list[Any] = [None] * count
        broadcast: tuple[int, ...] | None = None
        order = list(range(count))
        if self.draw(st.booleans()):
            order.reverse()
        for i in order:
            fits = (
                (lambda s: True)
                if broadcast is None
                else (lambda s, b=broadcast: _broadcasts(s, b))
            )
            reusable = spec.domain(i) is REAL and i not in spec.constant
            existing = (
                self.node(fits) if reusable and self.draw(st.booleans()) else None
            )
            if existing is not None:
                inputs[i] = existing
                shape = self.values[existing].shape
            else:
                if broadcast is None:
                    shape = self._shape_like_a_node()
                else:
                    shape = self.draw(_partner(broadcast, MAX_SIDE))
                inputs[i] = self._input(spec, i, shape)
                shape = (
                    inputs[i].values.shape
                    if isinstance(inputs[i], Const)
                    else self.values[inputs[i]].shape
                )
            broadcast = (
                shape if broadcast is None else np.broadcast_shapes(broadcast, shape)
            )
        return inputs

    def _kwargs(self, spec: OpSpec, shapes_) -> dict[str, Any] | None:
        shape = shapes_[0]
        name = spec.op_name
        if (
            shape == ()
            and name in REDUCTIONS | AXIS_OPS
            and (name in AXIS_OPS or self.draw(st.booleans()))
        ):
            if name in AXIS_OPS:
                return {"axis": self.draw(st.sampled_from([0, -1]))}
            kwargs = {
                "axis": self.draw(st.sampled_from([0, -1, (0,), (-1,)])),
                "keepdims": self.draw(st.booleans()),
            }
            return {**kwargs, "ddof": 0} if name == "var" else kwargs
        if (
            name in {"reshape", "expand", "squeeze", "transpose"}
            and self.draw(st.integers(0, 3)) == 0
        ):
            return self._unchanging_kwargs(name, shape)
        try:
            kwargs = self.draw(spec.kwargs(shapes_))
        except Exception:  # the row's kwargs do not exist for this shape (ndim)
            return None
        if name == "expand" and shape:
            kwargs = {"shape": self._with_minus_ones(kwargs["shape"], len(shape))}
        return kwargs

    def _unchanging_kwargs(self, name: str, shape: tuple[int, ...]) -> dict | None:
        """Arguments that leave `shape` as it is: the case `no_grad` must still copy."""
        if name == "reshape":
            return {"shape": shape}
        if name == "expand":
            return {"shape": self._with_minus_ones(shape, len(shape))}
        if name == "transpose":
            return {"axes": tuple(range(len(shape)))} if shape else {"axes": None}
        if 1 in shape:
            return None
        return {"axis": None}  # squeeze with nothing to squeeze

    def _with_minus_ones(self, target: tuple[int, ...], ndim: int) -> tuple[int, ...]:
        """`target` with some of the axes that exist in the input written as -1."""
        lead = len(target) - ndim
        return tuple(
            -1 if i >= lead and self.draw(st.booleans()) else n
            for i, n in enumerate(target)
        )


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


@st.composite
def programs(draw: st.DrawFn, max_steps: int = 6) -> Program:
    """A random program: 1-2 leaves (steps add fresh ones for inputs of restricted
    domain), up to `max_steps` steps, then what to check on its output."""
    dtype = draw(st.sampled_from([np.float64, np.float64, np.float32]))
    builder = _Builder(draw, dtype)
    for _ in range(draw(st.integers(1, 2))):
        shape = draw(shapes(min_dims=0, max_dims=3, max_side=MAX_SIDE))
        builder.leaf(REAL, shape)
    modes = st.sampled_from(["grad", "grad", "grad", "no_grad", "detach"])
    for _ in range(draw(st.integers(1, max_steps))):
        spec = draw(ROWS)
        mode = draw(modes)
        if mode == "no_grad" and draw(st.booleans()):
            spec = SPECS[draw(st.sampled_from(["reshape", "expand", "squeeze"]))]
        builder.step(spec, mode)
    candidates = [n for n, flag in builder.flags.items() if flag] or list(builder.flags)
    # the last node by default (shrinks to it), else any that requires grad
    output = candidates[-1 - draw(st.integers(0, len(candidates) - 1))]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    program = Program(
        dtype=dtype,
        leaves=builder.leaves,
        steps=builder.steps,
        output=output,
        v=_signed_uniform(rng, builder.values[output].shape, dtype),
    )
    program.backward = draw(st.sampled_from(["loss", "gradient"]))
    program.gradient_requires_grad = draw(st.booleans())
    program.twice = draw(st.booleans())
    differentiable = [n for n, flag in builder.flags.items() if flag]
    if differentiable:
        hooks = st.lists(st.sampled_from(differentiable), max_size=2, unique=True)
        program.hooks = draw(hooks)
    non_leaves = [s.name for s in builder.steps if s.requires_grad]
    if non_leaves and draw(st.booleans()):
        # the output itself most of the time: the gradient arrives there unchanged
        program.retained = [output if output in non_leaves else non_leaves[-1]]
    program.order = draw(st.integers(1, 3))
    program.w = {
        k: _signed_uniform(rng, builder.values[k].shape, dtype) for k in program.wrt
    }
    program.u = {
        k: _signed_uniform(rng, builder.values[k].shape, dtype) for k in program.wrt
    }
    return program


def magnitude(program: Program) -> float:
    """The largest absolute value in the program (for absolute tolerances)."""
    values = reference(program)
    return max(float(np.max(np.abs(v), initial=0.0)) for v in values.values())
