"""compile: the callable users hold. Guards, a cache of programs, the eager fallback.

A call builds a small frozen key from its arguments (shapes and dtypes of arrays and
Tensors, values of everything else, grad mode) and looks it up in a dict of
programs. Each program also carries the checks its trace found necessary (shapes of
the leaves it read, whether a `.grad` was None, modules' train/eval flags, the
optimizer's state layout and non-numeric settings): guards are data, not code paths.
A program that matches runs; one whose guard inside fails (a value the step
branched on changed) is skipped; with none left the call traces a new program.
"""

from __future__ import annotations

import builtins
import functools
import gc
import inspect
import linecache
import operator
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._grad_mode import _State
from ..anomaly import detect_anomaly
from ..tensor import Tensor
from . import passes
from .codegen_numpy import GuardFailed, Program, generate
from .ir import Graph, Ref
from .trace import _DATA, _DATA_SLOT, _GRAD, Location, Tracer

ENVIRONMENT_SWITCH = "TINYGRAD_BP_COMPILE"


def compile(
    fn: Callable[..., Any], *, strict: bool = False, max_programs: int = 8
) -> CompiledFunction:
    """Capture `fn` (a training step, say) once, then replay it as a flat NumPy program.

    The first call with new argument shapes traces (runs `fn` for real, recording
    every array operation); later calls run only the generated program, which
    writes parameters, `.grad`s and optimizer state as eager mode would.

    >>> import numpy as np, tinygrad_bp as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.SGD([w], lr=0.1)
    >>> @tg.compile
    ... def step(x):
    ...     opt.zero_grad()
    ...     loss = ((x * w).sum() - 1.0) ** 2
    ...     loss.backward()
    ...     opt.step()
    ...     return loss
    >>> [round(step(np.array([1.0, 1.0], np.float32)).item(), 4) for _ in range(3)]
    [4.0, 1.44, 0.5184]
    >>> step.programs
    1
    """
    if not callable(fn):
        raise TypeError(f"compile: expected a callable, got {type(fn).__name__}")
    if not isinstance(max_programs, int) or max_programs < 1:
        raise ValueError(
            f"compile: max_programs must be a positive int, got {max_programs!r}"
        )
    return CompiledFunction(fn, strict=strict, max_programs=max_programs)


