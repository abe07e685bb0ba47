"""Check a gradient against finite differences: how to test your own op.

`gradcheck(fn, inputs)` computes the gradient of ``sum(fn(*inputs) * v)``, with ``v``
a fixed random cotangent, twice: by backpropagation and by central differences,
element by element. It returns ``True`` when they agree and otherwise raises
`GradcheckError` naming the input, the element and both values. `gradgradcheck` does
the same for the gradient itself, which tests a backward written for
``create_graph=True``. Use float64 inputs: float32 leaves too little precision for
finite differences (a `UserWarning` says so).

A custom op is checked like a built-in one (use `tinygrad_bp.testing.strategies` to
draw the inputs with Hypothesis):

>>> import numpy as np, tinygrad_bp as tg
>>> from tinygrad_bp.testing import gradcheck, gradgradcheck
>>> class Softsign(tg.Function):
...     '''y = x / (1 + |x|); dy/dx = 1 / (1 + |x|)^2'''
...     def forward(self, x):
...         return x / (1 + np.abs(x))
...     def backward(self, grad, out):
...         (x,) = self.inputs
...         return grad / (1 + x.abs()) ** 2
>>> x = tg.tensor(np.array([[-2.0, 0.5], [1.5, 3.0]]), requires_grad=True)
>>> gradcheck(Softsign.apply, [x])
True
>>> gradgradcheck(Softsign.apply, [x])
True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import tinygrad_bp as tg

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]

# Fixed seeds, in generators of our own: a check gives the same verdict every run and
# never moves the global RNG that the user's own code may depend on.
_COTANGENT_SEED = 1234
_GRAD_OUTPUTS_SEED = 5678


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compare backprop's gradient of `fn` with central differences, for each input.

    For every Tensor in `inputs` with ``requires_grad``, the analytic gradient ``a`` of
    ``sum(out * v)`` (``v`` a random cotangent with entries of magnitude 0.5 to 1.5)
    must match ``n[k] = (f(x + eps e_k) - f(x - eps e_k)) / 2eps`` within
    ``|a - n| <= atol + rtol * |n|``. Other inputs are passed through unchanged.
    `fn` returns a Tensor or a tuple of Tensors. The inputs' arrays are never
    modified: the differences are taken on float64 copies.

    >>> import numpy as np, tinygrad_bp as tg
    >>> x = tg.tensor(np.array([0.5, -1.0]), requires_grad=True)
    >>> w = tg.tensor(np.array([[1.0], [2.0]]), requires_grad=True)
    >>> gradcheck(lambda x, w: (x * w).tanh(), [x, w])
    True
    """
    inputs = _as_inputs(inputs)
    _check_settings(eps, atol, rtol)
    positions = _differentiable_positions(inputs, "gradcheck")
    for i in positions:
        if inputs[i].dtype != np.float64:
            warnings.warn(
                f"gradcheck: input {i} has dtype {inputs[i].dtype}; finite differences "
                "are only reliable in float64",
                UserWarning,
                stacklevel=2,
            )
    outputs = _float_outputs(fn(*inputs))
    rng = np.random.default_rng(_COTANGENT_SEED)
    # Rounded to each output's dtype, so both sides use exactly the same v.
    cotangents = [
        _random_cotangent(rng, out.shape).astype(out.dtype).astype(np.float64)
        for out in outputs
    ]
    analytic = _vector_jacobian(
        outputs,
        [tg.Tensor(v) for v in cotangents],
        [inputs[i] for i in positions],
        create_graph=False,
    )
    for i, grad in zip(positions, analytic):
        if grad.shape != inputs[i].shape:
            return _fail(
                f"gradcheck: the analytic gradient of input {i} has shape {grad.shape}, "
                f"but the input has shape {inputs[i].shape}",
                raise_exception,
            )
        a = np.asarray(grad.data, dtype=np.float64)
        n = _numerical_gradient(fn, inputs, positions, i, cotangents, eps)
        # Written so that a NaN on either side counts as a mismatch.
        bad = ~(np.abs(a - n) <= atol + rtol * np.abs(n))
        if bad.any():
            index = tuple(int(k) for k in np.argwhere(bad)[0])
            analytic_k, numerical_k = float(a[index]), float(n[index])
            return _fail(
                f"gradcheck: gradient mismatch for input {i} at element index {index}: "
                f"analytic {analytic_k!r}, numerical {numerical_k!r}, difference "
                f"{analytic_k - numerical_k!r} (atol={atol}, rtol={rtol}; "
                f"{int(bad.sum())} of {bad.size} elements differ)",
                raise_exception,
            )
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    grad_outputs: Sequence[Any] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check second derivatives: `gradcheck` of the vector-Jacobian product of `fn`.

    Builds ``g(*inputs, *v) = tinygrad_bp.grad(fn(*inputs), inputs, grad_outputs=v,
    create_graph=True)`` and runs `gradcheck` on ``g``, as PyTorch does. ``v`` is
    `grad_outputs` (Tensors shaped like `fn`'s outputs) or, when omitted, random
    float64 Tensors with ``requires_grad=True``; its derivatives are checked too.

    >>> import numpy as np, tinygrad_bp as tg
    >>> x = tg.tensor(np.array([0.3, -0.7, 1.2]), requires_grad=True)
    >>> gradgradcheck(lambda x: (x * x.sin()).sum(), [x])
    True
    """
    inputs = _as_inputs(inputs)
    _check_settings(eps, atol, rtol)
    positions = _differentiable_positions(inputs, "gradgradcheck")
    with tg.no_grad():  # only the outputs' shapes are needed here
        outputs = _float_outputs(fn(*inputs))
    if grad_outputs is None:
        rng = np.random.default_rng(_GRAD_OUTPUTS_SEED)
        vs = [
            tg.Tensor(_random_cotangent(rng, out.shape), requires_grad=True)
            for out in outputs
        ]
    else:
        vs = _checked_grad_outputs(grad_outputs, outputs)
    count = len(inputs)

    def vector_jacobian(*args: Any) -> tuple[Any, ...]:
        xs, v = list(args[:count]), args[count:]
        with tg.enable_grad():
            for i in positions:
                # For its finite differences, gradcheck passes float64 copies of its
                # own making: let them lead a graph of their own.
                if not xs[i].requires_grad:
                    xs[i].requires_grad_()
            outs = _float_outputs(fn(*xs))
            return tuple(
                _vector_jacobian(outs, v, [xs[i] for i in positions], create_graph=True)
            )

    try:
        return gradcheck(
            vector_jacobian, [*inputs, *vs], eps, atol, rtol, raise_exception
        )
    except GradcheckError as error:
        message = str(error).replace("gradcheck:", "gradgradcheck:", 1)
        raise GradcheckError(
            f"{message}; inputs {count} and up are the grad_outputs v"
        ) from None


def _as_inputs(inputs: Any) -> tuple[Any, ...]:
    if isinstance(inputs, tg.Tensor):
        return (inputs,)
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(
            "inputs must be a Tensor or a sequence (list, tuple) of Tensors and other "
            f"arguments, got {type(inputs).__name__}"
        )
    return tuple(inputs)


def _check_settings(eps: float, atol: float, rtol: float) -> None:
    if not eps > 0:
        raise ValueError(f"eps must be positive, got eps={eps!r}")
    if not (atol >= 0 and rtol >= 0):
        raise ValueError(
            f"atol and rtol must be non-negative, got atol={atol!r}, rtol={rtol!r}"
        )


def _differentiable_positions(inputs: tuple[Any, ...], caller: str) -> list[int]:
    positions = [
        i for i, x in enumerate(inputs) if isinstance(x, tg.Tensor) and x.requires_grad
    ]
    if not positions:
        raise ValueError(
            f"{caller}: no input requires grad, so there is nothing to check; create "
            "the inputs with requires_grad=True"
        )
    return positions


def _float_outputs(result: Any) -> list[Any]:
    """`fn`'s result as a list of its floating-point Tensors (the differentiable ones)."""
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    for k, out in enumerate(results):
        if not isinstance(out, tg.Tensor):
            raise TypeError(
                "fn must return a Tensor or a tuple of Tensors, but output "
                f"{k} is a {type(out).__name__}"
            )
    return [out for out in results if out.dtype.kind == "f"]


def _random_cotangent(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Magnitudes kept away from 0, so no entry of the gradient goes unchecked, and
    # random rather than all ones, which would pass a backward wrong off the diagonal.
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def _checked_grad_outputs(grad_outputs: Any, outputs: list[Any]) -> list[Any]:
    vs = [grad_outputs] if isinstance(grad_outputs, tg.Tensor) else list(grad_outputs)
    if len(vs) != len(outputs):
        raise ValueError(
            f"gradgradcheck: got {len(vs)} grad_outputs for {len(outputs)} "
            "floating-point outputs of fn"
        )
    for k, (v, out) in enumerate(zip(vs, outputs)):
        if not isinstance(v, tg.Tensor):
            raise TypeError(
                f"gradgradcheck: grad_outputs[{k}] is a {type(v).__name__}, not a Tensor"
            )
        if v.shape != out.shape:
            raise ValueError(
                f"gradgradcheck: grad_outputs[{k}] has shape {v.shape}, but output {k} "
                f"has shape {out.shape}"
            )
    return vs


def _vector_jacobian(
    outputs: list[Any], vs: Sequence[Any], wrt: list[Any], create_graph: bool
) -> list[Any]:
    """sum_k vs[k] . d outputs[k] / d wrt[i] for each i; zeros where nothing depends."""
    # Outputs that do not require grad (constants) contribute nothing.
    live = [(out, v) for out, v in zip(outputs, vs) if out.requires_grad]
    # An input passed twice is one variable; ask for its gradient once.
    unique = list({id(x): x for x in wrt}.values())
    grads: Sequence[Any] = [None] * len(unique)
    if live:
        grads = tg.grad(
            [out for out, _ in live],
            unique,
            grad_outputs=[v for _, v in live],
            create_graph=create_graph,
            allow_unused=True,
        )
    by_input = {id(x): g for x, g in zip(unique, grads)}
    return [
        tg.zeros_like(x) if by_input[id(x)] is None else by_input[id(x)] for x in wrt
    ]


def _numerical_gradient(
    fn: Callable[..., Any],
    inputs: tuple[Any, ...],
    positions: list[int],
    i: int,
    cotangents: list[np.ndarray],
    eps: float,
) -> np.ndarray:
    """Central differences of sum(fn(*inputs) * v) with respect to inputs[i]."""
    # Fresh float64 Tensors stand in for every differentiable input, so the user's
    # arrays are never written to (not even if fn raises) and the differences are
    # taken at full precision. Keyed by identity: an input passed twice is one
    # variable, perturbed in both places.
    copies = {
        id(inputs[j]): np.array(inputs[j].data, dtype=np.float64) for j in positions
    }
    key = id(inputs[i])

    def outputs_at(x: np.ndarray) -> list[np.ndarray]:
        fresh = {k: tg.Tensor(x if k == key else a) for k, a in copies.items()}
        results = fn(*[fresh.get(id(arg), arg) for arg in inputs])
        return [np.asarray(out.data, np.float64) for out in _float_outputs(results)]

    base = copies[key]
    grad = np.zeros(base.shape)
    with tg.no_grad():
        for index in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[index] += eps
            minus[index] -= eps
            change = sum(
                float(np.sum((p - m) * v))
                for p, m, v in zip(outputs_at(plus), outputs_at(minus), cotangents)
            )
            # The step actually taken, which differs from 2*eps once |x| is large.
            grad[index] = change / (plus[index] - minus[index])
    return grad


def _fail(message: str, raise_exception: bool) -> bool:
    if raise_exception:
        raise GradcheckError(message)
    return False
