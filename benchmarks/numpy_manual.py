"""The baseline: backprop written by hand from the seed's per-layer formulas, float32 NumPy.

With ``d[i] = dE/dz[i]`` (see /work/shared/SEED.md)::

    d[L-1] = dE/da[L] * f'(z[L-1])             # the output layer here is linear: f' = 1
    d[i]   = (d[i+1] @ w[i+1].T) * f'(z[i])
    dw[i]  = a[i].T @ d[i]
    db[i]  = d[i].sum(axis=0)

followed by plain SGD in place. No graph, no bookkeeping: this is the floor that an
autograd's overhead is measured against.
"""

from __future__ import annotations

import numpy as np

from benchmarks.workloads import LR, MLP, Chain, Data


class ManualMLP:
    """One SGD step of an MLP per `step()`, gradients from the hand-derived formulas.

    >>> from benchmarks.workloads import WORKLOADS, init_params, make_data
    >>> w = WORKLOADS["W1"]
    >>> net = ManualMLP(w, init_params(w), make_data(w))
    >>> first, second = net.step(), net.step()
    >>> second < first
    True
    """

    def __init__(self, workload: MLP, params: list[np.ndarray], data: Data) -> None:
        self.w = [p.copy() for p in params[0::2]]
        self.b = [p.copy() for p in params[1::2]]
        self.X, self.Y = data.X, data.Y
        self.activation = workload.activation
        self.loss = workload.loss
        self.rows = np.arange(len(data.X))

    def params(self) -> list[np.ndarray]:
        """The current parameters in ``[w0, b0, w1, b1, ...]`` order."""
        return [p for pair in zip(self.w, self.b) for p in pair]

    def step(self) -> float:
        """Forward, loss, backward by the delta recursion, SGD; returns the loss."""
        a = [self.X]
        L = len(self.w)
        for l in range(L):
            z = a[l] @ self.w[l] + self.b[l]
            if l < L - 1:
                z = np.tanh(z) if self.activation == "tanh" else np.maximum(z, 0)
            a.append(z)
        loss, d = self._loss_and_delta(a[L])
        for i in reversed(range(L)):
            dw = a[i].T @ d
            db = d.sum(axis=0)
            if i > 0:
                # f' expressed through the activation a[i] = f(z[i-1]), which is kept.
                df = 1 - a[i] * a[i] if self.activation == "tanh" else a[i] > 0
                d = (d @ self.w[i].T) * df
            self.w[i] -= LR * dw
            self.b[i] -= LR * db
        return float(loss)

    def _loss_and_delta(self, out: np.ndarray) -> tuple[np.floating, np.ndarray]:
        """The loss and d[L-1] = dE/dz[L-1] for the linear output layer."""
        n = len(out)
        if self.loss == "mse":
            diff = out - self.Y
            return np.mean(np.sum(0.5 * diff**2, axis=1)), diff / n
        shifted = out - out.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        d = np.exp(log_p)
        d[self.rows, self.Y] -= 1
        return -log_p[self.rows, self.Y].mean(), d / n


class ManualChain:
    """One forward/backward/SGD pass over an elementwise chain per `step()`.

    The backward walks the ops in reverse: ``mul c`` multiplies the gradient by c,
    ``add c`` passes it on, ``tanh`` multiplies it by ``1 - y*y`` of its saved output.

    >>> from benchmarks.workloads import WORKLOADS, init_params
    >>> w = WORKLOADS["W5"]
    >>> chain = ManualChain(w, init_params(w))
    >>> round(chain.step(), 4) > round(chain.step(), 4)
    True
    """

    def __init__(self, workload: Chain, params: list[np.ndarray]) -> None:
        self.x = params[0].copy()
        self.ops = workload.sequence()

    def params(self) -> list[np.ndarray]:
        """The leaf, as a one-element list."""
        return [self.x]

    def step(self) -> float:
        """Forward through the chain, sum, backward by hand, SGD; returns the sum."""
        y = self.x
        saved = []
        for kind, c in self.ops:
            if kind == "mul":
                y = y * c
            elif kind == "add":
                y = y + c
            else:
                y = np.tanh(y)
                saved.append(y)
        grad = np.ones_like(y)
        for kind, c in reversed(self.ops):
            if kind == "mul":
                grad = grad * c
            elif kind == "tanh":
                t = saved.pop()
                grad = grad * (1 - t * t)
        self.x -= LR * grad
        return float(y.sum())