class CompiledFunction:
    """What `tinygrad_bp.compile` returns: call it as you would call `fn`."""

    def __init__(self, fn: Callable[..., Any], *, strict: bool, max_programs: int):
        self.fn = fn
        self.strict = strict
        self.max_programs = max_programs
        self._cache: dict[Any, list[_CompiledProgram]] = {}
        self._eager_keys: set[Any] = set()
        self._latest: _CompiledProgram | None = None
        functools.update_wrapper(self, fn)

    @property
    def programs(self) -> int:
        """How many programs (one per guard seen) this function holds."""
        return sum(len(found) for found in self._cache.values())

    @property
    def source(self) -> str:
        """The most recently traced program, as Python text ('' before any trace).

        >>> import tinygrad_bp as tg
        >>> double = tg.compile(lambda x: x * 2)
        >>> _ = double(tg.ones(3))
        >>> print(double.source.splitlines()[0:3:2])
        ['def program(x):', '    mul0 = x * np.float32(2.0)  # mul']
        """
        return "" if self._latest is None else self._latest.program.source

    @property
    def sources(self) -> list[str]:
        """The text of every program held, oldest first."""
        return [p.program.source for found in self._cache.values() for p in found]

    def __repr__(self) -> str:
        return f"<compiled {getattr(self.fn, '__qualname__', self.fn)!s} ({self.programs} programs)>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get(ENVIRONMENT_SWITCH) == "0" or detect_anomaly._depth > 0:
            return self.fn(*args, **kwargs)
        if Tracer.active is not None:
            raise RuntimeError(
                f"compile: {self!r} was called while another compiled function is "
                "being traced; call it outside, or compile only the outer function"
            )
        if kwargs:
            leaves = []
            key = (_spec((args, kwargs), leaves), _State.enabled)
        elif not args:  # a step that closes over everything it reads
            leaves = []
            key = ((), _State.enabled)
        else:
            leaves = list(args)
            try:  # the common call: Tensors and arrays only
                key = (tuple(map(_leaf_spec, leaves)), _State.enabled)
            except _NotALeaf:
                leaves = []
                key = (_spec((args, kwargs), leaves), _State.enabled)
        found = self._cache.get(key, ())
        for program in found:
            try:
                result = program.attempt(leaves)
            except GuardFailed:
                continue
            if result is _MISSED:
                continue
            if program is not found[0]:  # the variant that ran goes first next time
                found.insert(0, found.pop(found.index(program)))
            return result
        if key in self._eager_keys:
            return _detached(self.fn(*args, **kwargs))
        if self.programs >= self.max_programs:
            message = (
                f"compile: {self!r} already holds max_programs={self.max_programs} "
                "programs and this call needs another (new shapes, dtypes, argument "
                "values, modes or branches); "
            )
            if self.strict:
                raise RuntimeError(message + "refused because strict=True")
            warnings.warn(message + "running it eagerly", UserWarning, stacklevel=2)
            return _detached(self.fn(*args, **kwargs))
        return self._trace(key, args, kwargs, leaves)

    def _trace(self, key: Any, args: tuple, kwargs: dict, leaves: list[Any]) -> Any:
        # The trace makes many short-lived objects (nodes, Tensors); a cyclic
        # collection in the middle would cost more than the whole trace.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._traced_call(key, args, kwargs, leaves)
        finally:
            if collecting:
                gc.enable()

    def _traced_call(
        self, key: Any, args: tuple, kwargs: dict, leaves: list[Any]
    ) -> Any:
        arg_tensors = {id(t): i for i, t in enumerate(leaves) if isinstance(t, Tensor)}
        tracer = Tracer(arg_tensors)
        names = _argument_names(self.fn, args, kwargs, len(leaves))
        arrays = {}
        try:
            with tracer:
                for i, leaf in enumerate(leaves):
                    if isinstance(leaf, np.ndarray):
                        arrays[i] = tracer.add_input(
                            leaf, Location("array", index=i), names[i]
                        )
                traced_args, traced_kwargs = _rebuild(
                    (args, kwargs), iter(range(len(leaves))), arrays, leaves
                )
                out = self.fn(*traced_args, **traced_kwargs)
        except BaseException:
            tracer.finish([])
            raise
        results: list[Any] = []
        try:
            structure = _result_structure(out, results)
        except TypeError:
            tracer.finish([])
            raise
        graph, bindings = tracer.finish(results)
        detached = _rebuild_results(structure, iter([_copy_of(r) for r in results]))
        if tracer.poisoned:
            warnings.warn(
                f"compile: could not capture a program for {self!r} "
                f"({tracer.poisoned}); calls like this one run eagerly",
                UserWarning,
                stacklevel=3,
            )
            self._eager_keys.add(key)
            return detached
        name = re.sub(r"\W+", "_", getattr(self.fn, "__name__", "step")).strip("_")
        compiled = _CompiledProgram(
            graph,
            name or "step",
            functools.partial(_name_slots, graph, tracer, bindings, names, self.fn),
            [location for _, location in tracer.inputs],
            tracer.checks,
            bindings,
            structure,
            len(results),
        )
        self._cache.setdefault(key, []).append(compiled)
        self._latest = compiled
        return detached


