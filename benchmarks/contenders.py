"""The contenders: one trainer class per library and workload kind, all doing the same work.

A trainer is built from the shared float32 arrays of `workloads` (copied, never
shared) and offers ``step() -> float`` (forward, loss, backward, SGD at LR; returns the
loss of that forward) and ``params() -> list[np.ndarray]`` for the equal-work check.
Libraries are imported when a trainer is built, so a subprocess that measures one
contender's memory imports only that library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from benchmarks.machine import blas_threads, package_version
from benchmarks.numpy_manual import ManualChain, ManualMLP
from benchmarks.workloads import GPT, LR, MLP, Chain, Data, gpt_param_names


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
        self.cross_entropy = tg.nn.functional.cross_entropy

    def step(self) -> float:
        a = mlp_forward(self.X, self.ps, self.hidden)
        if self.mse:
            loss = (0.5 * (a - self.Y) ** 2).sum(axis=1).mean()
        else:
            # what a user writes, as the torch contender does: one fused node here too
            loss = self.cross_entropy(a, self.Y)
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


# --- the small GPT (W7): tinygrad_bp and PyTorch eager, the same expressions -------------
# Parameters by name (workloads.gpt_param_names); matrices in our (in, out) layout, which
# the torch trainer transposes into its Linear layout (out, in) and back in params().


class TinygradGPT:
    def __init__(self, workload: GPT, params: list[np.ndarray], data: Data) -> None:
        import tinygrad_bp as tg

        self.F = tg.nn.functional
        names = gpt_param_names(workload)
        self.p = {n: tg.Tensor(a, requires_grad=True) for n, a in zip(names, params)}
        self.X, self.Y = data.X, data.Y.reshape(-1)
        self.w = workload
        context = workload.context
        self.future = np.triu(np.ones((context, context), dtype=bool), k=1)

    def loss(self) -> Any:
        F, p, w = self.F, self.p, self.w
        B, T, E, H = len(self.X), w.context, w.width, w.heads
        x = p["tok_emb"][self.X] + p["pos_emb"]
        for i in range(w.layers):
            b = f"blocks.{i}."
            h = F.layer_norm(x, E, p[b + "ln1.weight"], p[b + "ln1.bias"])
            qkv = F.linear(h, p[b + "qkv.weight"], p[b + "qkv.bias"])
            q, k, v = qkv.reshape(B, T, 3, H, E // H).transpose(2, 0, 3, 1, 4)
            scores = (q @ k.swapaxes(-1, -2)) * (1 / math.sqrt(E // H))
            att = scores.masked_fill(self.future, -math.inf).softmax(axis=-1)
            y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, E)
            x = x + F.linear(y, p[b + "proj.weight"], p[b + "proj.bias"])
            h = F.layer_norm(x, E, p[b + "ln2.weight"], p[b + "ln2.bias"])
            h = F.gelu(F.linear(h, p[b + "fc.weight"], p[b + "fc.bias"]), "tanh")
            x = x + F.linear(h, p[b + "out.weight"], p[b + "out.bias"])
        h = F.layer_norm(x, E, p["ln.weight"], p["ln.bias"])
        logits = h @ p["tok_emb"].T  # the head tied to the token embedding
        return F.cross_entropy(logits.reshape(B * T, -1), self.Y)

    def step(self) -> float:
        loss = self.loss()
        loss.backward()
        for p in self.p.values():
            p.data -= LR * p.grad.data
            p.grad = None
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [p.data for p in self.p.values()]


class TorchGPT:
    def __init__(self, workload: GPT, params: list[np.ndarray], data: Data) -> None:
        self.torch = torch = _import_torch()
        self.F = torch.nn.functional
        names = gpt_param_names(workload)
        # nn.Linear's layout: (out, in), the transpose of ours
        self.linear = {n for n in names if n.endswith(".weight") and "ln" not in n}
        self.p = {
            n: torch.tensor(a.T if n in self.linear else a, requires_grad=True)
            for n, a in zip(names, params)
        }
        self.X, self.Y = torch.tensor(data.X), torch.tensor(data.Y.reshape(-1))
        self.w = workload
        context = workload.context
        self.future = torch.ones(context, context, dtype=torch.bool).triu(1)

    def loss(self) -> Any:
        F, p, w = self.F, self.p, self.w
        B, T, E, H = len(self.X), w.context, w.width, w.heads
        x = p["tok_emb"][self.X] + p["pos_emb"]
        for i in range(w.layers):
            b = f"blocks.{i}."
            h = F.layer_norm(x, (E,), p[b + "ln1.weight"], p[b + "ln1.bias"])
            qkv = F.linear(h, p[b + "qkv.weight"], p[b + "qkv.bias"])
            q, k, v = qkv.reshape(B, T, 3, H, E // H).permute(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(E // H))
            att = scores.masked_fill(self.future, -math.inf).softmax(dim=-1)
            y = (att @ v).permute(0, 2, 1, 3).reshape(B, T, E)
            x = x + F.linear(y, p[b + "proj.weight"], p[b + "proj.bias"])
            h = F.layer_norm(x, (E,), p[b + "ln2.weight"], p[b + "ln2.bias"])
            h = F.gelu(
                F.linear(h, p[b + "fc.weight"], p[b + "fc.bias"]), approximate="tanh"
            )
            x = x + F.linear(h, p[b + "out.weight"], p[b + "out.bias"])
        h = F.layer_norm(x, (E,), p["ln.weight"], p["ln.bias"])
        logits = h @ p["tok_emb"].T
        return F.cross_entropy(logits.reshape(B * T, -1), self.Y)

    def step(self) -> float:
        loss = self.loss()
        loss.backward()
        with self.torch.no_grad():
            for p in self.p.values():
                p -= LR * p.grad
                p.grad = None
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [
            p.detach().numpy().T if n in self.linear else p.detach().numpy()
            for n, p in self.p.items()
        ]


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
    gpt: Callable[[GPT, list[np.ndarray], Data], Trainer] | None = None

    def version(self) -> str | None:
        """The library's version, or None when it cannot be imported."""
        return package_version(self.module)

    def runs(self, workload: MLP | Chain | GPT) -> bool:
        """Whether this contender has a trainer for `workload` (W7 is eager vs eager)."""
        return self.gpt is not None or not isinstance(workload, GPT)

    def build(
        self, workload: MLP | Chain | GPT, params: list[np.ndarray], data: Data | None
    ) -> Trainer:
        """A fresh trainer for `workload`, starting from copies of `params`."""
        if isinstance(workload, Chain):
            return self.chain(workload, params)
        if isinstance(workload, GPT):
            if self.gpt is None:
                raise ValueError(f"{self.name} has no trainer for {workload.name}")
            return self.gpt(workload, params, data)
        return self.mlp(workload, params, data)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("numpy_manual", "numpy", ManualMLP, ManualChain, deep=False),
        Contender(
            "tinygrad_bp",
            "tinygrad_bp",
            TinygradMLP,
            TinygradChain,
            deep=True,
            gpt=TinygradGPT,
        ),
        Contender("torch", "torch", TorchMLP, TorchChain, deep=True, gpt=TorchGPT),
        Contender("mygrad", "mygrad", MygradMLP, MygradChain, deep=False),
        Contender("autograd", "autograd", AutogradMLP, AutogradChain, deep=False),
    )
}
BASELINE = "numpy_manual"


