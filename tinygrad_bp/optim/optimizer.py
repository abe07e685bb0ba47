"""The optimizer base: parameter groups, per-parameter state, zero_grad, state dicts."""

from __future__ import annotations

import abc
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import tinygrad_bp as tg


class Optimizer(abc.ABC):
    """Holds parameter groups and per-parameter state; subclasses supply the update.

    ``params`` is an iterable of Tensors (one group) or of dicts, each a parameter
    group ``{"params": [...], "lr": ..., ...}`` whose missing hyper-parameters are
    filled from ``defaults``. ``state`` maps each parameter (the Tensor object
    itself: Tensors hash by identity) to the dict of buffers its update keeps.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import SGD
    >>> a, b = tg.zeros(2, requires_grad=True), tg.zeros(3, requires_grad=True)
    >>> opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> [group["lr"] for group in opt.param_groups]
    [0.1, 0.5]
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, (tg.Tensor, dict, set, str)):
            raise TypeError(
                "params must be an iterable of Tensors or of dicts (parameter "
                f"groups), got {type(params).__name__}"
            )
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list (params=[])")
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Any, dict[str, Any]] = {}
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (others default).

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp.optim import SGD
        >>> opt = SGD([tg.zeros(2, requires_grad=True)], lr=0.1)
        >>> opt.add_param_group({"params": tg.zeros(1, requires_grad=True), "lr": 1.0})
        >>> len(opt.param_groups), opt.param_groups[1]["lr"]
        (2, 1.0)
        """
        if not isinstance(param_group, dict):
            raise TypeError(
                "a parameter group must be a dict with a 'params' entry, got "
                f"{type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise KeyError(
                f"parameter group {len(self.param_groups)} has no 'params' entry "
                f"(keys: {sorted(param_group)})"
            )
        params = param_group["params"]
        if isinstance(params, tg.Tensor):
            params = [params]
        elif isinstance(params, (set, dict, str)):
            raise TypeError(
                "a parameter group's 'params' must be an ordered iterable of "
                f"Tensors, got {type(params).__name__}"
            )
        params = list(params)
        where = f"parameter {{}} of group {len(self.param_groups)}"
        seen = {p for group in self.param_groups for p in group["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, tg.Tensor):
                raise TypeError(
                    f"{where.format(i)} must be a Tensor, got {type(p).__name__}"
                )
            if not p.requires_grad:
                raise ValueError(
                    f"{where.format(i)} (shape {p.shape}) does not require grad; "
                    "an optimizer can only update tensors with requires_grad=True"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{where.format(i)} (shape {p.shape}) is not a leaf tensor; "
                    "optimize the leaves it was computed from instead"
                )
            if p in seen:
                raise ValueError(
                    f"{where.format(i)} (shape {p.shape}) appears more than once "
                    "in the optimizer's parameter groups"
                )
            seen.add(p)
        group = {**self.defaults, **param_group, "params": params}
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Raise ValueError/TypeError naming any invalid hyper-parameter of ``group``."""
        _check_non_negative("lr", group["lr"])

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to ``None`` (PyTorch's default).

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp.optim import SGD
        >>> w = tg.ones(2, requires_grad=True)
        >>> w.grad = tg.ones(2)
        >>> SGD([w], lr=0.1).zero_grad(); print(w.grad)
        None
        """
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a ``.grad`` by the rule in the class doc.

        ``closure``, if given, re-evaluates the model and returns the loss (it runs
        with gradient recording on); ``step`` returns that loss, else ``None``.

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp.optim import SGD
        >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step(); print(w.numpy().round(3))
        [ 0.8 -1.6]
        """
        loss = None
        if closure is not None:
            with tg.enable_grad():
                loss = closure()
        # Checked up front so that a refused step leaves no parameter half-updated.
        for g, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is not None and not p.data.flags.writeable:
                    raise ValueError(
                        f"parameter {i} of group {g} (shape {p.shape}) has a "
                        "read-only data array (a graph that has not run backward "
                        "yet may still need it); nothing was updated"
                    )
        with tg.no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    @abc.abstractmethod
    def _update_group(self, group: dict[str, Any]) -> None:
        """Update the parameters of one group in place (each optimizer's algorithm)."""

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain data: copied arrays, lists, numbers.

        ``{"state": {index: {"step": int, buffer_name: ndarray, ...}},
        "param_groups": [{hyper-parameter: value, ..., "params": [index, ...]}]}``,
        indices counting parameters across groups in order (as PyTorch).

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp.optim import Adam
        >>> w = tg.ones(2, requires_grad=True)
        >>> sd = Adam([w]).state_dict()
        >>> sd["state"], sd["param_groups"][0]["betas"], sd["param_groups"][0]["params"]
        ({}, [0.9, 0.999], [0])
        """
        index: dict[Any, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in group.items()
                if key != "params"
            }
            packed["params"] = [
                index.setdefault(p, len(index)) for p in group["params"]
            ]
            groups.append(packed)
        state = {
            i: {
                key: value.copy() if isinstance(value, np.ndarray) else value
                for key, value in self.state[p].items()
            }
            for p, i in index.items()
            if p in self.state
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (also after ``tg.save``/``tg.load``).

        Groups and their parameters are matched by position. Counts, state array
        shapes and hyper-parameters are all checked before anything changes; arrays
        are copied into the parameters' dtypes; lists come back as tuples where the
        optimizer holds tuples (``betas``).

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp.optim import SGD
        >>> w = tg.ones(2, requires_grad=True)
        >>> opt = SGD([w], lr=0.1)
        >>> opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.5, "params": [0]}]})
        >>> opt.param_groups[0]["lr"]
        0.5
        """
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"state_dict must be a dict, got {type(state_dict).__name__}"
            )
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise KeyError(f"state_dict has no {key!r} entry")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"the loaded state dict has {len(saved_groups)} parameter groups, "
                f"the optimizer has {len(self.param_groups)}"
            )

        param_at: dict[int, Any] = {}
        new_groups = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(
                    f"param_groups[{g}] of the loaded state dict is not a dict with a "
                    f"'params' entry: {saved!r:.80}"
                )
            indices = [
                _as_index(i, f"param_groups[{g}]['params']") for i in saved["params"]
            ]
            if len(indices) != len(group["params"]):
                raise ValueError(
                    f"parameter group {g} has {len(indices)} parameters in the loaded "
                    f"state dict but {len(group['params'])} in the optimizer"
                )
            param_at.update(zip(indices, group["params"]))
            new_group = dict(group)
            for key, value in saved.items():
                if key != "params":
                    new_group[key] = _restore_hyperparameter(value, group.get(key))
            self._check_hyperparameters(new_group)
            new_groups.append(new_group)

        new_state = {}
        for key, saved in state_dict["state"].items():
            i = _as_index(key, "state")
            if i not in param_at:
                raise ValueError(
                    f"the loaded state dict has state for parameter {i}, which none "
                    "of its param_groups lists"
                )
            p = param_at[i]
            new_state[p] = {
                name: _restore_buffer(name, value, p, f"state[{i}][{name!r}]")
                for name, value in saved.items()
            }

        for group, new_group in zip(self.param_groups, new_groups):
            group.update(new_group)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {g} ({len(group['params'])} params): {settings}")
        return "\n".join([*lines, ")"])


def _check_non_negative(name: str, value: Any) -> None:
    """Raise unless ``value`` is a real number >= 0 (``name`` goes in the message)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not value >= 0:  # also catches NaN
        raise ValueError(f"Invalid {name}: {value!r} (must be >= 0)")


def _check_unit_interval(name: str, value: Any, closed: bool = False) -> None:
    """Raise unless ``value`` is in [0, 1) (or [0, 1] when ``closed``)."""
    _check_non_negative(name, value)
    if value > 1 or (value == 1 and not closed):
        bound = "]" if closed else ")"
        raise ValueError(f"Invalid {name}: {value!r} (must be in [0, 1{bound})")


def _state_buffer(state: dict[str, Any], name: str, p: Any) -> np.ndarray:
    """``state[name]``, created as zeros shaped like parameter ``p`` on first use."""
    buf = state.get(name)
    if buf is None:
        buf = state[name] = np.zeros_like(p.data)
    return buf


def _as_index(value: Any, where: str) -> int:
    """A parameter index from a state dict (int, or a NumPy/str int after loading)."""
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = None
    if index is None or isinstance(value, (bool, float)) or index < 0:
        raise ValueError(f"{where}: {value!r} is not a parameter index")
    return index


def _restore_hyperparameter(value: Any, current: Any) -> Any:
    """Undo what saving did: NumPy scalars -> Python scalars, lists -> tuples."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def _restore_buffer(name: str, value: Any, p: Any, where: str) -> Any:
    """Copy a saved state entry for parameter ``p``, checking array shapes."""
    if name == "step":
        return int(value)
    if isinstance(value, (list, np.ndarray)):
        array = np.asarray(value)
        dtype = p.data.dtype if array.dtype.kind in "fiu" else None
        array = np.array(array, dtype=dtype)  # a copy: the caller's dict stays theirs
        if array.shape != tuple(p.shape):
            raise ValueError(
                f"{where} has shape {array.shape} but its parameter has shape "
                f"{tuple(p.shape)}"
            )
        return array
    if isinstance(value, np.generic):
        return value.item()
    return value
