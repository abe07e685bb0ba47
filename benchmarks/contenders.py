"""The contenders: one trainer class per library and workload kind, all doing the same work.

A trainer is built from the shared float32 arrays of `workloads` (copied, never
shared) and offers ``step() -> float`` (forward, loss, backward, SGD at LR; returns the
loss of that forward) and ``params() -> list[np.ndarray]`` for the equal-work check.
Libraries are imported when a trainer is built, so a subprocess that measures one
contender's memory imports only that library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from benchmarks.machine import blas_threads, package_version
from benchmarks.numpy_manual import ManualChain, ManualMLP
from benchmarks.workloads import LR, MLP, Chain, Data


class Trainer(Protocol):
    """What the harness needs from a contender's training loop."""

    def step(self) -> float: ...

    def params(self) -> list[np.ndarray]: ...


def mlp_forward(X: Any, params: Sequence[Any], hidden: Callable[[Any], Any]) -> Any:
    """Logits of ``z[l] = a[l] @ w[l] + b[l]``, `hidden` after every layer but the last.

    >>> out = mlp_forward(np.ones((1, 2)), [np.ones((2, 3)), np.zeros(3)], np.tanh)
    >>> out.tolist()
    [[2.0, 2.0, 2.0]]
    """
    a = X
    n_layers = len(params) // 2
    for l in range(n_layers):
        a = a @ params[2 * l] + params[2 * l + 1]
        if l < n_layers - 1:
            a = hidden(a)
    return a


def chain_forward(y: Any, ops: Sequence[tuple[str, Any]], tanh: Callable) -> Any:
    """Apply a chain's ops to `y`: ``mul c`` -> y * c, ``add c`` -> y + c, ``tanh``.

    >>> float(chain_forward(np.float32(1.0), [("mul", 2.0), ("add", 1.0)], np.tanh))
    3.0
    """
    for kind, c in ops:
        if kind == "mul":
            y = y * c
        elif kind == "add":
            y = y + c
        else:
            y = tanh(y)
    return y


# --- tinygrad_bp ---------------------------------------------------------------------


class TinygradMLP:
    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        import tinygrad_bp as tg

        self.ps = [tg.Tensor(p, requires_grad=True) for p in params]
        self.X = tg.Tensor(data.X)
        self.Y = tg.Tensor(data.Y) if workload.loss == "mse" else data.Y
        self.hidden = (
            tg.Tensor.tanh if workload.activation == "tanh" else tg.Tensor.relu
        )
        self.mse = workload.loss == "mse"
        self.rows = np.arange(len(data.X))

    def step(self) -> float:
        a = mlp_forward(self.X, self.ps, self.hidden)
        if self.mse:
            loss = (0.5 * (a - self.Y) ** 2).sum(axis=1).mean()
        else:
            loss = -(a.log_softmax(axis=1)[self.rows, self.Y]).mean()
        loss.backward()
        for p in self.ps:
            p.data -= LR * p.grad.data
            p.grad = None
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [p.data for p in self.ps]


class TinygradChain:
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        import tinygrad_bp as tg

        self.x = tg.Tensor(params[0], requires_grad=True)
        self.ops = workload.sequence()

    # forward/backward are split so the deep-graph memory probe can look in between.
    def forward(self) -> Any:
        return chain_forward(self.x, self.ops, lambda t: t.tanh()).sum()

    def backward(self, loss: Any) -> float:
        loss.backward()
        self.x.data -= LR * self.x.grad.data
        self.x.grad = None
        return loss.item()

    def step(self) -> float:
        return self.backward(self.forward())

    def params(self) -> list[np.ndarray]:
        return [self.x.data]


# --- PyTorch eager (CPU) -------------------------------------------------------------


def _import_torch() -> Any:
    import torch

    # Same BLAS thread count as NumPy, so matmul speed compares libraries, not threads.
    torch.set_num_threads(blas_threads())
    return torch


class TorchMLP:
    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        self.torch = torch = _import_torch()
        self.ps = [torch.tensor(p, requires_grad=True) for p in params]
        self.X = torch.tensor(data.X)
        self.Y = torch.tensor(data.Y)
        self.hidden = torch.tanh if workload.activation == "tanh" else torch.relu
        self.mse = workload.loss == "mse"

    def step(self) -> float:
        a = mlp_forward(self.X, self.ps, self.hidden)
        if self.mse:
            loss = (0.5 * (a - self.Y) ** 2).sum(dim=1).mean()
        else:
            # The fused idiom a PyTorch user writes; it is log_softmax + mean NLL.
            loss = self.torch.nn.functional.cross_entropy(a, self.Y)
        loss.backward()
        with self.torch.no_grad():
            for p in self.ps:
                p -= LR * p.grad
                p.grad = None
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [p.detach().numpy() for p in self.ps]


