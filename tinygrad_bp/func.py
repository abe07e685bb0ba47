"""Function transforms: derivatives as functions, as in JAX and `torch.func`.

`grad(f)` is a new function that returns the gradient of `f`; `jacobian`, `hessian`,
`vjp`, `jvp` and `hvp` work the same way, and they compose: `grad(grad(f))` is the
second derivative, `jacobian(grad(f))` the Hessian.

How it works on a reverse-mode tape. Each transform gives every differentiated
argument a fresh node of its own (`x * 1`, still connected to the caller's `x`, or a
new leaf when nothing upstream needs a gradient), calls `f` on those nodes and asks
`tinygrad_bp.grad` for the gradient with respect to exactly those nodes, always with
``create_graph=True``. The result is then an ordinary recorded function of the
caller's tensors, so an outer transform differentiates straight through it; and
because every level differentiates with respect to its own node, a level never
mistakes another level's variable for its own (no "perturbation confusion").
When a result does not depend on any tensor that needs a gradient outside the
transform (the usual top-level call), it is detached, so it keeps no graph.

Arguments at differentiated positions may be Tensors, Python numbers, nested lists
or NumPy arrays (as in JAX). Non-Tensors become Tensors as `tinygrad_bp.tensor`
makes them (Python floats take the default dtype, NumPy floats keep theirs);
integers and booleans become the default floating dtype. Integer Tensors and
non-numeric values raise `TypeError` naming the argument's position. Keyword
arguments are passed to `f` and never differentiated.

>>> import tinygrad_bp as tg
>>> from tinygrad_bp.func import grad
>>> d3 = grad(grad(grad(lambda x: x**4)))
>>> d3(2.0).item()
48.0
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import tinygrad_bp as tg

__all__ = ["grad", "hessian", "hvp", "jacobian", "jvp", "value_and_grad", "vjp"]

ArgNums = int | tuple[int, ...]


# ------------------------------------------------------------------ public transforms
def grad(f: Callable[..., tg.Tensor], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The gradient of a one-element `f` as a function of the same arguments.

    grad(f)(*args) = ∂f/∂args[argnums]; a tuple of gradients when `argnums` is a
    tuple.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import grad
    >>> g = grad(lambda x, y: (x * y).sum(), argnums=(0, 1))
    >>> dx, dy = g(tg.tensor([1.0, 2.0]), tg.tensor([3.0, 4.0]))
    >>> dx.tolist(), dy.tolist()
    ([3.0, 4.0], [1.0, 2.0])
    """
    value_and_grad_f = _value_and_grad(f, argnums, "grad")

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return value_and_grad_f(*args, **kwargs)[1]

    return grad_f


def value_and_grad(
    f: Callable[..., tg.Tensor], argnums: ArgNums = 0
) -> Callable[..., tuple[tg.Tensor, Any]]:
    """Like `grad`, but the function returns `(f(*args), gradient)` from one pass.

    value_and_grad(f)(*args) = (f(*args), ∂f/∂args[argnums])

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import value_and_grad
    >>> value, dx = value_and_grad(lambda x: (x**2).sum())(tg.tensor([1.0, 3.0]))
    >>> value.item(), dx.tolist()
    (10.0, [2.0, 6.0])
    """
    return _value_and_grad(f, argnums, "value_and_grad")


def vjp(
    f: Callable[..., tg.Tensor], *primals: Any
) -> tuple[tg.Tensor, Callable[[Any], tuple[tg.Tensor, ...]]]:
    """`f(*primals)` and a function that pulls an output cotangent back to the inputs.

    vjp_fn(v)[i] = vᵀ ∂f/∂primals[i], i.e. Σ_k v_k ∂f_k/∂primals[i]; `v` has the
    output's shape. `vjp_fn` may be called any number of times.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import vjp
    >>> out, vjp_fn = vjp(lambda x: x**2, tg.tensor([1.0, 2.0]))
    >>> (dx,) = vjp_fn(tg.tensor([1.0, 10.0]))
    >>> out.tolist(), dx.tolist()
    ([1.0, 4.0], [2.0, 40.0])
    """
    _check_callable(f, "vjp")
    positions = tuple(range(len(primals)))
    with tg.enable_grad():
        nodes, out, own = _trace(f, primals, {}, positions, "vjp")

    def vjp_fn(v: Any) -> tuple[tg.Tensor, ...]:
        # the caller's grad mode, read before enable_grad switches it on
        recording = tg.is_grad_enabled()
        with tg.enable_grad():
            cotangent = _like(v, out, "vjp_fn: the cotangent v", "f's output")
            grads = _grads([out], [cotangent], nodes)
        return _detached_unless_needed(grads, own, recording)

    return _detached_unless_needed(out, own, tg.is_grad_enabled()), vjp_fn


