"""Recurrent layers: Elman RNN, LSTM and GRU, as cells (one time step) and as
multi-layer modules over whole sequences.

Equations, gate order and return values are PyTorch's; the weights are laid out as
`Linear`'s, input-to-gates `(input_size, gates*hidden)` and hidden-to-gates
`(hidden, gates*hidden)` (PyTorch's transposed), so a step computes
`x @ weight_ih + bias_ih + h @ weight_hh + bias_hh`. Everything is composed from
Tensor operations, so the backward pass (through time) comes from the engine.

A multi-layer module loops over time and keeps the steps as a list of Tensors, each
projected on its own. Projecting the whole sequence in one matrix product and slicing
it per step is slower here: each slice's backward scatters into a zero array the size
of the whole sequence, which makes the backward pass quadratic in its length.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

import tinygrad_bp as tg

from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell"]

Tensor = tg.Tensor
# The state carried between steps: (h,) for RNN and GRU, (h, c) for LSTM.
State = tuple[Tensor, ...]
Step = Callable[[Tensor, State, Tensor, "Tensor | None"], State]


# ------------------------------------------------------------------- one time step
# Each step takes gi = x @ weight_ih + bias_ih (already computed) and the state.
def _hidden_gates(h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None) -> Tensor:
    gh = h @ weight_hh
    return gh if bias_hh is None else gh + bias_hh


def _gate(gates: Tensor, k: int, hidden: int) -> Tensor:
    """The k-th block of `hidden` columns."""
    return gates[..., k * hidden : (k + 1) * hidden]


def _tanh_step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Any) -> State:
    """h' = tanh(gi + h W_hh + b_hh)"""
    return ((gi + _hidden_gates(state[0], weight_hh, bias_hh)).tanh(),)


def _relu_step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Any) -> State:
    """h' = relu(gi + h W_hh + b_hh)"""
    return ((gi + _hidden_gates(state[0], weight_hh, bias_hh)).relu(),)


def _lstm_step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Any) -> State:
    """i, f, g, o = σ, σ, tanh, σ of the gate blocks; c' = f c + i g; h' = o tanh(c')"""
    h, c = state
    hidden = h.shape[-1]
    gates = gi + _hidden_gates(h, weight_hh, bias_hh)
    i = _gate(gates, 0, hidden).sigmoid()
    f = _gate(gates, 1, hidden).sigmoid()
    g = _gate(gates, 2, hidden).tanh()
    o = _gate(gates, 3, hidden).sigmoid()
    c = f * c + i * g
    return o * c.tanh(), c


def _gru_step(gi: Tensor, state: State, weight_hh: Tensor, bias_hh: Any) -> State:
    """r, z = σ(gi + gh) blocks; n = tanh(gi_n + r gh_n); h' = (1 - z) n + z h"""
    (h,) = state
    hidden = h.shape[-1]
    gh = _hidden_gates(h, weight_hh, bias_hh)
    r = (_gate(gi, 0, hidden) + _gate(gh, 0, hidden)).sigmoid()
    z = (_gate(gi, 1, hidden) + _gate(gh, 1, hidden)).sigmoid()
    n = (_gate(gi, 2, hidden) + r * _gate(gh, 2, hidden)).tanh()
    return (n + z * (h - n),)


_STEPS: dict[str, tuple[int, Step]] = {
    # mode: (number of gates, step)
    "RNN_TANH": (1, _tanh_step),
    "RNN_RELU": (1, _relu_step),
    "LSTM": (4, _lstm_step),
    "GRU": (3, _gru_step),
}