class TorchChain:
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        self.torch = torch = _import_torch()
        self.x = torch.tensor(params[0], requires_grad=True)
        self.ops = workload.sequence()

    def forward(self) -> Any:
        return chain_forward(self.x, self.ops, self.torch.tanh).sum()

    def backward(self, loss: Any) -> float:
        loss.backward()
        with self.torch.no_grad():
            self.x -= LR * self.x.grad
            self.x.grad = None
        return loss.item()

    def step(self) -> float:
        return self.backward(self.forward())

    def params(self) -> list[np.ndarray]:
        return [self.x.detach().numpy()]


# --- MyGrad ----------------------------------------------------------------------------

# MyGrad turns Python scalars into float64 arrays, which would upcast the float32 work.
_F32_HALF, _F32_TWO = np.float32(0.5), np.float32(2)


class MygradMLP:
    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        import mygrad as mg
        from mygrad.nnet.activations import logsoftmax, relu

        self.mg, self.logsoftmax = mg, logsoftmax
        self.ps = [mg.tensor(p.copy()) for p in params]
        self.X, self.Y = data.X, data.Y
        self.hidden = mg.tanh if workload.activation == "tanh" else relu
        self.mse = workload.loss == "mse"
        self.rows = np.arange(len(data.X))

    def step(self) -> float:
        mg = self.mg
        a = mlp_forward(self.X, self.ps, self.hidden)
        if self.mse:
            loss = mg.mean(mg.sum(_F32_HALF * (a - self.Y) ** _F32_TWO, axis=1))
        else:
            loss = -mg.mean(self.logsoftmax(a, axis=1)[self.rows, self.Y])
        loss.backward()
        for p in self.ps:
            p.data -= LR * p.grad
            p.null_grad()
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [p.data for p in self.ps]


class MygradChain:
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        import mygrad as mg

        self.mg = mg
        self.x = mg.tensor(params[0].copy())
        self.ops = [(k, np.float32(c)) for k, c in workload.sequence()]

    def step(self) -> float:
        loss = self.mg.sum(chain_forward(self.x, self.ops, self.mg.tanh))
        loss.backward()
        self.x.data -= LR * self.x.grad
        self.x.null_grad()
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [self.x.data]


# --- HIPS autograd ---------------------------------------------------------------------


class AutogradMLP:
    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        import autograd.numpy as anp
        from autograd import value_and_grad

        self.ps = [p.copy() for p in params]
        hidden = (
            anp.tanh if workload.activation == "tanh" else lambda z: anp.maximum(z, 0)
        )
        rows = np.arange(len(data.X))

        def loss(ps: list) -> Any:
            a = mlp_forward(data.X, ps, hidden)
            if workload.loss == "mse":
                return anp.mean(anp.sum(0.5 * (a - data.Y) ** 2, axis=1))
            shifted = a - anp.max(a, axis=1, keepdims=True)
            log_p = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
            return -anp.mean(log_p[rows, data.Y])

        self.value_and_grad = value_and_grad(loss)

    def step(self) -> float:
        loss, grads = self.value_and_grad(self.ps)
        for p, g in zip(self.ps, grads):
            p -= LR * g
        return float(loss)

    def params(self) -> list[np.ndarray]:
        return self.ps


class AutogradChain:
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        import autograd.numpy as anp
        from autograd import value_and_grad

        self.x = params[0].copy()
        ops = workload.sequence()
        self.value_and_grad = value_and_grad(
            lambda x: anp.sum(chain_forward(x, ops, anp.tanh))
        )

    def step(self) -> float:
        loss, grad = self.value_and_grad(self.x)
        self.x -= LR * grad
        return float(loss)

    def params(self) -> list[np.ndarray]:
        return [self.x]


# --- the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """A library under test: how to build its trainers, and whether it runs W6.

    A `deep` contender's chain trainer also offers ``forward() -> loss`` and
    ``backward(loss) -> float``, so the memory probe can measure the live graph.
    """

    name: str
    module: str
    mlp: Callable[[MLP, list[np.ndarray], Data], Trainer]
    chain: Callable[[Chain, list[np.ndarray]], Trainer]
    deep: bool

    def version(self) -> str | None:
        """The library's version, or None when it cannot be imported."""
        return package_version(self.module)

    def build(
        self, workload: MLP | Chain, params: list[np.ndarray], data: Data | None
    ) -> Trainer:
        """A fresh trainer for `workload`, starting from copies of `params`."""
        if isinstance(workload, Chain):
            return self.chain(workload, params)
        return self.mlp(workload, params, data)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("numpy_manual", "numpy", ManualMLP, ManualChain, deep=False),
        Contender("tinygrad_bp", "tinygrad_bp", TinygradMLP, TinygradChain, deep=True),
        Contender("torch", "torch", TorchMLP, TorchChain, deep=True),
        Contender("mygrad", "mygrad", MygradMLP, MygradChain, deep=False),
        Contender("autograd", "autograd", AutogradMLP, AutogradChain, deep=False),
    )
}
BASELINE = "numpy_manual"