def _release_freed_memory() -> None:
    """Hand the heap the tracing call freed back to the OS (glibc keeps it otherwise),
    so a process that then only replays holds the program's arena, not also the
    eager step's temporaries. A no-op where there is no glibc."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc(0)


_libc: Any = None  # glibc's malloc_trim, looked up at the first trace


class _CompiledProgram:
    """One program with where its inputs come from and where its outputs go."""

    def __init__(
        self,
        graph: Graph,
        name: str,
        namer: Callable[[], None],
        inputs,
        checks,
        bindings,
        structure,
        n_results,
    ):
        self.graph: Graph | None = graph
        self.name = name
        self._namer: Callable[[], None] | None = namer  # names the slots, later
        self._program: Program | None = None
        self.inputs: list[Location] = inputs
        self.checks = checks
        self.bindings = bindings
        self.structure = structure
        self.n_results = n_results
        # specialised once, so a call does only attribute reads and comparisons
        self._tensors, self._nones, self._others = _plan_checks(checks)
        self._readers = [_reader(location) for location in inputs]
        inputs_slots = set(graph.inputs)
        # A `.grad` the checks found None and the program sets to None again (the
        # step's `p.grad = None`) is still None: nothing to bind.
        unchanged = {id(t) for t in self._nones}
        self._binders = [
            (n_results + j, _binder(kind, location, _shared(out, inputs_slots)))
            for j, ((kind, location, _), out) in enumerate(
                zip(bindings, graph.outputs[n_results:])
            )
            if not (
                kind == "grad"
                and location.kind == "root"
                and out is None
                and id(location.owner) in unchanged
            )
        ]

    @property
    def program(self) -> Program:
        """The generated function, made at the first replay (or when its source is
        asked for): a guard seen once, such as an epoch's last short batch, costs
        only its tracing call."""
        if self._program is None:
            from .. import _config

            graph = self.graph
            self._namer()
            self._namer = None
            nodes = passes.merge_duplicates(graph.nodes, graph)
            nodes = passes.fold_constants(nodes, graph)
            nodes = passes.eliminate_dead_code(nodes, graph)
            nodes = passes.hoist_scalar_checks(nodes, graph)
            graph.nodes = passes.plan_buffers(nodes, graph)
            _release_freed_memory()  # before the program's arena is allocated
            self._program = generate(graph, self.name, {"get_rng": _config.get_rng})
            self.graph = None
        return self._program

    def attempt(self, leaves: list[Any]) -> Any:
        """Run on this call if it meets every check, else return `_MISSED`; raises
        GuardFailed when a guard inside the program fails.

        The first call writes this as one straight-line function (see `_attempt`)
        that shadows the method from then on."""
        self.attempt = _attempt(self)  # type: ignore[method-assign]
        return self.attempt(leaves)


_MISSED = object()  # what `attempt` returns when a check fails
_get_data = operator.attrgetter(_DATA_SLOT)


def _attempt(compiled: _CompiledProgram) -> Callable[[list[Any]], Any]:
    """A call of one program as straight-line Python: the checks of the Tensors'
    arrays (whose reads then feed the program), of the `.grad`s that must be None,
    the other checks, the program, the bindings, the fresh result Tensors. CPython
    specialises the slot reads and global loads of such code, which loops over
    tuples or maps of attrgetters do not get. The program itself is generated at
    the first call whose checks pass."""
    namespace: dict[str, Any] = {
        "MISSED": _MISSED,
        "wrap": Tensor._wrap,
        "array": np.array,
        "rebuild": _rebuild_results,
        "structure": compiled.structure,
    }

    def first(*values: Any) -> tuple:
        function = namespace["function"] = compiled.program.function
        return function(*values)

    namespace["function"] = first
    lines = ["def attempt(leaves):"]
    checked: dict[int, str] = {}
    for k, (t, shape, dtype, requires_grad) in enumerate(compiled._tensors):
        namespace.update({f"t{k}": t, f"s{k}": shape, f"d{k}": dtype})
        namespace[f"r{k}"] = requires_grad
        checked.setdefault(id(t), f"a{k}")
        lines += [
            f"    a{k} = t{k}.{_DATA_SLOT}",
            f"    if (a{k}.shape != s{k} or (a{k}.dtype is not d{k} and a{k}.dtype "
            f"!= d{k}) or t{k}._requires_grad is not r{k}):",
            "        return MISSED",
        ]
    tests = []
    for k, t in enumerate(compiled._nones):
        namespace[f"n{k}"] = t
        tests.append(f"n{k}.grad is not None")
    for k, check in enumerate(compiled._others):
        namespace[f"o{k}"] = check
        tests.append(f"not o{k}(leaves)")
    if tests:
        lines += [f"    if {' or '.join(tests)}:", "        return MISSED"]
    values = []
    for j, (location, read) in enumerate(zip(compiled.inputs, compiled._readers)):
        if location.kind == "root" and id(location.owner) in checked:
            values.append(checked[id(location.owner)])  # the array just checked
        else:
            namespace[f"read{j}"] = read
            values.append(f"read{j}(leaves)")
    lines.append(f"    outputs = function({', '.join(values)})")
    for j, (position, bind) in enumerate(compiled._binders):
        namespace[f"bind{j}"] = bind
        lines.append(f"    bind{j}(leaves, outputs[{position}])")
    if compiled.structure == "tensor":  # the common single result
        lines.append("    return wrap(array(outputs[0]))")
    else:
        lines.append(
            "    return rebuild(structure, "
            f"iter([wrap(array(r)) for r in outputs[:{compiled.n_results}]]))"
        )
    source = "\n".join(lines) + "\n"
    filename = f"<tinygrad_bp.compile:{compiled.name}:call:{id(compiled):x}>"
    code = builtins.compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, namespace)
    return namespace["attempt"]


def _reader(location: Location) -> Callable[[list[Any]], Any]:
    """A function of the call's flat arguments that reads one program input."""
    kind = location.kind
    if kind == "array":
        return operator.itemgetter(location.index)
    if kind == "arg":
        index = location.index
        return lambda leaves: _get_data(leaves[index])
    if kind == "root":
        t = location.owner
        return lambda leaves: _get_data(t)
    opt, index, key, sub = location.owner, location.index, location.key, location.sub
    if kind == "state":
        return lambda leaves: opt.state[index][key]
    if kind == "hyper" and sub is None:
        return lambda leaves: opt.param_groups[index][key]
    if kind == "hyper":
        return lambda leaves: opt.param_groups[index][key][sub]
    return location.read


