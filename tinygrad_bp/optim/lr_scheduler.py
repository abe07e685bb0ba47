"""Learning-rate schedules that rewrite each parameter group's ``lr`` once per epoch."""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any

import numpy as np

from tinygrad_bp.optim.optimizer import Optimizer, _check_non_negative


class LRScheduler(abc.ABC):
    """Base: ``step()`` advances ``last_epoch`` and sets every group's lr to ``get_lr()``.

    As in PyTorch, ``get_lr`` is written recursively (from each group's current lr),
    so the schedule composes with other changes to the lr; ``base_lrs`` are the
    groups' ``initial_lr`` (set from their lr when the first scheduler attaches).
    Call ``scheduler.step()`` after ``optimizer.step()``, once per epoch.
    """

    # Hyper-parameter attributes that state_dict saves and load_state_dict checks.
    _hyperparameters: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a tinygrad_bp.optim Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._last_lr: list[float] = [g["lr"] for g in optimizer.param_groups]

    @abc.abstractmethod
    def _check_hyperparameters(self, **values: Any) -> None:
        """Raise TypeError/ValueError naming any invalid hyper-parameter."""

    @abc.abstractmethod
    def get_lr(self) -> list[float]:
        """Each group's lr for epoch ``last_epoch``, from its lr at the epoch before."""

    def step(self) -> None:
        """Advance one epoch and write the new lr into every parameter group."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` (or construction) set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """``last_epoch``, ``base_lrs``, ``_last_lr`` and the hyper-parameters."""
        return {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
            **{name: getattr(self, name) for name in self._hyperparameters},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; checks first, changes nothing on error.

        Keys it does not know (such as PyTorch's ``_step_count``) are ignored.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"state_dict must be a dict, got {type(state_dict).__name__}"
            )
        for key in ("last_epoch", "base_lrs", "_last_lr", *self._hyperparameters):
            if key not in state_dict:
                raise KeyError(f"scheduler state_dict has no {key!r} entry")
        n_groups = len(self.optimizer.param_groups)
        lrs = {}
        for key in ("base_lrs", "_last_lr"):
            lrs[key] = [_scalar(lr) for lr in state_dict[key]]
            if len(lrs[key]) != n_groups:
                raise ValueError(
                    f"scheduler state_dict {key!r} has {len(lrs[key])} entries, the "
                    f"optimizer has {n_groups} parameter groups"
                )
        last_epoch = _scalar(state_dict["last_epoch"])
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int):
            raise TypeError(f"last_epoch must be an int, got {last_epoch!r}")
        values = {name: _scalar(state_dict[name]) for name in self._hyperparameters}
        self._check_hyperparameters(**values)

        self.last_epoch = last_epoch
        self.base_lrs = lrs["base_lrs"]
        self._last_lr = lrs["_last_lr"]
        for name, value in values.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        settings = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyperparameters)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """Multiply each group's lr by ``gamma`` every ``step_size`` epochs.

    Closed form: lr_epoch = base_lr * gamma ** (epoch // step_size). As in
    PyTorch it is applied recursively: lr_epoch = gamma * lr_{epoch-1} when
    epoch is a positive multiple of step_size, else lr_{epoch-1}.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import SGD
    >>> from tinygrad_bp.optim.lr_scheduler import StepLR
    >>> opt = SGD([tg.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    _hyperparameters = ("step_size", "gamma")

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1
    ) -> None:
        self._check_hyperparameters(step_size=step_size, gamma=gamma)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def _check_hyperparameters(self, **values: Any) -> None:
        _check_positive_int("step_size", values["step_size"])
        _check_non_negative("gamma", values["gamma"])

    def get_lr(self) -> list[float]:
        """lr * gamma at a positive multiple of ``step_size``, else the lr unchanged."""
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]


class CosineAnnealingLR(LRScheduler):
    """Anneal each group's lr from its base lr to ``eta_min`` along a half cosine.

    Closed form, for every epoch (past ``T_max`` it rises again, period 2 T_max)::

        lr_epoch = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    As in PyTorch it is applied recursively, so it composes with other lr changes::

        lr_e = eta_min + (lr_{e-1} - eta_min)
               * (1 + cos(pi e / T_max)) / (1 + cos(pi (e - 1) / T_max))
        lr_e = lr_{e-1} + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2
               when (e - 1 - T_max) is a multiple of 2 T_max (there the ratio is 0/0)

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.optim import SGD
    >>> from tinygrad_bp.optim.lr_scheduler import CosineAnnealingLR
    >>> opt = SGD([tg.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = CosineAnnealingLR(opt, T_max=2, eta_min=0.0)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 6))
    ...     sched.step()
    >>> lrs
    [1.0, 0.5, 0.0, 0.5, 1.0]
    """

    _hyperparameters = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0) -> None:
        self._check_hyperparameters(T_max=T_max, eta_min=eta_min)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer)

    def _check_hyperparameters(self, **values: Any) -> None:
        _check_positive_int("T_max", values["T_max"])
        _check_non_negative("eta_min", values["eta_min"])

    def get_lr(self) -> list[float]:
        """The recursive cosine step above, for each group."""
        epoch, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if (epoch - 1 - T) % (2 * T) == 0:
            rise = (1 - math.cos(math.pi / T)) / 2
            return [
                group["lr"] + (base_lr - eta_min) * rise
                for base_lr, group in zip(self.base_lrs, groups)
            ]
        ratio = (1 + math.cos(math.pi * epoch / T)) / (
            1 + math.cos(math.pi * (epoch - 1) / T)
        )
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"Invalid {name}: {value!r} (must be >= 1)")


def _scalar(value: Any) -> Any:
    """A Python number from a loaded state dict (NumPy scalars and 0-d arrays too)."""
    return value.item() if isinstance(value, (np.generic, np.ndarray)) else value
