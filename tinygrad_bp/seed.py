"""The seed document's backpropagation, derived and coded by hand, in NumPy.

This is the recipe that the rest of the library replaces: for a fully connected
network in the row-batch layout

    z[l] = a[l] @ w[l] + b[l],   a[l+1] = f[l](z[l]),
    E = mean(sum(0.5 * (a[L] - Y)**2, axis=1))

the seed derives, with ``d[i] = dE/dz[i]``,

    d[L-1] = (a[L] - Y) / N * f'[L-1](z[L-1])
    d[i]   = (d[i+1] @ w[i+1].T) * f'[i](z[i])     for i = L-2 ... 0
    dw[i]  = a[i].T @ d[i]
    db[i]  = d[i].sum(axis=0)

``forward_by_hand`` and ``backward_by_hand`` code exactly those lines for any depth.
The toy network of the seed (one hidden layer, L = 2) comes with its data
(``toy_network``), the same forward pass recorded on Tensors (``toy_forward``, whose
``backward()`` is the generated pass) and both ways of getting its gradients
(``toy_gradients_by_hand``). The tutorial, ``tinygrad-bp seed`` and the tests use
this module, so there is one copy of the hand derivation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import tinygrad_bp as tg

__all__ = [
    "ACTIVATIONS",
    "RELU",
    "SIGMOID",
    "TANH",
    "TOY_PARAMETERS",
    "backward_by_hand",
    "forward_by_hand",
    "seed_loss",
    "sigmoid",
    "toy_compiled_step",
    "toy_forward",
    "toy_gradients_by_hand",
    "toy_network",
    "toy_tensors",
]

# An activation f and its derivative f', both as functions of z.
Activation = tuple[
    Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]
]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), the logistic function, on NumPy arrays.

    >>> import numpy as np
    >>> from tinygrad_bp.seed import sigmoid
    >>> sigmoid(np.array([0.0])).tolist()
    [0.5]
    """
    return 1 / (1 + np.exp(-z))


# Each activation comes with its derivative, written out by hand: (f, f').
TANH: Activation = (np.tanh, lambda z: 1 - np.tanh(z) ** 2)
SIGMOID: Activation = (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z)))
RELU: Activation = (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype))
ACTIVATIONS: dict[str, Activation] = {"tanh": TANH, "sigmoid": SIGMOID, "relu": RELU}