# ------------------------------------------------------------------------- helpers
def _size(value: Any, name: str, caller: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{caller}: {name} must be a positive int, got {value!r}")
    return int(value)


def _rnn_mode(nonlinearity: str, caller: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(
            f"{caller}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
        )
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _uniform(bound: float, *shape: int) -> Parameter:
    param = Parameter(np.zeros(shape, dtype=tg.get_default_dtype()))
    return init.uniform_(param, -bound, bound)


def _as_tensor(x: Any, name: str, caller: str) -> Tensor:
    x = x if isinstance(x, Tensor) else tg.Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{caller}: {name} must be floating, got dtype {x.dtype}")
    return x


def _check_state(
    state: Any, names: tuple[str, ...], shape: tuple[int, ...], caller: str
) -> State:
    """The user's initial state as a tuple of Tensors of `shape` (one per name)."""
    if len(names) > 1:
        if not (isinstance(state, (tuple, list)) and len(state) == len(names)):
            raise TypeError(
                f"{caller}: the state must be a tuple {names}, got "
                f"{type(state).__name__}"
            )
    else:
        state = (state,)
    out = []
    for name, value in zip(names, state):
        value = _as_tensor(value, name, caller)
        if value.shape != shape:
            raise ValueError(
                f"{caller}: {name} has shape {value.shape}, expected {shape}"
            )
        out.append(value)
    return tuple(out)


# --------------------------------------------------------------------------- cells
class _CellBase(Module):
    """One time step: parameters weight_ih, weight_hh, bias_ih, bias_hh."""

    _state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool, mode: str):
        super().__init__()
        caller = type(self).__name__
        self.input_size = _size(input_size, "input_size", caller)
        self.hidden_size = _size(hidden_size, "hidden_size", caller)
        self.bias = bool(bias)
        self._mode = mode
        gates = _STEPS[mode][0] * self.hidden_size
        bound = 1 / math.sqrt(self.hidden_size)
        self.weight_ih = _uniform(bound, self.input_size, gates)
        self.weight_hh = _uniform(bound, self.hidden_size, gates)
        self.register_parameter("bias_ih", None)
        self.register_parameter("bias_hh", None)
        if bias:
            self.bias_ih = _uniform(bound, gates)
            self.bias_hh = _uniform(bound, gates)

    def _forward(self, x: Any, state: Any) -> State:
        caller = type(self).__name__
        x = _as_tensor(x, "input", caller)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{caller}: expected input of shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {x.shape}"
            )
        shape = x.shape[:-1] + (self.hidden_size,)
        if state is None:
            zeros = tg.zeros(*shape, dtype=self.weight_ih.dtype)
            state = (zeros,) * len(self._state_names)
        else:
            state = _check_state(state, self._state_names, shape, caller)
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        return _STEPS[self._mode][1](gi, state, self.weight_hh, self.bias_hh)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"