# --- compiled steps: tinygrad_bp.compile, jax.jit, torch.compile ------------------------
# Each traces (or jits) the whole step once, when the trainer is built, on the starting
# weights, then puts those weights back: the timed steps are the replayed program, the
# equal-work check still sees the same trajectory, and `trace_s` records the capture.


class TinygradCompiledMLP(TinygradMLP):
    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        import time

        import tinygrad_bp as tg

        super().__init__(workload, params, data)
        self._compiled = tg.compile(self._step)
        start = time.perf_counter()
        self._compiled()
        self.trace_s = time.perf_counter() - start
        start = time.perf_counter()
        self._compiled.source  # noqa: B018 (code generation, else at the first replay)
        self.codegen_s = time.perf_counter() - start
        for p, start_value in zip(self.ps, params):
            p.data[...] = start_value
            p.grad = None

    def _step(self) -> Any:
        # TinygradMLP.step without the .item() (a compiled step returns Tensors)
        a = mlp_forward(self.X, self.ps, self.hidden)
        if self.mse:
            loss = (0.5 * (a - self.Y) ** 2).sum(axis=1).mean()
        else:
            loss = -(a.log_softmax(axis=1)[self.rows, self.Y]).mean()
        loss.backward()
        for p in self.ps:
            p.data -= LR * p.grad.data
            p.grad = None
        return loss

    def step(self) -> float:
        return self._compiled().item()