# The bodies of the next two functions are shown in docs/tutorial.md, and a test
# keeps the page and this file the same.
def forward_by_hand(
    a0: np.ndarray,
    W: Sequence[np.ndarray],
    B: Sequence[np.ndarray],
    F: Sequence[Activation],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return the lists a[0..L] and z[0..L-1]: the backward pass needs them all.

    z[l] = a[l] @ w[l] + b[l], a[l+1] = f[l](z[l]). ``W`` and ``B`` hold w[l]
    (in, out) and b[l] (out,); ``F`` holds one pair (f, f') per layer, such as
    ``TANH`` or ``SIGMOID``.

    >>> import numpy as np
    >>> from tinygrad_bp.seed import TANH, forward_by_hand
    >>> a, z = forward_by_hand(np.ones((2, 3)), [np.zeros((3, 4))], [np.ones(4)], [TANH])
    >>> [x.shape for x in a], z[0][0].tolist()
    ([(2, 3), (2, 4)], [1.0, 1.0, 1.0, 1.0])
    """
    a, z = [a0], []
    for w, b, (f, _) in zip(W, B, F):
        z.append(a[-1] @ w + b)
        a.append(f(z[-1]))
    return a, z


def backward_by_hand(
    a: Sequence[np.ndarray],
    z: Sequence[np.ndarray],
    W: Sequence[np.ndarray],
    F: Sequence[Activation],
    Y: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The seed's recipe: the deltas d[i], then dw[i] and db[i] from them.

    For the loss E = mean(sum(0.5 * (a[L] - Y)**2, axis=1)), with ``a`` and ``z``
    from ``forward_by_hand``; returns the lists d, dw and db, one entry per layer.

    >>> import numpy as np
    >>> from tinygrad_bp.seed import SIGMOID, backward_by_hand, forward_by_hand
    >>> W, B, Y = [np.ones((3, 1))], [np.zeros(1)], np.ones((2, 1))
    >>> a, z = forward_by_hand(np.zeros((2, 3)), W, B, [SIGMOID])
    >>> d, dw, db = backward_by_hand(a, z, W, [SIGMOID], Y)
    >>> db[0].tolist()  # two rows of (0.5 - 1) / 2 * 0.25
    [-0.125]
    """
    L, N = len(W), len(Y)
    d = [None] * L
    d[L - 1] = (a[L] - Y) / N * F[L - 1][1](z[L - 1])
    for i in range(L - 2, -1, -1):
        d[i] = (d[i + 1] @ W[i + 1].T) * F[i][1](z[i])
    dw = [a[i].T @ d[i] for i in range(L)]
    db = [d[i].sum(axis=0) for i in range(L)]
    return d, dw, db


def seed_loss(prediction: np.ndarray, Y: np.ndarray) -> float:
    """The seed's loss E = mean(sum(0.5 * (a[L] - Y)**2, axis=1)), in NumPy.

    >>> import numpy as np
    >>> from tinygrad_bp.seed import seed_loss
    >>> seed_loss(np.array([[1.0, 2.0], [0.0, 0.0]]), np.zeros((2, 2)))
    1.25
    """
    return float(np.mean(np.sum(0.5 * (prediction - Y) ** 2, axis=1), axis=0))


# ------------------------------------------------------------- the toy network
TOY_PARAMETERS = ("w[0]", "b[0]", "w[1]", "b[1]")


def toy_network(activation: str = "sigmoid", seed: int = 0) -> dict[str, np.ndarray]:
    """Input, target and parameters of the seed's toy network, float64 arrays by name.

    ``a[0]`` is 4 samples of 3 features, the hidden layer has 4 units, the output 2;
    the targets ``Y`` lie in the range of ``activation`` ("sigmoid" or "tanh"). Drawn
    from the library's one generator after ``tg.manual_seed(seed)``.

    >>> from tinygrad_bp.seed import toy_network
    >>> {name: a.shape for name, a in toy_network("tanh").items()}
    {'a[0]': (4, 3), 'Y': (4, 2), 'w[0]': (3, 4), 'b[0]': (4,), 'w[1]': (4, 2), 'b[1]': (2,)}
    """
    _check_activation(activation)
    tg.manual_seed(seed)
    rng = tg.get_rng()
    low, high = (0.0, 1.0) if activation == "sigmoid" else (-0.9, 0.9)
    return {
        "a[0]": rng.standard_normal((4, 3)),
        "Y": rng.uniform(low, high, size=(4, 2)),
        "w[0]": rng.standard_normal((3, 4)),
        "b[0]": rng.standard_normal(4),
        "w[1]": rng.standard_normal((4, 2)),
        "b[1]": rng.standard_normal(2),
    }


def toy_tensors(arrays: dict[str, np.ndarray]) -> dict[str, tg.Tensor]:
    """The arrays of ``toy_network`` as Tensors; the four parameters require grad.

    >>> from tinygrad_bp.seed import toy_network, toy_tensors
    >>> [n for n, t in toy_tensors(toy_network()).items() if t.requires_grad]
    ['w[0]', 'b[0]', 'w[1]', 'b[1]']
    """
    return {
        name: tg.Tensor(array, requires_grad=name in TOY_PARAMETERS)
        for name, array in arrays.items()
    }


def toy_forward(tensors: dict[str, tg.Tensor], activation: str) -> dict[str, tg.Tensor]:
    """The toy network's forward pass, recorded: z[0], a[1], z[1], a[2] and the loss E.

    The same formulas as ``forward_by_hand`` on Tensors, so ``E.backward()`` is the
    generated backward pass.

    >>> from tinygrad_bp.seed import toy_forward, toy_network, toy_tensors
    >>> tensors = toy_tensors(toy_network("tanh"))
    >>> recorded = toy_forward(tensors, "tanh")
    >>> recorded["E"].backward()
    >>> list(recorded), tensors["w[0]"].grad.shape
    (['z[0]', 'a[1]', 'z[1]', 'a[2]', 'E'], (3, 4))
    """
    _check_activation(activation)
    f = tg.Tensor.sigmoid if activation == "sigmoid" else tg.Tensor.tanh
    z0 = tensors["a[0]"] @ tensors["w[0]"] + tensors["b[0]"]
    a1 = f(z0)
    z1 = a1 @ tensors["w[1]"] + tensors["b[1]"]
    a2 = f(z1)
    E = (0.5 * (a2 - tensors["Y"]) ** 2).sum(axis=1).mean(axis=0)
    return {"z[0]": z0, "a[1]": a1, "z[1]": z1, "a[2]": a2, "E": E}


def toy_gradients_by_hand(
    arrays: dict[str, np.ndarray], activation: str
) -> tuple[float, dict[str, np.ndarray]]:
    """The toy network's loss E and its gradients by the seed's formulas (L = 2).

    d[1] = dE/da[2] * f'(z[1]);  d[0] = (d[1] @ w[1].T) * f'(z[0]);
    dw[i] = a[i].T @ d[i];  db[i] = d[i].sum(axis=0), with dE/da[2] = (a[2] - Y) / N.

    ``arrays`` holds "a[0]", "Y", "w[0]", "b[0]", "w[1]", "b[1]"; ``activation`` is
    "sigmoid" or "tanh" (both layers). Returns E and the gradients by parameter name.

    >>> import numpy as np
    >>> from tinygrad_bp.seed import toy_gradients_by_hand
    >>> rng = np.random.default_rng(0)
    >>> arrays = {"a[0]": rng.normal(size=(2, 3)), "Y": np.zeros((2, 1)),
    ...           "w[0]": rng.normal(size=(3, 4)), "b[0]": np.zeros(4),
    ...           "w[1]": rng.normal(size=(4, 1)), "b[1]": np.zeros(1)}
    >>> E, grads = toy_gradients_by_hand(arrays, "tanh")
    >>> {name: g.shape for name, g in grads.items()}
    {'w[0]': (3, 4), 'b[0]': (4,), 'w[1]': (4, 1), 'b[1]': (1,)}
    """
    _check_activation(activation)
    F = [ACTIVATIONS[activation]] * 2
    W, B = [arrays["w[0]"], arrays["w[1]"]], [arrays["b[0]"], arrays["b[1]"]]
    a, z = forward_by_hand(arrays["a[0]"], W, B, F)
    _, dw, db = backward_by_hand(a, z, W, F, arrays["Y"])
    grads = {"w[0]": dw[0], "b[0]": db[0], "w[1]": dw[1], "b[1]": db[1]}
    return seed_loss(a[2], arrays["Y"]), grads


def toy_compiled_step(
    arrays: dict[str, np.ndarray], activation: str, lr: float = 0.5
) -> tuple[Callable, dict[str, tg.Tensor]]:
    """The toy network's training step (E, backward, SGD) under ``tinygrad_bp.compile``.

    Returns the compiled step, called as ``step(a0, Y)``, and the Tensors it trains;
    after a call, ``step.source`` is the flat NumPy program that replaces the
    hand-derived formulas above (``tinygrad-bp seed --source`` prints it).

    >>> from tinygrad_bp.seed import toy_compiled_step, toy_network
    >>> arrays = toy_network("tanh")
    >>> step, tensors = toy_compiled_step(arrays, "tanh")
    >>> E = step(arrays["a[0]"], arrays["Y"])
    >>> "dw0 = " in step.source and "np.subtract(w0," in step.source
    True
    """
    tensors = toy_tensors(arrays)
    opt = tg.optim.SGD([tensors[name] for name in TOY_PARAMETERS], lr=lr)

    def train_step(a0: np.ndarray, Y: np.ndarray) -> tg.Tensor:
        opt.zero_grad()
        E = toy_forward(
            {**tensors, "a[0]": tg.Tensor(a0), "Y": tg.Tensor(Y)}, activation
        )
        E["E"].backward()
        opt.step()
        return E["E"]

    return tg.compile(train_step), tensors


def _check_activation(activation: str) -> None:
    if activation not in ("sigmoid", "tanh"):
        raise ValueError(
            f"the seed's toy network uses 'sigmoid' or 'tanh', got {activation!r}"
        )