def _plan_checks(checks: list[tuple]) -> tuple:
    """The checks split for `_attempt`: (Tensor, shape, dtype, requires_grad) of the
    Tensors checked; the Tensors whose `.grad` must be None; the rest as functions
    of the call's flat arguments (optimizer state arrays in one loop, then each
    other check)."""
    tensors, nones, grads, states, others = [], [], [], [], []
    for kind, subject, want in checks:
        if kind == "tensor" and subject.kind == "root":
            tensors.append((subject.owner, *want))
        elif kind == "grad" and subject.kind == "root" and want is None:
            nones.append(subject.owner)
        elif kind == "state_array":
            states.append((subject.owner, subject.index, subject.key, *want))
        else:
            others.append(functools.partial(_check, kind, subject, want))
    if any(getattr(type(t), "grad", None) is not _GRAD for t in nones):
        # a subclass with a `grad` of its own: read the slot itself, as the trace did
        grads, nones = nones, []
        others.insert(0, lambda leaves: all(_GRAD.__get__(t) is None for t in grads))
    if states:

        def state_arrays(leaves: list[Any]) -> bool:
            for opt, p, key, shape, dtype in states:
                value = opt.state.get(p, {}).get(key)
                if (
                    not isinstance(value, np.ndarray)
                    or value.shape != shape
                    or value.dtype != dtype
                ):
                    return False
            return True

        others.insert(1 if grads else 0, state_arrays)
    return tensors, nones, others


def _shared(out: Any, inputs: set[int]) -> bool:
    """Whether a bound output is a constant of the program or one of its inputs (so
    each call must hand out a copy of its own)."""
    return not isinstance(out, Ref) or out.slot in inputs


def _binder(kind: str, location: Location, shared: bool) -> Callable[[list, Any], None]:
    """What puts one bound output where the step left it: a `.grad`, a `.data`, an
    optimizer's state entry."""

    def fresh(value: Any) -> Any:
        return value.copy() if shared and isinstance(value, np.ndarray) else value

    if kind == "grad":
        if location.kind == "root":
            t = location.owner

            def bind_grad(leaves: list[Any], value: Any) -> None:
                t.grad = None if value is None else Tensor._wrap(fresh(value))

            return bind_grad

        def bind_any_grad(leaves: list[Any], value: Any) -> None:
            location.tensor(leaves).grad = (
                None if value is None else Tensor._wrap(fresh(value))
            )

        return bind_any_grad
    if kind == "data":

        def bind_data(leaves: list[Any], value: Any) -> None:
            location.tensor(leaves).data = fresh(value)

        return bind_data

    def bind_state(leaves: list[Any], value: Any) -> None:
        state = location.owner.state.setdefault(location.index, {})
        state[location.key] = fresh(value)

    return bind_state