class RNNCell(_CellBase):
    """One Elman RNN step: h' = tanh(x @ weight_ih + bias_ih + h @ weight_hh + bias_hh)
    (or relu with `nonlinearity="relu"`).

    `forward(input, hx=None)` takes input (batch, input_size) or (input_size,) and hx
    of shape (batch, hidden_size) (zeros when None); returns h'. Parameters start from
    U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> cell = nn.RNNCell(3, 5)
    >>> cell.weight_ih.shape, cell.weight_hh.shape, cell(tg.ones(2, 3)).shape
    ((3, 5), (5, 5), (2, 5))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
    ) -> None:
        mode = _rnn_mode(nonlinearity, "RNNCell")
        super().__init__(input_size, hidden_size, bias, mode)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        return self._forward(input, hx)[0]

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity='relu'"


class LSTMCell(_CellBase):
    """One LSTM step with PyTorch's gates (i, f, g, o column blocks of the weights):
    i, f, o = σ(...), g = tanh(...), c' = f c + i g, h' = o tanh(c').

    `forward(input, hx=None)` takes hx = (h, c) (zeros when None) and returns
    (h', c'). Weights (input_size, 4*hidden_size) and (hidden_size, 4*hidden_size).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> cell = nn.LSTMCell(3, 5)
    >>> h, c = cell(tg.ones(2, 3))
    >>> cell.weight_ih.shape, h.shape, c.shape
    ((3, 20), (2, 5), (2, 5))
    """

    _state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, "LSTM")

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        h, c = self._forward(input, hx)
        return h, c


class GRUCell(_CellBase):
    """One GRU step with PyTorch's gates (r, z, n column blocks of the weights):
    r, z = σ(...), n = tanh(x W_in + b_in + r (h W_hn + b_hn)), h' = (1 - z) n + z h.

    `forward(input, hx=None)` returns h'. Weights (input_size, 3*hidden_size) and
    (hidden_size, 3*hidden_size).

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> cell = nn.GRUCell(3, 5)
    >>> cell.weight_hh.shape, cell(tg.ones(2, 3)).shape
    ((5, 15), (2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, "GRU")

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        return self._forward(input, hx)[0]


# -------------------------------------------------------------------------- layers
class _RNNBase(Module):
    """A stack of recurrent layers over a sequence; parameters weight_ih_l{k},
    weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} for layer k."""

    _state_names: tuple[str, ...] = ("h_0",)

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        caller = type(self).__name__
        self.input_size = _size(input_size, "input_size", caller)
        self.hidden_size = _size(hidden_size, "hidden_size", caller)
        self.num_layers = _size(num_layers, "num_layers", caller)
        if not (isinstance(dropout, numbers.Real) and 0 <= dropout < 1):
            raise ValueError(
                f"{caller}: dropout must be a probability in [0, 1), got {dropout!r}"
            )
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = dropout
        self._mode = mode
        gates = _STEPS[mode][0] * self.hidden_size
        bound = 1 / math.sqrt(self.hidden_size)
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else self.hidden_size
            self.register_parameter(
                f"weight_ih_l{layer}", _uniform(bound, inputs, gates)
            )
            self.register_parameter(
                f"weight_hh_l{layer}", _uniform(bound, self.hidden_size, gates)
            )
            if bias:
                self.register_parameter(f"bias_ih_l{layer}", _uniform(bound, gates))
                self.register_parameter(f"bias_hh_l{layer}", _uniform(bound, gates))

    def _layer_parameters(self, layer: int) -> tuple[Any, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of `layer` (biases None if absent)."""
        params = self._parameters
        return (
            params[f"weight_ih_l{layer}"],
            params[f"weight_hh_l{layer}"],
            params.get(f"bias_ih_l{layer}"),
            params.get(f"bias_hh_l{layer}"),
        )

    def _forward(self, x: Any, state: Any) -> tuple[Tensor, State]:
        """(output, final state stacked over layers) for a (T, B, I) or (T, I) input."""
        caller = type(self).__name__
        x = _as_tensor(x, "input", caller)
        layout = "(batch, seq, input)" if self.batch_first else "(seq, batch, input)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{caller}: expected input of shape {layout} or (seq, input) with "
                f"input = {self.input_size}, got {x.shape}"
            )
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.swapaxes(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError(f"{caller}: the input sequence is empty ({x.shape})")
        shape = (self.num_layers, batch, self.hidden_size)
        if state is None:
            zeros = tg.zeros(batch, self.hidden_size, dtype=self.weight_ih_l0.dtype)
            initial = [(zeros,) * len(self._state_names)] * self.num_layers
        else:
            given = shape[:1] + shape[2:] if unbatched else shape
            state = _check_state(state, self._state_names, given, caller)
            if unbatched:
                state = tuple(s.unsqueeze(1) for s in state)
            initial = [
                tuple(s[layer] for s in state) for layer in range(self.num_layers)
            ]
        step = _STEPS[self._mode][1]
        # Time steps travel between layers as a list: slicing a stacked sequence
        # would cost a full-size scatter per step in the backward pass.
        inputs = [x[t] for t in range(steps)]
        finals = []
        for layer in range(self.num_layers):
            weight_ih, weight_hh, bias_ih, bias_hh = self._layer_parameters(layer)
            if layer and self.dropout and self.training:
                inputs = [F.dropout(x_t, self.dropout) for x_t in inputs]
            layer_state = initial[layer]
            outputs = []
            for x_t in inputs:
                gi = F.linear(x_t, weight_ih, bias_ih)
                layer_state = step(gi, layer_state, weight_hh, bias_hh)
                outputs.append(layer_state[0])
            inputs = outputs
            finals.append(layer_state)
        output = tg.stack(inputs)
        final = tuple(tg.stack(parts) for parts in zip(*finals))
        if unbatched:
            return output.squeeze(1), tuple(s.squeeze(1) for s in final)
        return (output.swapaxes(0, 1) if self.batch_first else output), final

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text


class RNN(_RNNBase):
    """A multi-layer Elman RNN over a sequence: per layer and time step
    h_t = tanh(x_t @ weight_ih_lk + bias_ih_lk + h_{t-1} @ weight_hh_lk + bias_hh_lk)
    (or relu), each layer's outputs the next one's inputs.

    `forward(input, hx=None)`: input (seq, batch, input_size) (batch first with
    `batch_first=True`; (seq, input_size) unbatched), hx (num_layers, batch,
    hidden_size) or None (zeros). Returns (output, h_n): the last layer's h_t for every
    t, and every layer's last h, as PyTorch. `dropout` drops the outputs of every layer
    but the last in training.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> rnn = nn.RNN(3, 5, num_layers=2, batch_first=True)
    >>> output, h_n = rnn(tg.ones(4, 7, 3))
    >>> output.shape, h_n.shape, rnn.weight_ih_l1.shape
    ((4, 7, 5), (2, 4, 5), (5, 5))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        mode = _rnn_mode(nonlinearity, "RNN")
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout
        )
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._forward(input, hx)
        return output, h_n

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity='relu'"


class LSTM(_RNNBase):
    """A multi-layer LSTM over a sequence (the step of `LSTMCell` per layer and time).

    `forward(input, hx=None)` with hx = (h_0, c_0), each (num_layers, batch,
    hidden_size), or None (zeros); returns (output, (h_n, c_n)), as PyTorch. Shapes
    and options as `RNN`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> lstm = nn.LSTM(3, 5, num_layers=2)
    >>> output, (h_n, c_n) = lstm(tg.ones(7, 4, 3))
    >>> output.shape, h_n.shape, c_n.shape, lstm.weight_hh_l0.shape
    ((7, 4, 5), (2, 4, 5), (2, 4, 5), (5, 20))
    """

    _state_names = ("h_0", "c_0")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout
        )

    def forward(
        self, input: Any, hx: Any = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        output, (h_n, c_n) = self._forward(input, hx)
        return output, (h_n, c_n)


class GRU(_RNNBase):
    """A multi-layer GRU over a sequence (the step of `GRUCell` per layer and time).

    `forward(input, hx=None)` returns (output, h_n), as PyTorch; shapes and options
    as `RNN`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> gru = nn.GRU(3, 5)
    >>> output, h_n = gru(tg.ones(7, 3))
    >>> output.shape, h_n.shape
    ((7, 5), (1, 5))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout
        )

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._forward(input, hx)
        return output, h_n