def jvp(
    f: Callable[..., tg.Tensor], primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[tg.Tensor, tg.Tensor]:
    """`f(*primals)` and the directional derivative of `f` along `tangents`.

    tangent_out = J t = Σ_i ∂f/∂primals[i] · tangents[i], shaped like the output.
    Built from two reverse passes: J t is the gradient with respect to `u` of the
    vector-Jacobian product uᵀJ, which is linear in `u`, taken with cotangent `t`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import jvp
    >>> out, t_out = jvp(lambda x: x**3, (tg.tensor([1.0, 2.0]),), (tg.tensor([1.0, 0.5]),))
    >>> out.tolist(), t_out.tolist()
    ([1.0, 8.0], [3.0, 6.0])
    """
    _check_callable(f, "jvp")
    primals = _as_tuple(primals, "primals", "jvp")
    tangents = _as_tuple(tangents, "tangents", "jvp")
    recording = tg.is_grad_enabled()
    with tg.enable_grad():
        nodes, out, own = _trace(f, primals, {}, tuple(range(len(primals))), "jvp")
        tangents = _tangents(tangents, nodes, "jvp")
        if out.requires_grad:
            # u's value never matters: uᵀJ is linear in u, so its gradient is J t.
            u = tg.zeros(out.shape, dtype=out.dtype, requires_grad=True)
            own.add(id(u))
            (tangent_out,) = _grads(_grads([out], [u], nodes), tangents, [u])
        else:
            tangent_out = tg.zeros_like(out)
    return _detached_unless_needed((out, tangent_out), own, recording)


def jacobian(f: Callable[..., tg.Tensor], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The Jacobian of `f` as a function: one vector-Jacobian product per output element.

    jacobian(f)(*args)[k..., i...] = ∂f_k / ∂x_i with x = args[argnums]; shape
    `out.shape + x.shape`; a tuple of Jacobians when `argnums` is a tuple.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import jacobian
    >>> a = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> jacobian(lambda x: a @ x)(tg.tensor([0.5, -1.0])).tolist()
    [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    """
    _check_callable(f, "jacobian")
    wanted = _check_argnums(argnums, "jacobian")

    def jacobian_f(*args: Any, **kwargs: Any) -> Any:
        recording = tg.is_grad_enabled()
        with tg.enable_grad():
            positions = _positions(wanted, len(args), "jacobian")
            nodes, out, own = _trace(f, args, kwargs, positions, "jacobian")
            jacobians = _jacobians(out, nodes)
        return _detached_unless_needed(_pick(jacobians, argnums), own, recording)

    return jacobian_f


def hessian(f: Callable[..., tg.Tensor], argnums: ArgNums = 0) -> Callable[..., Any]:
    """The Hessian of `f` as a function: the Jacobian of its Jacobian.

    hessian(f)(*args)[i][j] = ∂²f / ∂x_i ∂x_j with x = args[argnums], of shape
    `x_i.shape + x_j.shape` for a one-element `f` (`out.shape` in front otherwise);
    nested tuples `H[i][j]` when `argnums` is a tuple.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import hessian
    >>> hessian(lambda x: (x**3).sum())(tg.tensor([1.0, 2.0])).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    _check_callable(f, "hessian")
    wanted = _check_argnums(argnums, "hessian")

    def hessian_f(*args: Any, **kwargs: Any) -> Any:
        recording = tg.is_grad_enabled()
        with tg.enable_grad():
            positions = _positions(wanted, len(args), "hessian")
            nodes, out, own = _trace(f, args, kwargs, positions, "hessian")
            rows = tuple(_jacobians(j, nodes) for j in _jacobians(out, nodes))
        hessians = rows if isinstance(argnums, tuple) else rows[0][0]
        return _detached_unless_needed(hessians, own, recording)

    return hessian_f


def hvp(
    f: Callable[..., tg.Tensor], primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[tg.Tensor, tuple[tg.Tensor, ...]]:
    """`f(*primals)` and the Hessian-vector product of a one-element `f`, per primal.

    (H v)_i = Σ_j ∂²f / ∂x_i ∂x_j · v_j: the gradient of ⟨∇f, v⟩, two reverse passes
    and no Hessian built.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.func import hvp
    >>> value, (hv,) = hvp(lambda x: (x**3).sum(), (tg.tensor([1.0, 2.0]),),
    ...                    (tg.tensor([1.0, 1.0]),))
    >>> value.item(), hv.tolist()
    (9.0, [6.0, 12.0])
    """
    _check_callable(f, "hvp")
    primals = _as_tuple(primals, "primals", "hvp")
    tangents = _as_tuple(tangents, "tangents", "hvp")
    recording = tg.is_grad_enabled()
    with tg.enable_grad():
        nodes, out, own = _trace(f, primals, {}, tuple(range(len(primals))), "hvp")
        tangents = _tangents(tangents, nodes, "hvp")
        _check_one_element(out, "hvp")
        gradients = _grads([out], [tg.ones_like(out)], nodes)
        products = _grads(gradients, tangents, nodes)
    return _detached_unless_needed((out, products), own, recording)


# ------------------------------------------------------------------------- helpers
def _value_and_grad(f: Callable[..., tg.Tensor], argnums: ArgNums, caller: str) -> Any:
    _check_callable(f, caller)
    wanted = _check_argnums(argnums, caller)

    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[tg.Tensor, Any]:
        recording = tg.is_grad_enabled()
        with tg.enable_grad():
            positions = _positions(wanted, len(args), caller)
            nodes, out, own = _trace(f, args, kwargs, positions, caller)
            _check_one_element(out, caller)
            grads = _grads([out], [tg.ones_like(out)], nodes)
        result = (out, _pick(grads, argnums))
        return _detached_unless_needed(result, own, recording)

    return value_and_grad_f


def _trace(
    f: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    positions: tuple[int, ...],
    caller: str,
) -> tuple[list[tg.Tensor], tg.Tensor, set[int]]:
    """Call `f` with a fresh node at each differentiated position.

    Returns the nodes, f's output and the ids of the leaves made here (tensors that
    nothing outside this transform can differentiate with respect to).
    """
    args = list(args)
    nodes = []
    own = set()
    for p in positions:
        x = _differentiable(args[p], p, caller)
        # x * 1 stays connected to the caller's x, so outer transforms see through it,
        # yet it is a node of its own that f's closures cannot reach behind our back.
        node = x * 1 if x.requires_grad else x.detach().requires_grad_()
        if node.is_leaf:
            own.add(id(node))
        args[p] = node
        nodes.append(node)
    out = f(*args, **kwargs)
    if not isinstance(out, tg.Tensor):
        raise TypeError(
            f"{caller}: f must return a Tensor, got {type(out).__name__}: {out!r:.80}"
        )
    return nodes, out, own


def _grads(
    outputs: Sequence[tg.Tensor],
    cotangents: Sequence[tg.Tensor],
    nodes: Sequence[tg.Tensor],
) -> tuple[tg.Tensor, ...]:
    """Σ_k cotangents[k] · ∂outputs[k]/∂node for each node, recorded, zeros if unused.

    The graph is kept (a vjp_fn may run again) and the pass recorded (an outer
    transform may differentiate the result).
    """
    used = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    found: Sequence[tg.Tensor | None] = [None] * len(nodes)
    if used:
        found = tg.grad(
            [o for o, _ in used],
            list(nodes),
            grad_outputs=[c for _, c in used],
            retain_graph=True,
            create_graph=True,
            allow_unused=True,
        )
    return tuple(
        tg.zeros_like(x) if g is None else g for x, g in zip(nodes, found, strict=True)
    )


def _jacobians(out: tg.Tensor, nodes: Sequence[tg.Tensor]) -> tuple[tg.Tensor, ...]:
    """∂out/∂node for each node, shape out.shape + node.shape: one vjp per out element."""
    if out.size == 0 or not out.requires_grad:
        return tuple(tg.zeros(out.shape + x.shape, dtype=x.dtype) for x in nodes)
    rows = []
    for k in range(out.size):
        one_hot = np.zeros(out.size, dtype=out.dtype)
        one_hot[k] = 1
        rows.append(_grads([out], [tg.tensor(one_hot.reshape(out.shape))], nodes))
    return tuple(
        tg.stack([row[i] for row in rows]).reshape(out.shape + x.shape)
        for i, x in enumerate(nodes)
    )


def _detached_unless_needed(result: Any, own: set[int], recording: bool) -> Any:
    """`result` as is if it depends on a tensor that needs a gradient outside this
    transform (an outer transform or the user will differentiate it), else detached.

    Under `no_grad` the caller asked for no graph at all, so everything is detached.
    """
    tensors = list(_flatten(result))
    if recording and _reaches_outside(tensors, own):
        return result
    return _map(lambda t: t.detach(), result)


def _reaches_outside(tensors: list[tg.Tensor], own: set[int]) -> bool:
    """Whether the graph of `tensors` leads to a leaf that requires grad, not made here."""
    stack = [t for t in tensors if t.requires_grad]
    seen: set[int] = set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t.grad_fn is None:
            if id(t) not in own:
                return True
            continue
        stack.extend(x for x in t.grad_fn.inputs or () if x.requires_grad)
    return False


def _flatten(result: Any) -> Any:
    if isinstance(result, tuple):
        for item in result:
            yield from _flatten(item)
    else:
        yield result


def _map(fn: Callable[[tg.Tensor], tg.Tensor], result: Any) -> Any:
    if isinstance(result, tuple):
        return tuple(_map(fn, item) for item in result)
    return fn(result)


def _pick(per_node: tuple[tg.Tensor, ...], argnums: ArgNums) -> Any:
    """The whole tuple for a tuple `argnums`, the one entry for an int."""
    return per_node if isinstance(argnums, tuple) else per_node[0]


# ----------------------------------------------------------------- input checking
def _check_callable(f: Any, caller: str) -> None:
    if not callable(f):
        raise TypeError(f"{caller}: f must be callable, got {type(f).__name__}")


def _is_int(n: Any) -> bool:
    return isinstance(n, numbers.Integral) and not isinstance(n, bool)


def _check_argnums(argnums: Any, caller: str) -> tuple[int, ...]:
    """`argnums` as a non-empty tuple of distinct ints (checked when the transform is made)."""
    if _is_int(argnums):
        return (int(argnums),)
    if not isinstance(argnums, tuple) or not all(_is_int(a) for a in argnums):
        raise TypeError(
            f"{caller}: argnums must be an int or a tuple of ints, got {argnums!r}"
        )
    if not argnums:
        raise ValueError(f"{caller}: argnums is an empty tuple; name at least one")
    return tuple(int(a) for a in argnums)


def _positions(argnums: tuple[int, ...], n_args: int, caller: str) -> tuple[int, ...]:
    """`argnums` made non-negative for a call with `n_args` positional arguments."""
    for a in argnums:
        if not -n_args <= a < n_args:
            raise IndexError(
                f"{caller}: argnums={a} is out of range: f was called with "
                f"{n_args} positional argument(s)"
            )
    positions = tuple(a % n_args for a in argnums)
    if len(set(positions)) != len(positions):
        raise ValueError(
            f"{caller}: argnums {argnums} names the same argument twice "
            f"(with {n_args} positional arguments)"
        )
    return positions


def _differentiable(value: Any, position: int, caller: str) -> tg.Tensor:
    """A floating Tensor for the argument at `position`, or a TypeError naming it."""
    if isinstance(value, tg.Tensor):
        if value.dtype.kind != "f":
            raise TypeError(
                f"{caller}: argument {position} is a Tensor of dtype {value.dtype}; "
                "only floating-point tensors can be differentiated"
            )
        return value
    try:
        x = tg.tensor(value)
    except (TypeError, ValueError):
        x = None
    if x is None or x.dtype.kind not in "biuf":
        raise TypeError(
            f"{caller}: argument {position} is a {type(value).__name__} "
            f"({value!r:.60}); a differentiated argument must be a Tensor, a number, "
            "a nested list of numbers or a NumPy array"
        )
    if x.dtype.kind != "f":
        x = x.astype(tg.get_default_dtype())
    return x


def _as_tuple(values: Any, name: str, caller: str) -> tuple[Any, ...]:
    if not isinstance(values, (tuple, list)):
        raise TypeError(
            f"{caller}: {name} must be a tuple (or list), got {type(values).__name__}; "
            f"write ({name[:-1]},) for one"
        )
    return tuple(values)


def _tangents(
    tangents: tuple[Any, ...], nodes: Sequence[tg.Tensor], caller: str
) -> list[tg.Tensor]:
    """Check one tangent per primal, each shaped like it."""
    if len(tangents) != len(nodes):
        raise ValueError(
            f"{caller}: {len(tangents)} tangents for {len(nodes)} primals; "
            "pass one tangent per primal"
        )
    return [
        _like(t, x, f"{caller}: tangents[{i}]", f"primals[{i}]")
        for i, (t, x) in enumerate(zip(tangents, nodes))
    ]


def _like(value: Any, like: tg.Tensor, name: str, like_name: str) -> tg.Tensor:
    """`value` as a Tensor of `like`'s shape; a Tensor that requires grad stays in the
    graph, so an outer transform can differentiate with respect to it."""
    t = value if isinstance(value, tg.Tensor) else tg.tensor(value, dtype=like.dtype)
    if t.shape != like.shape:
        raise ValueError(
            f"{name} has shape {t.shape} but {like_name} has shape {like.shape}"
        )
    return t


def _check_one_element(out: tg.Tensor, caller: str) -> None:
    if out.size != 1:
        raise ValueError(
            f"{caller}: f must return a tensor with one element, got shape "
            f"{out.shape}; use jacobian or vjp for a non-scalar output"
        )