def _check(kind: str, subject: Any, expected: Any, leaves: list[Any]) -> bool:
    if kind == "tensor":
        t = subject.tensor(leaves)
        if t is None:
            return False
        data = _DATA.__get__(t, Tensor)
        return (data.shape, data.dtype, t._requires_grad) == expected
    if kind == "grad":
        owner = subject.tensor(leaves)
        g = None if owner is None else _GRAD.__get__(owner, Tensor)
        if g is None or expected is None:
            return g is None and expected is None
        data = _DATA.__get__(g, Tensor)
        return (data.shape, data.dtype) == expected
    if kind == "training":
        return subject.training == expected
    if kind == "hyper":
        opt, g, key = subject
        if g >= len(opt.param_groups):
            return False
        value = opt.param_groups[g].get(key)
        return type(value) is type(expected) and value == expected
    if kind == "state":
        opt = subject
        params = [p for group in opt.param_groups for p in group["params"]]
        layout = tuple(tuple(opt.state[p]) if p in opt.state else None for p in params)
        return layout == expected
    if kind == "state_array":
        value = subject.read(leaves)
        return isinstance(value, np.ndarray) and (value.shape, value.dtype) == expected
    if kind == "state_value":
        value = subject.read(leaves)
        return type(value) is type(expected) and value == expected
    raise ValueError(f"unknown check {kind}")


# ----------------------------------------------------------------- arguments
def _spec(value: Any, leaves: list[Any]) -> Any:
    """A hashable description of the arguments; arrays and Tensors go to `leaves`."""
    if isinstance(value, Tensor):
        leaves.append(value)
        data = _DATA.__get__(value, Tensor)
        return ("tensor", data.shape, data.dtype.str, value._requires_grad)
    if isinstance(value, np.ndarray):
        leaves.append(value)
        return ("array", value.shape, value.dtype.str)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, *(_spec(v, leaves) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _spec(v, leaves)) for k, v in value.items()))
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return ("value", type(value).__name__, value)
    raise TypeError(
        f"compile: cannot guard on an argument of type {type(value).__name__}; pass "
        "Tensors, NumPy arrays, Python scalars, or tuples/lists/dicts of them "
        "(other objects can be closed over)"
    )


class _NotALeaf(Exception):
    """An argument other than a Tensor or an array: the call takes `_spec`."""


def _leaf_spec(value: Any) -> tuple:
    kind = type(value)
    if kind is np.ndarray:
        return (value.shape, value.dtype.str)
    if kind is Tensor:
        data = _get_data(value)
        return (data.shape, data.dtype.str, value._requires_grad)
    raise _NotALeaf


def _rebuild(
    value: Any, counter: Any, arrays: dict[int, Any], leaves: list[Any]
) -> Any:
    if isinstance(value, (Tensor, np.ndarray)):
        i = next(counter)
        return arrays.get(i, leaves[i])
    if isinstance(value, (tuple, list)):
        return type(value)(_rebuild(v, counter, arrays, leaves) for v in value)
    if isinstance(value, dict):
        return {k: _rebuild(v, counter, arrays, leaves) for k, v in value.items()}
    return value


def _result_structure(value: Any, results: list[Any]) -> Any:
    if isinstance(value, Tensor):
        results.append(value)
        return "tensor"
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return (type(value), [_result_structure(v, results) for v in value])
    if isinstance(value, dict):
        return (dict, {k: _result_structure(v, results) for k, v in value.items()})
    raise TypeError(
        f"compile: the step returned a {type(value).__name__}; return a Tensor, a "
        "tuple/list/dict of Tensors, or None (a Python number computed from data "
        "would be frozen at its trace-time value)"
    )


def _rebuild_results(structure: Any, results: Any) -> Any:
    if structure == "tensor":
        return next(results)
    if structure is None:
        return None
    kind, items = structure
    if kind is dict:
        return {k: _rebuild_results(v, results) for k, v in items.items()}
    return kind(_rebuild_results(v, results) for v in items)


def _copy_of(t: Tensor) -> Tensor:
    data = _DATA.__get__(t, Tensor)
    return Tensor._wrap(
        np.array(
            np.ndarray.view(data, np.ndarray) if isinstance(data, np.ndarray) else data
        )
    )