class TinygradCompiledChain(TinygradChain):
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        import time

        import tinygrad_bp as tg

        super().__init__(workload, params)
        self._compiled = tg.compile(self._step)
        start = time.perf_counter()
        self._compiled()
        self.trace_s = time.perf_counter() - start
        self.x.data[...] = params[0]
        self.x.grad = None

    def _step(self) -> Any:
        loss = self.forward()
        loss.backward()
        self.x.data -= LR * self.x.grad.data
        self.x.grad = None
        return loss

    def step(self) -> float:
        return self._compiled().item()


def _jax() -> Any:
    import os

    # The same thread count as NumPy's BLAS (as torch gets above), so XLA's own
    # thread pool does not turn a library comparison into a thread-count one.
    os.environ.setdefault(
        "XLA_FLAGS",
        "--xla_cpu_multi_thread_eigen=false "
        f"intra_op_parallelism_threads={blas_threads()}",
    )
    import jax

    jax.config.update("jax_platforms", "cpu")
    return jax


class JaxJitMLP:
    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        import time

        jax = _jax()
        jnp = jax.numpy
        hidden = jnp.tanh if workload.activation == "tanh" else jax.nn.relu
        X, Y = jnp.asarray(data.X), jnp.asarray(data.Y)
        mse = workload.loss == "mse"

        def loss_fn(ps: list) -> Any:
            a = mlp_forward(X, ps, hidden)
            if mse:
                return (0.5 * (a - Y) ** 2).sum(axis=1).mean()
            log_p = jax.nn.log_softmax(a, axis=1)
            return -jnp.take_along_axis(log_p, Y[:, None], axis=1).mean()

        def step(ps: list) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(ps)
            return loss, [p - LR * g for p, g in zip(ps, grads)]

        self._step = jax.jit(step, donate_argnums=0)
        self.ps = [jnp.asarray(p) for p in params]
        start = time.perf_counter()
        self._step.lower(self.ps).compile()
        self.trace_s = time.perf_counter() - start

    def step(self) -> float:
        loss, self.ps = self._step(self.ps)
        return float(loss)

    def params(self) -> list[np.ndarray]:
        return [np.asarray(p) for p in self.ps]


class JaxJitChain:
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        jax = _jax()
        ops = workload.sequence()

        def step(x: Any) -> Any:
            loss, g = jax.value_and_grad(
                lambda x: chain_forward(x, ops, jax.numpy.tanh).sum()
            )(x)
            return loss, x - LR * g

        self._step = jax.jit(step)
        self.x = jax.numpy.asarray(params[0])

    def step(self) -> float:
        loss, self.x = self._step(self.x)
        return float(loss)

    def params(self) -> list[np.ndarray]:
        return [np.asarray(self.x)]


class TorchCompiledMLP(TorchMLP):
    """The forward and loss under torch.compile (AOTAutograd compiles the backward)."""

    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        super().__init__(workload, params, data)
        torch = self.torch
        hidden, X, Y, mse = self.hidden, self.X, self.Y, self.mse

        def loss_fn(*ps: Any) -> Any:
            a = mlp_forward(X, ps, hidden)
            if mse:
                return (0.5 * (a - Y) ** 2).sum(dim=1).mean()
            return torch.nn.functional.cross_entropy(a, Y)

        self._loss = torch.compile(loss_fn)

    def step(self) -> float:
        loss = self._loss(*self.ps)
        loss.backward()
        with self.torch.no_grad():
            for p in self.ps:
                p -= LR * p.grad
                p.grad = None
        return loss.item()


class TorchCompiledChain(TorchChain):
    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        super().__init__(workload, params)
        torch, ops = self.torch, self.ops
        self._forward = torch.compile(lambda x: chain_forward(x, ops, torch.tanh).sum())

    def forward(self) -> Any:
        return self._forward(self.x)


def _compiled_contenders() -> list[Contender]:
    import os

    found = [
        Contender(
            "tinygrad_bp_compiled",
            "tinygrad_bp",
            TinygradCompiledMLP,
            TinygradCompiledChain,
            deep=False,
        ),
        Contender("jax_jit", "jax", JaxJitMLP, JaxJitChain, deep=False),
    ]
    # torch.compile takes tens of seconds per trainer (and a C compiler): opt in.
    if os.environ.get("BENCH_TORCH_COMPILE") == "1":
        found.append(
            Contender(
                "torch_compile", "torch", TorchCompiledMLP, TorchCompiledChain, False
            )
        )
    return found


CONTENDERS.update({c.name: c for c in _compiled_contenders()})