def _detached(value: Any) -> Any:
    results: list[Any] = []
    structure = _result_structure(value, results)
    return _rebuild_results(structure, iter([_copy_of(r) for r in results]))


# ------------------------------------------------------------------- naming
def _argument_names(fn: Any, args: tuple, kwargs: dict, count: int) -> list[str]:
    names: list[str] = []
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is not None and not code.co_flags & 0x04:  # no *args: names from code
        positional = code.co_varnames[: code.co_argcount]
        positional = positional[1:] if hasattr(fn, "__self__") else positional
        items = list(zip(positional, args)) + list(kwargs.items())
    else:
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
            items = list(bound.arguments.items())
        except (TypeError, ValueError):
            items = [(f"arg{i}", a) for i, a in enumerate(args)]
            items += list(kwargs.items())

    def walk(name: str, value: Any) -> None:
        if isinstance(value, (Tensor, np.ndarray)):
            names.append(name)
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                walk(f"{name}{i}", v)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{name}_{k}", v)

    for name, value in items:
        walk(name, value)
    names += [f"arg{i}" for i in range(len(names), count)]
    return names[:count] if len(names) >= count else names


def _short(name: str) -> str:
    """'0.weight' -> 'weight0', 'w[0]' -> 'w0', 'layers.1.bias' -> 'layers_bias1'."""
    parts = [p for p in re.split(r"[^0-9A-Za-z_]+", name) if p]
    words = [p for p in parts if not p.isdigit()]
    digits = [p for p in parts if p.isdigit()]
    return ("_".join(words) or "p") + "".join(digits)


def _tensor_names(fn: Any, tracer: Tracer) -> dict[int, str]:
    found: dict[int, str] = {}
    for module in tracer.modules.values():
        for name, p in module.named_parameters():
            found.setdefault(id(p), _short(name))
        for name, b in getattr(module, "named_buffers", lambda: [])():
            found.setdefault(id(b), _short(name))
    code = getattr(fn, "__code__", None)
    if code is None:
        return found
    scope = dict(zip(code.co_freevars, [c.cell_contents for c in fn.__closure__ or ()]))
    scope.update({n: fn.__globals__[n] for n in code.co_names if n in fn.__globals__})
    for name, value in scope.items():
        if isinstance(value, Tensor):
            found.setdefault(id(value), _short(name))
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, Tensor):
                    found.setdefault(id(v), _short(str(k)))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                if isinstance(v, Tensor):
                    found.setdefault(id(v), f"{_short(name)}{i}")
        elif hasattr(value, "named_parameters"):
            for n, p in value.named_parameters():
                found.setdefault(id(p), _short(n))
    return found


def _name_slots(graph: Graph, tracer: Tracer, bindings, arg_names, fn) -> None:
    tensors = _tensor_names(fn, tracer)
    params: dict[int, str] = {}

    def tensor_name(location: Location) -> str:
        if location.kind == "arg":
            return arg_names[location.index]
        if location.kind == "grad":
            return "grad_" + tensor_name(location.owner)
        name = tensors.get(id(location.owner))
        if name is None:
            name = params.setdefault(id(location.owner), f"p{len(params)}")
        return name

    def name(location: Location) -> str:
        if location.kind == "array":
            return arg_names[location.index]
        if location.kind == "hyper":
            key = str(location.key)
            if key == "betas" and location.sub is not None:
                key = f"beta{location.sub + 1}"
            elif location.sub is not None:
                key = f"{key}{location.sub}"
            return key + (str(location.index) if location.index else "")
        if location.kind == "state":
            owner = tensors.get(id(location.index)) or "p"
            return f"{location.key}_{owner}"
        return tensor_name(location)

    for slot, location in tracer.inputs:
        graph.info[slot].name = name(location)
        graph.info[slot].exact = True
    inputs = set(graph.inputs)
    for kind, location, value in bindings:
        if not isinstance(value, Ref) or value.slot in inputs:
            continue
        info = graph.info[value.slot]
        if kind == "grad":
            info.name = "d" + tensor_name(location).removeprefix("grad_")
        elif kind == "data":
            info.name = tensor_name(location) + "_new"
        else:
            info.name = name(location)
        info.exact = True
